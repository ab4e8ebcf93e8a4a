//! The engine driven through simulated time: every timing is checked
//! against the policy, with no clock involved.

use super::*;
use crate::config::diag::SourceFile;
use crate::config::{self, Sources, validate};

const S: Ms = 1000;

/// A configuration with these policies (name, text), on the embedded defaults.
pub(super) fn config_with(policies: &[(&str, &str)]) -> Config {
    let mut config = config::load(&Sources {
        policies_dir: Some(std::env::temp_dir().join("rvm-watchdog-no-such-dir")),
        ..Sources::default()
    })
    .config
    .unwrap_or_else(|| {
        // The policies dir does not exist: build from the embedded file alone.
        let src = SourceFile::new(
            "<embedded>/watchdog.toml",
            config::EMBEDDED_CONFIG.to_owned(),
        );
        let mut out = Vec::new();
        let raw = src.deserialize(&mut out, |_| None).unwrap();
        validate::config(&src, raw, &mut out)
    });
    config.targets = policies
        .iter()
        .map(|(name, text)| {
            let src = SourceFile::new(format!("{name}.toml"), (*text).to_owned());
            let mut out = Vec::new();
            let raw = src.deserialize(&mut out, |_| None).expect("policy parses");
            let target = validate::policy(&src, raw, &config, &mut out).expect("policy is valid");
            assert!(out.is_empty(), "{out:?}");
            target
        })
        .collect();
    config
}

const CRASHY: &str = r#"
[target]
name = "app"
unit = "app.service"
reset-after = "10m"

[[recovery]]
action = "restart"
attempts = 3
backoff = { initial = "2s", factor = 2.0, max = "1m", jitter = 0.0 }
healthy-for = "30s"

[[recovery]]
action = "kill"
attempts = 1
backoff = { initial = "5s", jitter = 0.0 }
"#;

fn failing() -> Health {
    Health::Failing {
        reason: "unit failed: signal".into(),
        systemd_restarting: false,
    }
}

/// Drives an engine through time, completing every action at once.
struct Sim {
    engine: Engine,
    now: Ms,
    acts: Vec<(Ms, String, usize, u32, &'static str)>,
    decisions: Vec<(Ms, String, Decision)>,
    /// Whether actions succeed.
    actions_ok: bool,
    /// Each target's health as the world has it (re-observed after an action).
    world: std::collections::HashMap<String, Health>,
    /// Whether a successful action makes its target healthy.
    heals: bool,
}

impl Sim {
    fn new(config: &Config) -> Sim {
        Sim {
            engine: Engine::new(config, |_| None, 7),
            now: 0,
            acts: Vec::new(),
            decisions: Vec::new(),
            actions_ok: true,
            world: Default::default(),
            heals: false,
        }
    }

    fn take(&mut self, decisions: Vec<(String, Decision)>) {
        let mut finished = Vec::new();
        for (target, d) in decisions {
            if let Decision::Act {
                step,
                attempt,
                action,
                ..
            } = &d
            {
                self.acts
                    .push((self.now, target.clone(), *step, *attempt, action.as_str()));
                finished.push(target.clone());
            }
            self.decisions.push((self.now, target, d));
        }
        for target in finished {
            let more = self
                .engine
                .action_finished(&target, self.actions_ok, self.now);
            self.take(more);
            if self.heals && self.actions_ok {
                self.world.insert(target.clone(), Health::Healthy);
            }
            let health = self.world.get(&target).cloned().unwrap_or_default();
            let more = self.engine.health(&target, health, self.now);
            self.take(more);
        }
    }

    fn health(&mut self, target: &str, health: Health) {
        self.world.insert(target.to_owned(), health.clone());
        let d = self.engine.health(target, health, self.now);
        self.take(d);
    }

    /// Advances to `until`, waking at every timer on the way.
    fn run_until(&mut self, until: Ms) {
        while let Some(wake) = self.engine.next_wakeup(self.now) {
            if wake > until {
                break;
            }
            self.now = wake;
            let d = self.engine.tick(self.now);
            self.take(d);
        }
        self.now = until;
        let d = self.engine.tick(self.now);
        self.take(d);
    }

    fn count(&self, pred: impl Fn(&Decision) -> bool) -> usize {
        self.decisions.iter().filter(|(_, _, d)| pred(d)).count()
    }
}

#[test]
fn restarts_follow_the_backoff_then_escalate_then_give_up() {
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    sim.health("app", failing());
    sim.run_until(10 * 60 * S);
    let acts: Vec<(Ms, usize, u32, &str)> = sim
        .acts
        .iter()
        .map(|(t, _, s, a, k)| (*t, *s, *a, *k))
        .collect();
    // 2 s, then 4 s, then 8 s after each attempt; then the kill step after its 5 s.
    assert_eq!(
        acts,
        [
            (2 * S, 0, 1, "restart"),
            (6 * S, 0, 2, "restart"),
            (14 * S, 0, 3, "restart"),
            (19 * S, 1, 1, "kill"),
        ]
    );
    assert_eq!(
        sim.count(|d| matches!(d, Decision::Escalated { from: 0, to: 1 })),
        1
    );
    assert_eq!(sim.count(|d| matches!(d, Decision::GaveUp { .. })), 1);
    assert!(sim.engine.state("app").unwrap().gave_up.is_some());
    assert_eq!(
        sim.count(|d| matches!(d, Decision::IncidentOpened { .. })),
        1
    );

    // Gave up: nothing more happens, however long it stays failing.
    let before = sim.acts.len();
    sim.run_until(60 * 60 * S);
    assert_eq!(sim.acts.len(), before);

    // An operator reset starts the ladder over.
    let d = sim.engine.reset("app", sim.now);
    sim.take(d);
    let start = sim.now;
    sim.run_until(start + 3 * S);
    assert_eq!(
        sim.acts.last().map(|a| (a.0 - start, a.2, a.3)),
        Some((2 * S, 0, 1))
    );
}

#[test]
fn healthy_for_the_stable_period_resets_the_ladder() {
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    sim.health("app", failing());
    sim.run_until(7 * S); // two restarts
    assert_eq!(sim.engine.state("app").unwrap().attempts, 2);
    sim.health("app", Health::Healthy);
    sim.run_until(7 * S + 30 * S);
    assert_eq!(
        sim.count(|d| matches!(d, Decision::IncidentClosed { .. })),
        1
    );
    assert_eq!(
        sim.engine.state("app").unwrap().attempts,
        2,
        "not yet reset"
    );

    // A failure before reset-after continues the count: one restart left.
    sim.health("app", failing());
    sim.run_until(sim.now + 9 * S);
    assert_eq!(sim.acts.last().map(|a| (a.2, a.3)), Some((0, 3)));
    sim.health("app", Health::Healthy);
    let healed_at = sim.now;
    sim.run_until(healed_at + 10 * 60 * S - 1);
    assert_eq!(sim.count(|d| matches!(d, Decision::LadderReset)), 0);
    sim.run_until(healed_at + 10 * 60 * S);
    assert_eq!(sim.count(|d| matches!(d, Decision::LadderReset)), 1);
    let state = sim.engine.state("app").unwrap();
    assert_eq!((state.step, state.attempts), (0, 0));

    // After the reset, a new failure starts at the first restart and its first delay.
    sim.health("app", failing());
    let failed_at = sim.now;
    sim.run_until(failed_at + 3 * S);
    assert_eq!(
        sim.acts.last().map(|a| (a.0 - failed_at, a.2, a.3)),
        Some((2 * S, 0, 1))
    );
}

const CAMERA: &str = r#"
[target]
name = "camera"

[[probe]]
kind = "camera"
device = "/dev/v4l/by-id/cam"

[[recovery]]
action = "restart-units"
units = ["capture.service"]
backoff = { initial = "1s", jitter = 0.0 }
"#;

const DETECTOR: &str = r#"
[target]
name = "detector"
unit = "detector.service"
depends-on = ["camera"]

[[recovery]]
action = "restart"
backoff = { initial = "1s", jitter = 0.0 }
"#;

#[test]
fn only_the_deepest_failing_dependency_acts() {
    let config = config_with(&[("camera", CAMERA), ("detector", DETECTOR)]);
    let mut sim = Sim::new(&config);
    sim.health("detector", failing());
    sim.health("camera", failing());
    sim.run_until(30 * S);
    assert!(sim.acts.iter().all(|a| a.1 == "camera"), "{:?}", sim.acts);
    assert!(!sim.acts.is_empty());
    assert_eq!(
        sim.count(|d| matches!(d, Decision::Held { by } if by == "camera")),
        1,
        "held once, not on every tick"
    );

    // The camera heals; once it has been healthy for its step's `healthy-for`
    // (30 s by default) its incident closes, the detector is released and
    // acts after its own backoff.
    sim.health("camera", Health::Healthy);
    let healed_at = sim.now;
    sim.run_until(healed_at + 30 * S - 1);
    assert_eq!(sim.count(|d| matches!(d, Decision::Released)), 0);
    sim.run_until(healed_at + 32 * S);
    assert_eq!(sim.count(|d| matches!(d, Decision::Released)), 1);
    assert_eq!(
        sim.acts.last().map(|a| (a.0 - healed_at, a.1.as_str())),
        Some((31 * S, "detector"))
    );
}

#[test]
fn a_dependent_is_released_on_the_same_pass_as_its_dependency_heals() {
    // Named to sort before its dependency: the order is the dependencies', not the names'.
    let dependent = DETECTOR.replace("name = \"detector\"", "name = \"a-detector\"");
    let config = config_with(&[("camera", CAMERA), ("a-detector", &dependent)]);
    let mut sim = Sim::new(&config);
    sim.health("a-detector", failing());
    sim.health("camera", failing());
    sim.run_until(5 * S);
    sim.health("camera", Health::Healthy);
    sim.run_until(60 * S);
    let closed = sim
        .decisions
        .iter()
        .position(|(_, t, d)| t == "camera" && matches!(d, Decision::IncidentClosed { .. }))
        .expect("the camera's incident closes");
    let released = sim
        .decisions
        .iter()
        .position(|(_, t, d)| t == "a-detector" && matches!(d, Decision::Released))
        .expect("the detector is released");
    let (closed_at, released_at) = (sim.decisions[closed].0, sim.decisions[released].0);
    assert_eq!(
        closed_at, released_at,
        "released on the same pass, not the next tick"
    );
    assert!(
        closed < released,
        "the dependency first: {:#?}",
        sim.decisions
    );
    // Nothing in between from another pass.
    assert!(
        sim.decisions[closed..released]
            .iter()
            .all(|(at, _, _)| *at == closed_at)
    );
}

#[test]
fn dependencies_come_first_whatever_their_names() {
    let b = "[target]\nname = \"b\"\ndepends-on = [\"c\"]\n[[probe]]\nkind = \"memory\"\n";
    let a = "[target]\nname = \"a\"\ndepends-on = [\"b\"]\n[[probe]]\nkind = \"memory\"\n";
    let c = "[target]\nname = \"c\"\n[[probe]]\nkind = \"memory\"\n";
    let d = "[target]\nname = \"d\"\n[[probe]]\nkind = \"memory\"\n";
    let config = config_with(&[("a", a), ("b", b), ("c", c), ("d", d)]);
    let engine = Engine::new(&config, |_| None, 1);
    assert_eq!(engine.order, ["c", "b", "a", "d"]);
}

#[test]
fn a_paused_target_is_watched_and_never_acted_on_until_its_pause_ends() {
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    let d = sim.engine.pause("app", Some(60 * S), 0);
    sim.take(d);
    sim.health("app", failing());
    sim.run_until(60 * S - 1);
    assert!(sim.acts.is_empty(), "{:?}", sim.acts);
    assert!(
        sim.engine.state("app").unwrap().incident.is_some(),
        "still watched: the incident is open"
    );
    // The pause runs out: the ladder acts after its first backoff.
    sim.run_until(63 * S);
    assert_eq!(sim.count(|d| matches!(d, Decision::PauseEnded)), 1);
    assert_eq!(
        sim.acts.first().map(|a| (a.0, a.4)),
        Some((62 * S, "restart"))
    );

    // Paused until resumed: nothing until the operator says so.
    let mut sim = Sim::new(&config);
    let d = sim.engine.pause("app", None, 0);
    sim.take(d);
    sim.health("app", failing());
    sim.run_until(3600 * S);
    assert!(sim.acts.is_empty());
    assert_eq!(
        sim.engine.next_wakeup(sim.now),
        None,
        "no timer while paused"
    );
    let (was, d) = sim.engine.resume("app", sim.now);
    assert!(was);
    sim.take(d);
    sim.run_until(sim.now + 3 * S);
    assert_eq!(sim.acts.len(), 1);
    assert!(!sim.engine.resume("app", sim.now).0, "not paused any more");
}

#[test]
fn an_action_that_heals_is_recovered_after_healthy_for() {
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    sim.health("app", failing());
    sim.heals = true;
    sim.run_until(2 * S);
    assert_eq!(sim.acts.len(), 1);
    sim.run_until(2 * S + 30 * S - 1);
    assert_eq!(sim.count(|d| matches!(d, Decision::Recovered { .. })), 0);
    sim.run_until(2 * S + 30 * S);
    assert_eq!(
        sim.count(|d| matches!(d, Decision::Recovered { step: 0 })),
        1
    );
    assert_eq!(
        sim.count(|d| matches!(d, Decision::IncidentClosed { .. })),
        1
    );
    assert_eq!(
        sim.engine.state("app").unwrap().attempts,
        1,
        "kept until reset-after"
    );
}

#[test]
fn systemd_restarts_count_and_a_pending_one_is_never_raced() {
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    let restarting = Health::Failing {
        reason: "unit failed: signal".into(),
        systemd_restarting: true,
    };
    sim.health("app", restarting.clone());
    sim.run_until(60 * S);
    assert!(sim.acts.is_empty(), "no restart while systemd's is pending");

    for n in 1..=3 {
        let d = sim.engine.systemd_restarted("app", sim.now);
        sim.take(d);
        assert_eq!(sim.engine.state("app").unwrap().attempts, n);
    }
    let state = sim.engine.state("app").unwrap();
    assert_eq!(
        state.step, 0,
        "used up by systemd's restarts, the step waits while systemd goes on"
    );
    assert_eq!(state.systemd_restarts, 3);
    sim.run_until(sim.now + 60 * S);
    assert!(sim.acts.is_empty(), "{:?}", sim.acts);
}

#[test]
fn a_unit_systemd_stopped_restarting_gets_a_restart_of_ours_before_the_ladder_escalates() {
    // The shipped edge ladder's shape: restart x3, then the next step.
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    let restarting = Health::Failing {
        reason: "unit app.service failed (exit-code)".into(),
        systemd_restarting: true,
    };
    sim.health("app", restarting.clone());
    for _ in 0..3 {
        let d = sim.engine.systemd_restarted("app", sim.now);
        sim.take(d);
    }
    // systemd gives up (its start limit): failed, no restart pending.
    sim.heals = true;
    let gave_up_at = sim.now;
    sim.health("app", failing());
    sim.run_until(gave_up_at + 60 * S);
    assert_eq!(
        sim.acts.first().map(|a| (a.0 - gave_up_at, a.2, a.4)),
        Some((2 * S, 0, "restart")),
        "one restart of ours, after the step's first backoff (2 s, not grown by systemd's three)"
    );
    assert_eq!(sim.acts.len(), 1, "{:?}", sim.acts);
    assert_eq!(sim.count(|d| matches!(d, Decision::Escalated { .. })), 0);
    let reason = sim
        .decisions
        .iter()
        .find_map(|(_, _, d)| match d {
            Decision::Act { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        reason.starts_with(
            "start-limit rescue: systemd restarted it 3 time(s) and stopped restarting it"
        ),
        "{reason}"
    );
    assert_eq!(
        sim.count(|d| matches!(d, Decision::Recovered { step: 0 })),
        1
    );
}

#[test]
fn a_failed_rescue_escalates_and_an_endless_systemd_loop_moves_on() {
    let config = config_with(&[("app", CRASHY)]);
    // The rescue fails: the ladder escalates, once.
    let mut sim = Sim::new(&config);
    sim.health(
        "app",
        Health::Failing {
            reason: "crash".into(),
            systemd_restarting: true,
        },
    );
    for _ in 0..3 {
        let d = sim.engine.systemd_restarted("app", sim.now);
        sim.take(d);
    }
    sim.actions_ok = false;
    sim.health("app", failing());
    sim.run_until(sim.now + 30 * S);
    assert_eq!(
        sim.acts.iter().map(|a| a.4).collect::<Vec<_>>(),
        ["restart", "kill"]
    );

    // systemd never stops (no start limit): past twice the step's attempts
    // the next step acts while systemd goes on.
    let mut sim = Sim::new(&config);
    let restarting = Health::Failing {
        reason: "crash".into(),
        systemd_restarting: true,
    };
    sim.health("app", restarting);
    for _ in 0..6 {
        let d = sim.engine.systemd_restarted("app", sim.now);
        sim.take(d);
        sim.run_until(sim.now + S);
    }
    sim.run_until(sim.now + 30 * S);
    assert_eq!(sim.acts.iter().map(|a| a.4).collect::<Vec<_>>(), ["kill"]);
}

#[test]
fn start_up_grace_defers_action() {
    let text = CRASHY.replace(
        "reset-after = \"10m\"",
        "reset-after = \"10m\"\nstartup-grace = \"20s\"",
    );
    let config = config_with(&[("app", &text)]);
    let mut sim = Sim::new(&config);
    sim.engine.start_grace(0);
    sim.health("app", failing());
    sim.run_until(20 * S - 1);
    assert!(sim.acts.is_empty());
    sim.run_until(22 * S);
    assert_eq!(sim.acts.first().map(|a| a.0), Some(22 * S));
}

#[test]
fn a_failed_action_counts_and_the_next_waits_its_backoff() {
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    sim.actions_ok = false;
    sim.health("app", failing());
    sim.run_until(15 * S);
    let times: Vec<Ms> = sim.acts.iter().map(|a| a.0).collect();
    assert_eq!(times, [2 * S, 6 * S, 14 * S]);
}

#[test]
fn ladder_state_round_trips_through_json() {
    let config = config_with(&[("app", CRASHY)]);
    let mut sim = Sim::new(&config);
    sim.health("app", failing());
    sim.run_until(7 * S);
    let state = sim.engine.state("app").unwrap().clone();
    let json = serde_json::to_value(&state).unwrap();
    let back: LadderState = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, state);
    // A ladder saved by an earlier version (snake_case inside the health) still loads.
    let text = json.to_string();
    assert!(text.contains("\"systemdRestarting\":false"), "{text}");
    let old: LadderState =
        serde_json::from_str(&text.replace("systemdRestarting", "systemd_restarting")).unwrap();
    assert_eq!(old, state);
    // A restarted engine continues from the saved state.
    let engine = Engine::new(&config, |_| Some(back.clone()), 1);
    assert_eq!(engine.state("app").unwrap().attempts, 2);
}
