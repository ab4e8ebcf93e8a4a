//! The watchdog's own counters, bumped by [`super::Events::emit`] from the
//! event it also logs and stores, so `/metrics` and the journal cannot drift.

use std::collections::BTreeMap;

use super::Event;

/// Counters kept by the core loop, exposed at `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events by kind.
    pub events: BTreeMap<&'static str, u64>,
    /// Decisions by (target, decision).
    pub decisions: BTreeMap<(String, &'static str), u64>,
    /// Ladder actions by (target, action, result).
    pub actions: BTreeMap<(String, &'static str, &'static str), u64>,
    /// Operator commands by (target, command, result).
    pub operator: BTreeMap<(String, &'static str, &'static str), u64>,
    /// Events dropped by lossless subscribers that fell behind, by subscriber.
    pub dropped: BTreeMap<&'static str, u64>,
    /// How late probe runs started against their schedule.
    pub probe_lag: Histogram,
}

/// Upper bounds of the probe lag histogram's buckets, seconds.
pub const LAG_BUCKETS: [f64; 9] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

/// A Prometheus histogram over [`LAG_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative).
    pub buckets: [u64; LAG_BUCKETS.len()],
    /// All observations.
    pub count: u64,
    /// Their sum, microseconds.
    pub sum_us: u64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&mut self, value: std::time::Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = LAG_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_us += value.as_micros() as u64;
    }
}

impl Counters {
    /// Counts one event.
    pub fn count(&mut self, event: &Event) {
        *self.events.entry(event.kind()).or_default() += 1;
        match event {
            Event::Decided {
                target, decision, ..
            } => {
                let name = super::record::decision_result(decision).unwrap_or(event.kind());
                *self.decisions.entry((target.clone(), name)).or_default() += 1;
            }
            Event::IncidentOpened { target, .. } | Event::IncidentClosed { target, .. } => {
                *self
                    .decisions
                    .entry((target.clone(), event.kind()))
                    .or_default() += 1;
            }
            Event::ActionFinished {
                target,
                action,
                result,
                ..
            } => {
                *self
                    .actions
                    .entry((target.clone(), action, result.as_str()))
                    .or_default() += 1;
            }
            Event::OperatorCommand {
                target,
                command,
                ok,
                ..
            } => {
                let result = if *ok { "ok" } else { "failed" };
                *self
                    .operator
                    .entry((target.clone(), command, result))
                    .or_default() += 1;
            }
            _ => {}
        }
    }

    /// Counts an event a lagging subscriber lost.
    pub fn dropped(&mut self, subscriber: &'static str) {
        *self.dropped.entry(subscriber).or_default() += 1;
    }
}
