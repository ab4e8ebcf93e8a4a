//! The alert engine: what people are told, when, and on which channels.
//!
//! Words used here:
//!
//! - An **alert** is one thing people are told about, named by its
//!   **fingerprint** (a hash of its name, target and labels, stable across
//!   versions): a target failing, a ladder given up, a lost bus, a rule on
//!   a metric series. It lives **pending** (its policy's `delay` has not
//!   passed), **firing**, **acknowledged** (someone is on it: the climb
//!   stops) and **resolved**. The same failure reported again while it
//!   fires is the same alert (counted, not re-sent).
//! - A **notice** is a one-off message routed like an alert (a reload, a
//!   restart the watchdog made, maintenance begun): it has no lifecycle.
//! - A **signal** is what the engine is fed: raise, clear, a notice, a
//!   dependency holding or releasing a target. [`source`] turns the
//!   daemon's events into signals; [`rules`] turns metric series into
//!   them.
//! - A **candidate** is a message the engine would send; it goes through
//!   the **stages** in [`stages`] (inhibit → silence → ack → route → dedup)
//!   and then waits in the **group** for [`Settings::group_wait_ms`], so that
//!   alerts firing together leave as one **notification** per channel.
//!   Notifications are handed to the delivery queue (the store's outbox).
//! - **Suppressed**: a target whose dependency is failing gets its alert
//!   marked `suppressedBy` the dependency and it is not sent on its own:
//!   it is listed in the dependency's own notifications, and its
//!   resolution goes where those went. Once the dependency recovers, a
//!   target still failing gets [`Settings::release_grace_ms`] to heal
//!   before its alert goes out. Suppressed, silenced and acknowledged time
//!   does not advance the **escalation chain**, whose levels are reached
//!   after their `after` of counted time.
//! - **Flapping**: an alert raised [`Settings::flap_count`] times within
//!   [`Settings::flap_window_ms`] is held: one "flapping" notice is sent, then
//!   nothing until it has been steady for the window.
//!
//! The engine ([`engine::Engine`]) is pure: every decision is a function of
//! its state, the input and the time given to it, so the tests drive it on
//! a simulated clock. The task in `task.rs` feeds it and performs what it
//! returns.

pub mod engine;
pub mod incident;
pub mod rules;
pub mod settings;
pub mod silence;
pub mod source;
pub mod stages;
pub mod task;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::config::Severity;
pub use crate::recovery::Ms;
pub use engine::{Effect, Engine};
pub use settings::Settings;
pub use silence::{Maintenance, Matcher, Schedule, Silence};

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertState {
    /// Raised; its delay has not passed.
    Pending,
    /// Firing: people are told.
    Firing,
    /// Someone acknowledged it: no more escalation or repeats.
    Acknowledged,
    /// Over.
    Resolved,
}

impl AlertState {
    /// The name used in files, logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    /// Pending, firing or acknowledged.
    pub fn is_open(self) -> bool {
        !matches!(self, AlertState::Resolved)
    }
}

/// Who acknowledged an alert, when, and what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// Who.
    pub by: String,
    /// Their comment.
    pub comment: String,
    /// When.
    pub at: Ms,
}

/// What a channel was last told of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Told {
    /// When it was last told.
    pub at: Ms,
    /// It was told of the resolution.
    pub resolved: bool,
    /// It was told the alert is flapping.
    #[serde(default)]
    pub flapping: bool,
    /// It was told of the alert only as suppressed by its root cause.
    #[serde(default)]
    pub suppressed: bool,
}

/// One alert. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Stable id: see [`fingerprint`].
    pub fingerprint: String,
    /// The alert's name: `target-failing`, `ladder-gave-up`, a rule's name…
    pub name: String,
    /// The target it is about, if any.
    pub target: Option<String>,
    /// More labels (a rule's series labels).
    pub labels: BTreeMap<String, String>,
    /// How urgent.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// Where it is.
    pub state: AlertState,
    /// Raised at (this lifecycle).
    pub started_at: Ms,
    /// Pending until (its delay).
    pub fire_at: Ms,
    /// Resolved at.
    pub resolved_at: Option<Ms>,
    /// Acknowledged by.
    pub ack: Option<Ack>,
    /// The failing dependency that is the root cause: not sent meanwhile.
    pub suppressed_by: Option<String>,
    /// The escalation chain, if any.
    pub escalation: Option<String>,
    /// The incident of the target, if any.
    pub incident: Option<String>,
    /// The highest escalation level handed on (0-based).
    pub level: Option<usize>,
    /// Time counted toward escalation before `counting_since`.
    pub counted_ms: Ms,
    /// Counting toward escalation since (firing, not suppressed, muted or
    /// acknowledged).
    pub counting_since: Option<Ms>,
    /// Channels told of it, and what.
    pub told: BTreeMap<String, Told>,
    /// Times it was raised in this lifecycle (dedup).
    pub occurrences: u64,
    /// Recent raises, for flap detection.
    pub raises: Vec<Ms>,
    /// Held as flapping.
    pub flapping: bool,
}

impl Alert {
    /// Time counted toward escalation at `now`.
    pub fn counted_at(&self, now: Ms) -> Ms {
        self.counted_ms + self.counting_since.map_or(0, |s| now.saturating_sub(s))
    }

    /// The labels matchers see: name, target, severity and the rest.
    pub fn label(&self, key: &str) -> Option<&str> {
        match key {
            "name" | "alertname" => Some(&self.name),
            "target" => self.target.as_deref(),
            "severity" => Some(self.severity.as_str()),
            other => self.labels.get(other).map(String::as_str),
        }
    }
}

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Why {
    /// It began firing.
    Firing,
    /// It reached an escalation level.
    Escalated {
        /// The level (0-based).
        level: usize,
    },
    /// It is still firing, unacknowledged: the chain's repeat.
    Repeat,
    /// It resolved.
    Resolved,
    /// It flaps: held until steady.
    Flapping,
    /// Listed with the alert of its root cause (a failing dependency):
    /// suppressed, it is not sent on its own, and its resolution goes
    /// where this went.
    Suppressed,
    /// A notice (no lifecycle).
    Notice,
}

impl Why {
    /// The name used in logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Firing => "firing",
            Why::Escalated { .. } => "escalated",
            Why::Repeat => "repeat",
            Why::Resolved => "resolved",
            Why::Flapping => "flapping",
            Why::Suppressed => "suppressed",
            Why::Notice => "notice",
        }
    }
}

/// One alert or notice in a notification, as it stood when it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The alert's fingerprint (a notice's own).
    pub fingerprint: String,
    /// Why it is in this notification.
    pub why: Why,
    /// The alert's name.
    pub name: String,
    /// Its target.
    pub target: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How urgent.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// Raised at.
    pub started_at: Ms,
    /// Resolved at.
    pub resolved_at: Option<Ms>,
    /// The incident, if any.
    pub incident: Option<String>,
    /// The failing dependency that is its root cause, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<String>,
}

impl Item {
    fn of(alert: &Alert, why: Why) -> Item {
        Item {
            fingerprint: alert.fingerprint.clone(),
            why,
            name: alert.name.clone(),
            target: alert.target.clone(),
            labels: alert.labels.clone(),
            severity: alert.severity,
            summary: alert.summary.clone(),
            started_at: alert.started_at,
            resolved_at: alert.resolved_at,
            incident: alert.incident.clone(),
            suppressed_by: alert.suppressed_by.clone(),
        }
    }
}

/// One message to one channel: what the delivery queue takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Idempotency key: the same notification retried keeps it.
    pub key: String,
    /// The channel.
    pub channel: String,
    /// Made at.
    pub created_at: Ms,
    /// The highest severity in it.
    pub severity: Severity,
    /// The alerts and notices in it, grouped.
    pub items: Vec<Item>,
}

/// What the engine is fed. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Something is wrong (again).
    Raise(Raise),
    /// It is over.
    Clear {
        /// The alert's name.
        name: String,
        /// Its target.
        target: Option<String>,
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
    /// A one-off message.
    Notice(Notice),
    /// A target waits for a failing dependency (its root cause).
    Held {
        /// The target.
        target: String,
        /// The dependency.
        by: String,
    },
    /// The dependency recovered.
    Released {
        /// The target.
        target: String,
    },
    /// A target's incident opened or closed.
    Incident {
        /// The target.
        target: String,
        /// The incident, or `None` once closed.
        id: Option<String>,
    },
}

/// Something is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Raise {
    /// The alert's name.
    pub name: String,
    /// Its target.
    pub target: Option<String>,
    /// More labels.
    pub labels: BTreeMap<String, String>,
    /// How urgent.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// The chain it climbs (before routes).
    pub escalation: Option<String>,
    /// Not sent before it has fired this long (ms).
    pub delay_ms: Ms,
    /// The failing dependency that is its root cause.
    pub root_cause: Option<String>,
}

/// A one-off message.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Its name: `config-reloaded`, `restarted`, `maintenance-started`…
    pub name: String,
    /// Its target, if any.
    pub target: Option<String>,
    /// How urgent.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// The chain whose first level is told (before routes).
    pub escalation: Option<String>,
}

/// A length of time for people, to the second: `3m 20s`.
pub fn human(ms: Ms) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// An alert's fingerprint: FNV-1a (64 bits) of its name, target and labels,
/// in hex. It does not change between versions: the API, the outbox and
/// receivers (dedup keys) use it.
pub fn fingerprint(name: &str, target: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(name.as_bytes());
    eat(target.unwrap_or("").as_bytes());
    for (k, v) in labels {
        eat(k.as_bytes());
        eat(v.as_bytes());
    }
    format!("{h:016x}")
}
