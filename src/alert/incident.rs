//! Incident records: the story of one failing period of a target in one
//! place. The first sign of trouble (a probe turning failing, the unit
//! failing), the incident opening, its root cause, the probes that failed,
//! every recovery action and its result, every alert and notification, and
//! how it ended. **Time to detect** is from the first sign to the incident
//! opening; **time to recover** from the first sign to its closing.
//!
//! Pure: built from the events and notifications it is shown.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::{Ms, Notification, Why};
use crate::event::{Event, Stamped};
use crate::probe::ProbeHealth;
use crate::recovery::Decision;

/// A probe that failed during the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeFailure {
    /// When it turned failing.
    pub at: Ms,
    /// The probe.
    pub probe: String,
    /// What it said.
    pub output: String,
}

/// A recovery action of the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    /// When it finished.
    pub at: Ms,
    /// Ladder step (1-based, as people count).
    pub step: usize,
    /// Attempt (1-based).
    pub attempt: u32,
    /// The action.
    pub action: String,
    /// `ok`, `failed` or `observed`.
    pub result: String,
    /// What was done, or why it failed.
    pub detail: String,
    /// How long it took.
    pub took_ms: Ms,
}

/// A notification about the incident's alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// When it was handed to delivery.
    pub at: Ms,
    /// Its idempotency key (the outbox's).
    pub key: String,
    /// The channel.
    pub channel: String,
    /// Why: `firing`, `escalated`, `resolved`…
    pub why: String,
    /// The alert.
    pub alert: String,
}

/// One incident. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Its id (the recovery engine's).
    pub id: String,
    /// The target.
    pub target: String,
    /// Its unit, if any.
    pub unit: Option<String>,
    /// Why it opened.
    pub reason: String,
    /// The failing dependency that is the root cause, if one is.
    pub root_cause: Option<String>,
    /// The first sign of trouble.
    pub began_at: Ms,
    /// Opened at.
    pub opened_at: Ms,
    /// Closed at.
    pub closed_at: Option<Ms>,
    /// From the first sign to the opening.
    pub time_to_detect_ms: Ms,
    /// From the first sign to the closing.
    pub time_to_recover_ms: Option<Ms>,
    /// Probes that failed.
    pub probes: Vec<ProbeFailure>,
    /// Recovery actions.
    pub actions: Vec<ActionRecord>,
    /// The alerts raised about it (fingerprints).
    pub alerts: Vec<String>,
    /// Notifications about them.
    pub notifications: Vec<NotificationRecord>,
    /// How it ended, for people.
    pub outcome: Option<String>,
}

/// At most this many probes, actions and notifications are kept in one
/// record (a crash loop of a day would otherwise grow it without bound).
const MAX_ENTRIES: usize = 200;

/// The open incidents and what led up to them.
#[derive(Debug, Default)]
pub struct Incidents {
    open: BTreeMap<String, Record>,
    /// Each target's last closed record: its resolution leaves after it closed.
    closed_last: BTreeMap<String, Record>,
    /// Targets' first sign of trouble since they were last healthy.
    first_sign: BTreeMap<String, (Ms, Vec<ProbeFailure>)>,
    /// Incidents closed and their times to recover, for the mean.
    closed: u64,
    recover_ms_total: u64,
    opened: u64,
}

fn ms(s: &Stamped) -> Ms {
    s.at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Ms)
        .unwrap_or(0)
}

fn push<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_ENTRIES {
        list.push(item);
    }
}

impl Incidents {
    /// Resumes from records kept: the open ones, and the closed ones' count
    /// and times to recover.
    pub fn restore(records: Vec<Record>) -> Incidents {
        let mut i = Incidents::default();
        for r in records {
            i.opened += 1;
            match r.time_to_recover_ms {
                Some(t) if r.closed_at.is_some() => {
                    i.closed += 1;
                    i.recover_ms_total += t;
                }
                _ => {
                    i.open.insert(r.target.clone(), r);
                }
            }
        }
        i
    }

    /// (opened, open, closed, mean time to recover in ms).
    pub fn figures(&self) -> (u64, u64, u64, Option<f64>) {
        let mean = (self.closed > 0).then(|| self.recover_ms_total as f64 / self.closed as f64);
        (self.opened, self.open.len() as u64, self.closed, mean)
    }

    /// An event: the records it changed (to be saved).
    pub fn on_event(&mut self, s: &Stamped) -> Vec<Record> {
        let at = ms(s);
        match &s.event {
            Event::ProbeChanged {
                target,
                probe,
                health,
                output,
                ..
            } if *health == ProbeHealth::Failing => {
                let failure = ProbeFailure {
                    at,
                    probe: probe.clone(),
                    output: output.clone(),
                };
                if let Some(r) = self.open.get_mut(target) {
                    push(&mut r.probes, failure);
                    return vec![r.clone()];
                }
                let sign = self
                    .first_sign
                    .entry(target.clone())
                    .or_insert((at, Vec::new()));
                push(&mut sign.1, failure);
                Vec::new()
            }
            Event::UnitChanged {
                target: Some(target),
                state,
            } if state.active_state == "failed" => {
                self.first_sign
                    .entry(target.clone())
                    .or_insert((at, Vec::new()));
                Vec::new()
            }
            Event::HealthChanged { target, to, .. } if !to.is_failing() => {
                self.first_sign.remove(target);
                Vec::new()
            }
            Event::IncidentOpened {
                target,
                unit,
                id,
                reason,
                root_cause,
            } => {
                let (began_at, probes) = self.first_sign.remove(target).unwrap_or((at, Vec::new()));
                let began_at = began_at.min(at);
                let r = Record {
                    id: id.clone(),
                    target: target.clone(),
                    unit: unit.clone(),
                    reason: reason.clone(),
                    root_cause: root_cause.clone(),
                    began_at,
                    opened_at: at,
                    closed_at: None,
                    time_to_detect_ms: at - began_at,
                    time_to_recover_ms: None,
                    probes,
                    actions: Vec::new(),
                    alerts: Vec::new(),
                    notifications: Vec::new(),
                    outcome: None,
                };
                self.opened += 1;
                self.open.insert(target.clone(), r.clone());
                vec![r]
            }
            Event::ActionFinished {
                target,
                step,
                attempt,
                action,
                result,
                detail,
                took,
                ..
            } => match self.open.get_mut(target) {
                Some(r) => {
                    push(
                        &mut r.actions,
                        ActionRecord {
                            at,
                            step: step + 1,
                            attempt: *attempt,
                            action: (*action).to_owned(),
                            result: result.as_str().to_owned(),
                            detail: detail.clone(),
                            took_ms: took.as_millis() as Ms,
                        },
                    );
                    vec![r.clone()]
                }
                None => Vec::new(),
            },
            Event::Decided {
                target, decision, ..
            } => {
                let Some(r) = self.open.get_mut(target) else {
                    return Vec::new();
                };
                r.outcome = match decision {
                    Decision::Recovered { step } => {
                        let action = r
                            .actions
                            .iter()
                            .rev()
                            .find(|a| a.step == step + 1 && a.result == "ok")
                            .map(|a| a.action.clone())
                            .unwrap_or_else(|| "its action".into());
                        Some(format!("recovered by {action} (step {})", step + 1))
                    }
                    Decision::GaveUp { reason } => Some(format!("gave up: {reason}")),
                    _ => return Vec::new(),
                };
                vec![r.clone()]
            }
            Event::IncidentClosed { target, .. } => {
                let Some(mut r) = self.open.remove(target) else {
                    return Vec::new();
                };
                r.closed_at = Some(at);
                let ttr = at.saturating_sub(r.began_at);
                r.time_to_recover_ms = Some(ttr);
                if r.outcome.is_none() {
                    r.outcome = Some(match &r.root_cause {
                        Some(root) => format!("healthy again once {root} recovered"),
                        None if r.actions.is_empty() => "healthy again by itself".into(),
                        None => "healthy again".into(),
                    });
                }
                self.closed += 1;
                self.recover_ms_total += ttr;
                self.closed_last.insert(target.clone(), r.clone());
                vec![r]
            }
            _ => Vec::new(),
        }
    }

    /// A notification handed to delivery: the open records it concerns.
    pub fn on_notification(
        &mut self,
        n: &Notification,
        alert_target: impl Fn(&str) -> Option<String>,
    ) -> Vec<Record> {
        let mut changed: Vec<String> = Vec::new();
        for item in &n.items {
            if item.why == Why::Notice {
                continue;
            }
            let Some(target) = item
                .target
                .clone()
                .or_else(|| alert_target(&item.fingerprint))
            else {
                continue;
            };
            // A resolution leaves after the incident closed: it goes in the
            // record closed last, when that record knows the alert.
            let r = match self.open.get_mut(&target) {
                Some(r) => r,
                None => match self.closed_last.get_mut(&target) {
                    Some(r) if r.alerts.contains(&item.fingerprint) => r,
                    _ => continue,
                },
            };
            if !r.alerts.contains(&item.fingerprint) {
                push(&mut r.alerts, item.fingerprint.clone());
            }
            push(
                &mut r.notifications,
                NotificationRecord {
                    at: n.created_at,
                    key: n.key.clone(),
                    channel: n.channel.clone(),
                    why: item.why.as_str().to_owned(),
                    alert: item.name.clone(),
                },
            );
            if !changed.contains(&target) {
                changed.push(target);
            }
        }
        changed
            .iter()
            .filter_map(|t| {
                self.open
                    .get(t)
                    .or_else(|| self.closed_last.get(t))
                    .cloned()
            })
            .collect()
    }
}
