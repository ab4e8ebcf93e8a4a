//! The event path: one emit gives the record, the counter and the row;
//! subscribers start from current state; a lagging one never slows emit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::store::{EventQuery, Store};

/// Every tracing line written while `f` runs, as text.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

fn store_rows(store: &StoreThread) -> Vec<crate::store::Event> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut rows = rt
        .block_on(store.query(|s| {
            s.events(&EventQuery {
                limit: 1000,
                ..EventQuery::default()
            })
        }))
        .unwrap();
    rows.reverse();
    rows
}

#[test]
fn the_examples_show_every_variant() {
    let mut seen = [false; VARIANTS];
    for e in examples() {
        seen[variant(&e)] = true;
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|i| !seen[*i]).collect();
    assert!(
        missing.is_empty(),
        "variants without an example: {missing:?}"
    );
}

#[test]
fn one_emit_writes_the_record_the_counter_and_the_row() {
    let store = StoreThread::spawn(Store::open_in_memory().unwrap());
    let mut events = Events::new(Some(store.clone()));
    let counters = events.counters();
    for example in examples() {
        let kind = example.kind();
        let before = counters.borrow().events.get(kind).copied().unwrap_or(0);
        let rows_before = store_rows(&store).len();
        let text = logged(|| events.emit(example.clone()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "one record for {example:?}: {text}");
        assert!(
            lines[0].contains(&format!("event_kind=\"{kind}\"")),
            "the record names its kind {kind}: {text}"
        );
        assert_eq!(
            counters.borrow().events.get(kind).copied(),
            Some(before + 1),
            "counted once: {kind}"
        );
        let rows = store_rows(&store);
        assert_eq!(rows.len(), rows_before + 1, "one row for {kind}");
        let row = rows.last().unwrap();
        assert_eq!(row.kind, kind);
        assert_eq!(row.target.as_deref(), example.target());
        assert!(!row.message.is_empty());
    }
}

#[test]
fn decisions_actions_and_operator_commands_are_counted_by_target() {
    let mut events = Events::new(None);
    for e in examples() {
        logged(|| events.emit(e));
    }
    let c = events.counters().borrow().clone();
    let camera = |d: &'static str| ("camera".to_owned(), d);
    assert_eq!(c.decisions.get(&camera("scheduled")), Some(&1));
    assert_eq!(c.decisions.get(&camera("incident-opened")), Some(&1));
    assert_eq!(c.decisions.get(&camera("incident-closed")), Some(&1));
    assert_eq!(
        c.actions.get(&("camera".to_owned(), "restart", "ok")),
        Some(&1)
    );
    assert_eq!(
        c.operator.get(&("camera".to_owned(), "restart", "ok")),
        Some(&1),
        "an operator's restart is counted"
    );
}

fn incident_opened(target: &str) -> Event {
    Event::IncidentOpened {
        target: target.into(),
        unit: None,
        id: format!("{target}-1"),
        reason: "probe tcp is failing: refused".into(),
        root_cause: None,
    }
}

fn incident_closed(target: &str) -> Event {
    Event::IncidentClosed {
        target: target.into(),
        unit: None,
        id: format!("{target}-1"),
        lasted: Duration::from_secs(3),
    }
}

#[test]
fn an_observer_joining_mid_incident_sees_the_incident_then_the_stream() {
    let mut events = Events::new(None);
    logged(|| {
        events.emit(Event::HealthChanged {
            target: "edge".into(),
            unit: None,
            from: Health::Unknown,
            to: Health::Failing {
                reason: "refused".into(),
                systemd_restarting: false,
            },
        });
        events.emit(incident_opened("edge"));
        events.emit(incident_opened("gpu"));
        events.emit(incident_closed("gpu"));
    });
    let (current, mut rx) = events.slurp_and_subscribe();
    let kinds: Vec<(&str, Option<&str>)> = current
        .iter()
        .map(|e| (e.event.kind(), e.event.target()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("health-changed", Some("edge")),
            ("incident-opened", Some("edge"))
        ],
        "what still holds, in order; the closed incident is gone"
    );
    logged(|| events.emit(incident_closed("edge")));
    let next = rx.try_recv().unwrap();
    assert_eq!(next.event, incident_closed("edge"));
    assert!(next.seq > current.last().unwrap().seq);
    // A lossless subscriber starts the same way.
    let (current, _rx) = events.subscribe_lossless("alerts", 8);
    assert_eq!(current.len(), 1, "only edge's health is left: {current:?}");
}

#[test]
fn a_stalled_observer_never_blocks_emit_and_learns_what_it_missed() {
    let mut events = Events::new(None);
    let (_, mut stalled) = events.slurp_and_subscribe();
    let (_, mut live) = events.slurp_and_subscribe();
    let n = OBSERVER_CAPACITY as u64 * 3;
    logged(|| {
        for i in 0..n {
            events.emit(Event::BusRegained {
                bus: "system bus".into(),
                reconnects: i,
            });
            // The live observer keeps up.
            assert_eq!(live.try_recv().unwrap().seq, i + 1);
        }
    });
    match stalled.try_recv() {
        Err(broadcast::error::TryRecvError::Lagged(missed)) => {
            assert_eq!(missed, n - OBSERVER_CAPACITY as u64)
        }
        other => panic!("the stalled observer is told it lagged: {other:?}"),
    }
    // Then it follows from the oldest event still held.
    assert_eq!(
        stalled.try_recv().unwrap().seq,
        n - OBSERVER_CAPACITY as u64 + 1
    );
}

#[test]
fn a_lossless_subscriber_that_falls_behind_gets_a_backlog_then_an_alerted_overflow() {
    let mut events = Events::new(None);
    let counters = events.counters();
    let (_, mut rx) = events.subscribe_lossless("alerts", 4);
    let text = logged(|| {
        for i in 0..(BACKLOG as u64 + 10) {
            events.emit(Event::BusRegained {
                bus: "system bus".into(),
                reconnects: i,
            });
        }
    });
    // 4 in the channel, BACKLOG waiting, the rest (the oldest waiting)
    // dropped; the queue-full event itself is one more to hold.
    let lost = 10 + 1 - 4;
    assert_eq!(counters.borrow().dropped.get("alerts"), Some(&lost));
    assert_eq!(
        text.matches("trouble=\"queue-full\"").count(),
        1,
        "reported once per episode"
    );
    assert_eq!(counters.borrow().events.get("trouble"), Some(&1));
    // Drained, it gets everything still held in order, then the catch-up.
    let mut got = Vec::new();
    let text = logged(|| {
        loop {
            while let Ok(e) = rx.try_recv() {
                got.push(e);
            }
            if events.subscribers[0].backlog.is_empty() {
                events.flush();
                while let Ok(e) = rx.try_recv() {
                    got.push(e);
                }
                break;
            }
            events.flush();
        }
    });
    assert!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "in order, no repeats"
    );
    assert_eq!(got.first().unwrap().seq, 1, "the channel's four came first");
    assert!(text.contains("caught up; it lost 7 event(s)"), "{text}");
    assert!(matches!(
        got.last().unwrap().event,
        Event::Trouble(Trouble::QueueCaughtUp { lost: 7, .. })
    ));
}

#[test]
fn a_subscriber_that_went_away_is_forgotten() {
    let mut events = Events::new(None);
    let (_, rx) = events.subscribe_lossless("alerts", 1);
    drop(rx);
    logged(|| events.emit(incident_opened("edge")));
    assert!(events.subscribers.is_empty());
}
