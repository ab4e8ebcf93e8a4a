//! The daemon as a unit of a real systemd: `Type=notify` readiness,
//! `STATUS=`, watchdog pings, and structured journald fields read back with
//! `journalctl -D … -o json`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::daemon::http_get;
use support::systemd::{PrivateSystemd, journal_field, wait_until};

const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the daemon's files and its unit; returns the unit name and API port.
fn install(sd: &PrivateSystemd, dir: &Path, name: &str, port: u16, extra: &str) -> String {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        "[daemon]\nbus = \"user\"\n\n[log]\nlevel = \"debug\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/camera.toml"),
        format!("[target]\nname = \"camera\"\nunit = \"{name}-camera.service\"\n"),
    )
    .unwrap();
    let unit = format!("{name}.service");
    sd.write_unit(
        &unit,
        &format!(
            "[Service]\nType=notify\nExecStart={bin} run --config {dir}/watchdog.toml --policies {dir}/policies \
             --state-dir {dir}/state --listen 127.0.0.1:{port}\n{extra}",
            bin = env!("CARGO_BIN_EXE_rvm-watchdog"),
            dir = dir.display(),
        ),
    );
    unit
}

/// An entry the daemon of `unit` logged. journald files a user manager's
/// units under their cgroup (`…/app.slice/<unit>`), not under `_SYSTEMD_UNIT`.
fn ours(entry: &Value, unit: &str) -> bool {
    journal_field(entry, "SYSLOG_IDENTIFIER").as_deref() == Some("rvm-watchdog")
        && journal_field(entry, "_SYSTEMD_CGROUP").is_some_and(|c| c.ends_with(&format!("/{unit}")))
}

#[test]
fn ready_after_serving_status_and_structured_journal_fields() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let port = free_port();
    let unit = install(sd, temp.path(), "wd-notify", port, "WatchdogSec=3s\n");

    // `systemctl start` of a Type=notify unit returns once READY=1 arrived:
    // by then the API must answer.
    let out = sd.systemctl(&["start", &unit]);
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sd.show(&unit, "ActiveState"), "active");
    let (code, content_type, body) =
        http_get(format!("127.0.0.1:{port}").parse().unwrap(), "/health");
    assert_eq!(code, 200, "{body}");
    assert_eq!(content_type, "application/health+json");
    assert_eq!(
        sd.show(&unit, "StatusText"),
        "watching 1 target(s); configuration generation 1"
    );

    // Watchdog pings keep coming from the core loop.
    let first = sd.show(&unit, "WatchdogTimestampMonotonic");
    wait_until("a later watchdog ping", WAIT, || {
        (sd.show(&unit, "WatchdogTimestampMonotonic") != first).then_some(())
    })
    .unwrap();

    // Structured fields, without a prefix; a line about a unit carries OBJECT_SYSTEMD_UNIT.
    let camera_unit = "wd-notify-camera.service";
    let lines = sd
        .wait_for_journal(
            |e| {
                ours(e, &unit)
                    && journal_field(e, "MESSAGE").as_deref() == Some("watching target camera")
            },
            WAIT,
        )
        .unwrap();
    let line = &lines[0];
    assert_eq!(
        journal_field(line, "TARGET_NAME").as_deref(),
        Some("camera")
    );
    assert_eq!(
        journal_field(line, "OBJECT_SYSTEMD_UNIT").as_deref(),
        Some(camera_unit)
    );
    assert_eq!(journal_field(line, "KIND").as_deref(), Some("unit"));
    assert_eq!(
        journal_field(line, "PRIORITY").as_deref(),
        Some("6"),
        "info is priority 6"
    );
    let fields: Vec<&String> = line.as_object().unwrap().keys().collect();
    assert!(
        !fields.iter().any(|f| f.starts_with("F_")),
        "no F_ prefix on fields: {fields:?}"
    );

    // Debug lines are priority 7, so `journalctl -p info` leaves them out.
    let debug = sd
        .wait_for_journal(
            |e| {
                ours(e, &unit) && journal_field(e, "MESSAGE").as_deref() == Some("core loop timing")
            },
            WAIT,
        )
        .unwrap();
    assert_eq!(journal_field(&debug[0], "PRIORITY").as_deref(), Some("7"));
    assert_eq!(
        journal_field(&debug[0], "SYSTEMD_WATCHDOG_MS").as_deref(),
        Some("3000")
    );
    let info_only = Command::new("journalctl")
        .arg("--directory")
        .arg(sd.journal_dir())
        .args([
            "-p",
            "info",
            "-o",
            "json",
            "--no-pager",
            "--quiet",
            "SYSLOG_IDENTIFIER=rvm-watchdog",
        ])
        .output()
        .unwrap();
    let info_only = String::from_utf8_lossy(&info_only.stdout);
    assert!(info_only.contains("watching target camera"));
    assert!(
        !info_only.contains("core loop timing"),
        "journalctl -p info shows no debug lines"
    );

    let out = sd.systemctl(&["stop", &unit]);
    assert!(out.status.success());
    assert_eq!(sd.show(&unit, "Result"), "success");
}

#[test]
fn a_daemon_that_cannot_serve_never_becomes_active() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let unit = install(sd, temp.path(), "wd-noserve", port, "");
    let out = sd.systemctl(&["start", &unit]);
    assert!(
        !out.status.success(),
        "start must fail when the API cannot listen"
    );
    sd.wait_for_property(&unit, "ActiveState", "failed", WAIT)
        .unwrap();
    assert_eq!(sd.show(&unit, "Result"), "exit-code");
    let lines = sd
        .wait_for_journal(
            |e| {
                journal_field(e, "MESSAGE")
                    .is_some_and(|m| m.contains(&format!("cannot listen on 127.0.0.1:{port}")))
            },
            WAIT,
        )
        .unwrap();
    assert!(!lines.is_empty());
    sd.systemctl(&["reset-failed", &unit]);
}

#[test]
fn a_wedged_daemon_stops_pinging_and_systemd_notices() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let port = free_port();
    let unit = install(sd, temp.path(), "wd-wedge", port, "WatchdogSec=2s\n");
    let out = sd.systemctl(&["start", &unit]);
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Freeze the daemon: no core loop, no pings.
    let pid = sd.main_pid(&unit);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    sd.wait_for_property(&unit, "Result", "watchdog", WAIT)
        .unwrap();
    sd.wait_for_property(&unit, "ActiveState", "failed", WAIT)
        .unwrap();
    sd.systemctl(&["reset-failed", &unit]);
}

#[test]
fn health_follows_the_supervised_unit_and_its_restart_count() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let port = free_port();
    let app = "wd-acct-app.service";
    sd.write_unit(
        app,
        "[Service]\nExecStart=/bin/sleep 300\nRestart=always\nRestartSec=100ms\n",
    );
    assert!(sd.systemctl(&["start", app]).status.success());
    let unit = install(sd, dir, "wd-acct", port, "");
    std::fs::write(
        dir.join("watchdog.toml"),
        "[daemon]\nbus = \"user\"\n\n[metrics]\ninterval = \"1s\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/camera.toml"),
        format!("[target]\nname = \"app\"\nunit = \"{app}\"\n"),
    )
    .unwrap();
    assert!(sd.systemctl(&["start", &unit]).status.success());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let health = || -> Option<Value> {
        let (_, _, body) = support::daemon::try_http_get(addr, "/health").ok()?;
        serde_json::from_str(&body).ok()
    };
    let up = wait_until("the unit running on /health", WAIT, || {
        health().filter(|h| h["targets"][0]["unitState"]["activeState"] == "active")
    })
    .unwrap();
    assert_eq!(up["checks"]["systemd:connection"][0]["status"], "pass");
    assert_eq!(up["status"], "pass");

    let pid = sd.main_pid(app);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = wait_until("one restart counted on /health", WAIT, || {
        health().filter(|h| {
            h["targets"][0]["unitState"]["nRestarts"] == 1
                && h["targets"][0]["unitState"]["activeState"] == "active"
                && h["targets"][0]["accounting"]["nRestarts"] == 1
        })
    })
    .unwrap();
    assert_ne!(after["targets"][0]["unitState"]["mainPid"], pid);
    // The crash is in the unit's own story in the journal.
    sd.wait_for_journal(
        |e| {
            journal_field(e, "OBJECT_SYSTEMD_UNIT").as_deref() == Some(app)
                && journal_field(e, "MESSAGE")
                    .is_some_and(|m| m == format!("unit {app} failed: signal"))
        },
        WAIT,
    )
    .unwrap();
    sd.systemctl(&["stop", &unit, app]);
}
