//! The store row of each event: the persisted event log that the API and
//! the dashboard read back. Only [`super::Events::emit`] calls this.

use std::time::Duration;

use serde_json::json;

use super::{Event, Stamped, Trouble};
use crate::recovery::Decision;
use crate::store::{BootEnd, NewEvent};

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

/// The row of one event.
pub fn row(stamped: &Stamped) -> NewEvent {
    let event = &stamped.event;
    let mut row = NewEvent::new(stamped.at, event.kind(), message(event));
    row.target = event.target().map(str::to_owned);
    match event {
        Event::UnitChanged { state, .. } => {
            row.unit = Some(state.unit.clone());
            row.result = state.failure().map(str::to_owned);
            row.fields = json!({
                "activeState": state.active_state,
                "subState": state.sub_state,
                "result": state.result,
                "mainPid": state.main_pid,
                "nRestarts": state.n_restarts,
            });
        }
        Event::ProbeChanged {
            unit,
            probe,
            health,
            status,
            ..
        } => {
            row.unit = unit.clone();
            row.result = Some(status.as_str().to_owned());
            row.fields = json!({ "probe": probe, "health": health.as_str() });
        }
        Event::HealthChanged { unit, from, to, .. } => {
            row.unit = unit.clone();
            row.fields = json!({ "from": from, "to": to });
        }
        Event::IncidentOpened {
            unit,
            id,
            root_cause,
            ..
        } => {
            row.unit = unit.clone();
            row.incident = Some(id.clone());
            row.fields = json!({ "rootCause": root_cause });
        }
        Event::IncidentClosed {
            unit, id, lasted, ..
        } => {
            row.unit = unit.clone();
            row.incident = Some(id.clone());
            row.fields = json!({ "lastedMs": lasted.as_millis() as u64 });
        }
        Event::Decided {
            unit,
            incident,
            decision,
            systemd,
            ..
        } => {
            row.unit = unit.clone();
            row.incident = incident.clone();
            if let Some((n_restarts, limit)) = systemd {
                row.fields = json!({ "nRestarts": n_restarts, "startLimitBurst": limit });
                row.message.push_str(&format!(
                    "; systemd's NRestarts={n_restarts}, StartLimitBurst={limit}"
                ));
            }
            if let Some((step, attempt)) = decision_step(decision) {
                row.step = Some(step as u32);
                row.attempt = Some(attempt);
            }
            row.result = decision_result(decision).map(str::to_owned);
        }
        Event::ActionStarted {
            unit,
            incident,
            step,
            attempt,
            observe,
            ..
        } => {
            row.unit = unit.clone();
            row.incident = incident.clone();
            row.step = Some(*step as u32);
            row.attempt = Some(*attempt);
            row.fields = json!({ "observe": observe });
        }
        Event::ActionFinished {
            unit,
            incident,
            step,
            attempt,
            result,
            took,
            output,
            ..
        } => {
            row.unit = unit.clone();
            row.incident = incident.clone();
            row.step = Some(*step as u32);
            row.attempt = Some(*attempt);
            // Observe mode counts as done for the event log's readers.
            row.result = Some(
                if *result == super::ActionResult::Failed {
                    "failed"
                } else {
                    "ok"
                }
                .into(),
            );
            row.fields = json!({ "tookMs": took.as_millis() as u64, "output": output, "result": result.as_str() });
        }
        Event::OperatorCommand {
            unit,
            command,
            step,
            ok,
            took,
            ..
        } => {
            row.unit = unit.clone();
            row.step = step.map(|s| s as u32);
            row.result = Some(if *ok { "ok" } else { "failed" }.into());
            row.fields = json!({ "command": command, "tookMs": took.as_millis() as u64 });
        }
        Event::ReloadApplied {
            generation,
            targets,
            added,
            removed,
            changed,
        } => {
            row.result = Some("applied".into());
            row.fields = json!({
                "generation": generation, "targets": targets,
                "added": added, "removed": removed, "changed": changed,
            });
        }
        Event::ReloadRefused {
            generation,
            problems,
        } => {
            row.result = Some("refused".into());
            row.fields = json!({ "generation": generation, "problems": problems });
        }
        Event::SafeModeEntered { .. } => {}
        Event::BusLost { bus, error } => row.fields = json!({ "bus": bus, "error": error }),
        Event::BusRegained { bus, reconnects } => {
            row.fields = json!({ "bus": bus, "reconnects": reconnects })
        }
        Event::BootReport { boot_id, previous } => {
            row.fields = json!({
                "bootId": boot_id,
                "previousBootId": previous.as_ref().map(|p| &p.boot_id),
                "previousEnded": previous.as_ref().map(|p| match p.ended {
                    BootEnd::WatchdogReboot { .. } => "watchdog-reboot",
                    BootEnd::CleanShutdown { .. } => "clean-shutdown",
                    BootEnd::Unexpected => "unexpected",
                }),
            });
        }
        Event::Trouble(t) => {
            row.result = Some(trouble_word(t).into());
        }
    }
    row
}

fn trouble_word(t: &Trouble) -> &'static str {
    match t {
        Trouble::StoreUnwritable { .. } => "store-unwritable",
        Trouble::QueueFull { .. } => "queue-full",
        Trouble::QueueCaughtUp { .. } => "queue-caught-up",
    }
}

/// A decision's name in the event log and in `rvm_watchdog_decisions_total`.
pub fn decision_result(d: &Decision) -> Option<&'static str> {
    Some(match d {
        Decision::Act { .. } => "act",
        Decision::Scheduled { .. } => "scheduled",
        Decision::SystemdRestartCounted { .. } => "systemd-restart-counted",
        Decision::Held { .. } => "held",
        Decision::Released => "released",
        Decision::Escalated { .. } => "escalated",
        Decision::PauseEnded => "pause-ended",
        _ => return None,
    })
}

fn decision_step(d: &Decision) -> Option<(usize, u32)> {
    match d {
        Decision::Act { step, attempt, .. }
        | Decision::Scheduled { step, attempt, .. }
        | Decision::SystemdRestartCounted { step, attempt } => Some((*step, *attempt)),
        Decision::Recovered { step } => Some((*step, 0)),
        Decision::Escalated { to, .. } => Some((*to, 0)),
        _ => None,
    }
}

/// One line for people, as the event log shows it.
fn message(event: &Event) -> String {
    match event {
        Event::UnitChanged { state, .. } => match state.failure() {
            Some(why) => format!("unit {} failed: {why}", state.unit),
            None => format!("unit {} is {}", state.unit, state.summary()),
        },
        Event::ProbeChanged {
            probe,
            health,
            output,
            ..
        } => format!("probe {probe} is {}: {output}", health.as_str()),
        Event::HealthChanged { to, .. } => match to {
            crate::recovery::Health::Failing { reason, .. } => format!("failing: {reason}"),
            crate::recovery::Health::Healthy => "healthy".into(),
            crate::recovery::Health::Unknown => "health unknown".into(),
            crate::recovery::Health::Stopped => {
                "stopped on purpose (systemctl stop); not acted on until it starts again".into()
            }
        },
        Event::IncidentOpened {
            reason, root_cause, ..
        } => match root_cause {
            Some(r) => format!("failing: {reason} (root cause: {r})"),
            None => format!("failing: {reason}"),
        },
        Event::IncidentClosed { lasted, .. } => format!("healthy again after {}", human(*lasted)),
        Event::Decided {
            target, decision, ..
        } => decision_message(target, decision),
        Event::ActionStarted {
            target,
            step,
            attempt,
            action,
            reason,
            ..
        } => format!(
            "{action} of {target} (step {}, attempt {attempt}): {reason}",
            step + 1
        ),
        Event::ActionFinished {
            target,
            action,
            detail,
            ..
        } => format!("{action} of {target}: {detail}"),
        Event::OperatorCommand {
            target,
            command,
            action,
            detail,
            ..
        } => format!(
            "operator {} of {target}: {detail}",
            action.unwrap_or(command)
        ),
        Event::ReloadApplied {
            generation,
            targets,
            ..
        } => format!("reload applied: generation {generation}, {targets} target(s)"),
        Event::ReloadRefused { problems, .. } => format!(
            "reload refused with {} error(s): {}",
            problems.len(),
            problems.first().map(String::as_str).unwrap_or("")
        ),
        Event::SafeModeEntered { reason } => format!("safe mode: {reason}"),
        Event::BusLost { bus, error } => format!("not connected to systemd on the {bus}: {error}"),
        Event::BusRegained { bus, .. } => format!("connected to systemd on the {bus} again"),
        Event::BootReport { previous, .. } => match previous.as_ref().map(|p| &p.ended) {
            None => "first boot recorded".into(),
            Some(BootEnd::WatchdogReboot { reason, .. }) => {
                format!("the previous boot ended with a reboot by the watchdog: {reason}")
            }
            Some(BootEnd::CleanShutdown { .. }) => {
                "the previous boot ended with a clean shutdown".into()
            }
            Some(BootEnd::Unexpected) => "the previous boot ended unexpectedly".into(),
        },
        Event::Trouble(t) => match t {
            Trouble::StoreUnwritable { error, .. } => format!("store not taking writes: {error}"),
            Trouble::QueueFull { queue, .. } => format!("{queue} fell behind; dropping events"),
            Trouble::QueueCaughtUp { queue, lost } => {
                format!("{queue} caught up after losing {lost} event(s)")
            }
        },
    }
}

fn decision_message(name: &str, d: &Decision) -> String {
    match d {
        Decision::Act { action, reason, .. } => format!("{} {name}: {reason}", action.as_str()),
        Decision::Scheduled { delay, .. } => format!(
            "next attempt in {}",
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        ),
        Decision::SystemdRestartCounted { attempt, .. } => {
            format!("systemd restarted {name}; counted as attempt {attempt}")
        }
        Decision::Held { by } => format!("held: {by} is healed first"),
        Decision::Released => "released: dependencies healthy".into(),
        Decision::Escalated { from, to } => {
            format!("step {} used up; escalating to step {}", from + 1, to + 1)
        }
        Decision::Recovered { step } => format!("recovered after step {}", step + 1),
        Decision::LadderReset => "ladder starts over".into(),
        Decision::PauseEnded => "pause ended: recovery acts again".into(),
        Decision::GaveUp { reason } => format!("gave up: {reason}"),
        Decision::IncidentOpened { reason, .. } => format!("failing: {reason}"),
        Decision::IncidentClosed { lasted, .. } => {
            format!("healthy again after {}", human(*lasted))
        }
    }
}
