//! The bus is killed under the watchdog: it reconnects, subscribes again,
//! sees the next unit failure, and its health shows the gap. A test binary
//! of its own: systemd 252 can stall for 90 s when its bus dies while units
//! change state (systemd#21177), so nothing else may run around a bus kill,
//! and these tests take turns.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use rvm_watchdog::supervisor::{BusTarget, Supervisor};
use support::daemon::try_http_get;
use support::systemd::{PrivateSystemd, wait_until};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
/// The tests take turns (one async, one not: a Tokio mutex serves both).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// Kills the bus daemon (socket activation starts a new one for the next client).
fn kill_bus(sd: &PrivateSystemd) -> u32 {
    let old = sd.bus_daemon_pid();
    assert_ne!(old, 0);
    kill9(old);
    old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_reconnects_and_sees_the_next_failure() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let unit = "bl-crash.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());

    let (tx, mut events) = mpsc::channel(256);
    let stop = CancellationToken::new();
    let supervisor = Supervisor::spawn(
        BusTarget::Address(sd.bus_address()),
        BTreeSet::from([unit.to_owned()]),
        tx,
        stop.clone(),
    );
    let mut status = supervisor.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.connected))
        .await
        .unwrap()
        .unwrap();
    let first = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.state.active_state, "active");

    let old_bus = kill_bus(sd);
    tokio::time::timeout(WAIT, status.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    let gap = status.borrow().clone();
    assert!(gap.last_error.is_some(), "{gap:?}");
    tokio::time::timeout(WAIT, status.wait_for(|s| s.connected))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.borrow().reconnects, 1);
    assert_ne!(sd.bus_daemon_pid(), old_bus, "a new bus daemon took over");

    // Subscribed again: the next crash is seen.
    let pid = sd.main_pid(unit);
    kill9(pid);
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            let e = events.recv().await.unwrap();
            if e.state.unit == unit && e.failure().is_some() {
                return e;
            }
        }
    })
    .await
    .expect("the crash after the reconnect is seen");
    assert_eq!(failed.failure(), Some("signal"));
    stop.cancel();
    sd.systemctl(&["reset-failed", unit]);
}

#[test]
fn the_daemon_shows_the_gap_on_health_and_keeps_running() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.blocking_lock();
    let unit = "bl-daemon.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());

    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        "[daemon]\nbus = \"user\"\n\n[log]\noutput = \"stderr\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/app.toml"),
        format!("[target]\nname = \"app\"\nunit = \"{unit}\"\n"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.join("daemon.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvm-watchdog"))
        .arg("run")
        .arg("--config")
        .arg(dir.join("watchdog.toml"))
        .arg("--policies")
        .arg(dir.join("policies"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", &addr.to_string()])
        .env("DBUS_SESSION_BUS_ADDRESS", sd.bus_address())
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let health = || -> Option<serde_json::Value> {
        let (_, _, body) = try_http_get(addr, "/health").ok()?;
        serde_json::from_str(&body).ok()
    };
    let connection = |h: &serde_json::Value| h["checks"]["systemd:connection"][0].clone();

    let up = wait_until("health shows the unit running", WAIT, || {
        health().filter(|h| h["targets"][0]["unitState"]["activeState"] == "active")
    })
    .unwrap();
    assert_eq!(up["status"], "pass");
    assert_eq!(connection(&up)["status"], "pass");
    assert_eq!(connection(&up)["reconnects"], 0);

    kill_bus(sd);
    let back = wait_until("health shows a reconnect", WAIT, || {
        health().filter(|h| connection(h)["reconnects"] == 1 && connection(h)["status"] == "pass")
    })
    .unwrap();
    let output = connection(&back)["output"].as_str().unwrap().to_owned();
    assert!(output.contains("last error:"), "the gap is shown: {output}");

    // Still supervising: a crash after the reconnect reaches /health and the log.
    kill9(sd.main_pid(unit));
    wait_until("health shows the failure", WAIT, || {
        health().filter(|h| h["targets"][0]["unitState"]["result"] == "signal")
    })
    .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("not connected to systemd; retrying with backoff"),
        "{text}"
    );
    assert!(
        text.contains("connected to systemd again on the session bus (reconnect 1)"),
        "the way back is told too: {text}"
    );
    assert!(
        text.contains(&format!("unit {unit} failed: signal")),
        "{text}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    sd.systemctl(&["reset-failed", unit]);
}
