//! The offline summary: after a channel could not be reached for a while,
//! what waited for it leaves as **one** notification listing everything,
//! rather than a storm of them once the link is back.
//!
//! A channel's due notifications are summarised when there are at least
//! [`SUMMARY_MIN`] of them and the oldest has waited [`SUMMARY_AFTER`]: the
//! summary opens with a notice (`delivery-summary`: how many, since when)
//! and then carries every item of every notification, oldest first, under
//! the schema the channel already speaks. Each notification's delivery log
//! then says it went out in the summary, under the summary's key.

use std::time::Duration;

use crate::alert::{Item, Notification, Severity, Why, human};
use crate::store::OutboxRow;

/// A notification this old in the outbox means its channel was offline.
pub const SUMMARY_AFTER: Duration = Duration::from_secs(10 * 60);
/// Fewer than this many waiting go out one by one, however old.
pub const SUMMARY_MIN: usize = 3;

/// The summary of `rows` (one channel's due notifications, oldest first)
/// at `now_ms`, when they call for one.
pub fn summarize(channel: &str, rows: &[OutboxRow], now_ms: i64) -> Option<Notification> {
    let oldest = rows.first()?;
    let waited = now_ms.saturating_sub(oldest.created_ms);
    if rows.len() < SUMMARY_MIN || waited < SUMMARY_AFTER.as_millis() as i64 {
        return None;
    }
    let parts: Vec<Notification> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(&r.body).ok())
        .collect();
    let severity = parts
        .iter()
        .map(|n| n.severity)
        .max()
        .unwrap_or(Severity::Info);
    let count: usize = parts.iter().map(|n| n.items.len()).sum();
    let labels = [("channel".to_owned(), channel.to_owned())].into();
    let head = Item {
        fingerprint: crate::alert::fingerprint("delivery-summary", None, &labels),
        why: Why::Notice,
        name: "delivery-summary".into(),
        target: None,
        labels,
        severity: Severity::Info,
        summary: format!(
            "{} notifications ({count} alerts and notices) waited for {channel} for {} while it could not be reached; all of them follow, oldest first",
            rows.len(),
            human(waited.max(0) as u64)
        ),
        started_at: oldest.created_ms.max(0) as u64,
        resolved_at: None,
        incident: None,
        suppressed_by: None,
    };
    let mut items = vec![head];
    items.extend(parts.into_iter().flat_map(|n| n.items));
    Some(Notification {
        // The same rows retried keep the key.
        key: format!("summary-{}-{}", oldest.key, rows.len()),
        channel: channel.to_owned(),
        created_at: now_ms.max(0) as u64,
        severity,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn row(key: &str, channel: &str, at: i64, name: &str) -> OutboxRow {
        let n = Notification {
            key: key.into(),
            channel: channel.into(),
            created_at: at as u64,
            severity: Severity::Critical,
            items: vec![Item {
                fingerprint: format!("fp-{key}"),
                why: Why::Firing,
                name: name.into(),
                target: Some("camera".into()),
                labels: Default::default(),
                severity: Severity::Critical,
                summary: format!("{name} on camera"),
                started_at: at as u64,
                resolved_at: None,
                incident: None,
                suppressed_by: None,
            }],
        };
        OutboxRow {
            key: key.into(),
            channel: channel.into(),
            created_ms: at,
            severity: "critical".into(),
            body: serde_json::to_string(&n).unwrap(),
            state: "queued".into(),
            attempts: 3,
            fingerprints: vec![format!("fp-{key}")],
        }
    }

    #[test]
    fn a_day_offline_leaves_as_one_summary_per_channel_with_everything_in_it() {
        let start = 1_700_000_000_000;
        let now = start + 24 * HOUR;
        // One notification an hour for a day, on two channels.
        let hook: Vec<OutboxRow> = (0..24)
            .map(|h| row(&format!("h{h}"), "hook", start + h * HOUR, "target-failing"))
            .collect();
        let mail: Vec<OutboxRow> = (0..24)
            .map(|h| row(&format!("m{h}"), "mail", start + h * HOUR, "gpu-hot"))
            .collect();
        for (channel, rows) in [("hook", &hook), ("mail", &mail)] {
            let s = summarize(channel, rows, now).expect("a summary");
            assert_eq!(s.channel, channel);
            assert_eq!(s.items.len(), 25, "the notice, then all 24");
            assert_eq!(s.items[0].name, "delivery-summary");
            assert!(
                s.items[0].summary.starts_with(&format!(
                    "24 notifications (24 alerts and notices) waited for {channel} for 1d"
                )),
                "{}",
                s.items[0].summary
            );
            let keys: Vec<&str> = s.items[1..]
                .iter()
                .map(|i| i.fingerprint.as_str())
                .collect();
            let expected: Vec<String> = rows.iter().map(|r| format!("fp-{}", r.key)).collect();
            assert_eq!(keys, expected, "oldest first, none left out");
            assert_eq!(s.severity, Severity::Critical);
            assert_eq!(
                summarize(channel, rows, now).unwrap().key,
                s.key,
                "a retry keeps the key"
            );
        }
    }

    #[test]
    fn a_short_outage_or_a_few_notifications_go_one_by_one() {
        let now = 1_700_000_000_000;
        let recent: Vec<OutboxRow> = (0..10)
            .map(|i| row(&format!("r{i}"), "hook", now - 60_000, "x"))
            .collect();
        assert!(summarize("hook", &recent, now).is_none(), "one minute");
        let few: Vec<OutboxRow> = (0..2)
            .map(|i| row(&format!("f{i}"), "hook", now - 24 * HOUR, "x"))
            .collect();
        assert!(summarize("hook", &few, now).is_none(), "two");
        assert!(summarize("hook", &[], now).is_none());
    }
}
