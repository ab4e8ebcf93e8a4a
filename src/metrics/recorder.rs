//! The recorder: the one task that owns the metrics history. It takes the
//! collectors' rounds, the services' unit accounting (from the core loop's
//! snapshot), scrapes of the services' endpoints and pushes from the API;
//! it computes the KPIs; and it answers queries. It publishes the latest
//! value of every series for `/metrics`.
//!
//! Nothing here blocks the loop: collectors and scrapes run as tasks of
//! their own, queries of the file are answered by the history's writer
//! thread and awaited in a task, and a history that cannot be opened
//! leaves the recorder running without one (the latest values still
//! serve `/metrics`; queries answer why there is no history).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::collect::{self, Scheduler};
use super::history::{
    self, Answer, Eta, Fit, History, HistoryConfig, HistoryStats, Matcher, Query, Threshold,
};
use super::kpi::{self, Formula, Points};
use super::{Kind, Sample, SeriesKey};
use crate::config::Metrics;
use crate::status::Snapshot;

/// What the API asks the recorder.
pub enum Request {
    /// Store pushed samples (already checked whole).
    Ingest {
        /// The samples.
        samples: Vec<Sample>,
        /// How many were kept, or why none.
        reply: oneshot::Sender<Result<usize, String>>,
    },
    /// Answer a query.
    Query {
        /// The query.
        query: Query,
        /// The answer, or why there is none.
        reply: oneshot::Sender<Result<Answer, String>>,
    },
    /// List the series.
    Series {
        /// The series the history holds.
        reply: oneshot::Sender<Result<Vec<history::SeriesInfo>, String>>,
    },
    /// A reload changed `[metrics]`: scrapes and KPIs follow it.
    Reconfigure(Box<Metrics>),
}

/// The latest value of each series, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    /// By series: its kind and latest value. The keys are shared with the
    /// recorder and its history, so publishing copies no key.
    pub values: BTreeMap<Arc<SeriesKey>, (Kind, f64)>,
    /// What the history has done (`None` without a history).
    pub history: Option<HistoryStats>,
    /// Collector rounds dropped because the recorder had no room.
    pub rounds_dropped: u64,
}

/// How the rest of the daemon reaches the recorder.
#[derive(Clone)]
pub struct Handle {
    /// Requests (bounded).
    pub requests: mpsc::Sender<Request>,
    /// The latest values, republished every round.
    pub latest: watch::Receiver<Arc<Latest>>,
}

/// Names the snapshot's unit accounting is recorded under; `/metrics`
/// already renders them from the snapshot, so they are not republished.
const UNIT_SERIES: &str = "rvm_watchdog_unit_";

/// How often minutes are closed and the latest values republished.
const TICK: Duration = Duration::from_secs(1);

/// A trend: the series watched (name, labels), its threshold, the series
/// its estimate becomes.
type Trend = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Threshold,
    &'static str,
);

/// How often the trends are fitted again.
const TREND_EVERY: Duration = Duration::from_secs(60);

/// The window a trend is fitted over.
const TREND_WINDOW_MS: u64 = 6 * 3_600_000;

/// The trends kept as series: the series watched, the threshold, and the
/// series the estimate becomes (seconds until the threshold is reached; 0
/// once it is; absent while the trend does not head there).
const TRENDS: [Trend; 2] = [
    (
        "rvm_host_disk_used_ratio",
        &[],
        Threshold::Above(1.0),
        "rvm_trend_disk_full_seconds",
    ),
    (
        "rvm_host_memory_bytes",
        &[("kind", "available")],
        Threshold::Below(0.0),
        "rvm_trend_memory_exhausted_seconds",
    ),
];

/// Starts the recorder: the history in `state_dir`, the collectors on
/// `[metrics] interval`, the scrapes, the KPIs.
pub fn spawn(
    metrics: &Metrics,
    host_root: &Path,
    state_dir: &Path,
    snapshot: watch::Receiver<Snapshot>,
    http: reqwest::Client,
    stop: CancellationToken,
) -> Handle {
    let config = HistoryConfig {
        ram_window: metrics.raw_retention,
        minute_retention: metrics.minute_retention,
        hour_retention: metrics.hour_retention,
        max_disk_mib: metrics.max_disk_mib,
        ..HistoryConfig::default()
    };
    let history = match History::open(state_dir, config) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, dir = %state_dir.display(), "cannot open the metrics history; metrics are served but not kept");
            None
        }
    };
    let (rounds_tx, rounds) = mpsc::channel(64);
    let scheduler = Scheduler::spawn(
        collect::default_set(host_root, metrics.interval),
        rounds_tx.clone(),
        stop.clone(),
    );
    let (requests, from_api) = mpsc::channel(64);
    let (latest_tx, latest) = watch::channel(Arc::new(Latest::default()));
    let recorder = Recorder {
        history,
        metrics: metrics.clone(),
        latest: BTreeMap::new(),
        latest_tx,
        snapshot,
        http,
        scheduler,
        rounds_tx,
        scrapes: CancellationToken::new(),
        stop: stop.clone(),
    };
    tokio::spawn(recorder.run(rounds, from_api));
    Handle { requests, latest }
}

struct Recorder {
    history: Option<History>,
    metrics: Metrics,
    latest: BTreeMap<Arc<SeriesKey>, (Kind, f64)>,
    latest_tx: watch::Sender<Arc<Latest>>,
    snapshot: watch::Receiver<Snapshot>,
    http: reqwest::Client,
    scheduler: Scheduler,
    /// Where scrapes and KPI answers send their samples.
    rounds_tx: mpsc::Sender<Vec<Sample>>,
    /// Cancelled to stop the scrapes (at a reconfiguration).
    scrapes: CancellationToken,
    stop: CancellationToken,
}

impl Recorder {
    async fn run(
        mut self,
        mut rounds: mpsc::Receiver<Vec<Sample>>,
        mut requests: mpsc::Receiver<Request>,
    ) {
        self.start_scrapes();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut every = tokio::time::interval(self.metrics.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut trends = tokio::time::interval(TREND_EVERY);
        trends.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                Some(round) = rounds.recv() => self.record(&round),
                Some(request) = requests.recv() => self.answer(request),
                _ = tick.tick() => self.tick(),
                _ = every.tick() => {
                    self.record_units();
                    self.compute_kpis();
                }
                _ = trends.tick() => self.compute_trends(),
            }
        }
        self.scrapes.cancel();
        if let Some(history) = self.history.take() {
            let now = collect::now_ms();
            let done = tokio::task::spawn_blocking(move || history.shutdown(now)).await;
            match done {
                Ok(Ok(())) => tracing::debug!("metrics history written"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the metrics history was not written whole at stop")
                }
                Err(e) => tracing::warn!(error = %e, "the metrics history's stop failed"),
            }
        }
    }

    fn record(&mut self, samples: &[Sample]) {
        for s in samples {
            if !s.value.is_finite() && s.key.name.starts_with("rvm_trend_") {
                // The trend no longer heads to its threshold.
                self.latest.remove(&s.key);
                continue;
            }
            if let Some(h) = &mut self.history {
                h.record(s);
            }
            if s.key.name.starts_with(UNIT_SERIES) {
                continue;
            }
            if let Some(latest) = self.latest.get_mut(&s.key) {
                *latest = (s.kind, s.value);
            } else {
                let key = (self.history.as_ref())
                    .and_then(|h| h.shared_key(&s.key))
                    .unwrap_or_else(|| Arc::new(s.key.clone()));
                self.latest.insert(key, (s.kind, s.value));
            }
        }
    }

    fn tick(&mut self) {
        let now = collect::now_ms();
        if let Some(h) = &mut self.history {
            h.close_minutes(now);
        }
        let mut values = self.latest.clone();
        let stats = self.history.as_ref().map(History::stats);
        if let Some(s) = &stats {
            let own = |name: &str| Arc::new(SeriesKey::new(name, []));
            values.insert(
                own("rvm_watchdog_history_written_bytes_total"),
                (Kind::Counter, s.bytes_written as f64),
            );
            values.insert(
                own("rvm_watchdog_history_file_bytes"),
                (Kind::Gauge, s.file_bytes as f64),
            );
            values.insert(
                own("rvm_watchdog_history_series"),
                (Kind::Gauge, s.series as f64),
            );
            values.insert(
                own("rvm_watchdog_history_batches_written_total"),
                (Kind::Counter, s.batches_written as f64),
            );
            values.insert(
                own("rvm_watchdog_history_batches_dropped_total"),
                (Kind::Counter, s.batches_dropped as f64),
            );
            values.insert(
                own("rvm_watchdog_history_ram_samples"),
                (Kind::Gauge, s.ram_samples as f64),
            );
            values.insert(
                own("rvm_watchdog_history_ram_bytes"),
                (Kind::Gauge, s.ram_bytes as f64),
            );
        }
        self.latest_tx.send_replace(Arc::new(Latest {
            values,
            history: stats,
            rounds_dropped: self.scheduler.dropped(),
        }));
    }

    /// The services' unit accounting, as series.
    fn record_units(&mut self) {
        let now = collect::now_ms();
        let samples: Vec<Sample> = {
            let snapshot = self.snapshot.borrow();
            snapshot
                .accounting
                .iter()
                .flat_map(|(unit, a)| {
                    let key = |name: &str| SeriesKey::new(name, [("unit", unit.as_str())]);
                    let mut out = vec![Sample {
                        key: key("rvm_watchdog_unit_restarts_total"),
                        kind: Kind::Counter,
                        at_ms: now,
                        value: f64::from(a.n_restarts),
                    }];
                    if let Some(m) = a.memory_bytes {
                        out.push(Sample {
                            key: key("rvm_watchdog_unit_memory_bytes"),
                            kind: Kind::Gauge,
                            at_ms: now,
                            value: m as f64,
                        });
                    }
                    if let Some(c) = a.cpu_nanos {
                        out.push(Sample {
                            key: key("rvm_watchdog_unit_cpu_seconds_total"),
                            kind: Kind::Counter,
                            at_ms: now,
                            value: c as f64 / 1e9,
                        });
                    }
                    if let Some(t) = a.tasks {
                        out.push(Sample {
                            key: key("rvm_watchdog_unit_tasks"),
                            kind: Kind::Gauge,
                            at_ms: now,
                            value: t as f64,
                        });
                    }
                    out
                })
                .collect()
        };
        self.record(&samples);
    }

    /// Samples the history has refused so far (not later than their
    /// series' last, not finite, of another kind, one series too many).
    fn refused(&self) -> u64 {
        self.history.as_ref().map_or(0, |h| {
            let s = h.stats();
            s.out_of_order + s.not_finite + s.kind_changed + s.too_many_series
        })
    }

    fn answer(&mut self, request: Request) {
        const NO_HISTORY: &str = "the metrics history could not be opened; see the watchdog's log";
        let now = collect::now_ms();
        match request {
            Request::Ingest { samples, reply } => {
                let before = self.refused();
                self.record(&samples);
                let refused = self.refused() - before;
                let kept = samples.len().saturating_sub(refused as usize);
                let _ = reply.send(Ok(kept));
            }
            Request::Query { query, reply } => match &self.history {
                Some(history) => {
                    let pending = history.query(&query, now);
                    tokio::spawn(async move {
                        let _ = reply.send(pending.answer().await.map_err(|e| e.to_string()));
                    });
                }
                None => {
                    let _ = reply.send(Err(NO_HISTORY.to_owned()));
                }
            },
            Request::Series { reply } => {
                let series = self.history.as_ref().map(|h| h.series(now));
                let _ = reply.send(series.ok_or_else(|| NO_HISTORY.to_owned()));
            }
            Request::Reconfigure(m) => self.reconfigure(*m),
        }
    }

    fn reconfigure(&mut self, metrics: Metrics) {
        if metrics.scrapes != self.metrics.scrapes {
            self.scrapes.cancel();
            self.metrics.scrapes = metrics.scrapes.clone();
            self.start_scrapes();
        }
        self.metrics.kpis = metrics.kpis;
    }

    /// One task per scrape, each on its own interval.
    fn start_scrapes(&mut self) {
        self.scrapes = self.stop.child_token();
        for s in self.metrics.scrapes.clone() {
            let http = self.http.clone();
            let out = self.rounds_tx.clone();
            let stop = self.scrapes.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(s.interval);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut failing = false;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = every.tick() => {}
                    }
                    let done =
                        super::scrape::scrape(&http, &s.name, &s.url, s.timeout, collect::now_ms())
                            .await;
                    match (&done.error, failing) {
                        (Some(e), false) => {
                            tracing::warn!(source = %s.name, error = %e, "a scrape failed")
                        }
                        (None, true) => tracing::info!(source = %s.name, "scrapes work again"),
                        _ => {}
                    }
                    failing = done.error.is_some();
                    if out.try_send(done.samples).is_err() && out.is_closed() {
                        return;
                    }
                }
            });
        }
    }

    /// Each KPI over its window: the queries go to the history, the answer
    /// comes back as a sample through the rounds channel.
    fn compute_kpis(&mut self) {
        let Some(history) = &self.history else {
            return;
        };
        let now = collect::now_ms();
        for k in self.metrics.kpis.clone() {
            let window = u64::try_from(k.window.as_millis()).unwrap_or(u64::MAX);
            let from = now.saturating_sub(window);
            let selectors = selectors(&k.formula);
            let pending: Vec<_> = selectors
                .iter()
                .map(|s| {
                    let matcher = Matcher::new(
                        &s.name,
                        s.labels.iter().map(|(a, b)| (a.as_str(), b.as_str())),
                    );
                    let query = Query {
                        selector: matcher.into(),
                        from_ms: from,
                        to_ms: now + 1,
                        step_ms: 60_000,
                    };
                    (s.clone(), history.query(&query, now))
                })
                .collect();
            let out = self.rounds_tx.clone();
            tokio::spawn(async move {
                let mut answers: Vec<(kpi::Selector, Vec<(SeriesKey, Points)>)> = Vec::new();
                for (selector, p) in pending {
                    let Ok(answer) = p.answer().await else {
                        return;
                    };
                    answers.push((selector, as_points(&answer)));
                }
                let lookup = |s: &kpi::Selector| -> Vec<(SeriesKey, Points)> {
                    answers
                        .iter()
                        .find(|(sel, _)| sel == s)
                        .map(|(_, p)| p.clone())
                        .unwrap_or_default()
                };
                if let Some(value) = kpi::evaluate(&k.formula, from, now, &lookup) {
                    let _ = out.try_send(vec![Sample {
                        key: SeriesKey::new(&k.name, []),
                        kind: Kind::Gauge,
                        at_ms: now,
                        value,
                    }]);
                }
            });
        }
    }
}

impl Recorder {
    /// Fits each watched series over the last hours and keeps, as a series
    /// of its own, how long until it reaches its threshold: the disk full,
    /// the memory gone. Every series the trend reads (each mount) gets its
    /// own estimate, with the same labels.
    fn compute_trends(&mut self) {
        let Some(history) = &self.history else {
            return;
        };
        let now = collect::now_ms();
        for (name, labels, threshold, derived) in TRENDS {
            let query = Query {
                selector: Matcher::new(name, labels.iter().copied()).into(),
                from_ms: now.saturating_sub(TREND_WINDOW_MS),
                to_ms: now + 1,
                step_ms: 60_000,
            };
            let pending = history.query(&query, now);
            let out = self.rounds_tx.clone();
            tokio::spawn(async move {
                let Ok(answer) = pending.answer().await else {
                    return;
                };
                let samples = trend_samples(&answer, threshold, derived, now);
                if !samples.is_empty() {
                    let _ = out.try_send(samples);
                }
            });
        }
    }
}

/// The trend estimates an answer gives: for each series with ten minutes
/// of points at least, the seconds until `threshold` (0 once reached), or
/// NaN when it does not head there (the estimate is then taken away).
fn trend_samples(answer: &Answer, threshold: Threshold, derived: &str, now: u64) -> Vec<Sample> {
    answer
        .series
        .iter()
        .filter(|s| s.points.len() >= 10)
        .filter_map(|s| {
            let fit = Fit::of_means(&s.points, answer.step_ms)?;
            let seconds = match fit.eta(threshold, now) {
                Eta::Reached => 0.0,
                Eta::In(d) => d.as_secs_f64(),
                Eta::Never => f64::NAN,
            };
            let labels = s.key.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            Some(Sample {
                key: SeriesKey::new(derived, labels),
                kind: Kind::Gauge,
                at_ms: now,
                value: seconds,
            })
        })
        .collect()
}

/// The selectors a formula reads (a quantile reads its `_bucket` series).
fn selectors(formula: &Formula) -> Vec<kpi::Selector> {
    match formula {
        Formula::Rate { of, .. } | Formula::Mean { of } => vec![of.clone()],
        Formula::Ratio {
            numerator,
            denominator,
        } => vec![numerator.clone(), denominator.clone()],
        Formula::Quantile { of, .. } => vec![kpi::Selector {
            name: format!("{}_bucket", of.name),
            labels: of.labels.clone(),
        }],
    }
}

/// An answer's points as the KPI formulas read them: a counter as its
/// running increase (so a reset inside a step is already handled), a
/// gauge as each step's mean.
fn as_points(answer: &Answer) -> Vec<(SeriesKey, Points)> {
    answer
        .series
        .iter()
        .map(|s| {
            let points = match s.kind {
                Kind::Counter => {
                    let mut total = 0.0;
                    let mut out = vec![(s.points.first().map_or(0, |p| p.at_ms), 0.0)];
                    for p in &s.points {
                        total += p.increase.unwrap_or(0.0);
                        out.push((p.at_ms, total));
                    }
                    out
                }
                Kind::Gauge => s.points.iter().map(|p| (p.at_ms, p.mean)).collect(),
            };
            (s.key.clone(), points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::history::{Point, Resolution, SeriesPoints};

    fn answer(values: impl Iterator<Item = f64>) -> Answer {
        let points = values
            .enumerate()
            .map(|(i, v)| Point {
                at_ms: i as u64 * 60_000,
                count: 6,
                min: v,
                max: v,
                mean: v,
                last: v,
                increase: None,
            })
            .collect();
        Answer {
            resolution: Resolution::Minute,
            step_ms: 60_000,
            series: vec![SeriesPoints {
                key: SeriesKey::new("rvm_host_disk_used_ratio", [("mount", "/")]),
                kind: Kind::Gauge,
                points,
            }],
        }
    }

    #[test]
    fn a_filling_disk_gets_its_time_to_full_and_a_steady_one_none() {
        // 0.5 full, one percent more a minute: full in 50 minutes from the start.
        let filling = answer((0..20).map(|i| 0.5 + 0.01 * f64::from(i)));
        let now = 19 * 60_000 + 30_000;
        let out = trend_samples(
            &filling,
            Threshold::Above(1.0),
            "rvm_trend_disk_full_seconds",
            now,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].key.to_string(),
            r#"rvm_trend_disk_full_seconds{mount="/"}"#
        );
        // At 19.5 min the fit (of the means, at the middle of each minute) is at 0.69: 31 min left.
        assert!((out[0].value - 31.0 * 60.0).abs() < 1.0, "{}", out[0].value);

        let steady = answer((0..20).map(|_| 0.5));
        let out = trend_samples(
            &steady,
            Threshold::Above(1.0),
            "rvm_trend_disk_full_seconds",
            now,
        );
        assert!(out[0].value.is_nan(), "a steady disk never fills");

        let young = answer((0..5).map(|i| 0.5 + 0.1 * f64::from(i)));
        assert!(trend_samples(&young, Threshold::Above(1.0), "x", now).is_empty());
    }
}
