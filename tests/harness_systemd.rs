//! Proves that the private systemd harness (`tests/support/systemd.rs`)
//! works: units start and fail for real, their output reaches the private
//! journal, `Type=notify` works, and the bus daemon can be killed and comes
//! back with systemd on it.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use support::systemd::{PrivateSystemd, journal_field, wait_until};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Tests that only start and stop their own units hold this for reading;
/// the test that kills the bus holds it for writing, so that no unit changes
/// state around the bus's death: systemd 252 can then block its whole main
/// loop for 90 s (systemd/systemd#21177), failing every test that talks to it.
static BUS_KILL: RwLock<()> = RwLock::new(());

fn unit_activity() -> RwLockReadGuard<'static, ()> {
    BUS_KILL.read().unwrap_or_else(PoisonError::into_inner)
}

fn no_unit_activity() -> RwLockWriteGuard<'static, ()> {
    BUS_KILL.write().unwrap_or_else(PoisonError::into_inner)
}

/// The shared manager, or `None` (with a notice) where it cannot run here.
fn manager() -> Option<&'static PrivateSystemd> {
    let manager = PrivateSystemd::shared();
    match manager {
        Some(m) => eprintln!(
            "private systemd in {} (started in {:?})",
            m.home().display(),
            m.startup_time()
        ),
        None => eprintln!("skipping: no private systemd manager on this machine (see above)"),
    }
    manager
}

/// A name no other test (or run) uses: `PREFIX-PID-N-NANOS`.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid.try_into().unwrap()), Signal::SIGKILL)
        .unwrap_or_else(|e| panic!("kill -9 {pid}: {e}"));
}

fn start(sd: &PrivateSystemd, unit: &str) {
    let output = sd.systemctl(&["start", unit]);
    assert!(
        output.status.success(),
        "systemctl --user start {unit}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn killed_unit_fails_with_result_signal() {
    let Some(sd) = manager() else { return };
    let _guard = unit_activity();
    let unit = format!("{}.service", unique("rvmwd-sleep"));
    sd.write_unit(&unit, "[Service]\nExecStart=/bin/sleep 300\n");
    start(sd, &unit);
    sd.wait_for_property(&unit, "ActiveState", "active", TIMEOUT)
        .unwrap();

    let pid = sd.main_pid(&unit);
    assert_ne!(pid, 0, "{unit} is active but has no MainPID");
    sigkill(pid);

    sd.wait_for_property(&unit, "ActiveState", "failed", TIMEOUT)
        .unwrap();
    assert_eq!(sd.show(&unit, "Result"), "signal");
    // The manager's own messages reach the private journal too.
    let entries = sd
        .wait_for_journal(
            |e| {
                journal_field(e, "USER_UNIT").as_deref() == Some(unit.as_str())
                    && journal_field(e, "UNIT_RESULT").as_deref() == Some("signal")
            },
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    sd.systemctl(&["reset-failed", &unit]);
}

#[test]
fn unit_stdout_reaches_the_journal() {
    let Some(sd) = manager() else { return };
    let _guard = unit_activity();
    let marker = unique("rvmwd-marker");
    let unit = format!("{}.service", unique("rvmwd-echo"));
    sd.write_unit(&unit, &format!("[Service]\nExecStart=/bin/echo {marker}\n"));
    start(sd, &unit);

    let is_marker = |e: &Value| journal_field(e, "MESSAGE").as_deref() == Some(marker.as_str());
    let entries = sd.wait_for_journal(is_marker, TIMEOUT).unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(
        journal_field(&entries[0], "_TRANSPORT").as_deref(),
        Some("stdout")
    );

    sd.wait_for_property(&unit, "ActiveState", "inactive", TIMEOUT)
        .unwrap();
    assert_eq!(sd.show(&unit, "Result"), "success");
}

#[test]
fn notify_unit_becomes_active() {
    let Some(sd) = manager() else { return };
    let _guard = unit_activity();
    let unit = format!("{}.service", unique("rvmwd-notify"));
    sd.write_unit(
        &unit,
        "[Service]\n\
         Type=notify\n\
         NotifyAccess=all\n\
         ExecStart=/bin/sh -c 'systemd-notify --ready; exec sleep 300'\n",
    );
    // For Type=notify, `systemctl start` returns once READY=1 arrived.
    start(sd, &unit);
    assert_eq!(sd.show(&unit, "ActiveState"), "active");
    assert_eq!(sd.show(&unit, "SubState"), "running");
    assert_ne!(sd.main_pid(&unit), 0);

    let output = sd.systemctl(&["stop", &unit]);
    assert!(output.status.success());
    assert_eq!(sd.show(&unit, "ActiveState"), "inactive");
}

/// What `org.freedesktop.systemd1` answers on the bus for `Version`, if it
/// answers.
fn systemd_on_bus(sd: &PrivateSystemd) -> Option<String> {
    let output = Command::new("busctl")
        .args(["--user", "--timeout=2", "get-property"])
        .args([
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "Version",
        ])
        .envs(sd.env())
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[test]
fn killed_bus_comes_back_with_systemd_on_it() {
    let Some(sd) = manager() else { return };
    let _guard = no_unit_activity();
    assert!(systemd_on_bus(sd).is_some(), "systemd is not on the bus");
    let old = sd.bus_daemon_pid();
    assert_ne!(old, 0, "dbus.service has no MainPID");
    sigkill(old);

    // dbus.service is socket-activated: the next client connecting to the
    // bus socket starts a new bus daemon, and systemd gets back onto it.
    let version = wait_until("systemd back on a new bus", TIMEOUT, || systemd_on_bus(sd)).unwrap();
    let new = sd.bus_daemon_pid();
    assert!(new != 0 && new != old, "bus daemon was {old}, now {new}");
    eprintln!("bus daemon {old} killed, {new} took over; systemd answers {version}");
}
