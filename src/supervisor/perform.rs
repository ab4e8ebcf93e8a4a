//! Carrying out a ladder step: [`perform`] runs one action and reports
//! whether it worked. The [`super::runner`] calls it off the core loop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::{Action, Budget, Check, Reboot, Target};
use crate::hook::{self, HookEnv, HookRun};
use crate::process::ProcessHandle;
use crate::store::StoreThread;
use crate::supervisor::{ActionError, KillWhom, Supervisor, UnitAction, UnitState};

/// How long a systemd job of a recovery action may take.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// The outcome of one action, for the log and the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performed {
    /// Whether it worked.
    pub ok: bool,
    /// One line: what was done, or why it failed.
    pub detail: String,
    /// A reboot was refused because a budget is spent: the watchdog enters
    /// safe mode, for this reason.
    pub safe_mode: Option<String>,
    /// A process target was restarted: the spawn number of its new process.
    pub process_spawn: Option<u64>,
    /// A hook's output (bounded), for the event log.
    pub output: Option<String>,
}

impl Performed {
    fn ok(detail: String) -> Self {
        Performed {
            ok: true,
            detail,
            safe_mode: None,
            process_spawn: None,
            output: None,
        }
    }

    /// A reboot refused because a budget is spent: safe mode follows.
    fn refused(why: String) -> Self {
        Performed {
            safe_mode: Some(why.clone()),
            ..Performed::failed(format!("reboot refused: {why}"))
        }
    }

    fn failed(detail: String) -> Self {
        Performed {
            ok: false,
            detail,
            safe_mode: None,
            process_spawn: None,
            output: None,
        }
    }
}

/// What an action may need besides its target.
#[derive(Clone)]
pub struct ActionContext {
    /// The systemd supervisor, when units are supervised.
    pub supervisor: Option<Supervisor>,
    /// The state store (reboot budgets, records).
    pub store: Option<StoreThread>,
    /// `[reboot]`
    pub reboot: Reboot,
    /// `[daemon] host-root`
    pub host_root: PathBuf,
    /// Safe mode, when entered: why.
    pub safe_mode: Option<String>,
    /// The dashboard's address, when it is served.
    pub dashboard_url: Option<String>,
    /// Process targets' handles, by target name.
    pub processes: BTreeMap<String, ProcessHandle>,
    /// What the target's probes last learnt (a camera's `usb-port`).
    pub facts: BTreeMap<&'static str, String>,
}

/// Which attempt of which step, and why: for hooks and records.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Step (0-based).
    pub step: usize,
    /// Attempt (1-based).
    pub attempt: u32,
    /// Why the target is being recovered.
    pub reason: String,
    /// The open incident's id.
    pub incident: String,
}

/// Runs one action of `target`'s ladder. `unit_state`: the unit's last
/// known state (a failed unit is reset before it is restarted, which also
/// rescues one systemd gave up on with `start-limit-hit`).
pub async fn perform(
    ctx: &ActionContext,
    target: &Target,
    action: &Action,
    attempt: &Attempt,
    unit_state: Option<&UnitState>,
) -> Performed {
    let supervisor = ctx.supervisor.as_ref();
    match action {
        Action::Restart if ctx.processes.contains_key(&target.name) => {
            match ctx.processes[&target.name].restart().await {
                Ok((spawn, detail)) => Performed {
                    process_spawn: Some(spawn),
                    ..Performed::ok(detail)
                },
                Err(e) => Performed::failed(e),
            }
        }
        Action::Kill(signal) if ctx.processes.contains_key(&target.name) => {
            match ctx.processes[&target.name].signal(*signal).await {
                Ok(detail) => Performed::ok(detail),
                Err(e) => Performed::failed(e),
            }
        }
        Action::Restart => {
            let Some(unit) = target.unit() else {
                return Performed::failed(format!("target {} has no unit to restart", target.name));
            };
            let Some(supervisor) = supervisor else {
                return Performed::failed("not supervising systemd".into());
            };
            restart_unit(supervisor, unit, unit_state).await
        }
        Action::RestartUnits(units) => {
            let Some(supervisor) = supervisor else {
                return Performed::failed("not supervising systemd".into());
            };
            let mut done = Vec::new();
            for unit in units {
                let outcome = restart_unit(supervisor, unit, None).await;
                if !outcome.ok {
                    return outcome;
                }
                done.push(unit.as_str());
            }
            Performed::ok(format!("restarted {}", done.join(", ")))
        }
        Action::Kill(signal) => {
            let (Some(unit), Some(supervisor)) = (target.unit(), supervisor) else {
                return Performed::failed(format!("target {} has no unit to signal", target.name));
            };
            let kill = UnitAction::Kill {
                whom: KillWhom::Main,
                signal: *signal as i32,
            };
            match supervisor.act(unit, kill, JOB_TIMEOUT).await {
                Ok(_) => Performed::ok(format!("sent {signal} to the main process of {unit}")),
                Err(e) => Performed::failed(e.to_string()),
            }
        }
        Action::Hook {
            name,
            path,
            args,
            timeout,
        } => {
            let env = HookEnv {
                target: target.name.clone(),
                unit: target.unit().map(str::to_owned),
                incident: attempt.incident.clone(),
                attempt: attempt.attempt,
                step: attempt.step as u32 + 1,
                reason: attempt.reason.clone(),
                // The node a `*` pattern last matched, else the device as set.
                device: ctx.facts.get("device").cloned().or_else(|| {
                    target.probes.iter().find_map(|p| match &p.check {
                        Check::Camera { device, .. } => Some(device.display().to_string()),
                        _ => None,
                    })
                }),
                usb_port: ctx.facts.get("usb-port").cloned(),
                dashboard_url: ctx.dashboard_url.clone(),
                host_root: ctx.host_root.clone(),
            };
            let run = HookRun {
                name,
                path,
                args: hook::expand_args(args, &env),
                env,
                timeout: *timeout,
                output_limit: hook::OUTPUT_LIMIT,
            };
            match hook::run(run).await {
                Ok(outcome) if outcome.success() => Performed {
                    output: Some(outcome.output.clone()),
                    ..Performed::ok(format!(
                        "hook {name} succeeded in {} ms",
                        outcome.took.as_millis()
                    ))
                },
                Ok(outcome) => Performed {
                    output: Some(outcome.output.clone()),
                    ..Performed::failed(format!("hook {name} {}", outcome.status))
                },
                Err(e) => Performed::failed(e.to_string()),
            }
        }
        Action::Reboot { budget } => reboot(ctx, target, *budget, attempt).await,
    }
}

/// How long the machine has been up, from `/proc/uptime`.
pub fn uptime(host_root: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(host_root.join("proc/uptime")).ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

async fn reboot(
    ctx: &ActionContext,
    target: &Target,
    step_budget: Option<Budget>,
    attempt: &Attempt,
) -> Performed {
    if let Some(why) = &ctx.safe_mode {
        return Performed::failed(format!("safe mode ({why}): no automatic reboot"));
    }
    let up = uptime(&ctx.host_root).unwrap_or(Duration::MAX);
    if up < ctx.reboot.min_uptime {
        return Performed::failed(format!(
            "the machine has been up only {}; automatic reboots wait for {} ([reboot] min-uptime)",
            humantime::format_duration(Duration::from_secs(up.as_secs())),
            humantime::format_duration(ctx.reboot.min_uptime)
        ));
    }
    let Some(store) = &ctx.store else {
        return Performed::failed(
            "no state store: a reboot budget must survive reboots, so none is made".into(),
        );
    };
    let now = SystemTime::now();
    let window_start = |window: Duration| now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let global = ctx.reboot.budget;
    // Read back as far as the longer of the two windows.
    let since = step_budget
        .map(|b| window_start(b.window))
        .unwrap_or(now)
        .min(window_start(global.window));
    let done = match store.query(move |s| s.reboots_since(since)).await {
        Ok(d) => d,
        Err(e) => return Performed::failed(format!("cannot read the reboot budget: {e}")),
    };
    let count = |start: SystemTime, only: Option<&str>| {
        done.iter()
            .filter(|r| r.at >= start && only.is_none_or(|t| r.target.as_deref() == Some(t)))
            .count()
    };
    let all = count(window_start(global.window), None);
    if all >= global.count as usize {
        return Performed::refused(format!(
            "the reboot budget {global} ([reboot] budget) is spent: {all} reboot(s) in the last {}",
            humantime::format_duration(global.window)
        ));
    }
    if let Some(budget) = step_budget {
        let mine = count(window_start(budget.window), Some(&target.name));
        if mine >= budget.count as usize {
            return Performed::refused(format!(
                "{}'s reboot budget {budget} is spent: {mine} reboot(s) in the last {}",
                target.name,
                humantime::format_duration(budget.window)
            ));
        }
    }
    // Recorded before it happens: a budget that survives the reboot.
    let boot_id = crate::store::current_boot_id(&ctx.host_root);
    let name = target.name.clone();
    let reason = format!("{} (incident {})", attempt.reason, attempt.incident);
    let record = reason.clone();
    if let Err(e) = store
        .query_committed(move |s| s.record_reboot(now, Some(&name), &record, &boot_id))
        .await
    {
        return Performed::failed(format!("cannot record the reboot, so none is made: {e}"));
    }
    tracing::error!(
        target_name = %target.name,
        incident = %attempt.incident,
        reason = %reason,
        "rebooting the machine to recover {}: {reason}",
        target.name
    );
    match &ctx.reboot.command {
        Some(command) => {
            let result = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::new(&command[0])
                    .args(&command[1..])
                    .stdin(std::process::Stdio::null())
                    .status(),
            )
            .await;
            match result {
                Ok(Ok(status)) if status.success() => {
                    Performed::ok(format!("reboot command {} ran", command[0]))
                }
                Ok(Ok(status)) => {
                    Performed::failed(format!("reboot command {} ended with {status}", command[0]))
                }
                Ok(Err(e)) => {
                    Performed::failed(format!("cannot run the reboot command {}: {e}", command[0]))
                }
                Err(_) => Performed::failed(format!(
                    "the reboot command {} did not finish within 60 s",
                    command[0]
                )),
            }
        }
        None => match ctx.supervisor.as_ref() {
            Some(supervisor) => match supervisor
                .act("reboot.target", UnitAction::Reboot, JOB_TIMEOUT)
                .await
            {
                Ok(_) => Performed::ok("systemd is rebooting the machine".into()),
                Err(e) => Performed::failed(format!("systemd refused the reboot: {e}")),
            },
            None => {
                Performed::failed("not connected to systemd, and no [reboot] command is set".into())
            }
        },
    }
}

/// Restarts a unit as a `restart` step does, waiting for the job to end.
/// A failed unit whose restart job fails too (systemd gave up on it: its
/// start limit) is reset and restarted once more. `state` is the unit's
/// last known state; `None` reads it.
pub async fn restart_unit(
    supervisor: &Supervisor,
    unit: &str,
    state: Option<&UnitState>,
) -> Performed {
    // Restart first: a failed unit starts again without a reset, and the
    // reset's round trip would delay every restart. Only a unit that
    // systemd gave up on (its start limit) refuses; that one is reset and
    // restarted once more.
    let failed = match state {
        Some(s) => s.active_state == "failed",
        None => supervisor
            .state(unit)
            .await
            .is_some_and(|s| s.active_state == "failed"),
    };
    let first = supervisor.act(unit, UnitAction::Restart, JOB_TIMEOUT).await;
    let refused = match first {
        Ok(done) => {
            return Performed::ok(format!("restarted {unit} in {} ms", done.took.as_millis()));
        }
        Err(e @ (ActionError::JobFailed { .. } | ActionError::Refused(_))) if failed => e,
        Err(e) => return Performed::failed(e.to_string()),
    };
    if let Err(e) = supervisor
        .act(unit, UnitAction::ResetFailed, JOB_TIMEOUT)
        .await
    {
        return Performed::failed(format!("{refused}; reset-failed of {unit}: {e}"));
    }
    match supervisor.act(unit, UnitAction::Restart, JOB_TIMEOUT).await {
        Ok(done) => Performed::ok(format!(
            "restarted {unit} in {} ms after a reset ({refused})",
            done.took.as_millis()
        )),
        Err(e) => Performed::failed(format!("{e} (after a reset; first: {refused})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::SourceFile;
    use crate::config::{self, validate};
    use crate::store::Store;

    fn target(text: &str) -> (config::Config, Target) {
        let src = SourceFile::new(
            "<embedded>/watchdog.toml",
            config::EMBEDDED_CONFIG.to_owned(),
        );
        let mut out = Vec::new();
        let raw = src.deserialize(&mut out, |_| None).unwrap();
        let config = validate::config(&src, raw, &mut out);
        let psrc = SourceFile::new("t.toml", text.to_owned());
        let raw = psrc.deserialize(&mut out, |_| None).unwrap();
        let target = validate::policy(&psrc, raw, &config, &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
        (config, target)
    }

    /// A step's budget counts its reboots over its own window, even one
    /// longer than the global budget's.
    #[tokio::test]
    async fn a_step_budget_longer_than_the_global_one_counts_its_whole_window() {
        let (config, target) = target(
            "[target]\nname = \"cam\"\n\n[[probe]]\nkind = \"memory\"\n\n[[recovery]]\naction = \"reboot\"\nbudget = \"1/1d\"\n",
        );
        let store = Store::open_in_memory().unwrap();
        let earlier = SystemTime::now() - Duration::from_secs(2 * 3600);
        store
            .record_reboot(earlier, Some("cam"), "earlier", "boot-1")
            .unwrap();
        let mut reboot = config.reboot.clone();
        reboot.budget = Budget {
            count: 5,
            window: Duration::from_secs(3600),
        };
        reboot.min_uptime = Duration::ZERO;
        reboot.command = Some(vec!["/bin/true".into()]);
        let ctx = ActionContext {
            facts: BTreeMap::new(),
            supervisor: None,
            store: Some(StoreThread::spawn(store)),
            reboot,
            host_root: "/".into(),
            safe_mode: None,
            dashboard_url: None,
            processes: BTreeMap::new(),
        };
        let attempt = Attempt {
            step: 0,
            attempt: 1,
            reason: "test".into(),
            incident: "cam-1".into(),
        };
        let done = perform(&ctx, &target, &target.ladder[0].action, &attempt, None).await;
        assert!(!done.ok);
        assert_eq!(
            done.detail,
            "reboot refused: cam's reboot budget 1/1day is spent: 1 reboot(s) in the last 1day"
        );
        assert!(done.safe_mode.is_some());
    }
}
