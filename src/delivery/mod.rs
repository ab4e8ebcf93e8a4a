//! Delivery: the notifications the alert engine wrote to the outbox, sent
//! over their channels by a task of its own, so that a slow or dead
//! receiver never holds up supervision.
//!
//! Words used here:
//!
//! - A **notifier** sends one notification over one channel and says how
//!   it went: delivered (with the receiver's answer), to be **retried**
//!   (a timeout, a refused connection, a 5xx, a 429 — after its
//!   `Retry-After` when it gives one) or **failed** for good (any other
//!   answer, such as a 400: retrying would not help).
//! - An **attempt** is one try; every attempt is logged in the store with
//!   its result, latency and the receiver's answer, and moves the
//!   notification on: `sent`, `failed`, or queued again after a backoff
//!   (exponential from 5 s, doubling to 30 min, ±20 % jitter).
//!
//! - A channel may have work of its own on a schedule, a **tick**: the
//!   Alertmanager channel posts what is still firing again, so that
//!   Alertmanager does not let it end; and a **memory** it keeps in the
//!   state store across restarts.
//!
//! Channels: [`webhook`], [`email`], [`sms`] and [`alertmanager`].

pub mod alertmanager;
pub mod email;
pub mod sms;
pub mod summary;
pub mod task;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::alert::Notification;
use crate::status::IdentityView;

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver took it; what it answered.
    Delivered(String),
    /// Try again later (after this long, when the receiver said).
    Retry {
        /// Why, for people.
        why: String,
        /// The receiver's `Retry-After`.
        after: Option<Duration>,
    },
    /// It will not work however often it is tried.
    Failed(String),
}

impl Outcome {
    /// `delivered`, `retry` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Delivered(_) => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The receiver's answer, or why there was none.
    pub fn answer(&self) -> &str {
        match self {
            Outcome::Delivered(a) | Outcome::Failed(a) | Outcome::Retry { why: a, .. } => a,
        }
    }
}

/// A boxed future of an attempt.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// One channel's way of sending.
pub trait Notifier: Send + Sync {
    /// Sends `n`, on behalf of the machine `who`.
    fn send<'a>(&'a self, n: &'a Notification, who: &'a IdentityView) -> Sending<'a>;

    /// When its [`tick`](Notifier::tick) is next due; never by default.
    fn next_tick(&self) -> Option<std::time::Instant> {
        None
    }

    /// Its scheduled work, done when [`next_tick`](Notifier::next_tick) says.
    fn tick<'a>(&'a self, _who: &'a IdentityView) -> Sending<'a> {
        Box::pin(async { Outcome::Delivered(String::new()) })
    }

    /// What it keeps across restarts; nothing by default.
    fn memory(&self) -> Option<serde_json::Value> {
        None
    }

    /// Takes back what [`memory`](Notifier::memory) gave before a restart.
    fn recall(&self, _memory: serde_json::Value) {}
}

/// An HTTP answer as an outcome: 2xx delivered, 408 / 429 / 5xx retried
/// (429 and 503 after their `Retry-After` seconds, when given), anything
/// else failed.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Outcome {
    let answer = {
        let text: String = body.trim().chars().take(200).collect();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        }
    };
    match status {
        200..=299 => Outcome::Delivered(answer),
        408 | 429 | 500..=599 => Outcome::Retry {
            why: answer,
            after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600))),
        },
        _ => Outcome::Failed(answer),
    }
}

/// The wait before attempt `attempts + 1`: 5 s doubling to 30 min, with
/// ±20 % jitter from `noise` (0..1).
pub fn backoff(attempts: u32, noise: f64) -> Duration {
    let base = 5.0 * 2f64.powi(attempts.min(20) as i32);
    let capped = base.min(1800.0);
    Duration::from_secs_f64(capped * (0.8 + 0.4 * noise.clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_delivered_retried_or_failed() {
        assert_eq!(classify(204, None, "").as_str(), "delivered");
        assert_eq!(classify(500, None, "oops").as_str(), "retry");
        assert_eq!(classify(503, None, "").as_str(), "retry");
        assert_eq!(classify(400, None, "bad json").as_str(), "failed");
        assert_eq!(classify(404, None, "").as_str(), "failed");
        assert_eq!(
            classify(429, Some("7"), "slow down"),
            Outcome::Retry {
                why: "HTTP 429: slow down".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(400, None, "bad json").answer(),
            "HTTP 400: bad json"
        );
    }

    #[test]
    fn the_backoff_doubles_to_half_an_hour_with_jitter() {
        assert_eq!(backoff(0, 0.5), Duration::from_secs(5));
        assert_eq!(backoff(1, 0.5), Duration::from_secs(10));
        assert_eq!(backoff(30, 0.5), Duration::from_secs(1800));
        assert!(backoff(0, 0.0) >= Duration::from_secs(4));
        assert!(backoff(0, 1.0) <= Duration::from_secs(6));
    }
}
