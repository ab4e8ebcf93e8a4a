//! The daemon's events as signals: which facts raise an alert, clear it,
//! or make a notice. Pure: a function of the event and the configuration.
//!
//! | Event | Signal |
//! |---|---|
//! | an incident opened / closed | `target-failing` raised (its root cause suppresses it) / cleared, with `ladder-gave-up` and `recovery-failed` |
//! | a ladder action failed | `recovery-failed` raised (warning) |
//! | the watchdog restarted a unit | notice `restarted` |
//! | the ladder gave up | `ladder-gave-up` raised (critical) |
//! | a ladder waits for a dependency / is released | held / released |
//! | an operator reset the ladder | `ladder-gave-up` cleared |
//! | safe mode | `safe-mode` raised (critical) |
//! | the bus lost / regained | `bus-lost` raised (critical) / cleared |
//! | a lossless queue full / caught up | `queue-full` raised / cleared |
//! | the store unwritable | notice `store-unwritable` (critical) |
//! | a reload applied / refused | notice `config-reloaded` / `config-refused` (warning) |
//! | the daemon started | notice `watchdog-started`, and `previous-boot-unexpected` (warning) when the last boot ended without a shutdown |

use std::collections::BTreeMap;

use super::{Notice, Raise, Severity, Signal, human};
use crate::config::Config;
use crate::event::{ActionResult, Event, Trouble};
use crate::recovery::Decision;
use crate::store::BootEnd;

/// The name of the alert a failing target raises.
pub const TARGET_FAILING: &str = "target-failing";
/// The name of the alert a ladder that gave up raises.
pub const GAVE_UP: &str = "ladder-gave-up";
/// The name of the alert a failed recovery step raises.
pub const RECOVERY_FAILED: &str = "recovery-failed";

/// The signals an event makes (none for most).
pub fn signals(event: &Event, config: &Config) -> Vec<Signal> {
    let policy = |target: &str| {
        config
            .targets
            .iter()
            .find(|t| t.name == target)
            .map(|t| t.alert.clone())
    };
    let own = || config.alerts.default_escalation.clone();
    let raise = |name: &str, target: Option<&str>, severity: Severity, summary: String| {
        let p = target.and_then(policy);
        Raise {
            name: name.to_owned(),
            target: target.map(str::to_owned),
            labels: BTreeMap::new(),
            severity,
            summary,
            escalation: p.as_ref().map_or_else(own, |p| p.escalation.clone()),
            delay_ms: 0,
            root_cause: None,
        }
    };
    let clear = |name: &str, target: Option<&str>| Signal::Clear {
        name: name.to_owned(),
        target: target.map(str::to_owned),
        labels: BTreeMap::new(),
    };
    let notice = |name: &str, target: Option<&str>, severity: Severity, summary: String| {
        Signal::Notice(Notice {
            name: name.to_owned(),
            target: target.map(str::to_owned),
            severity,
            summary,
            escalation: target.and_then(policy).map_or_else(own, |p| p.escalation),
        })
    };
    match event {
        Event::IncidentOpened {
            target,
            id,
            reason,
            root_cause,
            ..
        } => {
            let p = policy(target);
            let mut r = raise(
                TARGET_FAILING,
                Some(target),
                p.as_ref().map_or(Severity::Warning, |p| p.severity),
                match root_cause {
                    Some(root) => format!("{target} is failing: {reason} (root cause: {root})"),
                    None => format!("{target} is failing: {reason}"),
                },
            );
            r.delay_ms = p.map_or(0, |p| p.delay.as_millis() as u64);
            r.root_cause = root_cause.clone();
            vec![
                Signal::Incident {
                    target: target.clone(),
                    id: Some(id.clone()),
                },
                Signal::Raise(r),
            ]
        }
        Event::IncidentClosed { target, lasted, .. } => {
            let _ = lasted;
            vec![
                clear(TARGET_FAILING, Some(target)),
                clear(RECOVERY_FAILED, Some(target)),
                clear(GAVE_UP, Some(target)),
                Signal::Incident {
                    target: target.clone(),
                    id: None,
                },
            ]
        }
        Event::ActionFinished {
            target,
            unit,
            step,
            attempt,
            action,
            result,
            detail,
            ..
        } => match result {
            ActionResult::Failed => vec![Signal::Raise(raise(
                RECOVERY_FAILED,
                Some(target),
                Severity::Warning,
                format!(
                    "{action} of {target} failed (step {}, attempt {attempt}): {detail}",
                    step + 1
                ),
            ))],
            ActionResult::Ok if *action == "restart" => vec![notice(
                "restarted",
                Some(target),
                Severity::Info,
                format!(
                    "the watchdog restarted {} (step {}, attempt {attempt}): {detail}",
                    unit.as_deref().unwrap_or(target),
                    step + 1
                ),
            )],
            _ => Vec::new(),
        },
        Event::Decided {
            target, decision, ..
        } => match decision {
            Decision::GaveUp { reason } => vec![Signal::Raise(raise(
                GAVE_UP,
                Some(target),
                Severity::Critical,
                format!(
                    "gave up on {target}: {reason}; nothing more is done until an operator resets it"
                ),
            ))],
            Decision::Held { by } => vec![Signal::Held {
                target: target.clone(),
                by: by.clone(),
            }],
            Decision::Released => vec![Signal::Released {
                target: target.clone(),
            }],
            _ => Vec::new(),
        },
        Event::OperatorCommand {
            target,
            command,
            ok,
            ..
        } if *command == "reset" && *ok => vec![clear(GAVE_UP, Some(target))],
        Event::SafeModeEntered { reason } => vec![Signal::Raise(raise(
            "safe-mode",
            None,
            Severity::Critical,
            format!("safe mode: no more automatic reboots ({reason})"),
        ))],
        Event::BusLost { bus, error } => vec![Signal::Raise(raise(
            "bus-lost",
            None,
            Severity::Critical,
            format!("lost the {bus}: {error}; units are not watched until it is back"),
        ))],
        Event::BusRegained { .. } => vec![clear("bus-lost", None)],
        Event::Trouble(Trouble::QueueFull { queue, lost }) => {
            let mut r = raise(
                "queue-full",
                None,
                Severity::Critical,
                format!("the {queue} queue is full: {lost} event(s) lost so far"),
            );
            r.labels.insert("queue".into(), (*queue).to_owned());
            vec![Signal::Raise(r)]
        }
        Event::Trouble(Trouble::QueueCaughtUp { queue, .. }) => vec![Signal::Clear {
            name: "queue-full".into(),
            target: None,
            labels: BTreeMap::from([("queue".to_owned(), (*queue).to_owned())]),
        }],
        Event::Trouble(Trouble::StoreUnwritable {
            failed,
            dropped,
            error,
        }) => vec![notice(
            "store-unwritable",
            None,
            Severity::Critical,
            format!(
                "the state store is not writable ({failed} write(s) failed, {dropped} dropped): {error}"
            ),
        )],
        Event::ReloadApplied {
            generation,
            added,
            removed,
            changed,
            ..
        } => {
            let list = |what: &str, l: &[String]| {
                (!l.is_empty()).then(|| format!("{what} {}", l.join(", ")))
            };
            let changes: Vec<String> = [
                list("added", added),
                list("removed", removed),
                list("changed", changed),
            ]
            .into_iter()
            .flatten()
            .collect();
            vec![notice(
                "config-reloaded",
                None,
                Severity::Info,
                format!(
                    "configuration reloaded (generation {generation}): {}",
                    if changes.is_empty() {
                        "no target changed".to_owned()
                    } else {
                        changes.join("; ")
                    }
                ),
            )]
        }
        Event::ReloadRefused { problems, .. } => vec![notice(
            "config-refused",
            None,
            Severity::Warning,
            format!(
                "a reload was refused; the running configuration stays: {}",
                problems.first().map(String::as_str).unwrap_or("invalid")
            ),
        )],
        Event::BootReport { previous, .. } => {
            let mut out = Vec::new();
            if let Some(p) = previous
                && matches!(p.ended, BootEnd::Unexpected)
            {
                let up = std::time::SystemTime::now()
                    .duration_since(p.started_at)
                    .map(|d| human(d.as_millis() as u64))
                    .unwrap_or_default();
                out.push(notice(
                    "previous-boot-unexpected",
                    None,
                    Severity::Warning,
                    format!(
                        "the previous boot ({}, started {up} ago) ended without a shutdown: power loss, a kernel panic or a hardware reset",
                        p.boot_id
                    ),
                ));
            }
            out
        }
        _ => Vec::new(),
    }
}
