//! Carrying out a ladder step, and what the engine learns from systemd.
//!
//! [`unit_health`] turns a unit's state into a target's [`Health`];
//! [`perform`] runs one action and reports whether it worked. Both are
//! called by the daemon's core loop; the action runs off the loop.

use std::time::Duration;

use crate::config::{Action, Target};
use crate::recovery::Health;
use crate::supervisor::{KillWhom, Supervisor, UnitAction, UnitState};

/// How long a systemd job of a recovery action may take.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// A target's health as its unit's state says.
pub fn unit_health(state: &UnitState) -> Health {
    if let Some(why) = state.failure() {
        return Health::Failing {
            reason: format!("unit {} failed ({why})", state.unit),
            systemd_restarting: state.sub_state == "auto-restart",
        };
    }
    match state.active_state.as_str() {
        "active" | "reloading" => Health::Healthy,
        "inactive" | "failed" if state.load_state == "not-found" => Health::Failing {
            reason: format!("unit {} does not exist", state.unit),
            systemd_restarting: false,
        },
        "inactive" => Health::Failing {
            reason: format!("unit {} is not running", state.unit),
            systemd_restarting: false,
        },
        "failed" => Health::Failing {
            reason: format!("unit {} failed", state.unit),
            systemd_restarting: false,
        },
        // activating, deactivating: wait for where it settles.
        _ => Health::Unknown,
    }
}

/// The outcome of one action, for the log and the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performed {
    /// Whether it worked.
    pub ok: bool,
    /// One line: what was done, or why it failed.
    pub detail: String,
}

/// Runs one action of `target`'s ladder. `unit_state`: the unit's last
/// known state (a failed unit is reset before it is restarted, which also
/// rescues one systemd gave up on with `start-limit-hit`).
pub async fn perform(
    supervisor: Option<&Supervisor>,
    target: &Target,
    action: &Action,
    unit_state: Option<&UnitState>,
) -> Performed {
    let fail = |detail: String| Performed { ok: false, detail };
    match action {
        Action::Restart => {
            let Some(unit) = target.unit() else {
                return fail(format!("target {} has no unit to restart", target.name));
            };
            let Some(supervisor) = supervisor else {
                return fail("not supervising systemd".into());
            };
            restart_unit(supervisor, unit, unit_state).await
        }
        Action::RestartUnits(units) => {
            let Some(supervisor) = supervisor else {
                return fail("not supervising systemd".into());
            };
            let mut done = Vec::new();
            for unit in units {
                let outcome = restart_unit(supervisor, unit, None).await;
                if !outcome.ok {
                    return outcome;
                }
                done.push(unit.as_str());
            }
            Performed {
                ok: true,
                detail: format!("restarted {}", done.join(", ")),
            }
        }
        Action::Kill(signal) => {
            let (Some(unit), Some(supervisor)) = (target.unit(), supervisor) else {
                return fail(format!("target {} has no unit to signal", target.name));
            };
            match supervisor
                .act(
                    unit,
                    UnitAction::Kill {
                        whom: KillWhom::Main,
                        signal: *signal as i32,
                    },
                    JOB_TIMEOUT,
                )
                .await
            {
                Ok(_) => Performed {
                    ok: true,
                    detail: format!("sent {signal} to the main process of {unit}"),
                },
                Err(e) => fail(e.to_string()),
            }
        }
        Action::Hook { name, .. } => fail(format!(
            "hook {name}: running hooks is not available in this version"
        )),
        Action::Reboot { .. } => fail("reboot: not available in this version".into()),
    }
}

async fn restart_unit(supervisor: &Supervisor, unit: &str, state: Option<&UnitState>) -> Performed {
    let state = match state {
        Some(s) => Some(s.clone()),
        None => supervisor.state(unit).await,
    };
    if state.as_ref().is_some_and(|s| s.active_state == "failed")
        && let Err(e) = supervisor
            .act(unit, UnitAction::ResetFailed, JOB_TIMEOUT)
            .await
    {
        return Performed {
            ok: false,
            detail: format!("reset-failed of {unit}: {e}"),
        };
    }
    match supervisor.act(unit, UnitAction::Restart, JOB_TIMEOUT).await {
        Ok(done) => Performed {
            ok: true,
            detail: format!("restarted {unit} in {} ms", done.took.as_millis()),
        },
        Err(e) => Performed {
            ok: false,
            detail: e.to_string(),
        },
    }
}
