//! What the alert engine keeps: the **outbox** (every notification, written
//! before any attempt to deliver it, with the alerts it is about) and the
//! **incident records** (one JSON document per failing period of a
//! target). The engine's alerts, silences and maintenance windows are
//! state documents (`alert/…`, `silence/…`, `maintenance/…`).

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, saturating_i64, sql};

/// One notification in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Its idempotency key.
    pub key: String,
    /// The channel.
    pub channel: String,
    /// Made at (ms since the epoch).
    pub created_ms: i64,
    /// Its highest severity.
    pub severity: String,
    /// The notification, JSON.
    pub body: String,
    /// `queued` until delivery takes it.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The fingerprints of the alerts in it.
    pub fingerprints: Vec<String>,
}

/// One delivery attempt of a notification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The notification's key.
    pub key: String,
    /// When it was made (ms).
    pub at_ms: i64,
    /// `delivered`, `retry` or `failed`.
    pub result: String,
    /// How long the receiver took to answer.
    pub latency_ms: i64,
    /// What the receiver answered, or why there was no answer.
    pub answer: String,
}

/// One incident record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    /// Its id.
    pub id: String,
    /// The target.
    pub target: String,
    /// Opened at (ms).
    pub opened_ms: i64,
    /// Closed at (ms), once closed.
    pub closed_ms: Option<i64>,
    /// The record, JSON.
    pub doc: String,
}

impl Store {
    /// Every state document whose key starts with `prefix`, by key.
    pub fn states_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        const WHAT: &str = "read state documents";
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM state WHERE substr(key, 1, ?2) = ?1 ORDER BY key")
            .map_err(sql(WHAT))?;
        let rows = stmt
            .query_map(params![prefix, prefix.len() as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql(WHAT))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, text) = row.map_err(sql(WHAT))?;
            let value = serde_json::from_str(&text)
                .map_err(|source| StoreError::Json { what: WHAT, source })?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Writes a notification to the outbox (once: the same key again is
    /// ignored), with the alerts it is about.
    pub fn enqueue(&self, row: &OutboxRow) -> Result<(), StoreError> {
        const WHAT: &str = "write to the outbox";
        self.conn
            .execute(
                "INSERT INTO outbox (key, channel, created_ms, severity, body)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (key) DO NOTHING",
                params![row.key, row.channel, row.created_ms, row.severity, row.body],
            )
            .map_err(sql(WHAT))?;
        for fp in &row.fingerprints {
            self.conn
                .execute(
                    "INSERT INTO outbox_alerts (fingerprint, key) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                    params![fp, row.key],
                )
                .map_err(sql(WHAT))?;
        }
        Ok(())
    }

    /// The outbox, newest first: every notification, or those about one
    /// alert, or those for one channel.
    pub fn outbox(
        &self,
        fingerprint: Option<&str>,
        channel: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        const WHAT: &str = "read the outbox";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.key, o.channel, o.created_ms, o.severity, o.body, o.state, o.attempts
                 FROM outbox o
                 WHERE (?1 IS NULL OR o.key IN (SELECT key FROM outbox_alerts WHERE fingerprint = ?1))
                   AND (?2 IS NULL OR o.channel = ?2)
                 ORDER BY o.id DESC LIMIT ?3",
            )
            .map_err(sql(WHAT))?;
        let rows = stmt
            .query_map(
                params![fingerprint, channel, saturating_i64(limit)],
                outbox_row,
            )
            .map_err(sql(WHAT))?;
        let mut out: Vec<OutboxRow> = rows.collect::<Result<_, _>>().map_err(sql(WHAT))?;
        let mut fps = self
            .conn
            .prepare("SELECT fingerprint FROM outbox_alerts WHERE key = ?1 ORDER BY fingerprint")
            .map_err(sql(WHAT))?;
        for row in &mut out {
            row.fingerprints = fps
                .query_map([&row.key], |r| r.get(0))
                .map_err(sql(WHAT))?
                .collect::<Result<_, _>>()
                .map_err(sql(WHAT))?;
        }
        Ok(out)
    }

    /// Notifications waiting for delivery.
    pub fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM outbox WHERE state = 'queued'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(sql("count the outbox"))
    }

    /// Notifications waiting for delivery whose next attempt is due at
    /// `now_ms`, oldest first.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        const WHAT: &str = "read the outbox";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, channel, created_ms, severity, body, state, attempts FROM outbox
                 WHERE state = 'queued' AND (next_ms IS NULL OR next_ms <= ?1)
                 ORDER BY id LIMIT ?2",
            )
            .map_err(sql(WHAT))?;
        let rows = stmt
            .query_map(params![now_ms, saturating_i64(limit)], outbox_row)
            .map_err(sql(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(sql(WHAT))
    }

    /// The earliest next attempt of a queued notification, if any.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(coalesce(next_ms, 0)) FROM outbox WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
            .map_err(sql("read the outbox"))
    }

    /// Records an attempt and its consequence: delivered (`sent`), to be
    /// retried at `next_ms`, or failed for good.
    pub fn record_attempt(
        &self,
        attempt: &Attempt,
        next_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        const WHAT: &str = "record a delivery attempt";
        self.conn
            .execute(
                "INSERT INTO deliveries (key, at_ms, result, latency_ms, answer)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    attempt.key,
                    attempt.at_ms,
                    attempt.result,
                    attempt.latency_ms,
                    attempt.answer
                ],
            )
            .map_err(sql(WHAT))?;
        let (state, sent) = match attempt.result.as_str() {
            "delivered" => ("sent", Some(attempt.at_ms)),
            "failed" => ("failed", None),
            _ => ("queued", None),
        };
        self.conn
            .execute(
                "UPDATE outbox SET state = ?2, attempts = attempts + 1, next_ms = ?3,
                   last_error = CASE WHEN ?2 = 'sent' THEN NULL ELSE ?4 END,
                   sent_ms = coalesce(?5, sent_ms)
                 WHERE key = ?1",
                params![attempt.key, state, next_ms, attempt.answer, sent],
            )
            .map_err(sql(WHAT))?;
        Ok(())
    }

    /// Keeps the queued notifications inside their bounds: those made
    /// before `before_ms`, then the oldest beyond the newest `max`, are
    /// given up (state `expired`), each with a line in its delivery log
    /// saying why. Answers how many were given up, and how many still wait.
    pub fn give_up_queued(
        &self,
        before_ms: i64,
        max: usize,
        now_ms: i64,
        why_age: &str,
        why_max: &str,
    ) -> Result<(usize, u64), StoreError> {
        const WHAT: &str = "bound the outbox";
        let mut given_up = 0;
        for (select, why) in [
            (
                "SELECT key FROM outbox WHERE state = 'queued' AND created_ms < ?1",
                why_age,
            ),
            (
                "SELECT key FROM outbox WHERE state = 'queued'
                 ORDER BY id DESC LIMIT -1 OFFSET ?2",
                why_max,
            ),
        ] {
            let keys: Vec<String> = {
                let mut stmt = self.conn.prepare(select).map_err(sql(WHAT))?;
                let params: &[&dyn rusqlite::ToSql] = if select.contains("?1") {
                    &[&before_ms]
                } else {
                    &[&rusqlite::types::Null, &saturating_i64(max)]
                };
                stmt.query_map(params, |r| r.get(0))
                    .map_err(sql(WHAT))?
                    .collect::<Result<_, _>>()
                    .map_err(sql(WHAT))?
            };
            for key in keys {
                self.conn
                    .execute(
                        "INSERT INTO deliveries (key, at_ms, result, latency_ms, answer)
                         VALUES (?1, ?2, 'expired', 0, ?3)",
                        params![key, now_ms, why],
                    )
                    .map_err(sql(WHAT))?;
                self.conn
                    .execute(
                        "UPDATE outbox SET state = 'expired', next_ms = NULL, last_error = ?2
                         WHERE key = ?1",
                        params![key, why],
                    )
                    .map_err(sql(WHAT))?;
                given_up += 1;
            }
        }
        Ok((given_up, self.outbox_depth()?))
    }

    /// The attempts of a notification, oldest first.
    pub fn attempts(&self, key: &str) -> Result<Vec<Attempt>, StoreError> {
        const WHAT: &str = "read delivery attempts";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, at_ms, result, latency_ms, answer FROM deliveries
                 WHERE key = ?1 ORDER BY id",
            )
            .map_err(sql(WHAT))?;
        let rows = stmt
            .query_map([key], |r| {
                Ok(Attempt {
                    key: r.get(0)?,
                    at_ms: r.get(1)?,
                    result: r.get(2)?,
                    latency_ms: r.get(3)?,
                    answer: r.get(4)?,
                })
            })
            .map_err(sql(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(sql(WHAT))
    }

    /// Writes an incident record, replacing the one of the same id.
    pub fn put_incident(&self, row: &IncidentRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO incidents (id, target, opened_ms, closed_ms, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET closed_ms = excluded.closed_ms, doc = excluded.doc",
                params![row.id, row.target, row.opened_ms, row.closed_ms, row.doc],
            )
            .map_err(sql("write an incident record"))?;
        Ok(())
    }

    /// Incident records, newest first, perhaps of one target.
    pub fn incidents(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        const WHAT: &str = "read incident records";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, target, opened_ms, closed_ms, doc FROM incidents
                 WHERE (?1 IS NULL OR target = ?1)
                 ORDER BY opened_ms DESC, id DESC LIMIT ?2",
            )
            .map_err(sql(WHAT))?;
        let rows = stmt
            .query_map(params![target, saturating_i64(limit)], incident_row)
            .map_err(sql(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(sql(WHAT))
    }

    /// One incident record.
    pub fn incident(&self, id: &str) -> Result<Option<IncidentRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, target, opened_ms, closed_ms, doc FROM incidents WHERE id = ?1",
                [id],
                incident_row,
            )
            .optional()
            .map_err(sql("read an incident record"))
    }

    /// Incident records still open (the watchdog stopped during them).
    pub fn open_incidents(&self) -> Result<Vec<IncidentRow>, StoreError> {
        const WHAT: &str = "read open incident records";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, target, opened_ms, closed_ms, doc FROM incidents
                 WHERE closed_ms IS NULL ORDER BY opened_ms",
            )
            .map_err(sql(WHAT))?;
        let rows = stmt.query_map([], incident_row).map_err(sql(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(sql(WHAT))
    }

    /// Drops outbox rows older than `before_ms` or beyond the newest
    /// `keep_rows`, and closed incident records older than `before_ms`.
    pub fn prune_alerts(&self, before_ms: i64, keep_rows: usize) -> Result<(), StoreError> {
        const WHAT: &str = "prune the outbox and incident records";
        let keep = saturating_i64(keep_rows);
        self.conn
            .execute(
                "DELETE FROM outbox_alerts WHERE key IN
                   (SELECT key FROM outbox WHERE created_ms < ?1
                      OR id <= (SELECT id FROM outbox ORDER BY id DESC LIMIT 1 OFFSET ?2))",
                params![before_ms, keep],
            )
            .map_err(sql(WHAT))?;
        self.conn
            .execute(
                "DELETE FROM deliveries WHERE key IN
                   (SELECT key FROM outbox WHERE created_ms < ?1
                      OR id <= (SELECT id FROM outbox ORDER BY id DESC LIMIT 1 OFFSET ?2))",
                params![before_ms, keep],
            )
            .map_err(sql(WHAT))?;
        self.conn
            .execute(
                "DELETE FROM outbox WHERE created_ms < ?1
                   OR id <= (SELECT id FROM outbox ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                params![before_ms, keep],
            )
            .map_err(sql(WHAT))?;
        self.conn
            .execute(
                "DELETE FROM incidents WHERE closed_ms IS NOT NULL AND closed_ms < ?1",
                [before_ms],
            )
            .map_err(sql(WHAT))?;
        Ok(())
    }
}

/// An outbox row from `key, channel, created_ms, severity, body, state,
/// attempts` (its fingerprints are read apart).
fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        key: r.get(0)?,
        channel: r.get(1)?,
        created_ms: r.get(2)?,
        severity: r.get(3)?,
        body: r.get(4)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        fingerprints: Vec::new(),
    })
}

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.get(0)?,
        target: r.get(1)?,
        opened_ms: r.get(2)?,
        closed_ms: r.get(3)?,
        doc: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, fps: &[&str]) -> OutboxRow {
        OutboxRow {
            key: key.into(),
            channel: "ops-webhook".into(),
            created_ms: 1,
            severity: "critical".into(),
            body: "{}".into(),
            state: "queued".into(),
            attempts: 0,
            fingerprints: fps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_outbox_gives_up_what_waited_too_long_then_the_oldest_beyond_its_bound() {
        let store = Store::open_in_memory().unwrap();
        for (i, key) in ["k1", "k2", "k3", "k4", "k5"].iter().enumerate() {
            let mut r = row(key, &["a"]);
            r.created_ms = 1000 * (i as i64 + 1);
            store.enqueue(&r).unwrap();
        }
        let sent = Attempt {
            key: "k5".into(),
            at_ms: 6000,
            result: "delivered".into(),
            latency_ms: 3,
            answer: "HTTP 200".into(),
        };
        store.record_attempt(&sent, None).unwrap();
        // k1 is older than 1500; of k2..k4 (k5 was sent) two may wait.
        let (given_up, depth) = store
            .give_up_queued(1500, 2, 9000, "too old", "too many")
            .unwrap();
        assert_eq!((given_up, depth), (2, 2));
        let states: Vec<(String, String)> = store
            .outbox(None, None, 10)
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.state))
            .collect();
        assert!(
            states.contains(&("k1".into(), "expired".into())),
            "{states:?}"
        );
        assert!(
            states.contains(&("k2".into(), "expired".into())),
            "{states:?}"
        );
        assert!(
            states.contains(&("k3".into(), "queued".into())),
            "{states:?}"
        );
        assert!(states.contains(&("k5".into(), "sent".into())), "{states:?}");
        let log = store.attempts("k1").unwrap();
        assert_eq!(
            (log[0].result.as_str(), log[0].answer.as_str()),
            ("expired", "too old")
        );
        assert_eq!(store.attempts("k2").unwrap()[0].answer, "too many");
        assert!(
            store
                .due(i64::MAX, 10)
                .unwrap()
                .iter()
                .all(|r| r.key == "k3" || r.key == "k4")
        );
        // Inside its bounds, nothing more is given up.
        assert_eq!(store.give_up_queued(1500, 2, 9000, "", "").unwrap(), (0, 2));
    }

    #[test]
    fn the_outbox_keeps_each_notification_once_and_lists_it_by_alert() {
        let store = Store::open_in_memory().unwrap();
        store.enqueue(&row("k1", &["a", "b"])).unwrap();
        store.enqueue(&row("k1", &["a", "b"])).unwrap();
        store.enqueue(&row("k2", &["b"])).unwrap();
        assert_eq!(store.outbox(None, None, 10).unwrap().len(), 2);
        let of_a = store.outbox(Some("a"), None, 10).unwrap();
        assert_eq!(of_a.len(), 1);
        assert_eq!(of_a[0].fingerprints, vec!["a", "b"]);
        assert_eq!(store.outbox(Some("b"), None, 10).unwrap().len(), 2);
        assert_eq!(store.outbox(None, Some("sms"), 10).unwrap().len(), 0);
        assert_eq!(store.outbox_depth().unwrap(), 2);
        // Pruned by count (and by age), the newest kept, with their alerts.
        store.enqueue(&row("k3", &["c"])).unwrap();
        store.prune_alerts(0, 2).unwrap();
        let left: Vec<String> = store
            .outbox(None, None, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(left, vec!["k3", "k2"]);
        assert!(store.outbox(Some("a"), None, 10).unwrap().is_empty());
        store.prune_alerts(2, 100).unwrap();
        assert!(
            store.outbox(None, None, 10).unwrap().is_empty(),
            "all older than 2 ms"
        );
    }

    #[test]
    fn an_attempt_moves_a_notification_on_and_is_logged() {
        let store = Store::open_in_memory().unwrap();
        store.enqueue(&row("k1", &["a"])).unwrap();
        store.enqueue(&row("k2", &["a"])).unwrap();
        assert_eq!(store.due(0, 10).unwrap().len(), 2);
        let attempt = |key: &str, result: &str| Attempt {
            key: key.into(),
            at_ms: 100,
            result: result.into(),
            latency_ms: 3,
            answer: "HTTP 500".into(),
        };
        store
            .record_attempt(&attempt("k1", "retry"), Some(1000))
            .unwrap();
        let due: Vec<String> = store
            .due(500, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(due, vec!["k2"], "k1 waits for its next attempt");
        assert_eq!(store.next_due().unwrap(), Some(0));
        store
            .record_attempt(&attempt("k2", "failed"), None)
            .unwrap();
        assert_eq!(store.next_due().unwrap(), Some(1000));
        assert_eq!(store.due(1000, 10).unwrap().len(), 1);
        store
            .record_attempt(&attempt("k1", "delivered"), None)
            .unwrap();
        assert!(store.due(i64::MAX, 10).unwrap().is_empty());
        assert_eq!(store.next_due().unwrap(), None);
        let log = store.attempts("k1").unwrap();
        assert_eq!(
            log.iter().map(|a| a.result.as_str()).collect::<Vec<_>>(),
            vec!["retry", "delivered"]
        );
        let states: Vec<(String, i64)> = store
            .outbox(None, None, 10)
            .unwrap()
            .into_iter()
            .map(|r| (r.state, r.attempts))
            .collect();
        assert_eq!(states, vec![("failed".into(), 1), ("sent".into(), 2)]);
        assert_eq!(store.outbox_depth().unwrap(), 0);
    }

    #[test]
    fn state_documents_are_listed_by_prefix() {
        let store = Store::open_in_memory().unwrap();
        store
            .put_state("alert/1", &serde_json::json!({"a": 1}))
            .unwrap();
        store.put_state("alert/2", &serde_json::json!(2)).unwrap();
        store.put_state("alerts", &serde_json::json!(3)).unwrap();
        store.put_state("ladder/x", &serde_json::json!(4)).unwrap();
        let got = store.states_with_prefix("alert/").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "alert/1");
    }

    #[test]
    fn incident_records_are_replaced_by_id_and_listed_newest_first() {
        let store = Store::open_in_memory().unwrap();
        let mut r = IncidentRow {
            id: "camera-1".into(),
            target: "camera".into(),
            opened_ms: 1,
            closed_ms: None,
            doc: "{}".into(),
        };
        store.put_incident(&r).unwrap();
        assert_eq!(store.open_incidents().unwrap().len(), 1);
        r.closed_ms = Some(5);
        r.doc = "{\"closed\":true}".into();
        store.put_incident(&r).unwrap();
        store
            .put_incident(&IncidentRow {
                id: "gpu-2".into(),
                target: "gpu".into(),
                opened_ms: 2,
                closed_ms: None,
                doc: "{}".into(),
            })
            .unwrap();
        let all = store.incidents(None, 10).unwrap();
        assert_eq!(
            all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["gpu-2", "camera-1"]
        );
        assert_eq!(
            store.incident("camera-1").unwrap().unwrap().doc,
            "{\"closed\":true}"
        );
        assert_eq!(store.incidents(Some("camera"), 10).unwrap().len(), 1);
        assert!(
            store
                .open_incidents()
                .unwrap()
                .iter()
                .all(|r| r.id == "gpu-2")
        );
        store.prune_alerts(10, 100).unwrap();
        assert!(store.incident("camera-1").unwrap().is_none());
    }
}
