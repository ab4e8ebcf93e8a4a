//! The delivery task: takes the notifications due from the outbox, sends
//! each over its channel, and records every attempt. Attempts on one
//! channel are made one at a time, oldest first; a channel whose receiver
//! is down holds up no other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::webhook::Webhook;
use super::{Notifier, Outcome, backoff};
use crate::alert::Notification;
use crate::config::{ChannelKind, Config};
use crate::status::IdentityView;
use crate::store::{Attempt, StoreThread};

/// The longest the task sleeps when nothing wakes it and no retry is due.
const POLL: Duration = Duration::from_secs(30);
/// Notifications taken from the outbox at a time (enough for a day's
/// backlog to leave in one summary).
const BATCH: usize = 1000;

/// A notification that failed this many attempts on a channel goes to its
/// fallback too (one that fails for good, at once).
pub const FALLBACK_AFTER: i64 = 3;

/// Each channel's `fallback`, by channel.
pub fn fallbacks(config: &Config) -> BTreeMap<String, String> {
    config
        .channels
        .iter()
        .filter_map(|(name, ch)| Some((name.clone(), ch.fallback.clone()?)))
        .collect()
}

/// The notifiers of a configuration's channels, by name.
pub fn notifiers(config: &Config, http: &reqwest::Client) -> BTreeMap<String, Arc<dyn Notifier>> {
    let mut out: BTreeMap<String, Arc<dyn Notifier>> = BTreeMap::new();
    for (name, ch) in &config.channels {
        let notifier: Arc<dyn Notifier> = match &ch.kind {
            ChannelKind::Webhook { url, secret_file } => Arc::new(Webhook {
                url: url.clone(),
                secret_file: secret_file.clone(),
                timeout: ch.timeout,
                http: http.clone(),
            }),
            ChannelKind::Email {
                smtp,
                tls,
                username,
                password_file,
                from,
                to,
                ca_file,
            } => Arc::new(super::email::Email {
                ca_file: ca_file.clone(),
                smtp: smtp.clone(),
                tls: *tls,
                username: username.clone(),
                password_file: password_file.clone(),
                from: from.clone(),
                to: to.clone(),
                timeout: ch.timeout,
            }),
            ChannelKind::Sms {
                url,
                username,
                password_file,
                from,
                to,
                style,
            } => Arc::new(super::sms::Sms::new(
                url.clone(),
                username.clone(),
                password_file.clone(),
                from.clone(),
                to.clone(),
                style.clone(),
                ch.timeout,
                http.clone(),
            )),
            ChannelKind::Alertmanager {
                url,
                resend_every,
                external_url,
            } => Arc::new(super::alertmanager::Alertmanager::new(
                url,
                *resend_every,
                &external_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.api.listen)),
                ch.timeout,
                http.clone(),
            )),
        };
        out.insert(
            name.clone(),
            Arc::new(Bounded {
                inner: notifier,
                limit: ch.timeout + GRACE,
            }),
        );
    }
    out
}

/// What an attempt may take past its channel's `timeout` before it is
/// abandoned (a receiver that takes the connection and never answers).
const GRACE: Duration = Duration::from_secs(2);

/// A notifier whose every attempt ends within `limit`, whatever the
/// receiver does: one that never answers is retried like a timeout.
struct Bounded {
    inner: Arc<dyn Notifier>,
    limit: Duration,
}

impl Bounded {
    fn bound<'a>(&self, sending: super::Sending<'a>) -> super::Sending<'a> {
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, sending).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Retry {
                    why: format!("no answer within {}", humantime::format_duration(limit)),
                    after: None,
                },
            }
        })
    }
}

impl Notifier for Bounded {
    fn send<'a>(&'a self, n: &'a Notification, who: &'a IdentityView) -> super::Sending<'a> {
        self.bound(self.inner.send(n, who))
    }
    fn next_tick(&self) -> Option<Instant> {
        self.inner.next_tick()
    }
    fn tick<'a>(&'a self, who: &'a IdentityView) -> super::Sending<'a> {
        self.bound(self.inner.tick(who))
    }
    fn memory(&self) -> Option<serde_json::Value> {
        self.inner.memory()
    }
    fn recall(&self, memory: serde_json::Value) {
        self.inner.recall(memory)
    }
}

/// What the task starts from.
pub struct Start {
    /// The state store (no store, no outbox: the task does not start).
    pub store: StoreThread,
    /// The channels it sends on.
    pub notifiers: BTreeMap<String, Arc<dyn Notifier>>,
    /// Each channel's fallback, where it has one.
    pub fallbacks: BTreeMap<String, String>,
    /// Who the machine is, for the receivers.
    pub identity: IdentityView,
    /// Wakes the task when a notification was written.
    pub wake: Arc<Notify>,
    /// The recorder, for the delivery counters.
    pub metrics: tokio::sync::mpsc::Sender<crate::metrics::recorder::Request>,
    /// Stops it.
    pub stop: CancellationToken,
}

fn now_ms() -> i64 {
    crate::metrics::collect::now_ms() as i64
}

/// Starts the delivery task.
pub fn spawn(start: Start) {
    tokio::spawn(run(start));
}

async fn run(start: Start) {
    let Start {
        store,
        notifiers,
        fallbacks,
        identity,
        wake,
        metrics,
        stop,
    } = start;
    let fallbacks = Arc::new(fallbacks);
    if notifiers.is_empty() {
        return;
    }
    // What each channel kept before a restart.
    for (name, notifier) in &notifiers {
        let key = memory_key(name);
        if let Ok(Some(memory)) = store.query(move |s| s.get_state(&key)).await {
            notifier.recall(memory);
        }
    }
    // Attempts by (channel, result): `rvm_watchdog_deliveries_total`.
    let counts: Arc<std::sync::Mutex<BTreeMap<(String, &'static str), u64>>> = Arc::default();
    let mut seed = now_ms() as u64 | 1;
    let mut remembered: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    // Each channel's attempts run in a task of their own: a channel whose
    // receiver hangs holds up no other, and the loop never waits on one.
    let busy: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    loop {
        ticks(&notifiers, &identity);
        // The channels busy now, taken before the outbox is read: a task
        // that ends after this has its result on disk before the read
        // below (the store takes requests in order), and one that ends
        // between the read and this would leave its row looking due, to
        // be sent twice.
        let running = busy.lock().map(|b| b.clone()).unwrap_or_default();
        // Only what is on disk is sent: the notification was written
        // before any attempt, so a crash after a send repeats it at most
        // once, with its idempotency key.
        let due = match store.query_committed(|s| s.due(now_ms(), BATCH)).await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        // One attempt at a time per channel; channels side by side.
        let mut by_channel: BTreeMap<String, Vec<crate::store::OutboxRow>> = BTreeMap::new();
        for row in due {
            if notifiers.contains_key(&row.channel) && !running.contains(&row.channel) {
                by_channel.entry(row.channel.clone()).or_default().push(row);
            }
        }
        for (channel, rows) in by_channel {
            let notifier = notifiers[&channel].clone();
            let (store, identity, counts) = (store.clone(), identity.clone(), counts.clone());
            let fallback = fallbacks.get(&channel).cloned();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 1000) as f64 / 1000.0;
            if let Ok(mut b) = busy.lock() {
                b.insert(channel.clone());
            }
            let free = Free {
                busy: busy.clone(),
                channel: channel.clone(),
                wake: wake.clone(),
                metrics: metrics.clone(),
                counts: counts.clone(),
            };
            tokio::spawn(async move {
                // The counters go out and the loop hears that this
                // channel is free again, however the task ends.
                let _free = free;
                if let Some(summary) = super::summary::summarize(&channel, &rows, now_ms()) {
                    let result =
                        send_summary(&store, notifier.as_ref(), &identity, summary, rows, noise)
                            .await;
                    if let Ok(mut c) = counts.lock() {
                        *c.entry((channel, result)).or_default() += 1;
                    }
                    return;
                }
                for row in rows {
                    let channel = row.channel.clone();
                    let result = attempt(
                        &store,
                        notifier.as_ref(),
                        &identity,
                        row,
                        noise,
                        fallback.as_deref(),
                    )
                    .await;
                    if let Ok(mut c) = counts.lock() {
                        *c.entry((channel, result)).or_default() += 1;
                    }
                }
            });
        }
        remember(&store, &notifiers, &mut remembered);
        // Until the next retry is due (read without a commit), woken
        // sooner by a new notification or a channel done with its
        // attempts. At least a second: rows of a channel still sending, or
        // no longer configured, stay due meanwhile.
        let next = store.query(|s| s.next_due()).await.ok().flatten();
        let floor = Duration::from_secs(1);
        let tick = notifiers
            .values()
            .filter_map(|n| n.next_tick())
            .min()
            .map(|at| {
                at.saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1))
            });
        let wait = next
            .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
            .unwrap_or(POLL)
            .clamp(floor, POLL)
            .min(tick.unwrap_or(POLL));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The state-store key of a channel's memory.
fn memory_key(channel: &str) -> String {
    format!("delivery.channel.{channel}")
}

/// Dropped when a channel's task ends, however it ends: publishes the
/// delivery counters, marks the channel free and wakes the loop.
struct Free {
    busy: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    channel: String,
    wake: Arc<Notify>,
    metrics: tokio::sync::mpsc::Sender<crate::metrics::recorder::Request>,
    counts: Arc<std::sync::Mutex<BTreeMap<(String, &'static str), u64>>>,
}

impl Drop for Free {
    fn drop(&mut self) {
        publish(&self.metrics, &self.counts);
        if let Ok(mut b) = self.busy.lock() {
            b.remove(&self.channel);
        }
        self.wake.notify_one();
    }
}

/// Starts each channel's scheduled work that is due, each in a task of
/// its own (a tick moves its channel's next one on when it starts).
fn ticks(notifiers: &BTreeMap<String, Arc<dyn Notifier>>, identity: &IdentityView) {
    let now = Instant::now();
    for n in notifiers.values() {
        if n.next_tick().is_some_and(|at| at <= now) {
            let (n, identity) = (n.clone(), identity.clone());
            tokio::spawn(async move {
                n.tick(&identity).await;
            });
        }
    }
}

/// Writes each channel's memory that changed since it was last written.
fn remember(
    store: &StoreThread,
    notifiers: &BTreeMap<String, Arc<dyn Notifier>>,
    remembered: &mut BTreeMap<String, serde_json::Value>,
) {
    for (name, notifier) in notifiers {
        let Some(memory) = notifier.memory() else {
            continue;
        };
        if remembered.get(name) == Some(&memory) {
            continue;
        }
        remembered.insert(name.clone(), memory.clone());
        let key = memory_key(name);
        store.write_batched("keep a channel's memory", move |s| {
            s.put_state(&key, &memory)
        });
    }
}

/// The delivery counters, as series in the recorder.
fn publish(
    metrics: &tokio::sync::mpsc::Sender<crate::metrics::recorder::Request>,
    counts: &std::sync::Mutex<BTreeMap<(String, &'static str), u64>>,
) {
    let Ok(counts) = counts.lock() else { return };
    let at_ms = crate::metrics::collect::now_ms();
    let samples = counts
        .iter()
        .map(|((channel, result), n)| crate::metrics::Sample {
            key: crate::metrics::SeriesKey::new(
                "rvm_watchdog_deliveries_total",
                [("channel", channel.as_str()), ("result", *result)],
            ),
            kind: crate::metrics::Kind::Counter,
            at_ms,
            value: *n as f64,
        })
        .collect();
    let (reply, _) = tokio::sync::oneshot::channel();
    let _ = metrics.try_send(crate::metrics::recorder::Request::Ingest { samples, reply });
}

/// One attempt of a summary of `rows`, recorded in each row's log.
async fn send_summary(
    store: &StoreThread,
    notifier: &dyn Notifier,
    identity: &IdentityView,
    summary: Notification,
    rows: Vec<crate::store::OutboxRow>,
    noise: f64,
) -> &'static str {
    let started = Instant::now();
    let outcome = notifier.send(&summary, identity).await;
    let latency = started.elapsed().as_millis() as i64;
    let at = now_ms();
    let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0);
    let next = match &outcome {
        Outcome::Retry { after, .. } => {
            let wait = after.unwrap_or_else(|| backoff(attempts.max(0) as u32, noise));
            Some(at + wait.as_millis() as i64)
        }
        _ => None,
    };
    let channel = summary.channel.as_str();
    match &outcome {
        Outcome::Delivered(answer) => info!(
            channel,
            key = %summary.key,
            notifications = rows.len(),
            "delivered to {channel}: a summary of the {} notifications that waited ({answer})",
            rows.len()
        ),
        Outcome::Retry { why, .. } => warn!(
            channel,
            key = %summary.key,
            "delivery of a summary of {} notifications to {channel} failed, retried in {}s: {why}",
            rows.len(),
            next.map_or(0, |n| (n - at) / 1000)
        ),
        Outcome::Failed(why) => warn!(
            channel,
            key = %summary.key,
            "delivery of a summary of {} notifications to {channel} failed for good: {why}",
            rows.len()
        ),
    }
    let answer = format!("in the summary {}: {}", summary.key, outcome.answer());
    let result = outcome.as_str();
    let logged: Vec<Attempt> = rows
        .into_iter()
        .map(|r| Attempt {
            key: r.key,
            at_ms: at,
            result: result.into(),
            latency_ms: latency,
            answer: answer.clone(),
        })
        .collect();
    store.write_batched("record a delivery attempt", move |s| {
        logged.iter().try_for_each(|a| s.record_attempt(a, next))
    });
    result
}

/// One attempt of one notification, recorded: its result.
async fn attempt(
    store: &StoreThread,
    notifier: &dyn Notifier,
    identity: &IdentityView,
    row: crate::store::OutboxRow,
    noise: f64,
    fallback: Option<&str>,
) -> &'static str {
    let n: Notification = match serde_json::from_str(&row.body) {
        Ok(n) => n,
        Err(e) => {
            let a = Attempt {
                key: row.key.clone(),
                at_ms: now_ms(),
                result: "failed".into(),
                latency_ms: 0,
                answer: format!("the notification in the outbox cannot be read: {e}"),
            };
            store.write_batched("record a delivery attempt", move |s| {
                s.record_attempt(&a, None)
            });
            return "failed";
        }
    };
    let started = Instant::now();
    let outcome = notifier.send(&n, identity).await;
    let latency = started.elapsed();
    let at = now_ms();
    let next = match &outcome {
        Outcome::Retry { after, .. } => {
            let wait = after.unwrap_or_else(|| backoff(row.attempts.max(0) as u32, noise));
            Some(at + wait.as_millis() as i64)
        }
        _ => None,
    };
    let items: Vec<String> = n
        .items
        .iter()
        .map(|i| format!("{} {}", i.name, i.why.as_str()))
        .collect();
    match &outcome {
        Outcome::Delivered(answer) => info!(
            channel = %row.channel,
            key = %row.key,
            latency_ms = latency.as_millis() as u64,
            "delivered to {}: {} ({answer})",
            row.channel,
            items.join(", ")
        ),
        Outcome::Retry { why, .. } => warn!(
            channel = %row.channel,
            key = %row.key,
            attempt = row.attempts + 1,
            "delivery to {} failed, retried in {}s: {why}",
            row.channel,
            next.map_or(0, |n| (n - at) / 1000)
        ),
        Outcome::Failed(why) => warn!(
            channel = %row.channel,
            key = %row.key,
            "delivery to {} failed for good: {why}",
            row.channel
        ),
    }
    let gave_out = match &outcome {
        Outcome::Failed(_) => true,
        Outcome::Retry { .. } => row.attempts + 1 == FALLBACK_AFTER,
        Outcome::Delivered(_) => false,
    };
    if let Some(to) = fallback.filter(|_| gave_out) {
        // A copy of its own for the fallback: its own key, its own log.
        let mut copy = n.clone();
        copy.key = format!("{}~{to}", row.key);
        copy.channel = to.to_owned();
        warn!(
            channel = %row.channel,
            key = %row.key,
            fallback = to,
            "{} could not deliver {}: sent to its fallback {to} too",
            row.channel,
            items.join(", ")
        );
        let queued = crate::store::OutboxRow {
            key: copy.key.clone(),
            channel: to.to_owned(),
            created_ms: at,
            severity: row.severity.clone(),
            body: serde_json::to_string(&copy).unwrap_or_default(),
            state: "queued".into(),
            attempts: 0,
            fingerprints: row.fingerprints.clone(),
        };
        store.write_batched("write a notification to the outbox", move |s| {
            s.enqueue(&queued)
        });
    }
    let a = Attempt {
        key: row.key,
        at_ms: at,
        result: outcome.as_str().into(),
        latency_ms: latency.as_millis() as i64,
        answer: outcome.answer().to_owned(),
    };
    store.write_batched("record a delivery attempt", move |s| {
        s.record_attempt(&a, next)
    });
    outcome.as_str()
}
