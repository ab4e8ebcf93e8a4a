//! A target's **health** from everything known of it: its unit's or its
//! process's state, and its probes after hysteresis. Pure functions of
//! what the core loop knows; the engine takes the result.
//!
//! For a unit or a process only `liveness` probes count (a failing
//! dependency must not restart it); a target that is only probed is what
//! its probes say. Until every counted probe has an answer, a healthy
//! unit is `unknown`, not healthy.

use super::Health;
use crate::config::{self, Target, TargetKind};
use crate::probe::ProbeHealth;
use crate::process::ProcessState;
use crate::supervisor::UnitState;

/// How far a unit's stop on purpose (`systemctl stop`, a stop job) has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stop {
    /// Not stopping.
    #[default]
    None,
    /// Deactivation began while the main process still ran: someone asked
    /// systemd to stop it (a process that exits by itself is gone first).
    Asked,
    /// It ended `inactive` and successful after being asked: stopped on
    /// purpose, until it is started again.
    Done,
}

/// The next step of a unit's stop, from its new state. A crash ends
/// `failed`, which is no stop; starting again ends one.
pub fn next_stop(before: Stop, now: &UnitState) -> Stop {
    match now.active_state.as_str() {
        "deactivating" if now.main_pid != 0 => Stop::Asked,
        "deactivating" => before,
        "inactive" if matches!(now.result.as_str(), "" | "success") => match before {
            Stop::Asked | Stop::Done => Stop::Done,
            Stop::None => Stop::None,
        },
        _ => Stop::None,
    }
}

/// A target's health. `unit`: its unit's last state and whether it was
/// stopped on purpose (unit targets); `process`: its process's last state
/// (process and adopted targets); `probe`: a probe's health so far and its
/// last output, by probe name. A unit stopped on purpose is `stopped`,
/// whatever its probes say.
pub fn target_health<'a>(
    target: &Target,
    unit: Option<(&UnitState, bool)>,
    process: Option<&ProcessState>,
    probe: impl Fn(&str) -> Option<(ProbeHealth, &'a str)>,
) -> Health {
    if let Some((_, true)) = unit {
        return Health::Stopped;
    }
    let base = match &target.kind {
        TargetKind::Unit { .. } => Some(unit.map(|(u, _)| unit_health(u)).unwrap_or_default()),
        TargetKind::Process(_) | TargetKind::Adopted(_) => Some(
            process
                .map(|s| process_health(&target.name, s))
                .unwrap_or_default(),
        ),
        TargetKind::Probed => None,
    };
    if let Some(h @ Health::Failing { .. }) = &base {
        return h.clone();
    }
    let counted = target
        .probes
        .iter()
        .filter(|p| crate::probe::runs(&p.check))
        .filter(|p| base.is_none() || p.role == config::ProbeRole::Liveness);
    let mut any = false;
    let mut all_known = true;
    for p in counted {
        any = true;
        match probe(&p.name) {
            Some((ProbeHealth::Failing, output)) => {
                return Health::Failing {
                    reason: format!("probe {} is failing: {output}", p.name),
                    systemd_restarting: false,
                };
            }
            Some((ProbeHealth::Passing, _)) => {}
            _ => all_known = false,
        }
    }
    match base {
        Some(h) if !all_known && h == Health::Healthy => Health::Unknown,
        Some(h) => h,
        None if !any || !all_known => Health::Unknown,
        None => Health::Healthy,
    }
}

/// A target's health as its unit's state says.
pub fn unit_health(state: &UnitState) -> Health {
    // A failed unit has no main process: one that has is starting again
    // (its new process is there before its new state is).
    if state.active_state == "failed" && state.main_pid != 0 {
        return Health::Unknown;
    }
    if let Some(why) = state.failure() {
        return Health::Failing {
            reason: format!("unit {} failed ({why})", state.unit),
            systemd_restarting: state.sub_state == "auto-restart",
        };
    }
    match state.active_state.as_str() {
        "active" | "reloading" => Health::Healthy,
        "inactive" | "failed" if state.load_state == "not-found" => Health::Failing {
            reason: format!("unit {} does not exist", state.unit),
            systemd_restarting: false,
        },
        "inactive" => Health::Failing {
            reason: format!("unit {} is not running", state.unit),
            systemd_restarting: false,
        },
        "failed" => Health::Failing {
            reason: format!("unit {} failed", state.unit),
            systemd_restarting: false,
        },
        // activating, deactivating: wait for where it settles.
        _ => Health::Unknown,
    }
}

/// A process target's health as its process's state says.
pub fn process_health(name: &str, state: &ProcessState) -> Health {
    let failing = |reason: String| Health::Failing {
        reason,
        systemd_restarting: false,
    };
    match state {
        ProcessState::Running { .. } => Health::Healthy,
        ProcessState::Exited { code } => {
            failing(format!("process of {name} exited with code {code}"))
        }
        ProcessState::Killed { signal } => {
            failing(format!("process of {name} was killed by signal {signal}"))
        }
        ProcessState::Stuck { state, secs, .. } => failing(format!(
            "process of {name} is {} for {secs}s",
            if *state == 'D' {
                "in uninterruptible sleep"
            } else {
                "stopped"
            }
        )),
        ProcessState::SpawnFailed { error } => failing(error.clone()),
        ProcessState::Stopped => Health::Unknown,
        ProcessState::Absent { reason } => failing(format!("{name} is not running: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Probe healths by name, as the tests give them.
    type ProbeHealths<'a> = BTreeMap<&'a str, (ProbeHealth, &'a str)>;

    fn health(
        t: &Target,
        unit: Option<&UnitState>,
        process: Option<&ProcessState>,
        probes: &ProbeHealths<'_>,
    ) -> Health {
        target_health(t, unit.map(|u| (u, false)), process, |name| {
            probes.get(name).copied()
        })
    }

    fn target(policy: &str) -> Target {
        crate::recovery::tests::config_with(&[("t", policy)]).targets[0].clone()
    }

    fn unit(active: &str, sub: &str, result: &str) -> UnitState {
        UnitState {
            active_state: active.into(),
            sub_state: sub.into(),
            result: result.into(),
            load_state: "loaded".into(),
            ..UnitState::unknown("app.service")
        }
    }

    const UNIT: &str = "[target]\nname = \"app\"\nunit = \"app.service\"\n\n\
        [[probe]]\nname = \"live\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n\n\
        [[probe]]\nname = \"dep\"\nkind = \"tcp\"\naddress = \"127.0.0.1:2\"\nrole = \"dependency\"\n";

    #[test]
    fn a_failed_unit_with_a_main_process_is_starting_again() {
        let starting = UnitState {
            main_pid: 4242,
            ..unit("failed", "failed", "exit-code")
        };
        assert_eq!(unit_health(&starting), Health::Unknown);
        assert!(unit_health(&unit("failed", "failed", "exit-code")).is_failing());
    }

    #[test]
    fn a_failed_unit_is_failing_whatever_its_probes_say() {
        let t = target(UNIT);
        let probes = ProbeHealths::from([("live", (ProbeHealth::Passing, "ok"))]);
        let h = health(
            &t,
            Some(&unit("failed", "failed", "exit-code")),
            None,
            &probes,
        );
        assert!(
            matches!(&h, Health::Failing { reason, systemd_restarting: false } if reason.contains("exit-code")),
            "{h:?}"
        );
        let h = health(
            &t,
            Some(&unit("activating", "auto-restart", "exit-code")),
            None,
            &probes,
        );
        assert!(
            matches!(
                h,
                Health::Failing {
                    systemd_restarting: true,
                    ..
                }
            ),
            "{h:?}"
        );
    }

    #[test]
    fn a_running_unit_waits_for_its_liveness_probes_and_ignores_the_others() {
        let t = target(UNIT);
        let running = unit("active", "running", "success");
        assert_eq!(
            health(&t, Some(&running), None, &ProbeHealths::new()),
            Health::Unknown,
            "healthy only once its liveness probe answered"
        );
        let probes = ProbeHealths::from([
            ("live", (ProbeHealth::Passing, "ok")),
            ("dep", (ProbeHealth::Failing, "refused")),
        ]);
        assert_eq!(health(&t, Some(&running), None, &probes), Health::Healthy);
        let probes = ProbeHealths::from([("live", (ProbeHealth::Failing, "refused"))]);
        assert_eq!(
            health(&t, Some(&running), None, &probes),
            Health::Failing {
                reason: "probe live is failing: refused".into(),
                systemd_restarting: false
            }
        );
    }

    #[test]
    fn a_probed_target_is_what_all_its_probes_say() {
        let t = target(UNIT.replace("unit = \"app.service\"\n", "").as_str());
        let one = ProbeHealths::from([("live", (ProbeHealth::Passing, "ok"))]);
        assert_eq!(health(&t, None, None, &one), Health::Unknown);
        let both = ProbeHealths::from([
            ("live", (ProbeHealth::Passing, "ok")),
            ("dep", (ProbeHealth::Passing, "ok")),
        ]);
        assert_eq!(health(&t, None, None, &both), Health::Healthy);
        let failing = ProbeHealths::from([
            ("live", (ProbeHealth::Passing, "ok")),
            ("dep", (ProbeHealth::Failing, "refused")),
        ]);
        assert!(health(&t, None, None, &failing).is_failing());
    }

    #[test]
    fn a_process_target_is_its_process_state() {
        let t = target(
            "[target]\nname = \"p\"\n\n[target.process]\ncommand = [\"/bin/sleep\", \"60\"]\n",
        );
        assert_eq!(
            health(
                &t,
                None,
                Some(&ProcessState::Running { pid: 7 }),
                &ProbeHealths::new()
            ),
            Health::Healthy
        );
        assert_eq!(
            health(
                &t,
                None,
                Some(&ProcessState::Exited { code: 3 }),
                &ProbeHealths::new()
            ),
            Health::Failing {
                reason: "process of p exited with code 3".into(),
                systemd_restarting: false
            }
        );
        assert_eq!(
            health(&t, None, None, &ProbeHealths::new()),
            Health::Unknown
        );
    }

    #[test]
    fn a_stop_job_is_told_apart_from_a_crash_and_from_an_exit() {
        let at = |active: &str, sub: &str, result: &str, pid: u32| UnitState {
            main_pid: pid,
            ..unit(active, sub, result)
        };
        let walk = |states: &[UnitState]| states.iter().fold(Stop::None, next_stop);
        let running = at("active", "running", "success", 42);
        let dead = at("inactive", "dead", "success", 0);
        // systemctl stop: SIGTERM while it runs, then its cgroup empties.
        let asked = [
            running.clone(),
            at("deactivating", "stop-sigterm", "success", 42),
            at("deactivating", "stop-sigterm", "success", 0),
            dead.clone(),
        ];
        assert_eq!(walk(&asked), Stop::Done);
        // Exited by itself (then its ExecStopPost ran): no one asked.
        assert_eq!(
            walk(&[
                running.clone(),
                at("deactivating", "stop-post", "success", 0),
                dead.clone()
            ]),
            Stop::None
        );
        assert_eq!(walk(&[running.clone(), dead.clone()]), Stop::None);
        // Asked, but it did not stop cleanly: failing, not stopped.
        assert_eq!(
            walk(&[asked[1].clone(), at("failed", "failed", "timeout", 0)]),
            Stop::None
        );
        // Started again: the stop is over.
        assert_eq!(next_stop(Stop::Done, &running), Stop::None);
        // Stopped wins over what the probes say.
        let t = target(UNIT);
        let probes = ProbeHealths::from([("live", (ProbeHealth::Failing, "refused"))]);
        assert_eq!(
            target_health(&t, Some((&dead, true)), None, |n| probes.get(n).copied()),
            Health::Stopped
        );
        assert!(health(&t, Some(&dead), None, &probes).is_failing());
    }
}
