//! Recovery: each target's **ladder** of steps (restart ×3 → hook → reboot),
//! tried in order with backoff, and the **engine** that keeps every
//! target's ladder and decides across them.
//!
//! Words: a target is **failing** or **healthy**; a failing period is an
//! **incident**; each try of a step is an **attempt**; a step that used up
//! its attempts **escalates** to the next; a ladder that ran out **gives
//! up** (actions stop, alerts go on, an operator resets it). A target whose
//! dependency is failing is **held**: the deepest failing dependency is
//! healed first. Healthy for `reset-after`, a ladder starts over.
//!
//! Decisions are pure functions of (state, input, now): see [`ladder`];
//! a target's health is a pure function of what is known of it: see
//! [`health`]. The daemon performs the actions (through
//! [`crate::supervisor::runner`]) and feeds back their outcome.

pub mod backoff;
pub mod health;
pub mod ladder;

use std::collections::BTreeMap;

pub use ladder::{Decision, Health, LadderState, Ms};

use crate::config::{Config, Target};
use ladder::Ladder;

/// Every target's ladder.
pub struct Engine {
    targets: BTreeMap<String, (Target, LadderState)>,
    /// Target names, dependencies before their dependents.
    order: Vec<String>,
    jitter: backoff::Jitter,
}

/// Target names in dependency order: each after every target it depends
/// on, otherwise by name. `check` refuses cycles; a target in one (or
/// depending on one it does not know) still comes out, once.
fn dependency_order(targets: &BTreeMap<String, (Target, LadderState)>) -> Vec<String> {
    fn visit<'a>(
        name: &'a str,
        targets: &'a BTreeMap<String, (Target, LadderState)>,
        seen: &mut std::collections::BTreeSet<&'a str>,
        order: &mut Vec<String>,
    ) {
        let Some((name, (policy, _))) = targets.get_key_value(name) else {
            return;
        };
        if !seen.insert(name) {
            return;
        }
        for dep in &policy.depends_on {
            visit(dep, targets, seen, order);
        }
        order.push(name.clone());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut order = Vec::with_capacity(targets.len());
    for name in targets.keys() {
        visit(name, targets, &mut seen, &mut order);
    }
    order
}

impl Engine {
    /// An engine for `config`'s targets, starting from saved states where
    /// there are any (a watchdog restart keeps its ladders).
    pub fn new(
        config: &Config,
        mut saved: impl FnMut(&str) -> Option<LadderState>,
        seed: u64,
    ) -> Engine {
        let targets = config
            .targets
            .iter()
            .map(|t| {
                let mut state = saved(&t.name).unwrap_or_default();
                // Whatever ran when the watchdog stopped is over now.
                state.in_flight = None;
                (t.name.clone(), (t.clone(), state))
            })
            .collect();
        Engine {
            order: dependency_order(&targets),
            targets,
            jitter: backoff::Jitter::new(seed),
        }
    }

    /// Takes a new configuration: kept targets keep their state, new ones
    /// start fresh, removed ones are dropped.
    pub fn reconfigure(&mut self, config: &Config) {
        let mut old = std::mem::take(&mut self.targets);
        for t in &config.targets {
            let state = old.remove(&t.name).map(|(_, s)| s).unwrap_or_default();
            self.targets.insert(t.name.clone(), (t.clone(), state));
        }
        self.order = dependency_order(&self.targets);
    }

    /// A target's state.
    pub fn state(&self, target: &str) -> Option<&LadderState> {
        self.targets.get(target).map(|(_, s)| s)
    }

    /// Every target's state.
    pub fn states(&self) -> impl Iterator<Item = (&str, &LadderState)> {
        self.targets.iter().map(|(n, (_, s))| (n.as_str(), s))
    }

    /// Starts every target's start-up grace (at daemon start).
    pub fn start_grace(&mut self, now: Ms) {
        for (policy, state) in self.targets.values_mut() {
            Ladder { policy, state }.start_grace(now);
        }
    }

    /// The deepest failing dependency of `target`, if any.
    pub fn failing_dependency(&self, target: &str) -> Option<String> {
        fn deepest(engine: &Engine, name: &str, seen: &mut Vec<String>) -> Option<String> {
            let (policy, _) = engine.targets.get(name)?;
            for dep in &policy.depends_on {
                if seen.contains(dep) {
                    continue;
                }
                seen.push(dep.clone());
                if let Some(deeper) = deepest(engine, dep, seen) {
                    return Some(deeper);
                }
                // A dependency being healed (an open incident: failing, or
                // not yet healthy for its step's `healthy-for`) holds too.
                if engine
                    .targets
                    .get(dep)
                    .is_some_and(|(_, s)| s.health.is_failing() || s.incident.is_some())
                {
                    return Some(dep.clone());
                }
            }
            None
        }
        deepest(self, target, &mut vec![target.to_owned()])
    }

    /// New health for a target; every ladder is re-evaluated (a change can
    /// hold or release dependents). Returns decisions by target.
    pub fn health(&mut self, target: &str, health: Health, now: Ms) -> Vec<(String, Decision)> {
        if let Some((_, state)) = self.targets.get_mut(target) {
            if state.health == health {
                return self.tick(now);
            }
            state.health = health;
        }
        self.tick(now)
    }

    /// systemd restarted a target's unit itself.
    pub fn systemd_restarted(&mut self, target: &str, now: Ms) -> Vec<(String, Decision)> {
        let mut out = Vec::new();
        if let Some((policy, state)) = self.targets.get_mut(target) {
            for d in (Ladder { policy, state }).systemd_restarted(now) {
                out.push((target.to_owned(), d));
            }
        }
        out.extend(self.tick(now));
        out
    }

    /// The action under way for a target finished.
    pub fn action_finished(&mut self, target: &str, ok: bool, now: Ms) -> Vec<(String, Decision)> {
        let held = self.failing_dependency(target);
        let u = self.jitter.sample();
        let mut out = Vec::new();
        if let Some((policy, state)) = self.targets.get_mut(target) {
            for d in (Ladder { policy, state }).action_finished(ok, held, now, u) {
                out.push((target.to_owned(), d));
            }
        }
        out.extend(self.tick(now));
        out
    }

    /// An operator's pause of a target, until `until` (or until resumed):
    /// watched and shown, never acted on.
    pub fn pause(&mut self, target: &str, until: Option<Ms>, now: Ms) -> Vec<(String, Decision)> {
        if let Some((policy, state)) = self.targets.get_mut(target) {
            Ladder { policy, state }.pause(until, now);
        }
        self.tick(now)
    }

    /// An operator's resume of a paused target; false when it was not paused.
    pub fn resume(&mut self, target: &str, now: Ms) -> (bool, Vec<(String, Decision)>) {
        let was = self
            .targets
            .get_mut(target)
            .is_some_and(|(policy, state)| Ladder { policy, state }.resume());
        (was, self.tick(now))
    }

    /// An operator reset of a target's ladder.
    pub fn reset(&mut self, target: &str, now: Ms) -> Vec<(String, Decision)> {
        if let Some((policy, state)) = self.targets.get_mut(target) {
            Ladder { policy, state }.reset();
        }
        self.tick(now)
    }

    /// Re-evaluates every ladder, in dependency order: the deepest failing
    /// target acts before those that need it, and a dependent is released
    /// on the same pass as its dependency heals.
    pub fn tick(&mut self, now: Ms) -> Vec<(String, Decision)> {
        let mut out = Vec::new();
        for i in 0..self.order.len() {
            let name = self.order[i].clone();
            let held = self.failing_dependency(&name);
            let u = self.jitter.sample();
            let (policy, state) = self.targets.get_mut(&name).expect("a known target");
            let health = state.health.clone();
            for d in (Ladder { policy, state }).observe(health, held, now, u) {
                out.push((name.clone(), d));
            }
        }
        out
    }

    /// When the engine next needs a tick without new input.
    pub fn next_wakeup(&mut self, now: Ms) -> Option<Ms> {
        self.targets
            .values_mut()
            .filter_map(|(policy, state)| Ladder { policy, state }.next_wakeup(now))
            .min()
    }
}

#[cfg(test)]
mod tests;
