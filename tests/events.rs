//! Every event, emitted once, reaches all three of its outlets: its
//! journald record (read back with `journalctl -D`), its counter on
//! `/metrics` and its row in the state store. The emitting side runs as a
//! unit of a real systemd, so its records go through a real journald.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rvm_watchdog::config::LogOutput;
use rvm_watchdog::event::{Events, examples};
use rvm_watchdog::store::{EventQuery, Store, StoreThread};
use support::systemd::{PrivateSystemd, journal_field};

/// Set for the emitting side: the directory it writes to.
const CHILD: &str = "RVM_WATCHDOG_EVENTS_DIR";

#[test]
#[ignore = "the emitting side of every_event_reaches_its_journal_record_counter_and_row; that test runs it as a systemd unit"]
fn emit_every_example_as_a_unit() {
    let dir = std::env::var(CHILD).expect("run by every_event_reaches_…, which sets the directory");
    let dir = std::path::Path::new(&dir);
    let log = rvm_watchdog::logging::init(tracing::Level::DEBUG, LogOutput::Journald);
    assert_eq!(log.destination, "journald");
    let store = StoreThread::spawn(Store::open(dir).unwrap());
    let mut events = Events::new(Some(store.clone()));
    for e in examples() {
        events.emit(e);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The store's thread runs jobs in order: once this answers, every row is on disk.
    rt.block_on(store.query_committed(|_| Ok(()))).unwrap();
    let counters = events.counters().borrow().clone();
    std::fs::write(
        dir.join("metrics.txt"),
        rvm_watchdog::metrics::render_counters(&counters),
    )
    .unwrap();
}

#[test]
fn every_event_reaches_its_journal_record_counter_and_row() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let unit = "ev-emit.service";
    sd.write_unit(
        unit,
        &format!(
            "[Service]\nType=oneshot\nEnvironment={CHILD}={dir}\n\
             ExecStart={exe} --exact emit_every_example_as_a_unit --ignored --test-threads=1\n",
            dir = dir.display(),
            exe = std::env::current_exe().unwrap().display(),
        ),
    );
    let out = sd.systemctl(&["start", unit]);
    assert!(
        out.status.success(),
        "the emitting unit ran: {} {}",
        String::from_utf8_lossy(&out.stderr),
        sd.show(unit, "Result")
    );

    let expected: BTreeMap<&str, usize> = examples().iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.kind()).or_default() += 1;
        m
    });
    let ours = |e: &serde_json::Value| {
        journal_field(e, "_SYSTEMD_CGROUP").is_some_and(|c| c.ends_with(&format!("/{unit}")))
            && journal_field(e, "EVENT_KIND").is_some()
    };
    sd.wait_for_journal(
        |e| ours(e) && journal_field(e, "EVENT_KIND").as_deref() == Some("trouble"),
        Duration::from_secs(20),
    )
    .unwrap();
    let records: Vec<serde_json::Value> = sd.journal().into_iter().filter(|e| ours(e)).collect();
    let mut by_kind: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for r in &records {
        by_kind
            .entry(journal_field(r, "EVENT_KIND").unwrap())
            .or_default()
            .push(r);
    }
    for e in examples() {
        let kind = e.kind();
        let found = by_kind.get(kind).map(Vec::len).unwrap_or(0);
        assert_eq!(found, expected[kind], "journald records of kind {kind}");
        let record = by_kind[kind][0];
        assert_eq!(
            journal_field(record, "SYSLOG_IDENTIFIER").as_deref(),
            Some("rvm-watchdog")
        );
        assert_eq!(
            journal_field(record, "TARGET_NAME").as_deref(),
            e.target(),
            "{kind} names its target"
        );
        assert!(!journal_field(record, "MESSAGE").unwrap().is_empty());
    }
    // The failures are warnings or errors, the rest informational.
    let priority = |kind: &str| journal_field(by_kind[kind][0], "PRIORITY").unwrap();
    assert_eq!(priority("incident-opened"), "4");
    assert_eq!(priority("safe-mode"), "3");
    assert_eq!(priority("incident-closed"), "6");
    assert_eq!(
        journal_field(by_kind["unit-changed"][0], "OBJECT_SYSTEMD_UNIT").as_deref(),
        Some("myrvm-camera.service"),
        "what happened to a unit shows in `journalctl -u` of that unit"
    );

    let metrics = std::fs::read_to_string(dir.join("metrics.txt")).unwrap();
    for (kind, n) in &expected {
        let line = format!("rvm_watchdog_events_total{{kind=\"{kind}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    let rows = Store::open(dir)
        .unwrap()
        .events(&EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .unwrap();
    let stored: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.kind.as_str()).or_default() += 1;
        m
    });
    assert_eq!(stored, expected, "one row per event");
    sd.systemctl(&["reset-failed", unit]);
}
