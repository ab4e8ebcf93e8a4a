//! Requests to the core loop, from the API, the CLI (through the API) and
//! signals (SIGHUP), with their replies. Replies come back on a `oneshot`
//! once the work is done: an operator's restart answers after systemd's
//! job finished.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::event::Observer;

/// A request to the core loop.
#[derive(Debug)]
pub enum Command {
    /// Re-read and validate everything; apply all or nothing.
    Reload {
        /// The outcome.
        reply: oneshot::Sender<ReloadOutcome>,
    },
    /// An operator's command on a target (API, CLI).
    Operate {
        /// The target's name.
        target: String,
        /// What to do.
        operation: Operation,
        /// The outcome, once the action finished.
        reply: oneshot::Sender<Result<OperationDone, OperationError>>,
    },
    /// Follow the event stream as an observer that may lag: the events that
    /// still hold, then every later one.
    Observe {
        /// The current events and the receiver, taken at the same point.
        reply: oneshot::Sender<Observer>,
    },
    /// Come back to the event stream after the event numbered `after`:
    /// every event since, then every later one; `None` when some of them
    /// are no longer kept.
    Resume {
        /// The last event the observer had.
        after: u64,
        /// What it missed and the receiver, taken at the same point.
        reply: oneshot::Sender<Option<Observer>>,
    },
}

/// An operator's command on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Restart the target now (outside its ladder).
    Restart,
    /// Reset its ladder: it starts over, and a target that gave up acts again.
    Reset,
    /// Run this step of its ladder now (1-based), outside the ladder's count.
    RunStep(usize),
    /// Pause it for maintenance (for this long, or until resumed): watched
    /// and shown, never acted on.
    Pause(Option<Duration>),
    /// End a pause.
    Resume,
}

impl Operation {
    /// `restart`, `reset` or `step`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Restart => "restart",
            Operation::Reset => "reset",
            Operation::RunStep(_) => "step",
            Operation::Pause(_) => "pause",
            Operation::Resume => "resume",
        }
    }
}

/// An operator's command that was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationDone {
    /// Whether the action worked.
    pub ok: bool,
    /// What was done, or why it failed.
    pub detail: String,
    /// How long it took.
    pub took: Duration,
}

/// An operator's command that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    /// No such target.
    #[error("no target named \"{0}\"")]
    UnknownTarget(String),
    /// No such ladder step.
    #[error("target \"{target}\" has {steps} ladder step(s); there is no step {step}")]
    NoSuchStep {
        /// The target.
        target: String,
        /// Steps it has.
        steps: usize,
        /// The step asked for.
        step: usize,
    },
    /// The target has nothing this command can act on.
    #[error("{0}")]
    NotApplicable(String),
    /// The daemon is stopping.
    #[error("the watchdog is stopping")]
    Stopping,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Applied: the new generation and its target count.
    Applied {
        /// Generation number.
        generation: u64,
        /// Targets now watched.
        targets: usize,
    },
    /// Refused: the problems, rendered; the running configuration stays.
    Refused {
        /// `file:line:col: error: …` lines.
        problems: Vec<String>,
    },
}
