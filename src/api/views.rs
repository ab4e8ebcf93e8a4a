//! Typed views of the daemon for every HTTP consumer: `/health`,
//! `/api/v1/*` and, later, the dashboard and the platform's endpoints
//! render these, so each field is named and shaped in one place. They
//! borrow from the core loop's [`Snapshot`] and are built per request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::alert::task::OpenByTarget;
use crate::process::ProcessState;
use crate::recovery::LadderState;
use crate::recovery::{Health, Ms};
use crate::status::{DisabledView, IdentityView, LastAction, Snapshot, TargetView, rfc3339};
use crate::store::{BootEnd, PreviousBoot};
use crate::supervisor::{UnitAccounting, UnitState};

/// The health draft's status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// All good.
    Pass,
    /// Degraded.
    Warn,
    /// Down.
    Fail,
}

/// What a check measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Observed {
    /// A count.
    Count(u64),
    /// A measurement.
    Number(f64),
    /// A yes or no.
    Flag(bool),
}

/// One entry of the `checks` map, in the health draft's words.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check<'a> {
    /// `component` or `system`.
    pub component_type: &'static str,
    /// Its status.
    pub status: Status,
    /// What it measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<Observed>,
    /// In what unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_unit: Option<&'static str>,
    /// When, RFC 3339.
    pub time: String,
    /// One line for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Reconnections to systemd (the connection's check only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u64>,
    /// A target's state (its check only): `healthy`, `failing`,
    /// `gave-up`, `paused`, `stopped` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// Since when it is in that state, RFC 3339 (a target's check only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The last action carried out on it (a target's check only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<&'a LastAction>,
    /// Its open alerts (a target's check only, when it has any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_alerts: Option<usize>,
    /// Whether every open alert is acknowledged (a target's check, when it
    /// has open alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<bool>,
    /// Who acknowledged them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// Its alerts are held back while this dependency fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<String>,
    /// Reboots the budget still allows (a target whose ladder reboots; the
    /// reboot budget's check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboots_left: Option<u32>,
}

impl Check<'_> {
    /// A component's check of one measurement, none of a target's fields.
    fn measured(
        status: Status,
        observed: Observed,
        unit: Option<&'static str>,
        time: String,
        output: Option<String>,
    ) -> Self {
        Check {
            component_type: "component",
            status,
            observed_value: Some(observed),
            observed_unit: unit,
            time,
            output,
            reconnects: None,
            state: None,
            since: None,
            last_action: None,
            open_alerts: None,
            acknowledged: None,
            acknowledged_by: None,
            suppressed_by: None,
            reboots_left: None,
        }
    }
}

/// A target with what is known of it now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport<'a> {
    /// Its configuration.
    #[serde(flatten)]
    pub target: &'a TargetView,
    /// Its unit's state, for unit targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_state: Option<&'a UnitState>,
    /// Its process's state, for process targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_state: Option<&'a ProcessState>,
    /// Its ladder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<LadderView<'a>>,
    /// Its unit's resource use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounting: Option<&'a UnitAccounting>,
}

/// A target's ladder as `/health` shows it: the persisted state with its
/// times in RFC 3339 (to the millisecond).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LadderView<'a> {
    /// Its health as the engine sees it.
    pub health: &'a Health,
    /// The current step (0-based: the policy's first `[[recovery]]` is 0).
    pub step: usize,
    /// Attempts used in the current step.
    pub attempts: u32,
    /// When the last attempt started.
    pub last_attempt_at: Option<String>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// The action under way.
    pub in_flight: Option<InFlightView>,
    /// A successful action is being verified since (its step's `healthy-for`).
    pub verifying_since: Option<String>,
    /// Healthy without interruption since.
    pub healthy_since: Option<String>,
    /// Failing without interruption since.
    pub failing_since: Option<String>,
    /// Failures are not acted on before (start-up grace).
    pub grace_until: Option<String>,
    /// Held while this dependency is healed first.
    pub held_by: Option<&'a str>,
    /// The ladder ran out.
    pub gave_up: Option<GaveUpView<'a>>,
    /// The open incident.
    pub incident: Option<IncidentView<'a>>,
}

/// An action under way.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlightView {
    /// Step (0-based).
    pub step: usize,
    /// Attempt (1-based).
    pub attempt: u32,
    /// Started at.
    pub since: String,
}

/// A ladder that ran out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GaveUpView<'a> {
    /// When.
    pub at: String,
    /// Why.
    pub reason: &'a str,
}

/// An open incident.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentView<'a> {
    /// Its id.
    pub id: &'a str,
    /// Opened at.
    pub opened_at: String,
}

fn ms_millis(at: Ms) -> String {
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(at)).to_string()
}

impl<'a> LadderView<'a> {
    fn new(l: &'a LadderState) -> Self {
        let time = |t: Option<Ms>| t.map(ms_millis);
        LadderView {
            health: &l.health,
            step: l.step,
            attempts: l.attempts,
            last_attempt_at: time(l.last_attempt_at),
            next_attempt_at: time(l.next_attempt_at),
            in_flight: l.in_flight.as_ref().map(|f| InFlightView {
                step: f.step,
                attempt: f.attempt,
                since: ms_millis(f.since),
            }),
            verifying_since: time(l.verifying_since),
            healthy_since: time(l.healthy_since),
            failing_since: time(l.failing_since),
            grace_until: time(l.grace_until),
            held_by: l.held_by.as_deref(),
            gave_up: l.gave_up.as_ref().map(|g| GaveUpView {
                at: ms_millis(g.at),
                reason: &g.reason,
            }),
            incident: l.incident.as_ref().map(|i| IncidentView {
                id: &i.id,
                opened_at: ms_millis(i.opened_at),
            }),
        }
    }
}

/// How the previous boot ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootView<'a> {
    /// Its boot id.
    pub boot_id: &'a str,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// `watchdog-reboot`, `clean-shutdown` or `unexpected`.
    pub ended: &'static str,
    /// The reboot's target, reason and time, or the shutdown's time.
    pub detail: Option<BootDetail<'a>>,
}

/// Detail of how a boot ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootDetail<'a> {
    /// The target whose ladder rebooted (reboots only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Option<&'a str>>,
    /// Why (reboots only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// When, RFC 3339.
    pub at: String,
}

impl<'a> BootView<'a> {
    fn new(boot: &'a PreviousBoot) -> Self {
        let (ended, detail) = match &boot.ended {
            BootEnd::WatchdogReboot { target, reason, at } => (
                "watchdog-reboot",
                Some(BootDetail {
                    target: Some(target.as_deref()),
                    reason: Some(reason),
                    at: rfc3339(*at),
                }),
            ),
            BootEnd::CleanShutdown { at } => (
                "clean-shutdown",
                Some(BootDetail {
                    target: None,
                    reason: None,
                    at: rfc3339(*at),
                }),
            ),
            BootEnd::Unexpected => ("unexpected", None),
        };
        BootView {
            boot_id: &boot.boot_id,
            started_at: rfc3339(boot.started_at),
            ended,
            detail,
        }
    }
}

/// The `/health` document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport<'a> {
    /// The worst status of the checks that count.
    pub status: Status,
    /// The major version.
    pub version: &'static str,
    /// The full version.
    pub release_id: &'static str,
    /// The machine: its hardware id, or its name.
    pub service_id: &'a str,
    /// One line.
    pub description: String,
    /// Who this machine is.
    pub identity: &'a IdentityView,
    /// Every check, by `component:measurement`.
    pub checks: BTreeMap<String, Vec<Check<'a>>>,
    /// Every target.
    pub targets: Vec<TargetReport<'a>>,
    /// Where the state lives.
    pub state_dir: &'a str,
    /// Where log lines go.
    pub log: &'static str,
    /// When the daemon started, RFC 3339.
    pub started_at: String,
    /// How the previous boot ended, when known.
    pub previous_boot: Option<BootView<'a>>,
    /// Targets whose policy says `enabled = false`: not supervised, and what
    /// to fix before enabling each. Absent when there are none.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub disabled_targets: &'a [DisabledView],
}

/// The core loop counts as wedged when it has not gone round for this many ticks.
const STALE_TICKS: u32 = 5;

/// How long ago the core loop went round, and whether that is too long.
pub fn loop_age(s: &Snapshot, now: Instant) -> (Duration, bool) {
    let age = now.saturating_duration_since(s.last_tick);
    (age, age > s.tick_every * STALE_TICKS)
}

fn ms_rfc3339(at: Ms) -> String {
    rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(at))
}

/// A target's check: its status, state, since when, and a line for people.
///
/// Paused by an operator: pass, or warn while failing. Healthy, stopped
/// on purpose (`systemctl stop`), or not known yet: pass. Failing: warn, or fail when its
/// `[alert] severity` is `critical`. Its ladder gave up: fail while it is
/// not healthy, warn once it is (nothing will act on its next failure until
/// an operator resets it).
fn target_check(
    t: &TargetView,
    ladder: Option<&LadderState>,
) -> (Status, &'static str, Option<Ms>, String) {
    let Some(l) = ladder else {
        return (Status::Pass, "unknown", None, "not observed yet".into());
    };
    if let Some(p) = &l.paused {
        let until = p
            .until
            .map(|u| format!("until {}", ms_rfc3339(u)))
            .unwrap_or_else(|| "until resumed".into());
        // Maintenance: a failure then is expected, and nobody acts on it.
        let (status, now) = match &l.health {
            Health::Failing { reason, .. } => (Status::Warn, format!("failing: {reason}")),
            Health::Healthy => (Status::Pass, "healthy".into()),
            Health::Unknown => (Status::Pass, "not known yet".into()),
            Health::Stopped => (Status::Pass, "stopped on purpose".into()),
        };
        return (
            status,
            "paused",
            Some(p.since),
            format!("paused by an operator {until}: watched, not acted on; {now}"),
        );
    }
    let failing = match t.severity {
        "critical" => Status::Fail,
        _ => Status::Warn,
    };
    match (&l.health, &l.gave_up) {
        (Health::Healthy, Some(g)) => (
            Status::Warn,
            "healthy",
            l.healthy_since,
            format!(
                "healthy, but its ladder gave up at {} ({}); reset it to re-arm recovery",
                ms_rfc3339(g.at),
                g.reason
            ),
        ),
        (_, Some(g)) => (
            Status::Fail,
            "gave-up",
            Some(g.at),
            format!("gave up: {}", g.reason),
        ),
        (Health::Failing { reason, .. }, None) => {
            let mut output = format!("failing: {reason}");
            if let Some(by) = &l.held_by {
                output.push_str(&format!("; held while {by} is healed first"));
            }
            (failing, "failing", l.failing_since, output)
        }
        (Health::Healthy, None) => (Status::Pass, "healthy", l.healthy_since, "healthy".into()),
        (Health::Stopped, None) => (
            Status::Pass,
            "stopped",
            None,
            "stopped on purpose (systemctl stop): not restarted until it is started again".into(),
        ),
        (Health::Unknown, None) => (
            Status::Pass,
            "unknown",
            None,
            "not known yet (starting, or waiting for a fresh observation)".into(),
        ),
    }
}

/// A target's status, state, since when (RFC 3339) and a line for people,
/// as its `/health` check says them.
pub fn target_status(
    t: &TargetView,
    s: &Snapshot,
) -> (Status, &'static str, Option<String>, String) {
    let (status, state, since, output) = target_check(t, s.ladders.get(&t.name));
    (status, state, since.map(ms_rfc3339), output)
}

/// Every target with what is known of it.
pub fn targets(s: &Snapshot) -> Vec<TargetReport<'_>> {
    s.config
        .targets
        .iter()
        .map(|t| TargetReport {
            target: t,
            unit_state: t.unit.as_ref().and_then(|u| s.units.get(u)),
            process_state: s.processes.get(&t.name),
            recovery: s.ladders.get(&t.name).map(LadderView::new),
            accounting: t.unit.as_ref().and_then(|u| s.accounting.get(u)),
        })
        .collect()
}

impl<'a> HealthReport<'a> {
    /// The report of `s` at `now` (monotonic, for the loop's age) and
    /// `wall`, with each target's open alerts from `alerts`.
    pub fn new(s: &'a Snapshot, alerts: &OpenByTarget, now: Instant, wall: SystemTime) -> Self {
        let (age, stale) = loop_age(s, now);
        let time = rfc3339(wall);
        let config_status = if s.rejected_reload.is_some() || s.config.warnings > 0 {
            Status::Warn
        } else {
            Status::Pass
        };
        let mut config_output = format!(
            "generation {} from {} and {}, applied {}",
            s.config.generation,
            s.config.source,
            s.config.policies,
            rfc3339(s.config.loaded_at)
        );
        if s.config.warnings > 0 {
            config_output.push_str(&format!("; {} warning(s) at load", s.config.warnings));
        }
        if let Some(r) = &s.rejected_reload {
            config_output.push_str(&format!(
                "; reload at {} refused with {} error(s), running configuration kept: {}",
                rfc3339(r.at),
                r.errors,
                r.problems.join("; ")
            ));
        }
        let loop_status = if stale { Status::Fail } else { Status::Pass };
        let check = |status, observed, unit, output| {
            Check::measured(status, observed, unit, time.clone(), output)
        };
        let mut checks = BTreeMap::new();
        checks.insert(
            "config:targets".to_owned(),
            vec![check(
                config_status,
                Observed::Count(s.config.targets.len() as u64),
                Some("targets"),
                Some(config_output),
            )],
        );
        checks.insert(
            "core-loop:age".to_owned(),
            vec![check(
                loop_status,
                Observed::Number((age.as_secs_f64() * 1000.0).round() / 1000.0),
                Some("s"),
                None,
            )],
        );
        let mut statuses = vec![config_status, loop_status];
        if let Some(bus) = &s.supervisor {
            // Not connected: the daemon is up but cannot see or heal units.
            let status = if bus.connected {
                Status::Pass
            } else {
                Status::Warn
            };
            statuses.push(status);
            let mut output = if bus.connected {
                format!(
                    "connected to systemd on the {} since {}",
                    bus.bus,
                    rfc3339(bus.since)
                )
            } else {
                format!(
                    "not connected to systemd on the {} since {}; retrying",
                    bus.bus,
                    rfc3339(bus.since)
                )
            };
            if let Some(e) = &bus.last_error {
                output.push_str(&format!("; last error: {e}"));
            }
            checks.insert(
                "systemd:connection".to_owned(),
                vec![Check {
                    component_type: "system",
                    reconnects: Some(bus.reconnects),
                    ..check(status, Observed::Flag(bus.connected), None, Some(output))
                }],
            );
        }
        for (name, probe) in &s.probes {
            let status = match (probe.health, probe.outcome.status) {
                (crate::probe::ProbeHealth::Failing, _) => Status::Fail,
                (_, crate::probe::Status::Pass) => Status::Pass,
                _ => Status::Warn,
            };
            // A failing probe degrades the machine; the watchdog itself stays up.
            statuses.push(status.min(Status::Warn));
            checks.insert(
                name.clone(),
                vec![Check {
                    observed_value: probe.outcome.observed_value.map(Observed::Number),
                    observed_unit: probe.outcome.observed_unit,
                    time: rfc3339(probe.at),
                    ..check(
                        status,
                        Observed::Flag(false),
                        None,
                        Some(probe.outcome.output.clone()),
                    )
                }],
            );
        }
        let budget = s.config.reboot_budget;
        let window_start = wall
            .checked_sub(budget.window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut recent: Vec<SystemTime> = s
            .reboots
            .iter()
            .copied()
            .filter(|at| *at >= window_start)
            .collect();
        recent.sort();
        let left = budget.count.saturating_sub(recent.len() as u32);
        for t in &s.config.targets {
            let ladder = s.ladders.get(&t.name);
            let (status, state, since, output) = target_check(t, ladder);
            statuses.push(status);
            let open = alerts.get(&t.name);
            checks.insert(
                format!("target:{}", t.name),
                vec![Check {
                    observed_value: None,
                    state: Some(state),
                    since: since.map(ms_rfc3339),
                    last_action: s.last_actions.get(&t.name),
                    open_alerts: open.map(|o| o.count),
                    acknowledged: open.map(|o| o.acknowledged_by.is_some()),
                    acknowledged_by: open.and_then(|o| o.acknowledged_by.clone()),
                    suppressed_by: open.and_then(|o| o.suppressed_by.clone()),
                    reboots_left: t.ladder.contains(&"reboot").then_some(left),
                    ..check(status, Observed::Flag(false), None, Some(output))
                }],
            );
        }
        let mut output = format!(
            "{left} of {} reboot(s) left in any {} ([reboot] budget)",
            budget.count,
            humantime::format_duration(budget.window)
        );
        if let Some(first) = recent.first() {
            output.push_str(&format!(
                "; the next frees at {}",
                rfc3339(*first + budget.window)
            ));
        }
        let budget_status = if left == 0 {
            Status::Warn
        } else {
            Status::Pass
        };
        statuses.push(budget_status);
        checks.insert(
            "recovery:reboot-budget".to_owned(),
            vec![Check {
                reboots_left: Some(left),
                ..check(
                    budget_status,
                    Observed::Count(u64::from(left)),
                    Some("reboots"),
                    Some(output),
                )
            }],
        );
        if let Some(mode) = &s.safe_mode {
            statuses.push(Status::Warn);
            checks.insert(
                "recovery:safe-mode".to_owned(),
                vec![check(
                    Status::Warn,
                    Observed::Flag(true),
                    None,
                    Some(format!("safe mode: no automatic reboots; {}", mode.reason)),
                )],
            );
        }
        HealthReport {
            status: statuses.into_iter().max().unwrap_or(Status::Pass),
            version: env!("CARGO_PKG_VERSION").split('.').next().unwrap_or("0"),
            release_id: env!("CARGO_PKG_VERSION"),
            service_id: s
                .identity
                .hardware_id
                .as_deref()
                .unwrap_or(&s.identity.name),
            description: format!("rvm-watchdog on {}", s.identity.name),
            identity: &s.identity,
            checks,
            targets: targets(s),
            state_dir: &s.state_dir,
            log: s.log_destination,
            started_at: rfc3339(s.started_at),
            previous_boot: s.previous_boot.as_ref().map(BootView::new),
            disabled_targets: &s.config.disabled,
        }
    }

    /// Adds the platform's monitoring push (`platform:monitoring-push`):
    /// `warn` while records wait or were dropped since they last drained.
    pub fn with_push(mut self, push: Option<&crate::platform::push::PushStatus>) -> Self {
        let Some(p) = push else { return self };
        let troubled = p.waiting > 0 && p.last_error.is_some();
        let status = if troubled { Status::Warn } else { Status::Pass };
        let mut output = format!(
            "{} record(s) accepted, {} waiting (at most {}), {} dropped",
            p.sent, p.waiting, p.backlog, p.dropped
        );
        if let (true, Some(e)) = (troubled, &p.last_error) {
            output.push_str(&format!("; {e}"));
        }
        let time = self
            .checks
            .get("core-loop:age")
            .and_then(|c| c.first())
            .map(|c| c.time.clone())
            .unwrap_or_default();
        self.checks.insert(
            "platform:monitoring-push".to_owned(),
            vec![Check::measured(
                status,
                Observed::Count(p.waiting as u64),
                Some("records"),
                time,
                Some(output),
            )],
        );
        self.status = self.status.max(status);
        self
    }
}
