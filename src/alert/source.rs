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
//! | a reload applied / refused | notice `config-reloaded` (and a removed target's alerts cleared) / `config-refused` (warning) |
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
        Event::IncidentClosed { target, .. } => {
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
            let mut out = vec![notice(
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
            )];
            // A target no longer watched has no alert open.
            for t in removed {
                for name in [TARGET_FAILING, RECOVERY_FAILED, GAVE_UP] {
                    out.push(clear(name, Some(t)));
                }
            }
            out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(
            dir.path().join("watchdog.toml"),
            "[alerts]\ndefault-escalation = \"ops\"\n\n[channels.hook]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n\n[escalation.ops]\nlevels = [{ after = \"0s\", channels = [\"hook\"] }]\n\n[escalation.camera-team]\nlevels = [{ after = \"0s\", channels = [\"hook\"] }]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("policies/camera.toml"),
            "[target]\nname = \"camera\"\nunit = \"myrvm-camera.service\"\n\n[alert]\nseverity = \"critical\"\nescalation = \"camera-team\"\ndelay = \"30s\"\n",
        )
        .unwrap();
        crate::config::load(&crate::config::Sources {
            config_file: Some(dir.path().join("watchdog.toml")),
            policies_dir: Some(dir.path().join("policies")),
            ..Default::default()
        })
        .config
        .unwrap()
    }

    /// What each example event becomes: (signal kind, name).
    fn shape(s: &Signal) -> (&'static str, String) {
        match s {
            Signal::Raise(r) => ("raise", r.name.clone()),
            Signal::Clear { name, .. } => ("clear", name.clone()),
            Signal::Notice(n) => ("notice", n.name.clone()),
            Signal::Held { .. } => ("held", String::new()),
            Signal::Released { .. } => ("released", String::new()),
            Signal::Incident { id, .. } => ("incident", id.clone().unwrap_or_default()),
        }
    }

    #[test]
    fn every_kind_of_event_becomes_the_signals_the_table_says() {
        let config = config();
        let got: Vec<(String, Vec<(&'static str, String)>)> = crate::event::examples()
            .iter()
            .map(|e| {
                (
                    e.kind().to_owned(),
                    signals(e, &config).iter().map(shape).collect(),
                )
            })
            .collect();
        let find = |kind: &str| {
            got.iter()
                .find(|(k, _)| k == kind)
                .map(|(_, s)| s.clone())
                .unwrap()
        };
        assert_eq!(
            find("incident-opened"),
            vec![
                ("incident", "camera-1764620000000".into()),
                ("raise", TARGET_FAILING.into())
            ]
        );
        assert_eq!(
            find("incident-closed"),
            vec![
                ("clear", TARGET_FAILING.into()),
                ("clear", RECOVERY_FAILED.into()),
                ("clear", GAVE_UP.into()),
                ("incident", String::new())
            ]
        );
        assert_eq!(
            find("action-finished"),
            vec![("notice", "restarted".into())]
        );
        assert_eq!(
            find("reload-applied"),
            vec![("notice", "config-reloaded".into())]
        );
        let removed = Event::ReloadApplied {
            generation: 3,
            targets: 1,
            added: vec![],
            removed: vec!["gpu".into()],
            changed: vec![],
        };
        assert_eq!(
            signals(&removed, &config)
                .iter()
                .map(shape)
                .collect::<Vec<_>>(),
            vec![
                ("notice", "config-reloaded".into()),
                ("clear", TARGET_FAILING.into()),
                ("clear", RECOVERY_FAILED.into()),
                ("clear", GAVE_UP.into())
            ]
        );
        assert_eq!(
            find("reload-refused"),
            vec![("notice", "config-refused".into())]
        );
        assert_eq!(find("safe-mode"), vec![("raise", "safe-mode".into())]);
        assert_eq!(find("bus-lost"), vec![("raise", "bus-lost".into())]);
        assert_eq!(find("bus-regained"), vec![("clear", "bus-lost".into())]);
        assert_eq!(find("trouble"), vec![("notice", "store-unwritable".into())]);
        assert!(find("probe-changed").is_empty());
        assert!(find("unit-changed").is_empty());
    }

    #[test]
    fn a_targets_alert_takes_its_policys_severity_chain_and_delay_and_its_root_cause() {
        let config = config();
        let opened = &crate::event::examples()[3];
        let Signal::Raise(r) = &signals(opened, &config)[1] else {
            panic!("a raise")
        };
        assert_eq!(r.severity, Severity::Critical);
        assert_eq!(r.escalation.as_deref(), Some("camera-team"));
        assert_eq!(r.delay_ms, 30_000);
        assert_eq!(r.root_cause.as_deref(), Some("usb-bus"));
        assert!(r.summary.contains("root cause: usb-bus"), "{}", r.summary);
        // The watchdog's own alerts climb the default chain.
        let lost = crate::event::examples()
            .into_iter()
            .find(|e| e.kind() == "bus-lost")
            .unwrap();
        let Signal::Raise(r) = &signals(&lost, &config)[0] else {
            panic!("a raise")
        };
        assert_eq!(r.escalation.as_deref(), Some("ops"));
        assert_eq!(r.severity, Severity::Critical);
    }

    #[test]
    fn a_failed_action_raises_and_an_unexpected_end_of_the_last_boot_is_said() {
        let config = config();
        let failed = Event::ActionFinished {
            target: "camera".into(),
            unit: None,
            incident: None,
            step: 1,
            attempt: 2,
            action: "hook",
            result: ActionResult::Failed,
            detail: "usb-reset exited 1".into(),
            took: std::time::Duration::from_secs(1),
            output: None,
        };
        let Signal::Raise(r) = &signals(&failed, &config)[0] else {
            panic!("a raise")
        };
        assert_eq!(r.name, RECOVERY_FAILED);
        assert!(r.summary.contains("step 2, attempt 2"), "{}", r.summary);
        let boot = Event::BootReport {
            boot_id: "b2".into(),
            previous: Some(crate::store::PreviousBoot {
                boot_id: "b1".into(),
                started_at: std::time::SystemTime::now(),
                ended: BootEnd::Unexpected,
            }),
        };
        let out = signals(&boot, &config);
        assert_eq!(
            out.iter().map(shape).collect::<Vec<_>>(),
            vec![("notice", "previous-boot-unexpected".into())]
        );
    }
}
