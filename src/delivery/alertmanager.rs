//! The Alertmanager channel: each notification's alerts POSTed to
//! `URL/api/v2/alerts`, so that a fleet's Alertmanager groups, routes and
//! silences across machines.
//!
//! Each alert carries the labels `alertname`, `severity`, `instance` (the
//! machine's name), `target`, `hardware_id` and `site` where there is one,
//! and the alert's own labels; the annotations `summary`, `incident` and
//! `suppressed_by`; `startsAt` when it was raised and a `generatorURL`
//! pointing at the machine's `/health`.
//!
//! Alertmanager forgets an alert at its `endsAt`. A firing alert is sent
//! with an `endsAt` four `resend-every` intervals ahead and posted again
//! every `resend-every` while it fires, so an alert of a machine that went
//! silent resolves by itself in Alertmanager; a resolved alert is posted
//! with `endsAt` at its resolution. What is firing is kept in the state
//! store, so a restarted watchdog goes on re-posting it. Notices are
//! posted once, ending after four intervals.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Notifier, Outcome, Sending, classify};
use crate::alert::{Item, Notification, Why};
use crate::status::IdentityView;

/// An Alertmanager channel.
pub struct Alertmanager {
    /// `URL/api/v2/alerts`.
    endpoint: String,
    /// Firing alerts are posted again this often.
    resend_every: Duration,
    /// Each alert's `generatorURL`.
    generator: String,
    /// How long an attempt may take.
    timeout: Duration,
    http: reqwest::Client,
    state: Mutex<Firing>,
}

/// What is firing, by fingerprint, and when it was last posted.
#[derive(Default)]
struct Firing {
    alerts: BTreeMap<String, Kept>,
    last_post: Option<Instant>,
    failing: bool,
}

/// A firing alert as kept: all but its `endsAt`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Kept {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
}

fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    crate::metrics::collect::now_ms()
}

impl Alertmanager {
    /// A channel posting to the Alertmanager at `url`.
    pub fn new(
        url: &str,
        resend_every: Duration,
        generator_base: &str,
        timeout: Duration,
        http: reqwest::Client,
    ) -> Alertmanager {
        Alertmanager {
            endpoint: format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            resend_every,
            generator: format!("{}/health", generator_base.trim_end_matches('/')),
            timeout,
            http,
            state: Mutex::new(Firing::default()),
        }
    }

    fn ends(&self, from_ms: u64) -> String {
        rfc3339(from_ms + 4 * self.resend_every.as_millis() as u64)
    }

    fn wire(&self, k: &Kept, ends_at: &str) -> Value {
        json!({
            "labels": k.labels,
            "annotations": k.annotations,
            "startsAt": k.starts_at,
            "endsAt": ends_at,
            "generatorURL": self.generator,
        })
    }

    async fn post(&self, alerts: Vec<Value>) -> Outcome {
        let request = self
            .http
            .post(&self.endpoint)
            .timeout(self.timeout)
            .json(&alerts);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let text = response.text().await.unwrap_or_default();
                classify(status, retry_after.as_deref(), &text)
            }
            Err(e) => Outcome::Retry {
                why: if e.is_timeout() {
                    format!(
                        "no answer within {}",
                        humantime::format_duration(self.timeout)
                    )
                } else {
                    format!("cannot reach {}: {e}", self.endpoint)
                },
                after: None,
            },
        }
    }

    /// The alerts of `n` as posted, and what stays firing after it.
    fn alerts_of(&self, n: &Notification, who: &IdentityView) -> Vec<Value> {
        let now = now_ms();
        let mut out = Vec::new();
        let Ok(mut state) = self.state.lock() else {
            return out;
        };
        for item in &n.items {
            let kept = kept(item, who);
            match item.why {
                Why::Resolved => {
                    state.alerts.remove(&item.fingerprint);
                    out.push(self.wire(&kept, &rfc3339(item.resolved_at.unwrap_or(now))));
                }
                Why::Notice => out.push(self.wire(&kept, &self.ends(item.started_at))),
                _ => {
                    out.push(self.wire(&kept, &self.ends(now)));
                    state.alerts.insert(item.fingerprint.clone(), kept);
                }
            }
        }
        out
    }
}

/// An item's labels and annotations.
fn kept(item: &Item, who: &IdentityView) -> Kept {
    let mut labels = item.labels.clone();
    labels.insert("alertname".into(), item.name.clone());
    labels.insert("severity".into(), item.severity.as_str().into());
    labels.insert("instance".into(), who.name.clone());
    if let Some(t) = &item.target {
        labels.insert("target".into(), t.clone());
    }
    if let Some(h) = &who.hardware_id {
        labels.insert("hardware_id".into(), h.clone());
    }
    if let Some(s) = &who.site {
        labels.insert("site".into(), s.clone());
    }
    let mut annotations = BTreeMap::from([("summary".to_owned(), item.summary.clone())]);
    if let Some(i) = &item.incident {
        annotations.insert("incident".into(), i.clone());
    }
    if let Some(s) = &item.suppressed_by {
        annotations.insert("suppressed_by".into(), s.clone());
    }
    Kept {
        labels,
        annotations,
        starts_at: rfc3339(item.started_at),
    }
}

impl Notifier for Alertmanager {
    fn send<'a>(&'a self, n: &'a Notification, who: &'a IdentityView) -> Sending<'a> {
        Box::pin(async move {
            // The firing set changes whether or not this post goes through:
            // the re-posts carry a firing alert meanwhile, and a resolved
            // one ends in Alertmanager at its last `endsAt` at the latest.
            let alerts = self.alerts_of(n, who);
            let outcome = self.post(alerts).await;
            if matches!(outcome, Outcome::Delivered(_))
                && let Ok(mut s) = self.state.lock()
            {
                s.last_post = Some(Instant::now());
            }
            outcome
        })
    }

    fn next_tick(&self) -> Option<Instant> {
        let s = self.state.lock().ok()?;
        if s.alerts.is_empty() {
            return None;
        }
        Some(match s.last_post {
            Some(at) => at + self.resend_every,
            None => Instant::now(),
        })
    }

    fn tick<'a>(&'a self, _who: &'a IdentityView) -> Sending<'a> {
        Box::pin(async move {
            let (alerts, count) = {
                let Ok(mut s) = self.state.lock() else {
                    return Outcome::Delivered(String::new());
                };
                // The next re-post is due an interval from now, whatever
                // this one's fate: a receiver that is down is not hammered.
                s.last_post = Some(Instant::now());
                let ends = self.ends(now_ms());
                let alerts: Vec<Value> = s.alerts.values().map(|k| self.wire(k, &ends)).collect();
                let count = alerts.len();
                (alerts, count)
            };
            let outcome = self.post(alerts).await;
            if let Ok(mut s) = self.state.lock() {
                let failing = !matches!(outcome, Outcome::Delivered(_));
                if failing && !s.failing {
                    tracing::warn!(
                        url = %self.endpoint,
                        "cannot post the {count} firing alerts again to Alertmanager: {}; tried again every {}",
                        outcome.answer(),
                        humantime::format_duration(self.resend_every)
                    );
                } else if !failing && s.failing {
                    tracing::info!(
                        url = %self.endpoint,
                        "Alertmanager takes the {count} firing alerts again ({})",
                        outcome.answer()
                    );
                }
                s.failing = failing;
            }
            outcome
        })
    }

    fn memory(&self) -> Option<Value> {
        let s = self.state.lock().ok()?;
        serde_json::to_value(&s.alerts).ok()
    }

    fn recall(&self, memory: Value) {
        let Ok(alerts) = serde_json::from_value::<BTreeMap<String, Kept>>(memory) else {
            return;
        };
        if let Ok(mut s) = self.state.lock() {
            s.alerts = alerts;
            s.last_post = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    fn item(fp: &str, why: Why) -> Item {
        Item {
            fingerprint: fp.into(),
            why,
            name: "target-failing".into(),
            target: Some("camera".into()),
            labels: BTreeMap::from([("team".to_owned(), "vision".to_owned())]),
            severity: Severity::Critical,
            summary: "camera is failing".into(),
            started_at: 1_700_000_000_000,
            resolved_at: matches!(why, Why::Resolved).then_some(1_700_000_060_000),
            incident: Some("camera-1".into()),
            suppressed_by: None,
        }
    }

    fn note(items: Vec<Item>) -> Notification {
        Notification {
            key: "k".into(),
            channel: "fleet".into(),
            created_at: 1_700_000_000_000,
            severity: Severity::Critical,
            items,
        }
    }

    fn am() -> Alertmanager {
        Alertmanager::new(
            "http://am:9093/",
            Duration::from_secs(60),
            "http://rvm-017:8001",
            Duration::from_secs(5),
            crate::probe::Context::new("/".into()).http,
        )
    }

    #[test]
    fn an_alert_carries_the_machine_and_ends_four_intervals_ahead() {
        let who = IdentityView {
            name: "RVM-017".into(),
            hardware_id: Some("hw-1".into()),
            site: Some("Mall Kelapa Gading".into()),
        };
        let a = am();
        assert_eq!(a.endpoint, "http://am:9093/api/v2/alerts");
        let before = now_ms();
        let out = a.alerts_of(&note(vec![item("f1", Why::Firing)]), &who);
        let x = &out[0];
        assert_eq!(x["labels"]["alertname"], "target-failing");
        assert_eq!(x["labels"]["severity"], "critical");
        assert_eq!(x["labels"]["instance"], "RVM-017");
        assert_eq!(x["labels"]["target"], "camera");
        assert_eq!(x["labels"]["hardware_id"], "hw-1");
        assert_eq!(x["labels"]["site"], "Mall Kelapa Gading");
        assert_eq!(x["labels"]["team"], "vision");
        assert_eq!(x["annotations"]["summary"], "camera is failing");
        assert_eq!(x["annotations"]["incident"], "camera-1");
        assert_eq!(x["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(x["generatorURL"], "http://rvm-017:8001/health");
        let ends: jiff::Timestamp = x["endsAt"].as_str().unwrap().parse().unwrap();
        let ahead = ends.as_millisecond() as u64 - before;
        assert!((239_000..=241_000).contains(&ahead), "{ahead}");
        assert!(a.next_tick().is_some(), "a firing alert is re-posted");

        let out = a.alerts_of(&note(vec![item("f1", Why::Resolved)]), &who);
        assert_eq!(out[0]["endsAt"], "2023-11-14T22:14:20Z");
        assert!(a.next_tick().is_none(), "nothing firing, nothing re-posted");
    }

    #[test]
    fn what_fires_is_remembered_across_a_restart() {
        let who = IdentityView {
            name: "RVM-017".into(),
            hardware_id: None,
            site: None,
        };
        let a = am();
        a.alerts_of(
            &note(vec![
                item("f1", Why::Firing),
                item("f2", Why::Escalated { level: 1 }),
            ]),
            &who,
        );
        let memory = a.memory().unwrap();
        let b = am();
        b.recall(memory);
        assert_eq!(b.state.lock().unwrap().alerts.len(), 2);
        assert!(b.next_tick().unwrap() <= Instant::now(), "due at once");
    }
}
