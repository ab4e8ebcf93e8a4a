//! One target's recovery ladder, as a pure state machine.
//!
//! Every method takes `now` (milliseconds since the Unix epoch) and returns
//! the [`Decision`]s it made; nothing here performs I/O. The daemon acts on
//! `Act` decisions and feeds the outcome back with
//! [`Ladder::action_finished`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff;
use crate::config::{Action, Target};

/// Milliseconds since the Unix epoch: wall-clock time, so that a ladder's
/// position and timers survive a restart of the watchdog.
pub type Ms = u64;

/// What the engine knows of a target's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum Health {
    /// Not known yet, or in between (starting, stopping).
    #[default]
    Unknown,
    /// Healthy.
    Healthy,
    /// Stopped on purpose (an operator's `systemctl stop`): not failing,
    /// not acted on, until it is started again.
    Stopped,
    /// Failing, and why.
    Failing {
        /// One line for people.
        reason: String,
        /// systemd's own restart is pending (`auto-restart`): the watchdog
        /// must not restart the unit itself meanwhile. (Read also under its
        /// old name, from ladders saved by an earlier version.)
        #[serde(alias = "systemd_restarting")]
        systemd_restarting: bool,
    },
}

impl Health {
    /// Whether it is failing.
    pub fn is_failing(&self) -> bool {
        matches!(self, Health::Failing { .. })
    }
}

/// An action started and not yet finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    /// Ladder step (0-based).
    pub step: usize,
    /// Attempt within the step (1-based).
    pub attempt: u32,
    /// Started at.
    pub since: Ms,
}

/// The ladder ran out: actions stop until an operator resets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GaveUp {
    /// When.
    pub at: Ms,
    /// Why, for people.
    pub reason: String,
}

/// A failing period of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Unique id: `<target>-<opened ms>`.
    pub id: String,
    /// Opened at.
    pub opened_at: Ms,
}

/// A target's ladder position and timers. Persisted after every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LadderState {
    /// Current health.
    pub health: Health,
    /// Current step (0-based).
    pub step: usize,
    /// Attempts used in the current step.
    pub attempts: u32,
    /// When the last attempt started.
    pub last_attempt_at: Option<Ms>,
    /// When the next attempt is due, once scheduled.
    pub next_attempt_at: Option<Ms>,
    /// An action under way.
    pub in_flight: Option<InFlight>,
    /// An action succeeded at this time; the target must now stay healthy
    /// for the step's `healthy-for`.
    pub verifying_since: Option<Ms>,
    /// Healthy without interruption since.
    pub healthy_since: Option<Ms>,
    /// Failing without interruption since.
    pub failing_since: Option<Ms>,
    /// Failures are not acted on before this time (start-up grace).
    pub grace_until: Option<Ms>,
    /// Held because a dependency is failing: its name.
    pub held_by: Option<String>,
    /// Gave up.
    pub gave_up: Option<GaveUp>,
    /// The open incident.
    pub incident: Option<Incident>,
    /// Restarts systemd made itself (`Restart=`) counted in the current
    /// step; they count as its attempts but not toward its backoff.
    #[serde(default)]
    pub systemd_restarts: u32,
    /// systemd restarted the unit during this incident: once it stops
    /// restarting it (its start limit, or failed with no restart pending),
    /// the ladder owes the unit a restart of its own before anything else.
    #[serde(default)]
    pub rescue: Option<Rescue>,
    /// Paused by an operator: watched and shown, never acted on.
    #[serde(default)]
    pub paused: Option<Paused>,
}

/// An operator's pause (maintenance): the target is watched and shown,
/// and nothing is done to it until it is resumed or the pause ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    /// Since when.
    pub since: Ms,
    /// Until when; `None` until an operator resumes it.
    pub until: Option<Ms>,
}

/// A start-limit rescue the ladder owes: systemd restarted the unit and then
/// stopped; one restart of the ladder's own (reset-failed, then start)
/// comes before the ladder escalates past its restart step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rescue {
    /// The restart step systemd's restarts were counted on (0-based).
    pub step: usize,
    /// systemd's restarts during the incident.
    pub systemd_restarts: u32,
}

/// What a ladder decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Perform this action now.
    Act {
        /// Step (0-based).
        step: usize,
        /// Attempt (1-based).
        attempt: u32,
        /// The action.
        action: Action,
        /// Why, for people.
        reason: String,
        /// A start-limit rescue: systemd restarted the unit and stopped.
        rescue: bool,
    },
    /// The next attempt is scheduled.
    Scheduled {
        /// Step (0-based).
        step: usize,
        /// Attempt (1-based) that will run.
        attempt: u32,
        /// Delay from now.
        delay: Duration,
    },
    /// systemd restarted the unit itself; counted as an attempt of the restart step.
    SystemdRestartCounted {
        /// Step (0-based).
        step: usize,
        /// The attempt it counted as.
        attempt: u32,
    },
    /// A dependency is failing: this ladder waits for it.
    Held {
        /// The failing dependency acted on instead.
        by: String,
    },
    /// The dependency recovered: this ladder may act again.
    Released,
    /// A step used up its attempts; the next one takes over.
    Escalated {
        /// From step.
        from: usize,
        /// To step.
        to: usize,
    },
    /// The last action worked: healthy for the step's `healthy-for`.
    Recovered {
        /// Step that healed it.
        step: usize,
    },
    /// Healthy for `reset-after`: the ladder starts over.
    LadderReset,
    /// An operator's pause ran out: the ladder acts again.
    PauseEnded,
    /// Every step used up: actions stop.
    GaveUp {
        /// Why.
        reason: String,
    },
    /// A failing period began.
    IncidentOpened {
        /// Its id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The failing period ended.
    IncidentClosed {
        /// Its id.
        id: String,
        /// How long it lasted.
        lasted: Duration,
    },
}

/// Schedules `attempt` of `step` at `at`, and says so.
fn schedule(
    s: &mut LadderState,
    out: &mut Vec<Decision>,
    step: usize,
    attempt: u32,
    at: Ms,
    now: Ms,
) -> Ms {
    s.next_attempt_at = Some(at);
    out.push(Decision::Scheduled {
        step,
        attempt,
        delay: Duration::from_millis(at - now),
    });
    at
}

/// An attempt starts now: it is in flight until its action finishes.
fn start(s: &mut LadderState, step: usize, attempt: u32, now: Ms) {
    s.last_attempt_at = Some(now);
    s.next_attempt_at = None;
    s.in_flight = Some(InFlight {
        step,
        attempt,
        since: now,
    });
}

/// The success criterion when a target has no ladder step to take it from.
const DEFAULT_HEALTHY_FOR: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> Ms {
    d.as_millis().min(u128::from(u64::MAX)) as Ms
}

/// One target's ladder: its policy and its state.
pub struct Ladder<'a> {
    /// The target's policy.
    pub policy: &'a Target,
    /// Its state.
    pub state: &'a mut LadderState,
}

impl Ladder<'_> {
    fn healthy_for(&self) -> Duration {
        self.policy
            .ladder
            .get(
                self.state
                    .step
                    .min(self.policy.ladder.len().saturating_sub(1)),
            )
            .map(|s| s.healthy_for)
            .unwrap_or(DEFAULT_HEALTHY_FOR)
    }

    /// Starts the start-up grace (at daemon start and after an action).
    pub fn start_grace(&mut self, now: Ms) {
        if !self.policy.startup_grace.is_zero() {
            self.state.grace_until = Some(now + ms(self.policy.startup_grace));
        }
    }

    /// New health. `held_by`: a failing dependency, if any. `u`: a uniform
    /// sample for jitter.
    pub fn observe(
        &mut self,
        health: Health,
        held_by: Option<String>,
        now: Ms,
        u: f64,
    ) -> Vec<Decision> {
        self.state.health = health;
        self.evaluate(held_by, now, u)
    }

    /// systemd restarted the unit on its own (`NRestarts` grew). When the
    /// current step restarts the target, that counts as one of its attempts.
    pub fn systemd_restarted(&mut self, now: Ms) -> Vec<Decision> {
        let mut out = Vec::new();
        if self.state.gave_up.is_some() {
            return out;
        }
        let s = &mut *self.state;
        if let Some(step) = self.policy.ladder.get(s.step)
            && step.action == Action::Restart
        {
            s.attempts += 1;
            s.systemd_restarts += 1;
            s.last_attempt_at = Some(now);
            s.next_attempt_at = None;
            out.push(Decision::SystemdRestartCounted {
                step: s.step,
                attempt: s.attempts,
            });
        }
        // Owed from the restart step systemd's restarts were counted on: the
        // current one, else the first one, however far the ladder went since.
        let here = self
            .policy
            .ladder
            .get(s.step)
            .is_some_and(|step| step.action == Action::Restart)
            .then_some(s.step);
        let first_restart = self
            .policy
            .ladder
            .iter()
            .position(|step| step.action == Action::Restart);
        if let Some(step) = s.rescue.as_ref().map(|r| r.step).or(here).or(first_restart) {
            let restarts = s.rescue.as_ref().map_or(0, |r| r.systemd_restarts) + 1;
            s.rescue = Some(Rescue {
                step,
                systemd_restarts: restarts,
            });
        }
        out
    }

    /// The action under way finished. After a successful action the health
    /// known so far predates it: it becomes unknown until the next
    /// observation, which the caller supplies (the unit's state now, the
    /// next probe), so that the old failure is not taken for a new one.
    pub fn action_finished(
        &mut self,
        ok: bool,
        held_by: Option<String>,
        now: Ms,
        u: f64,
    ) -> Vec<Decision> {
        self.state.in_flight = None;
        if ok {
            self.state.verifying_since = Some(now);
            self.state.health = Health::Unknown;
            self.start_grace(now);
        }
        self.evaluate(held_by, now, u)
    }

    /// An operator reset: the ladder starts over and a gave-up target acts again.
    pub fn reset(&mut self) {
        let health = std::mem::take(&mut self.state.health);
        let incident = self.state.incident.take();
        *self.state = LadderState {
            health,
            incident,
            ..LadderState::default()
        };
    }

    /// An operator's pause, until `until` (or until resumed).
    pub fn pause(&mut self, until: Option<Ms>, now: Ms) {
        self.state.paused = Some(Paused { since: now, until });
        self.state.next_attempt_at = None;
    }

    /// An operator's resume; false when it was not paused.
    pub fn resume(&mut self) -> bool {
        self.state.paused.take().is_some()
    }

    /// Re-evaluates timers and health: what to do now.
    pub fn evaluate(&mut self, held_by: Option<String>, now: Ms, u: f64) -> Vec<Decision> {
        let mut out = Vec::new();
        let s = &mut *self.state;
        if s.paused
            .as_ref()
            .is_some_and(|p| p.until.is_some_and(|until| now >= until))
        {
            s.paused = None;
            out.push(Decision::PauseEnded);
        }
        match s.health.clone() {
            Health::Unknown | Health::Stopped => {}
            Health::Healthy => {
                s.failing_since = None;
                s.next_attempt_at = None;
                let since = *s.healthy_since.get_or_insert(now);
                let healthy_for = ms(self.healthy_for());
                let s = &mut *self.state;
                if let Some(v) = s.verifying_since
                    && now >= v.max(since) + healthy_for
                {
                    s.verifying_since = None;
                    out.push(Decision::Recovered { step: s.step });
                }
                if let Some(incident) = &s.incident
                    && s.verifying_since.is_none()
                    && now >= since + healthy_for
                {
                    out.push(Decision::IncidentClosed {
                        id: incident.id.clone(),
                        lasted: Duration::from_millis(now.saturating_sub(incident.opened_at)),
                    });
                    s.incident = None;
                    s.rescue = None;
                }
                if (s.step > 0 || s.attempts > 0) && now >= since + ms(self.policy.reset_after) {
                    s.step = 0;
                    s.attempts = 0;
                    s.systemd_restarts = 0;
                    s.last_attempt_at = None;
                    out.push(Decision::LadderReset);
                }
                if s.held_by.take().is_some() {
                    out.push(Decision::Released);
                }
            }
            Health::Failing {
                reason,
                systemd_restarting,
            } => {
                s.healthy_since = None;
                s.verifying_since = None;
                s.failing_since.get_or_insert(now);
                if s.incident.is_none() {
                    let id = format!("{}-{now}", self.policy.name);
                    out.push(Decision::IncidentOpened {
                        id: id.clone(),
                        reason: reason.clone(),
                    });
                    s.incident = Some(Incident { id, opened_at: now });
                }
                if s.gave_up.is_some() || s.in_flight.is_some() {
                    return out;
                }
                if s.paused.is_some() {
                    s.next_attempt_at = None;
                    return out;
                }
                if let Some(by) = held_by {
                    s.next_attempt_at = None;
                    if s.held_by.as_deref() != Some(by.as_str()) {
                        s.held_by = Some(by.clone());
                        out.push(Decision::Held { by });
                    }
                    return out;
                }
                if s.held_by.take().is_some() {
                    out.push(Decision::Released);
                }
                if s.grace_until.is_some_and(|g| now < g) || self.policy.ladder.is_empty() {
                    return out;
                }
                // systemd restarted the unit and has stopped: a restart of
                // our own (reset-failed, then start) before anything else.
                if let Some(rescue) = s.rescue.clone()
                    && !systemd_restarting
                    && let Some(step) = self.policy.ladder.get(rescue.step)
                {
                    // Our first attempt: systemd's restarts do not grow the backoff.
                    let attempt = rescue.systemd_restarts + 1;
                    let next = s.next_attempt_at.unwrap_or_else(|| {
                        let at = now + ms(backoff::delay(&step.backoff, 1, u));
                        schedule(s, &mut out, rescue.step, attempt, at, now)
                    });
                    if now >= next {
                        if rescue.step == s.step {
                            s.attempts += 1;
                        }
                        s.rescue = None;
                        start(s, rescue.step, attempt, now);
                        out.push(Decision::Act {
                            step: rescue.step,
                            attempt,
                            action: step.action.clone(),
                            reason: format!(
                                "start-limit rescue: systemd restarted it {} time(s) and stopped restarting it ({reason})",
                                rescue.systemd_restarts
                            ),
                            rescue: true,
                        });
                    }
                    return out;
                }
                // A restart step used up by systemd's own restarts waits while
                // systemd goes on restarting (the rescue follows once it
                // stops), unless systemd keeps at it past twice the step's
                // attempts: then it is not stopping, and the next step acts.
                let current = &self.policy.ladder[s.step];
                if systemd_restarting
                    && s.rescue.is_some()
                    && current.action == Action::Restart
                    && s.attempts >= current.attempts
                    && s.systemd_restarts < 2 * current.attempts
                {
                    return out;
                }
                // Escalate past steps whose attempts are used up.
                while s.attempts >= self.policy.ladder[s.step].attempts {
                    if s.step + 1 < self.policy.ladder.len() {
                        out.push(Decision::Escalated {
                            from: s.step,
                            to: s.step + 1,
                        });
                        s.step += 1;
                        s.attempts = 0;
                        s.systemd_restarts = 0;
                        s.next_attempt_at = None;
                    } else {
                        let reason = format!(
                            "every step of the ladder was tried ({} step(s)); still failing: {reason}",
                            self.policy.ladder.len()
                        );
                        s.gave_up = Some(GaveUp {
                            at: now,
                            reason: reason.clone(),
                        });
                        s.next_attempt_at = None;
                        out.push(Decision::GaveUp { reason });
                        return out;
                    }
                }
                let step = &self.policy.ladder[s.step];
                // Never race systemd's own pending restart with a restart of ours.
                if systemd_restarting && step.action == Action::Restart {
                    return out;
                }
                let next = s.next_attempt_at.unwrap_or_else(|| {
                    // Our own attempts only: systemd's restarts do not grow the backoff.
                    let own = s.attempts.saturating_sub(s.systemd_restarts);
                    let mut at = now + ms(backoff::delay(&step.backoff, own + 1, u));
                    if let Some(last) = s.last_attempt_at {
                        at = at.max(last + ms(step.cooldown));
                    }
                    schedule(s, &mut out, s.step, s.attempts + 1, at, now)
                });
                if now >= next {
                    s.attempts += 1;
                    start(s, s.step, s.attempts, now);
                    out.push(Decision::Act {
                        step: s.step,
                        attempt: s.attempts,
                        action: step.action.clone(),
                        reason,
                        rescue: false,
                    });
                }
            }
        }
        out
    }

    /// When this ladder next needs evaluating without new input: the
    /// earliest of its timers that is still ahead of `now`.
    pub fn next_wakeup(&self, now: Ms) -> Option<Ms> {
        let s = &*self.state;
        let healthy_for = ms(self.healthy_for());
        let settling = s.verifying_since.is_some() || s.incident.is_some();
        [
            s.next_attempt_at,
            s.grace_until,
            s.paused.as_ref().and_then(|p| p.until),
            s.healthy_since
                .filter(|_| settling)
                .map(|h| s.verifying_since.unwrap_or(h).max(h) + healthy_for),
            s.healthy_since
                .filter(|_| s.step > 0 || s.attempts > 0)
                .map(|h| h + ms(self.policy.reset_after)),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min()
    }
}
