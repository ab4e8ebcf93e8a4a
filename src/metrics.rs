//! The watchdog's own counters and gauges, in Prometheus' text format at
//! `/metrics`. Each counter is bumped where the matching journald record is
//! written, so the log and the metrics cannot drift.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::status::Snapshot;

/// Counters kept by the core loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Decisions by (target, decision).
    pub decisions: BTreeMap<(String, &'static str), u64>,
    /// Actions by (target, action, result).
    pub actions: BTreeMap<(String, &'static str, &'static str), u64>,
}

impl Counters {
    /// Counts a decision.
    pub fn decision(&mut self, target: &str, decision: &'static str) {
        *self
            .decisions
            .entry((target.to_owned(), decision))
            .or_default() += 1;
    }

    /// Counts a finished action; `result` is `ok`, `failed` or `observed`
    /// (observe mode: decided, not performed).
    pub fn action(&mut self, target: &str, action: &'static str, result: &'static str) {
        *self
            .actions
            .entry((target.to_owned(), action, result))
            .or_default() += 1;
    }
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The exposition of everything the snapshot knows.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let decisions: Vec<(String, u64)> = s
        .counters
        .decisions
        .iter()
        .map(|((t, d), n)| (format!("{{target=\"{}\",decision=\"{d}\"}}", label(t)), *n))
        .collect();
    family(
        &mut out,
        "rvm_watchdog_decisions_total",
        "counter",
        "Recovery decisions, by target and decision.",
        &decisions,
    );
    let actions: Vec<(String, u64)> = s
        .counters
        .actions
        .iter()
        .map(|((t, a, r), n)| {
            (
                format!("{{target=\"{}\",action=\"{a}\",result=\"{r}\"}}", label(t)),
                *n,
            )
        })
        .collect();
    family(
        &mut out,
        "rvm_watchdog_actions_total",
        "counter",
        "Recovery actions carried out, by target, action and result.",
        &actions,
    );
    let per_target = |f: &dyn Fn(&crate::recovery::LadderState) -> u64| -> Vec<(String, u64)> {
        s.ladders
            .iter()
            .map(|(t, l)| (format!("{{target=\"{}\"}}", label(t)), f(l)))
            .collect()
    };
    family(
        &mut out,
        "rvm_watchdog_target_failing",
        "gauge",
        "1 while the target is failing.",
        &per_target(&|l| u64::from(l.health.is_failing())),
    );
    family(
        &mut out,
        "rvm_watchdog_target_gave_up",
        "gauge",
        "1 while the target's ladder has given up.",
        &per_target(&|l| u64::from(l.gave_up.is_some())),
    );
    family(
        &mut out,
        "rvm_watchdog_ladder_step",
        "gauge",
        "The target's current ladder step, counted from 1.",
        &per_target(&|l| l.step as u64 + 1),
    );
    family(
        &mut out,
        "rvm_watchdog_safe_mode",
        "gauge",
        "1 while in safe mode (no automatic reboots).",
        &[(String::new(), u64::from(s.safe_mode.is_some()))],
    );
    let connected: Vec<(String, u64)> = s
        .supervisor
        .iter()
        .map(|b| (String::new(), u64::from(b.connected)))
        .collect();
    family(
        &mut out,
        "rvm_watchdog_systemd_connected",
        "gauge",
        "1 while connected to systemd; absent when no unit is supervised.",
        &connected,
    );
    family(
        &mut out,
        "rvm_watchdog_targets",
        "gauge",
        "Targets in the configuration.",
        &[(String::new(), s.config.targets.len() as u64)],
    );
    out
}
