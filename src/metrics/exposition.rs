//! The watchdog's own counters and gauges, in the OpenMetrics text format
//! at `/metrics`, written by `prometheus-client` (the official Rust client).
//! The counters are bumped by [`crate::event::Events::emit`] from the event
//! it also logs and stores, so the log and the metrics cannot drift; the
//! gauges are read from the core loop's [`Snapshot`].
//!
//! Each scrape gathers [`Family`]s from the snapshot and the counters and
//! hands them to the library as one collector: it writes the HELP, TYPE
//! and sample lines, counter `_total` suffixes and the closing `# EOF`.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Kind;
use super::recorder::Latest;
use crate::event::counters::{Counters, Histogram, LAG_BUCKETS};
use crate::status::Snapshot;

/// The media type of the OpenMetrics exposition (what Prometheus asks for).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The media type of Prometheus' older text format, for other readers.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The same exposition in Prometheus' older text format (0.0.4), for a
/// reader that does not ask for OpenMetrics (`promtool`, `curl`): a
/// counter's HELP and TYPE name its `_total` samples, and there is no
/// `# EOF`.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Label names and values of one sample, in order.
pub type Labels = Vec<(String, String)>;

/// Labelled values of one family.
type Series = Vec<(Labels, Value)>;

/// One sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A whole number (flags, counts).
    Int(i64),
    /// A measurement.
    Float(f64),
}

/// What a family holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Gauges.
    Gauge(Vec<(Labels, Value)>),
    /// Counters (named without `_total`; the encoder adds it).
    Counter(Vec<(Labels, Value)>),
    /// One histogram: sum, count and per-bucket counts (`f64::MAX` is `+Inf`).
    Histogram {
        /// Sum of observations.
        sum: f64,
        /// Number of observations.
        count: u64,
        /// Upper bound and observations in that bucket alone.
        buckets: Vec<(f64, u64)>,
    },
}

/// One metric family: name, help and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name; a counter's without `_total`.
    pub name: String,
    /// One line for people.
    pub help: String,
    /// The samples.
    pub samples: Samples,
}

impl Family {
    fn gauge(name: &str, help: &str, samples: Vec<(Labels, Value)>) -> Family {
        Family {
            name: name.to_owned(),
            help: help.to_owned(),
            samples: Samples::Gauge(samples),
        }
    }

    fn counter(name: &str, help: &str, samples: Vec<(Labels, Value)>) -> Family {
        Family {
            name: name.trim_end_matches("_total").to_owned(),
            help: help.to_owned(),
            samples: Samples::Counter(samples),
        }
    }
}

/// A label value as the text format wants it. The library writes label
/// values as given, so they are escaped here.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Labels from name/value pairs, values escaped.
fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), escaped(v)))
        .collect()
}

/// Families as one collector of the library.
#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let kind = match &family.samples {
                Samples::Gauge(_) => MetricType::Gauge,
                Samples::Counter(_) => MetricType::Counter,
                Samples::Histogram { .. } => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(&family.name, &family.help, None, kind)?;
            let (samples, counter) = match &family.samples {
                Samples::Gauge(samples) => (samples, false),
                Samples::Counter(samples) => (samples, true),
                Samples::Histogram {
                    sum,
                    count,
                    buckets,
                } => {
                    metric.encode_histogram::<Labels>(*sum, *count, buckets, None)?;
                    continue;
                }
            };
            match samples.as_slice() {
                // A family of one sample without labels: no `{}`.
                [(l, v)] if l.is_empty() => value(metric, *v, counter)?,
                _ => {
                    for (l, v) in samples {
                        value(metric.encode_family(l)?, *v, counter)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes one sample's value.
fn value(
    e: prometheus_client::encoding::MetricEncoder<'_>,
    v: Value,
    counter: bool,
) -> Result<(), std::fmt::Error> {
    match (v, counter) {
        (Value::Int(n), false) => ConstGauge::new(n).encode(e),
        (Value::Float(x), false) => ConstGauge::new(x).encode(e),
        (Value::Int(n), true) => ConstCounter::new(n.max(0) as u64).encode(e),
        (Value::Float(x), true) => ConstCounter::new(x).encode(e),
    }
}

/// Writes families in the OpenMetrics text format.
pub fn encode(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot write the metrics exposition");
    }
    out
}

/// The probe lag histogram.
fn lag_histogram(lag: &Histogram) -> Family {
    let mut buckets: Vec<(f64, u64)> = LAG_BUCKETS.iter().copied().zip(lag.buckets).collect();
    let counted: u64 = buckets.iter().map(|(_, n)| n).sum();
    buckets.push((f64::MAX, lag.count.saturating_sub(counted)));
    Family {
        name: "rvm_watchdog_probe_lag_seconds".into(),
        help: "How late probe runs started against their schedule.".into(),
        samples: Samples::Histogram {
            sum: lag.sum_us as f64 / 1e6,
            count: lag.count,
            buckets,
        },
    }
}

/// Resource use of unit targets as systemd accounts it (read every
/// `[metrics] interval`); a figure systemd does not account is left out.
fn accounting(units: &BTreeMap<String, crate::supervisor::UnitAccounting>) -> Vec<Family> {
    type Pick = fn(&crate::supervisor::UnitAccounting) -> Option<Value>;
    let picks: [(&str, bool, &str, Pick); 4] = [
        (
            "rvm_watchdog_unit_memory_bytes",
            false,
            "Memory of the unit's cgroup, bytes.",
            |a| a.memory_bytes.map(|v| Value::Int(v as i64)),
        ),
        (
            "rvm_watchdog_unit_cpu_seconds_total",
            true,
            "CPU time the unit used, seconds.",
            |a| a.cpu_nanos.map(|v| Value::Float(v as f64 / 1e9)),
        ),
        (
            "rvm_watchdog_unit_tasks",
            false,
            "Tasks (processes and threads) in the unit.",
            |a| a.tasks.map(|v| Value::Int(v as i64)),
        ),
        (
            "rvm_watchdog_unit_restarts_total",
            true,
            "Restarts systemd made of the unit (NRestarts).",
            |a| Some(Value::Int(i64::from(a.n_restarts))),
        ),
    ];
    let mut out = Vec::new();
    for (name, counter, help, pick) in picks {
        let samples: Vec<(Labels, Value)> = units
            .iter()
            .filter_map(|(u, a)| pick(a).map(|v| (labels(&[("unit", u)]), v)))
            .collect();
        if samples.is_empty() {
            continue;
        }
        out.push(if counter {
            Family::counter(name, help, samples)
        } else {
            Family::gauge(name, help, samples)
        });
    }
    out
}

/// Each probe's last run (status, value, duration), its health after
/// hysteresis, and the figures it read (a GPU probe's telemetry).
fn probes(probes: &BTreeMap<String, crate::status::ProbeView>) -> Vec<Family> {
    use crate::probe::{ProbeHealth, Status};
    let mut families: BTreeMap<String, (&str, Series)> = BTreeMap::new();
    let mut add = |name: String, help: &'static str, labels: Labels, value: Value| {
        families
            .entry(name)
            .or_insert_with(|| (help, Vec::new()))
            .1
            .push((labels, value));
    };
    for (key, view) in probes {
        let (t, p) = key.split_once(':').unwrap_or((key, ""));
        let base = labels(&[("target", t), ("probe", p)]);
        let o = &view.outcome;
        let status = match o.status {
            Status::Pass => 0,
            Status::Warn => 1,
            Status::Fail => 2,
        };
        add(
            "rvm_watchdog_probe_status".into(),
            "The probe's last run: 0 pass, 1 warn, 2 fail.",
            base.clone(),
            Value::Int(status),
        );
        add(
            "rvm_watchdog_probe_failing".into(),
            "1 while the probe is failing (after fail-after runs in a row).",
            base.clone(),
            Value::Int(i64::from(view.health == ProbeHealth::Failing)),
        );
        add(
            "rvm_watchdog_probe_duration_seconds".into(),
            "How long the probe's last run took.",
            base.clone(),
            Value::Float(o.took_ms as f64 / 1000.0),
        );
        if let (Some(v), Some(unit)) = (o.observed_value, o.observed_unit) {
            let mut l = base.clone();
            l.push(("unit".into(), escaped(unit)));
            add(
                "rvm_watchdog_probe_value".into(),
                "What the probe's last run measured, in its unit.",
                l,
                Value::Float(v),
            );
        }
        for m in &o.measurements {
            let mut l = base.clone();
            if let Some((k, v)) = &m.label {
                l.push(((*k).to_owned(), escaped(v)));
            }
            add(
                format!("rvm_watchdog_{}", m.name),
                "Read by the probe named in the labels.",
                l,
                Value::Float(m.value),
            );
        }
    }
    families
        .into_iter()
        .map(|(name, (help, samples))| Family::gauge(&name, help, samples))
        .collect()
}

/// The exposition of everything the snapshot, the counters and the
/// recorder's latest values know.
pub fn render(s: &Snapshot, counters: &Counters, latest: &Latest) -> String {
    let mut families = counter_families(counters);
    families.extend(snapshot_gauges(s));
    families.push(lag_histogram(&counters.probe_lag));
    families.extend(accounting(&s.accounting));
    families.extend(probes(&s.probes));
    families.extend(recorded(latest));
    encode(families)
}

/// Help for a recorded family, by where its series come from.
fn recorded_help(name: &str) -> &'static str {
    if name.starts_with("rvm_host_") {
        "Read from the host's /proc by the watchdog."
    } else if name.starts_with("rvm_jetson_") {
        "Read from the Jetson's sysfs by the watchdog."
    } else if name.starts_with("rvm_watchdog_") {
        "The watchdog's own figure."
    } else if name.starts_with("rvm_scrape_") {
        "How the watchdog's last scrape of the source went."
    } else {
        "Scraped, pushed or computed (a KPI); the latest value the watchdog holds."
    }
}

/// The latest value of every series the recorder holds, by family. A
/// counter is exposed as one when its name ends in `_total`; a
/// histogram's or summary's parts (`_bucket`, `_sum`, `_count`) are kept
/// in the history but not exposed here (their services expose them).
fn recorded(latest: &Latest) -> Vec<Family> {
    let mut families: BTreeMap<&str, (bool, Series)> = BTreeMap::new();
    for (key, (kind, v)) in &latest.values {
        let name = key.name.as_str();
        if ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            continue;
        }
        let counter = *kind == Kind::Counter && name.ends_with("_total");
        let labels: Labels = key
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), escaped(v)))
            .collect();
        families
            .entry(name)
            .or_insert_with(|| (counter, Vec::new()))
            .1
            .push((labels, Value::Float(*v)));
    }
    families
        .into_iter()
        .map(|(name, (counter, series))| {
            if counter {
                Family::counter(name, recorded_help(name), series)
            } else {
                Family::gauge(name, recorded_help(name), series)
            }
        })
        .collect()
}

/// The exposition of the counters [`crate::event::Events::emit`] bumps.
pub fn render_counters(counters: &Counters) -> String {
    encode(counter_families(counters))
}

fn counter_families(counters: &Counters) -> Vec<Family> {
    let n = |v: &u64| Value::Int(*v as i64);
    vec![
        Family::counter(
            "rvm_watchdog_events_total",
            "Events the watchdog emitted (each also logged to journald and stored), by kind.",
            counters
                .events
                .iter()
                .map(|(k, v)| (labels(&[("kind", k)]), n(v)))
                .collect(),
        ),
        Family::counter(
            "rvm_watchdog_decisions_total",
            "Recovery decisions, by target and decision.",
            counters
                .decisions
                .iter()
                .map(|((t, d), v)| (labels(&[("target", t), ("decision", d)]), n(v)))
                .collect(),
        ),
        Family::counter(
            "rvm_watchdog_actions_total",
            "Recovery actions carried out, by target, action and result.",
            counters
                .actions
                .iter()
                .map(|((t, a, r), v)| {
                    (labels(&[("target", t), ("action", a), ("result", r)]), n(v))
                })
                .collect(),
        ),
        Family::counter(
            "rvm_watchdog_operator_commands_total",
            "Operator commands carried out (API, CLI), by target, command and result.",
            counters
                .operator
                .iter()
                .map(|((t, c, r), v)| {
                    (
                        labels(&[("target", t), ("command", c), ("result", r)]),
                        n(v),
                    )
                })
                .collect(),
        ),
        Family::counter(
            "rvm_watchdog_events_dropped_total",
            "Events a subscriber that fell too far behind lost, by subscriber.",
            counters
                .dropped
                .iter()
                .map(|(q, v)| (labels(&[("subscriber", q)]), n(v)))
                .collect(),
        ),
    ]
}

/// The gauges read from the core loop's snapshot.
fn snapshot_gauges(s: &Snapshot) -> Vec<Family> {
    let per_target = |f: &dyn Fn(&crate::recovery::LadderState) -> i64| -> Vec<(Labels, Value)> {
        s.ladders
            .iter()
            .map(|(t, l)| (labels(&[("target", t)]), Value::Int(f(l))))
            .collect()
    };
    let flag = |b: bool| Value::Int(i64::from(b));
    vec![
        Family::gauge(
            "rvm_watchdog_target_failing",
            "1 while the target is failing.",
            per_target(&|l| i64::from(l.health.is_failing())),
        ),
        Family::gauge(
            "rvm_watchdog_target_gave_up",
            "1 while the target's ladder has given up.",
            per_target(&|l| i64::from(l.gave_up.is_some())),
        ),
        Family::gauge(
            "rvm_watchdog_target_paused",
            "1 while an operator has paused the target (watched, not acted on).",
            per_target(&|l| i64::from(l.paused.is_some())),
        ),
        Family::gauge(
            "rvm_watchdog_ladder_step",
            "The target's current ladder step, counted from 1.",
            per_target(&|l| l.step as i64 + 1),
        ),
        Family::gauge(
            "rvm_watchdog_safe_mode",
            "1 while in safe mode (no automatic reboots).",
            vec![(Vec::new(), flag(s.safe_mode.is_some()))],
        ),
        Family::gauge(
            "rvm_watchdog_systemd_connected",
            "1 while connected to systemd; absent when no unit is supervised.",
            s.supervisor
                .iter()
                .map(|b| (Vec::new(), flag(b.connected)))
                .collect(),
        ),
        Family::gauge(
            "rvm_watchdog_targets",
            "Targets in the configuration.",
            vec![(Vec::new(), Value::Int(s.config.targets.len() as i64))],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn label_values_are_escaped_and_the_exposition_ends_with_eof() {
        let text = encode(vec![Family::gauge(
            "rvm_watchdog_x",
            "A test family.",
            vec![(labels(&[("target", "a\"b\\c\nd")]), Value::Int(1))],
        )]);
        assert_eq!(
            text,
            "# HELP rvm_watchdog_x A test family.\n# TYPE rvm_watchdog_x gauge\n\
             rvm_watchdog_x{target=\"a\\\"b\\\\c\\nd\"} 1\n# EOF\n"
        );
    }

    #[test]
    fn the_older_text_format_names_counters_by_their_samples() {
        let open = encode(vec![Family::counter(
            "rvm_watchdog_events_total",
            "Events.",
            vec![(labels(&[("kind", "boot")]), Value::Int(2))],
        )]);
        assert!(
            open.contains("# TYPE rvm_watchdog_events counter\n"),
            "{open}"
        );
        assert_eq!(
            to_text_format(&open),
            "# HELP rvm_watchdog_events_total Events.\n# TYPE rvm_watchdog_events_total counter\n\
             rvm_watchdog_events_total{kind=\"boot\"} 2\n"
        );
    }

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
        let text = encode(accounting(&units));
        for line in [
            "rvm_watchdog_unit_memory_bytes{unit=\"myrvm-edge.service\"} 1048576",
            "rvm_watchdog_unit_cpu_seconds_total{unit=\"myrvm-edge.service\"} 2.5",
            "rvm_watchdog_unit_restarts_total{unit=\"myrvm-edge.service\"} 3",
            "# TYPE rvm_watchdog_unit_cpu_seconds counter",
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
        let text = encode(super::probes(&probes));
        for line in [
            "rvm_watchdog_probe_status{target=\"gpu\",probe=\"gpu\"} 1",
            "rvm_watchdog_probe_status{target=\"camera\",probe=\"v4l2\"} 2",
            "rvm_watchdog_probe_failing{target=\"camera\",probe=\"v4l2\"} 1",
            "rvm_watchdog_probe_failing{target=\"gpu\",probe=\"gpu\"} 0",
            "rvm_watchdog_probe_duration_seconds{target=\"gpu\",probe=\"gpu\"} 0.012",
            "rvm_watchdog_probe_value{target=\"gpu\",probe=\"gpu\",unit=\"°C\"} 71.5",
            "rvm_watchdog_gpu_load_percent{target=\"gpu\",probe=\"gpu\"} 45.7",
            "rvm_watchdog_temperature_celsius{target=\"gpu\",probe=\"gpu\",zone=\"tj-thermal\"} 72.0",
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
        let text = encode(vec![lag_histogram(&h)]);
        for line in [
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.001\"} 1",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.002\"} 3",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.005\"} 3",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"0.01\"} 4",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"1.0\"} 4",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"+Inf\"} 5",
            "rvm_watchdog_probe_lag_seconds_count 5",
            "rvm_watchdog_probe_lag_seconds_sum 3.0108",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
