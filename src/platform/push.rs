//! The earlier platform's monitoring push (`[platform] monitoring-url`):
//! every `monitoring-every`, one record of the nine fields it stores, from
//! the recorder's latest values, checked against the platform's rules
//! before it is queued (percentages 0–100, counts whole and not negative,
//! never NaN: a figure that cannot be given is `null`). Records wait in a
//! bounded backlog while the platform cannot be reached, oldest dropped
//! first and counted; they leave oldest first. Nothing else waits on it:
//! it is a task of its own, and `/health` reads its state
//! (`platform:monitoring-push`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::documents::percent;
use crate::config::{Figures, Platform, Push};
use crate::metrics::recorder::Latest;
use crate::status::rfc3339;

/// Records sent in one round at most, when a backlog drains.
const DRAIN: usize = 20;

/// One push: the nine fields, each nullable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub timestamp: String,
    pub cpu_usage: Option<f64>,
    pub memory_usage: Option<f64>,
    pub gpu_usage: Option<f64>,
    pub disk_usage: Option<f64>,
    pub processing_time_ms: Option<f64>,
    pub detections_count: Option<u64>,
    pub error_count: Option<u64>,
    pub api_requests_count: Option<u64>,
}

/// How the push stands, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushStatus {
    /// Records waiting to be sent.
    pub waiting: usize,
    /// Records dropped because the backlog was full.
    pub dropped: u64,
    /// Records the platform accepted.
    pub sent: u64,
    /// The backlog's bound.
    pub backlog: usize,
    /// Why the last attempt failed, while records wait.
    pub last_error: Option<String>,
}

/// A percentage the platform accepts, or `None`.
fn checked_percent(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite()).map(percent)
}

/// A counter's totals by series, for the growth between two records.
type Totals = BTreeMap<Arc<crate::metrics::SeriesKey>, f64>;

fn totals(latest: &Latest, name: &Option<String>) -> Option<Totals> {
    let name = name.as_deref()?;
    Some(
        latest
            .values
            .iter()
            .filter(|(k, (_, v))| k.name == name && v.is_finite())
            .map(|(k, (_, v))| (k.clone(), *v))
            .collect(),
    )
}

/// The growth from `before` to `now`; a series that went down was reset
/// and counts from zero; a series new since `before` counts whole.
fn growth(before: &Option<Totals>, now: &Option<Totals>) -> Option<u64> {
    let (before, now) = (before.as_ref()?, now.as_ref()?);
    let sum: f64 = now
        .iter()
        .map(|(k, v)| match before.get(k) {
            Some(b) if v >= b => v - b,
            _ => *v,
        })
        .sum();
    (sum.is_finite() && sum >= 0.0).then(|| sum.round() as u64)
}

/// What the last record was made from.
#[derive(Default)]
pub struct Previous {
    detections: Option<Totals>,
    errors: Option<Totals>,
    requests: Option<Totals>,
}

/// The record of now. Counts are the growth since `previous` (`null` for
/// the first record, which has nothing to count from).
pub fn record(latest: &Latest, figures: &Figures, previous: &mut Previous, now: String) -> Record {
    let m = super::machine(latest);
    let detections = totals(latest, &figures.detections);
    let errors = totals(latest, &figures.errors);
    let requests = totals(latest, &figures.requests);
    let processing = figures.processing_time_ms.as_deref().and_then(|name| {
        let values: Vec<f64> = latest
            .values
            .iter()
            .filter(|(k, (_, v))| k.name == name && v.is_finite())
            .map(|(_, (_, v))| *v)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    });
    let r = Record {
        timestamp: now,
        cpu_usage: checked_percent(m.usage.cpu),
        memory_usage: checked_percent(m.usage.memory),
        gpu_usage: checked_percent(m.usage.gpu),
        disk_usage: checked_percent(m.usage.disk),
        processing_time_ms: processing.filter(|p| *p >= 0.0),
        detections_count: growth(&previous.detections, &detections),
        error_count: growth(&previous.errors, &errors),
        api_requests_count: growth(&previous.requests, &requests),
    };
    *previous = Previous {
        detections,
        errors,
        requests,
    };
    r
}

/// Starts the push when `[platform] monitoring-url` is set; its state for
/// `/health`.
pub fn spawn(
    platform: &Platform,
    figures: Figures,
    latest: watch::Receiver<Arc<Latest>>,
    http: reqwest::Client,
    stop: CancellationToken,
) -> Option<watch::Receiver<PushStatus>> {
    let push = platform.push.clone()?;
    let (tx, rx) = watch::channel(PushStatus {
        backlog: push.backlog,
        ..PushStatus::default()
    });
    let platform = platform.clone();
    tokio::spawn(async move {
        let mut backlog: VecDeque<Record> = VecDeque::new();
        let mut previous = Previous::default();
        let mut status = PushStatus {
            backlog: push.backlog,
            ..PushStatus::default()
        };
        let mut every = tokio::time::interval(push.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(url = %push.url, every_s = push.every.as_secs(), "pushing monitoring records to the platform");
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {}
            }
            let latest_now = latest.borrow().clone();
            let r = record(
                &latest_now,
                &figures,
                &mut previous,
                rfc3339(std::time::SystemTime::now()),
            );
            if backlog.len() >= push.backlog {
                backlog.pop_front();
                status.dropped += 1;
            }
            backlog.push_back(r);
            send(&http, &platform, &push, &mut backlog, &mut status).await;
            status.waiting = backlog.len();
            tx.send_replace(status.clone());
        }
    });
    Some(rx)
}

/// Sends the oldest records, up to [`DRAIN`], stopping at the first that
/// is not accepted (it stays first).
async fn send(
    http: &reqwest::Client,
    platform: &Platform,
    push: &Push,
    backlog: &mut VecDeque<Record>,
    status: &mut PushStatus,
) {
    let key = match crate::probe::myrvm::read_key(platform) {
        Ok((key, _)) => key,
        Err(e) => {
            status.last_error = Some(e);
            return;
        }
    };
    for _ in 0..DRAIN {
        let Some(first) = backlog.front() else { break };
        let mut request = http
            .post(&push.url)
            .timeout(platform.timeout.max(Duration::from_millis(100)))
            .json(first);
        if let Some(key) = &key {
            request = request.bearer_auth(key);
        }
        let failed = match request.send().await {
            Ok(answer) if answer.status().is_success() => None,
            Ok(answer) => Some(format!("the platform answered {}", answer.status())),
            Err(e) => Some(format!("cannot reach the platform: {e}")),
        };
        match failed {
            None => {
                backlog.pop_front();
                status.sent += 1;
                if status.last_error.take().is_some() {
                    info!(url = %push.url, "the platform takes monitoring records again");
                }
            }
            Some(why) => {
                if status.last_error.is_none() {
                    warn!(url = %push.url, error = %why, "monitoring push failed: {why}; records wait (at most {})", push.backlog);
                }
                status.last_error = Some(why);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Kind, SeriesKey};

    fn latest(values: &[(&str, &str, f64)]) -> Latest {
        let mut l = Latest::default();
        for (name, label, v) in values {
            let key = SeriesKey::new(name, [("n", *label)]);
            l.values.insert(Arc::new(key), (Kind::Counter, *v));
        }
        l
    }

    #[test]
    fn counts_are_growth_across_resets_and_figures_are_checked() {
        let figures = Figures {
            detections: Some("det_total".into()),
            processing_time_ms: Some("proc_ms".into()),
            ..Figures::default()
        };
        let mut previous = Previous::default();
        let first = record(
            &latest(&[
                ("det_total", "a", 10.0),
                ("det_total", "b", 5.0),
                ("proc_ms", "", 120.0),
            ]),
            &figures,
            &mut previous,
            "t0".into(),
        );
        assert_eq!(first.detections_count, None, "nothing to count from yet");
        assert_eq!(first.processing_time_ms, Some(120.0));
        assert_eq!(first.error_count, None, "no errors-series: null");
        // a +4; b reset to 2 (counts from zero); c new with 1.
        let second = record(
            &latest(&[
                ("det_total", "a", 14.0),
                ("det_total", "b", 2.0),
                ("det_total", "c", 1.0),
                ("proc_ms", "", -3.0),
            ]),
            &figures,
            &mut previous,
            "t1".into(),
        );
        assert_eq!(second.detections_count, Some(7));
        assert_eq!(
            second.processing_time_ms, None,
            "a negative time is not sent"
        );
        assert_eq!(checked_percent(Some(f64::NAN)), None);
        assert_eq!(checked_percent(Some(100.2)), Some(100.0));
        let json = serde_json::to_value(&second).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 9, "{json}");
    }
}
