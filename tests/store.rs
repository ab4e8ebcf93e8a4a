//! The persisted state store against real files in a temporary directory:
//! events, state documents, reboots, boots, corruption and recovery,
//! permissions, migration of an older schema.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rvm_watchdog::store::{
    BootEnd, EventQuery, NewEvent, PreviousBoot, Store, StoreError, current_boot_id,
};
use serde_json::json;

/// A time `s` seconds after a fixed instant, with whole milliseconds (the
/// store keeps milliseconds).
fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000 + s)
}

fn event(at: SystemTime, kind: &str, target: Option<&str>, message: &str) -> NewEvent {
    NewEvent {
        target: target.map(str::to_owned),
        ..NewEvent::new(at, kind, message)
    }
}

fn ids(events: &[rvm_watchdog::store::Event]) -> Vec<String> {
    events.iter().map(|e| e.message.clone()).collect()
}

#[test]
fn events_round_trip_newest_first_with_filters_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    let full = NewEvent {
        at: t(0) + Duration::from_millis(250),
        kind: "action-done".into(),
        target: Some("camera".into()),
        unit: Some("myrvm-edge.service".into()),
        incident: Some("camera-1".into()),
        step: Some(1),
        attempt: Some(3),
        result: Some("failed".into()),
        message: "restart of myrvm-edge.service failed".into(),
        fields: json!({"job": "restart", "exit": [1, "code"]}),
    };
    let first = store.append_event(&full).unwrap();
    store
        .append_event(&event(t(10), "unit-failed", Some("printer"), "b"))
        .unwrap();
    store
        .append_event(&event(t(20), "decision", Some("camera"), "c"))
        .unwrap();
    let last = store
        .append_event(&event(t(30), "unit-failed", Some("camera"), "d"))
        .unwrap();
    assert!(last > first);

    let all = store.events(&EventQuery::default()).unwrap();
    assert_eq!(
        ids(&all),
        ["d", "c", "b", "restart of myrvm-edge.service failed"]
    );
    let read = all.last().unwrap();
    assert_eq!(read.id, first);
    assert_eq!(
        (
            read.at,
            &read.kind,
            &read.target,
            &read.unit,
            &read.incident,
            read.step,
            read.attempt,
            &read.result,
            &read.message,
            &read.fields,
        ),
        (
            full.at,
            &full.kind,
            &full.target,
            &full.unit,
            &full.incident,
            full.step,
            full.attempt,
            &full.result,
            &full.message,
            &full.fields,
        )
    );
    assert_eq!(all[0].fields, json!({}), "NewEvent::new has empty fields");

    let query = |target: Option<&str>, kind: Option<&str>, since: Option<SystemTime>, limit| {
        ids(&store
            .events(&EventQuery {
                target: target.map(str::to_owned),
                kind: kind.map(str::to_owned),
                since,
                limit,
                ..EventQuery::default()
            })
            .unwrap())
    };
    assert_eq!(
        query(Some("camera"), None, None, 10),
        ["d", "c", "restart of myrvm-edge.service failed"]
    );
    assert_eq!(query(None, Some("unit-failed"), None, 10), ["d", "b"]);
    assert_eq!(query(None, None, Some(t(10)), 10), ["d", "c", "b"]);
    assert_eq!(
        query(Some("camera"), Some("unit-failed"), Some(t(10)), 10),
        ["d"]
    );
    assert_eq!(query(None, None, None, 2), ["d", "c"]);
    assert_eq!(query(None, None, None, 0), Vec::<String>::new());
    assert_eq!(query(Some("nobody"), None, None, 10), Vec::<String>::new());
}

#[test]
fn prune_drops_old_events_and_keeps_at_most_n() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..10 {
        store
            .append_event(&event(t(i * 60), "decision", None, &format!("e{i}")))
            .unwrap();
    }

    // Older than minute 3: e0, e1, e2 go.
    assert_eq!(store.prune_events(t(180), 100).unwrap(), 3);
    // Then keep the newest 4 of the 7 left.
    assert_eq!(store.prune_events(t(0), 4).unwrap(), 3);
    let left = store.events(&EventQuery::default()).unwrap();
    assert_eq!(ids(&left), ["e9", "e8", "e7", "e6"]);
    // Both at once, and nothing to do.
    assert_eq!(store.prune_events(t(7 * 60), 3).unwrap(), 1);
    assert_eq!(store.prune_events(t(0), 3).unwrap(), 0);
    assert_eq!(store.prune_events(t(0), 0).unwrap(), 3);
    assert!(store.events(&EventQuery::default()).unwrap().is_empty());

    // Ids are never reused after a prune.
    let id = store
        .append_event(&event(t(999), "decision", None, "new"))
        .unwrap();
    assert!(id > left[0].id);
}

#[test]
fn state_documents_put_get_overwrite_delete_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get_state("ladder/camera").unwrap(), None);
        store
            .put_state("ladder/camera", &json!({"step": 0, "attempt": 1}))
            .unwrap();
        store
            .put_state("ladder/camera", &json!({"step": 1, "attempt": 2}))
            .unwrap();
        store.put_state("safe-mode", &json!(true)).unwrap();
        store.put_state("gone", &json!("soon")).unwrap();
        store.delete_state("gone").unwrap();
        store.delete_state("never-there").unwrap();
        assert_eq!(store.get_state("gone").unwrap(), None);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.get_state("ladder/camera").unwrap(),
        Some(json!({"step": 1, "attempt": 2}))
    );
    assert_eq!(store.get_state("safe-mode").unwrap(), Some(json!(true)));
    assert_eq!(store.get_state("gone").unwrap(), None);
}

#[test]
fn reboots_since_counts_only_later_reboots_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .record_reboot(t(0), Some("camera"), "usb reset did not help", "boot-a")
            .unwrap();
        store
            .record_reboot(t(3600), None, "host unresponsive", "boot-b")
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    store
        .record_reboot(t(7200), Some("gpu"), "gpu hung", "boot-c")
        .unwrap();

    let reasons = |since| -> Vec<String> {
        store
            .reboots_since(since)
            .unwrap()
            .into_iter()
            .map(|r| r.reason)
            .collect()
    };
    assert_eq!(
        reasons(t(0)),
        ["usb reset did not help", "host unresponsive", "gpu hung"]
    );
    assert_eq!(reasons(t(1)), ["host unresponsive", "gpu hung"]);
    assert_eq!(reasons(t(7200)), ["gpu hung"]);
    assert!(reasons(t(7201)).is_empty());

    let first = &store.reboots_since(t(0)).unwrap()[0];
    assert_eq!(first.at, t(0));
    assert_eq!(first.target.as_deref(), Some("camera"));
    assert_eq!(first.boot_id, "boot-a");
}

#[test]
fn record_boot_tells_how_the_previous_boot_ended() {
    let dir = tempfile::tempdir().unwrap();

    // First boot the store sees.
    let store = Store::open(dir.path()).unwrap();
    let first = store.record_boot("boot-1", t(0)).unwrap();
    assert_eq!(first.boot_id, "boot-1");
    assert_eq!(first.started_at, t(0));
    assert_eq!(first.previous, None);
    store
        .record_reboot(t(50), Some("camera"), "ladder exhausted", "boot-1")
        .unwrap();
    // A reboot the watchdog asks for also stops it cleanly.
    store.mark_shutdown("boot-1", t(55)).unwrap();
    drop(store);

    // After a watchdog reboot.
    let store = Store::open(dir.path()).unwrap();
    let second = store.record_boot("boot-2", t(100)).unwrap();
    assert_eq!(
        second.previous,
        Some(PreviousBoot {
            boot_id: "boot-1".into(),
            started_at: t(0),
            ended: BootEnd::WatchdogReboot {
                target: Some("camera".into()),
                reason: "ladder exhausted".into(),
                at: t(50),
            },
        })
    );
    // A watchdog restart within the same boot is not a new boot.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.record_boot("boot-2", t(130)).unwrap(), second);
    store.mark_shutdown("boot-2", t(150)).unwrap();

    // After a clean shutdown.
    let third = store.record_boot("boot-3", t(200)).unwrap();
    assert_eq!(
        third.previous.unwrap().ended,
        BootEnd::CleanShutdown { at: t(150) }
    );

    // After neither: power loss.
    let fourth = store.record_boot("boot-4", t(300)).unwrap();
    let previous = fourth.previous.clone().unwrap();
    assert_eq!(previous.boot_id, "boot-3");
    assert_eq!(previous.ended, BootEnd::Unexpected);
    assert_eq!(store.record_boot("boot-4", t(301)).unwrap(), fourth);
}

#[test]
fn a_restart_after_a_premature_shutdown_mark_is_not_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.record_boot("boot-1", t(0)).unwrap();
    // The shutdown was cancelled and the watchdog started again.
    store.mark_shutdown("boot-1", t(10)).unwrap();
    store.record_boot("boot-1", t(20)).unwrap();
    // Then the power went.
    let next = store.record_boot("boot-2", t(100)).unwrap();
    assert_eq!(next.previous.unwrap().ended, BootEnd::Unexpected);
}

#[test]
fn boots_since_shows_a_boot_loop() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (i, minute) in [0u64, 60, 62, 64, 66].into_iter().enumerate() {
        store
            .record_boot(&format!("boot-{i}"), t(minute * 60))
            .unwrap();
        // Restarts of the watchdog do not count.
        store
            .record_boot(&format!("boot-{i}"), t(minute * 60 + 30))
            .unwrap();
    }
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.boots_since(t(0)).unwrap(), 5);
    assert_eq!(store.boots_since(t(60 * 60)).unwrap(), 4);
    assert_eq!(store.boots_since(t(65 * 60)).unwrap(), 1);
    assert_eq!(store.boots_since(t(67 * 60)).unwrap(), 0);
}

fn corrupt_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("state.db.corrupt-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_garbage_file_fails_open_naming_it_and_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();

    let error = Store::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(error.is_corrupt());
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "message names the file: {message}"
    );
    assert!(message.starts_with("the state database"), "{message}");
    // `open` leaves the file alone.
    assert_eq!(std::fs::read(&path).unwrap(), garbage);

    let store = Store::open_or_recover(dir.path()).unwrap();
    let aside = corrupt_files(dir.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(dir.path().join(&aside[0])).unwrap(), garbage);
    store
        .append_event(&event(t(0), "decision", None, "works"))
        .unwrap();
    store.put_state("k", &json!(1)).unwrap();
    drop(store);
    assert_eq!(
        Store::open(dir.path()).unwrap().get_state("k").unwrap(),
        Some(json!(1))
    );
}

#[test]
fn a_short_garbage_file_is_corrupt_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.db"), b"not sqlite\n").unwrap();
    let error = Store::open(dir.path()).unwrap_err();
    assert!(error.is_corrupt(), "{error:?}");
    Store::open_or_recover(dir.path()).unwrap();
    assert_eq!(corrupt_files(dir.path()).len(), 1);
}

#[test]
fn a_damaged_page_is_found_at_open_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for i in 0..200 {
            store
                .append_event(&event(t(i), "decision", Some("camera"), &"x".repeat(500)))
                .unwrap();
        }
    }
    // Closing the last connection checkpoints the WAL into the file.
    let path = dir.path().join("state.db");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 16 * 4096, "{} bytes", bytes.len());
    for byte in &mut bytes[4096..16 * 4096] {
        *byte = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();

    let error = Store::open(dir.path()).unwrap_err();
    assert!(error.is_corrupt(), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()));
    let store = Store::open_or_recover(dir.path()).unwrap();
    assert!(store.events(&EventQuery::default()).unwrap().is_empty());
    assert_eq!(corrupt_files(dir.path()).len(), 1);
}

#[test]
fn an_unopenable_directory_is_an_error_naming_it_not_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    // The state "directory" is a file.
    let not_a_dir = dir.path().join("state");
    std::fs::write(&not_a_dir, b"").unwrap();
    let error = Store::open_or_recover(&not_a_dir).unwrap_err();
    assert!(matches!(error, StoreError::Io { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&not_a_dir.display().to_string()),
        "{error}"
    );
}

#[test]
fn the_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("new/state-dir");
    let store = Store::open(&state).unwrap();
    store
        .append_event(&event(t(0), "decision", None, "x"))
        .unwrap();
    let mode = |name: &str| {
        std::fs::metadata(state.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("state.db"), 0o600);
    // SQLite gives the log the database file's mode.
    assert_eq!(mode("state.db-wal"), 0o600);
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(store.path(), Some(state.join("state.db").as_path()));
    drop(store);

    // A file left readable by others is made private.
    let path = state.join("state.db");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    Store::open(&state).unwrap();
    assert_eq!(mode("state.db"), 0o600);
}

#[test]
fn an_empty_version_0_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        // What an older build, or an interrupted first start, leaves: a
        // valid SQLite file at user_version 0 with no tables.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE scratch (x); DROP TABLE scratch;")
            .unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, 0);
    }
    let store = Store::open(dir.path()).unwrap();
    store
        .append_event(&event(t(0), "decision", None, "x"))
        .unwrap();
    store.put_state("k", &json!([1])).unwrap();
    store.record_boot("b", t(0)).unwrap();
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert!(version >= 1);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "WAL mode is persistent");
}

#[test]
fn a_database_from_a_newer_watchdog_is_refused_then_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 9999).unwrap();
    }
    let error = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, StoreError::TooNew { found: 9999, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&path.display().to_string()));

    Store::open_or_recover(dir.path()).unwrap();
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("state.db.newer-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}

#[test]
fn the_boot_id_comes_from_the_host_root() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(current_boot_id(root.path()), "unknown-boot");
    let dir = root.path().join("proc/sys/kernel/random");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("boot_id"),
        "5f1e7c6a-8d52-4a7e-9b0e-2f3d4c5b6a70\n",
    )
    .unwrap();
    assert_eq!(
        current_boot_id(root.path()),
        "5f1e7c6a-8d52-4a7e-9b0e-2f3d4c5b6a70"
    );
    // This machine's own, when there is one.
    if Path::new("/proc/sys/kernel/random/boot_id").exists() {
        assert_ne!(current_boot_id(Path::new("/")), "unknown-boot");
    }
}

#[test]
fn a_new_file_has_small_pages_and_an_old_one_keeps_its_own() {
    let page_size = |path: &Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap()
    };
    // A new file: 1 KiB pages, so a commit's few pages a table write little.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append_event(&event(t(0), "decision", None, "x"))
        .unwrap();
    drop(store);
    assert_eq!(page_size(&dir.path().join("state.db")), 1024);
    // A file made with 4 KiB pages opens as it is, its rows intact.
    let old = tempfile::tempdir().unwrap();
    let path = old.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.execute_batch("CREATE TABLE t (x); DROP TABLE t;")
            .unwrap();
    }
    let store = Store::open(old.path()).unwrap();
    store
        .append_event(&event(t(0), "decision", None, "kept"))
        .unwrap();
    drop(store);
    assert_eq!(page_size(&path), 4096);
    let store = Store::open(old.path()).unwrap();
    let rows = store.events(&Default::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].message, "kept");
}
