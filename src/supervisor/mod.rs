//! Supervision of systemd units over D-Bus.
//!
//! The **supervisor** is one task that owns the bus connection. It reads
//! each watched unit's state at start, then follows systemd's
//! `PropertiesChanged` signals, so a crash is seen within milliseconds; a
//! slow periodic re-read is only a safety net. Each change becomes a
//! [`UnitChanged`] event. **Actions** (start, stop, restart, reset-failed,
//! kill) run beside the loop and, for jobs, return only once systemd's
//! `JobRemoved` says how the job ended. When the bus goes away the
//! supervisor reconnects with backoff, subscribes again and re-reads every
//! unit; [`BusStatus`] shows the gap meanwhile.

mod dbus;
pub mod perform;
pub mod runner;
mod systemd;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use dbus::unit_path;

/// Which bus to find systemd on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTarget {
    /// The system bus (production).
    System,
    /// The session bus of `DBUS_SESSION_BUS_ADDRESS` (a user manager).
    Session,
    /// An explicit D-Bus address, e.g. `unix:path=/run/user/0/bus`.
    Address(String),
}

impl BusTarget {
    /// For logs and `/health`.
    pub fn describe(&self) -> String {
        match self {
            BusTarget::System => "system bus".into(),
            BusTarget::Session => "session bus".into(),
            BusTarget::Address(a) => format!("bus {a}"),
        }
    }
}

/// A unit's state as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitState {
    /// The unit's name.
    pub unit: String,
    /// `loaded`, `not-found`, `masked`, `error`, …
    pub load_state: String,
    /// `active`, `activating`, `deactivating`, `inactive`, `failed`, `reloading`.
    pub active_state: String,
    /// e.g. `running`, `dead`, `auto-restart`, `exited`.
    pub sub_state: String,
    /// Services: `success`, `exit-code`, `signal`, `core-dump`, `watchdog`,
    /// `timeout`, `start-limit-hit`, …; empty for other unit types.
    pub result: String,
    /// The main process, 0 when none.
    pub main_pid: u32,
    /// Restarts systemd itself made (`Restart=`).
    pub n_restarts: u32,
    /// How the main process last ended: 1 exited, 2 killed, 3 dumped core (0: not yet).
    pub exec_main_code: i32,
    /// Its exit status or signal number.
    pub exec_main_status: i32,
    /// `StartLimitBurst=`: starts systemd allows within its interval (read
    /// with the unit; 0 when unknown).
    pub start_limit_burst: u32,
}

impl UnitState {
    /// An empty state for a unit not read yet.
    pub fn unknown(unit: &str) -> Self {
        Self {
            unit: unit.to_owned(),
            load_state: String::new(),
            active_state: String::new(),
            sub_state: String::new(),
            result: String::new(),
            main_pid: 0,
            n_restarts: 0,
            exec_main_code: 0,
            exec_main_status: 0,
            start_limit_burst: 0,
        }
    }

    /// Why the unit is failing, when it is: its `Result` while it is
    /// `failed` or waiting in `auto-restart`. A clean exit is not a failure.
    pub fn failure(&self) -> Option<&str> {
        let down = self.active_state == "failed" || self.sub_state == "auto-restart";
        (down && !self.result.is_empty() && self.result != "success")
            .then_some(self.result.as_str())
    }

    /// One line for logs: `active/running pid 123`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}/{}", self.active_state, self.sub_state);
        if self.main_pid != 0 {
            s.push_str(&format!(" pid {}", self.main_pid));
        }
        if !self.result.is_empty() && self.result != "success" {
            s.push_str(&format!(" result {}", self.result));
        }
        s
    }
}

/// A watched unit changed.
#[derive(Debug, Clone)]
pub struct UnitChanged {
    /// The state now.
    pub state: UnitState,
    /// The state before, when known.
    pub previous: Option<UnitState>,
    /// When the change was seen (monotonic).
    pub at: Instant,
}

impl UnitChanged {
    /// Why the unit is failing, when it is (see [`UnitState::failure`]).
    pub fn failure(&self) -> Option<&str> {
        self.state.failure()
    }
}

/// Resource use of a unit, as systemd accounts it. `None` when accounting is off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitAccounting {
    /// Bytes of memory (cgroup).
    pub memory_bytes: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_nanos: Option<u64>,
    /// Tasks (threads and processes).
    pub tasks: Option<u64>,
    /// Restarts systemd made.
    pub n_restarts: u32,
}

/// Which processes of a unit a kill reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillWhom {
    /// The main process only.
    Main,
    /// Every process of the unit.
    All,
}

/// Something the supervisor does to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitAction {
    /// Start it (a job).
    Start,
    /// Stop it (a job).
    Stop,
    /// Restart it (a job).
    Restart,
    /// Clear its failed state and start-limit counter.
    ResetFailed,
    /// Start `reboot.target` irreversibly: the machine reboots through
    /// systemd's orderly shutdown. Returns once systemd took the job.
    Reboot,
    /// Send a signal.
    Kill {
        /// To which processes.
        whom: KillWhom,
        /// Signal number.
        signal: i32,
    },
}

impl UnitAction {
    /// The action's name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            UnitAction::Start => "start",
            UnitAction::Stop => "stop",
            UnitAction::Restart => "restart",
            UnitAction::ResetFailed => "reset-failed",
            UnitAction::Reboot => "reboot",
            UnitAction::Kill { .. } => "kill",
        }
    }
}

/// An action that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDone {
    /// The job's result (`done`) for job actions.
    pub job_result: Option<String>,
    /// How long it took, call to job end.
    pub took: Duration,
}

/// Why an action failed, classified so recovery can decide what next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The unit does not exist (not loaded, no unit file).
    #[error("unit {0} does not exist")]
    NoSuchUnit(String),
    /// systemd ran the job and it did not succeed.
    #[error("the {action} job of {unit} ended with \"{result}\"{detail}")]
    JobFailed {
        /// The unit.
        unit: String,
        /// The action.
        action: &'static str,
        /// The job result: failed, canceled, timeout, dependency, skipped.
        result: String,
        /// The unit's own result, when known, e.g. " (unit result exit-code)".
        detail: String,
    },
    /// Not allowed (polkit, or not root on the system bus).
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// systemd refused the request for another reason (masked unit, bad state).
    #[error("systemd refused: {0}")]
    Refused(String),
    /// The bus connection is gone; the supervisor is reconnecting.
    #[error("not connected to systemd: {0}")]
    BusLost(String),
    /// No answer or no job end within the time allowed.
    #[error("no result within {0:?}")]
    Timeout(Duration),
}

impl ActionError {
    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ActionError::BusLost(_) | ActionError::Timeout(_) | ActionError::JobFailed { .. }
        )
    }

    /// A short name of the kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionError::NoSuchUnit(_) => "no-such-unit",
            ActionError::JobFailed { .. } => "job-failed",
            ActionError::AccessDenied(_) => "access-denied",
            ActionError::Refused(_) => "refused",
            ActionError::BusLost(_) => "bus-lost",
            ActionError::Timeout(_) => "timeout",
        }
    }
}

/// The supervisor's connection, as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusStatus {
    /// Which bus.
    pub bus: String,
    /// Connected and subscribed now.
    pub connected: bool,
    /// Since when (connected or not).
    pub since: SystemTime,
    /// Times the connection was re-established after a loss.
    pub reconnects: u64,
    /// Why it was last lost or could not be made.
    pub last_error: Option<String>,
}

pub(crate) enum Request {
    Act {
        unit: String,
        action: UnitAction,
        timeout: Duration,
        reply: oneshot::Sender<Result<ActionDone, ActionError>>,
    },
    Watch {
        units: BTreeSet<String>,
    },
    State {
        unit: String,
        reply: oneshot::Sender<Option<UnitState>>,
    },
    Accounting {
        unit: String,
        reply: oneshot::Sender<Result<UnitAccounting, ActionError>>,
    },
}

/// A handle to the supervisor task. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<BusStatus>,
}

/// How often every watched unit is re-read even without signals.
pub const SAFETY_POLL: Duration = Duration::from_secs(30);

impl Supervisor {
    /// Starts the supervisor task for `units`; changes go to `events`. It
    /// runs until `shutdown` is cancelled.
    pub fn spawn(
        bus: BusTarget,
        units: BTreeSet<String>,
        events: mpsc::Sender<UnitChanged>,
        shutdown: CancellationToken,
    ) -> Supervisor {
        let (requests_tx, requests_rx) = mpsc::channel(64);
        let (status_tx, status_rx) = watch::channel(BusStatus {
            bus: bus.describe(),
            connected: false,
            since: SystemTime::now(),
            reconnects: 0,
            last_error: None,
        });
        tokio::spawn(systemd::run(systemd::Task {
            bus,
            watched: units,
            events,
            requests: requests_rx,
            status: status_tx,
            shutdown,
        }));
        Supervisor {
            requests: requests_tx,
            status: status_rx,
        }
    }

    /// Performs an action and returns once it is done (jobs: once systemd's
    /// job ended) or `timeout` passed.
    pub async fn act(
        &self,
        unit: &str,
        action: UnitAction,
        timeout: Duration,
    ) -> Result<ActionDone, ActionError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Act {
            unit: unit.to_owned(),
            action,
            timeout,
            reply,
        };
        if self.requests.send(request).await.is_err() {
            return Err(ActionError::BusLost("the supervisor has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ActionError::BusLost("the supervisor has stopped".into())))
    }

    /// Replaces the set of watched units (after a reload).
    pub async fn watch(&self, units: BTreeSet<String>) {
        let _ = self.requests.send(Request::Watch { units }).await;
    }

    /// The last known state of a watched unit.
    pub async fn state(&self, unit: &str) -> Option<UnitState> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::State {
                unit: unit.to_owned(),
                reply,
            })
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// Resource use of a unit, read from systemd now.
    pub async fn accounting(&self, unit: &str) -> Result<UnitAccounting, ActionError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Accounting {
            unit: unit.to_owned(),
            reply,
        };
        if self.requests.send(request).await.is_err() {
            return Err(ActionError::BusLost("the supervisor has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ActionError::BusLost("the supervisor has stopped".into())))
    }

    /// The connection's status, updated as it changes.
    pub fn status(&self) -> watch::Receiver<BusStatus> {
        self.status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: &str, sub: &str, result: &str) -> UnitState {
        UnitState {
            active_state: active.into(),
            sub_state: sub.into(),
            result: result.into(),
            ..UnitState::unknown("a.service")
        }
    }

    #[test]
    fn failures_are_failed_or_auto_restart_with_a_bad_result() {
        assert_eq!(
            state("failed", "failed", "signal").failure(),
            Some("signal")
        );
        assert_eq!(
            state("activating", "auto-restart", "exit-code").failure(),
            Some("exit-code")
        );
        assert_eq!(
            state("failed", "failed", "start-limit-hit").failure(),
            Some("start-limit-hit")
        );
        assert_eq!(
            state("inactive", "dead", "success").failure(),
            None,
            "a clean exit"
        );
        assert_eq!(state("active", "running", "success").failure(), None);
        assert_eq!(
            state("deactivating", "stop-sigterm", "success").failure(),
            None
        );
    }

    #[test]
    fn retryable_errors() {
        assert!(ActionError::BusLost("x".into()).retryable());
        assert!(ActionError::Timeout(Duration::from_secs(1)).retryable());
        assert!(!ActionError::NoSuchUnit("x".into()).retryable());
        assert!(!ActionError::AccessDenied("x".into()).retryable());
    }
}
