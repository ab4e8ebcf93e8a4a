//! systemd's notification protocol: `READY=1` once serving, `STATUS=` with a
//! one-line summary, `WATCHDOG=1` from the core loop, `STOPPING=1` at exit.
//! Without `NOTIFY_SOCKET` (not run by systemd) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// systemd's `WatchdogSec=` for this process, when set.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Tells systemd the daemon is up, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the status line shown by `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Pings systemd's watchdog. Called only by the core loop, so a wedged loop stops pinging.
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}
