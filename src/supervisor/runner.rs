//! The action runner: carries out one action of a target (a ladder's step,
//! or an operator's command) off the core loop and reports how it went on
//! the core loop's channel. The core loop decides; this only performs.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::UnitState;
use super::perform::{ActionContext, Attempt, Performed, perform};
use crate::config::{Action, Target};

/// Who asked for an action.
#[derive(Debug)]
pub enum Origin {
    /// The target's ladder.
    Ladder {
        /// Observe mode: decided, not performed.
        observed: bool,
    },
    /// An operator (API, CLI).
    Operator {
        /// `restart` or `step`.
        command: &'static str,
        /// The step run (0-based), for `step`.
        step: Option<usize>,
        /// Which of the core loop's waiting operators asked.
        ticket: u64,
    },
}

/// An action that finished.
#[derive(Debug)]
pub struct ActionReport {
    /// The target.
    pub target: String,
    /// The action's name.
    pub action: &'static str,
    /// Step (0-based).
    pub step: usize,
    /// Attempt (1-based).
    pub attempt: u32,
    /// How it went.
    pub performed: Performed,
    /// How long it took.
    pub took: Duration,
    /// Who asked for it.
    pub origin: Origin,
}

/// Performs `action` of `target` in a task of its own; the report goes to `reports`.
pub fn spawn(
    ctx: ActionContext,
    target: Target,
    action: Action,
    attempt: Attempt,
    unit_state: Option<UnitState>,
    origin: Origin,
    reports: mpsc::Sender<ActionReport>,
) {
    tokio::spawn(async move {
        let started = Instant::now();
        let performed = perform(&ctx, &target, &action, &attempt, unit_state.as_ref()).await;
        let report = ActionReport {
            target: target.name.clone(),
            action: action.as_str(),
            step: attempt.step,
            attempt: attempt.attempt,
            performed,
            took: started.elapsed(),
            origin,
        };
        // Sent with back-pressure: a report is never dropped.
        let _ = reports.send(report).await;
    });
}

/// The report of an action observe mode decided and did not perform.
pub fn observed(target: &Target, action: &Action, step: usize, attempt: u32) -> ActionReport {
    ActionReport {
        target: target.name.clone(),
        action: action.as_str(),
        step,
        attempt,
        performed: Performed {
            ok: true,
            detail: "observe mode: not performed".into(),
            safe_mode: None,
            process_spawn: None,
            output: None,
        },
        took: Duration::ZERO,
        origin: Origin::Ladder { observed: true },
    }
}
