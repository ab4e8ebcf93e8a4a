//! The watchdog's own counters and gauges, in Prometheus' text format at
//! `/metrics`. The counters are bumped by [`crate::event::Events::emit`]
//! from the event it also logs and stores, so the log and the metrics
//! cannot drift; the gauges are read from the core loop's [`Snapshot`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::event::counters::{Counters, Histogram, LAG_BUCKETS};
use crate::status::Snapshot;

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines, then its samples.
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(String, V)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The probe lag histogram, buckets cumulative as Prometheus wants them.
fn lag_histogram(out: &mut String, lag: &Histogram) {
    let name = "rvm_watchdog_probe_lag_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} How late probe runs started against their schedule.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (bound, n) in LAG_BUCKETS.iter().zip(lag.buckets) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
        lag.count,
        lag.sum_us as f64 / 1e6,
        lag.count
    );
}

/// Resource use of unit targets as systemd accounts it (read every
/// `[metrics] interval`); a figure systemd does not account is left out.
fn accounting(out: &mut String, units: &BTreeMap<String, crate::supervisor::UnitAccounting>) {
    type Pick = fn(&crate::supervisor::UnitAccounting) -> Option<String>;
    let families: [(&str, &str, &str, Pick); 4] = [
        (
            "rvm_watchdog_unit_memory_bytes",
            "gauge",
            "Memory of the unit's cgroup, bytes.",
            |a| a.memory_bytes.map(|v| v.to_string()),
        ),
        (
            "rvm_watchdog_unit_cpu_seconds_total",
            "counter",
            "CPU time the unit used, seconds.",
            |a| a.cpu_nanos.map(|v| (v as f64 / 1e9).to_string()),
        ),
        (
            "rvm_watchdog_unit_tasks",
            "gauge",
            "Tasks (processes and threads) in the unit.",
            |a| a.tasks.map(|v| v.to_string()),
        ),
        (
            "rvm_watchdog_unit_restarts_total",
            "counter",
            "Restarts systemd made of the unit (NRestarts).",
            |a| Some(a.n_restarts.to_string()),
        ),
    ];
    for (name, kind, help, pick) in families {
        let samples: Vec<(String, String)> = units
            .iter()
            .filter_map(|(u, a)| pick(a).map(|v| (format!("{{unit=\"{}\"}}", label(u)), v)))
            .collect();
        if !samples.is_empty() {
            family(out, name, kind, help, &samples);
        }
    }
}

/// Each probe's last run (status, value, duration), its health after
/// hysteresis, and the figures it read (a GPU probe's telemetry).
fn probes(out: &mut String, probes: &BTreeMap<String, crate::status::ProbeView>) {
    use crate::probe::{ProbeHealth, Status};
    let labels = |key: &str| {
        let (t, p) = key.split_once(':').unwrap_or((key, ""));
        format!("target=\"{}\",probe=\"{}\"", label(t), label(p))
    };
    type Samples = Vec<(String, String)>;
    let mut families: BTreeMap<String, (&str, &str, Samples)> = BTreeMap::new();
    let mut add =
        |name: String, kind: &'static str, help: &'static str, labels: String, value: String| {
            families
                .entry(name)
                .or_insert_with(|| (kind, help, Vec::new()))
                .2
                .push((labels, value));
        };
    for (key, view) in probes {
        let l = labels(key);
        let o = &view.outcome;
        let status = match o.status {
            Status::Pass => 0,
            Status::Warn => 1,
            Status::Fail => 2,
        };
        add(
            "rvm_watchdog_probe_status".into(),
            "gauge",
            "The probe's last run: 0 pass, 1 warn, 2 fail.",
            format!("{{{l}}}"),
            status.to_string(),
        );
        add(
            "rvm_watchdog_probe_failing".into(),
            "gauge",
            "1 while the probe is failing (after fail-after runs in a row).",
            format!("{{{l}}}"),
            u8::from(view.health == ProbeHealth::Failing).to_string(),
        );
        add(
            "rvm_watchdog_probe_duration_seconds".into(),
            "gauge",
            "How long the probe's last run took.",
            format!("{{{l}}}"),
            (o.took_ms as f64 / 1000.0).to_string(),
        );
        if let (Some(v), Some(unit)) = (o.observed_value, o.observed_unit) {
            add(
                "rvm_watchdog_probe_value".into(),
                "gauge",
                "What the probe's last run measured, in its unit.",
                format!("{{{l},unit=\"{}\"}}", label(unit)),
                v.to_string(),
            );
        }
        for m in &o.measurements {
            let extra = match &m.label {
                Some((k, v)) => format!(",{k}=\"{}\"", label(v)),
                None => String::new(),
            };
            add(
                format!("rvm_watchdog_{}", m.name),
                "gauge",
                "Read by the probe named in the labels.",
                format!("{{{l}{extra}}}"),
                m.value.to_string(),
            );
        }
    }
    for (name, (kind, help, samples)) in families {
        family(out, &name, kind, help, &samples);
    }
}

/// The exposition of everything the snapshot and the counters know.
pub fn render(s: &Snapshot, counters: &Counters) -> String {
    let mut out = render_counters(counters);
    snapshot_gauges(&mut out, s);
    lag_histogram(&mut out, &counters.probe_lag);
    accounting(&mut out, &s.accounting);
    probes(&mut out, &s.probes);
    out
}

/// The exposition of the counters [`crate::event::Events::emit`] bumps.
pub fn render_counters(counters: &Counters) -> String {
    let mut out = String::new();
    let events: Vec<(String, u64)> = counters
        .events
        .iter()
        .map(|(k, n)| (format!("{{kind=\"{k}\"}}"), *n))
        .collect();
    family(
        &mut out,
        "rvm_watchdog_events_total",
        "counter",
        "Events the watchdog emitted (each also logged to journald and stored), by kind.",
        &events,
    );
    let decisions: Vec<(String, u64)> = counters
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
    let actions: Vec<(String, u64)> = counters
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
    let operator: Vec<(String, u64)> = counters
        .operator
        .iter()
        .map(|((t, c, r), n)| {
            (
                format!("{{target=\"{}\",command=\"{c}\",result=\"{r}\"}}", label(t)),
                *n,
            )
        })
        .collect();
    family(
        &mut out,
        "rvm_watchdog_operator_commands_total",
        "counter",
        "Operator commands carried out (API, CLI), by target, command and result.",
        &operator,
    );
    let dropped: Vec<(String, u64)> = counters
        .dropped
        .iter()
        .map(|(q, n)| (format!("{{subscriber=\"{q}\"}}"), *n))
        .collect();
    family(
        &mut out,
        "rvm_watchdog_events_dropped_total",
        "counter",
        "Events a subscriber that fell too far behind lost, by subscriber.",
        &dropped,
    );
    out
}

/// The gauges read from the core loop's snapshot.
fn snapshot_gauges(out: &mut String, s: &Snapshot) {
    let per_target = |f: &dyn Fn(&crate::recovery::LadderState) -> u64| -> Vec<(String, u64)> {
        s.ladders
            .iter()
            .map(|(t, l)| (format!("{{target=\"{}\"}}", label(t)), f(l)))
            .collect()
    };
    family(
        out,
        "rvm_watchdog_target_failing",
        "gauge",
        "1 while the target is failing.",
        &per_target(&|l| u64::from(l.health.is_failing())),
    );
    family(
        out,
        "rvm_watchdog_target_gave_up",
        "gauge",
        "1 while the target's ladder has given up.",
        &per_target(&|l| u64::from(l.gave_up.is_some())),
    );
    family(
        out,
        "rvm_watchdog_target_paused",
        "gauge",
        "1 while an operator has paused the target (watched, not acted on).",
        &per_target(&|l| u64::from(l.paused.is_some())),
    );
    family(
        out,
        "rvm_watchdog_ladder_step",
        "gauge",
        "The target's current ladder step, counted from 1.",
        &per_target(&|l| l.step as u64 + 1),
    );
    family(
        out,
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
        out,
        "rvm_watchdog_systemd_connected",
        "gauge",
        "1 while connected to systemd; absent when no unit is supervised.",
        &connected,
    );
    family(
        out,
        "rvm_watchdog_targets",
        "gauge",
        "Targets in the configuration.",
        &[(String::new(), s.config.targets.len() as u64)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unit_accounting_is_exposed_and_missing_figures_are_left_out() {
        let mut units = BTreeMap::new();
        units.insert(
            "myrvm-edge.service".to_owned(),
            crate::supervisor::UnitAccounting {
                memory_bytes: Some(1_048_576),
                cpu_nanos: Some(2_500_000_000),
                tasks: None,
                n_restarts: 3,
            },
        );
        let mut text = String::new();
        accounting(&mut text, &units);
        for line in [
            "rvm_watchdog_unit_memory_bytes{unit=\"myrvm-edge.service\"} 1048576",
            "rvm_watchdog_unit_cpu_seconds_total{unit=\"myrvm-edge.service\"} 2.5",
            "rvm_watchdog_unit_restarts_total{unit=\"myrvm-edge.service\"} 3",
            "# TYPE rvm_watchdog_unit_cpu_seconds_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("rvm_watchdog_unit_tasks"), "{text}");
    }

    #[test]
    fn probes_and_what_they_read_are_exposed() {
        use crate::probe::{Measurement, Outcome, ProbeHealth, Status};
        let mut gpu = Outcome::new(Status::Warn, "GPU 17000000.gpu: throttled").value(71.5, "°C");
        gpu.took_ms = 12;
        gpu.measurements = vec![
            Measurement::new("gpu_load_percent", 45.7),
            Measurement::labelled("temperature_celsius", "zone", "tj-thermal", 72.0),
            Measurement::labelled("temperature_celsius", "zone", "gpu-thermal", 71.5),
        ];
        let mut probes = BTreeMap::new();
        let view = |outcome: Outcome, health| crate::status::ProbeView {
            health,
            outcome,
            at: std::time::SystemTime::now(),
        };
        probes.insert("gpu:gpu".to_owned(), view(gpu, ProbeHealth::Passing));
        probes.insert(
            "camera:v4l2".to_owned(),
            view(Outcome::new(Status::Fail, "absent"), ProbeHealth::Failing),
        );
        let mut text = String::new();
        super::probes(&mut text, &probes);
        for line in [
            "rvm_watchdog_probe_status{target=\"gpu\",probe=\"gpu\"} 1",
            "rvm_watchdog_probe_status{target=\"camera\",probe=\"v4l2\"} 2",
            "rvm_watchdog_probe_failing{target=\"camera\",probe=\"v4l2\"} 1",
            "rvm_watchdog_probe_failing{target=\"gpu\",probe=\"gpu\"} 0",
            "rvm_watchdog_probe_duration_seconds{target=\"gpu\",probe=\"gpu\"} 0.012",
            "rvm_watchdog_probe_value{target=\"gpu\",probe=\"gpu\",unit=\"°C\"} 71.5",
            "rvm_watchdog_gpu_load_percent{target=\"gpu\",probe=\"gpu\"} 45.7",
            "rvm_watchdog_temperature_celsius{target=\"gpu\",probe=\"gpu\",zone=\"tj-thermal\"} 72",
            "# TYPE rvm_watchdog_temperature_celsius gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        // One HELP/TYPE per family, however many probes report it.
        assert_eq!(
            text.matches("# TYPE rvm_watchdog_temperature_celsius ")
                .count(),
            1
        );
        assert!(!text.contains("probe_value{target=\"camera\""), "{text}");
    }

    #[test]
    fn the_lag_histogram_is_cumulative_in_the_exposition() {
        let mut h = Histogram::default();
        for ms in [0.5, 1.5, 1.8, 7.0, 3000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        assert_eq!(h.count, 5);
        assert_eq!(h.buckets[0], 1); // <= 1 ms
        assert_eq!(h.buckets[1], 2); // <= 2 ms
        assert_eq!(h.buckets[3], 1); // <= 10 ms
        let mut text = String::new();
        lag_histogram(&mut text, &h);
        for line in [
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.001\"} 1",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.002\"} 3",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.005\"} 3",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.01\"} 4",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"1\"} 4",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"+Inf\"} 5",
            "rvm_watchdog_probe_lag_seconds_count 5",
            "rvm_watchdog_probe_lag_seconds_sum 3.0108",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
