//! The engine on a simulated clock, in the shape of the shipped
//! configuration: a `field-ops` chain of webhook (at once), email (10 min)
//! and SMS (30 min), repeating hourly.

use std::collections::BTreeMap;

use super::engine::{Effect, Engine};
use super::rules::Rules;
use super::settings::{Chain, Level, Settings};
use super::silence::{Matcher, Schedule};
use super::{AlertState, Notice, Notification, Raise, Severity, Signal, Why, fingerprint};
use crate::config::{Rule, RuleCondition};
use crate::metrics::SeriesKey;

const T0: u64 = 1_764_633_600_000; // 2025-12-02 00:00 UTC
const S: u64 = 1000;
const MIN: u64 = 60 * S;

fn settings() -> Settings {
    let level = |after_ms, ch: &str| Level {
        after_ms,
        channels: vec![ch.to_owned()],
    };
    Settings {
        chains: BTreeMap::from([(
            "field-ops".to_owned(),
            Chain {
                levels: vec![
                    level(0, "ops-webhook"),
                    level(10 * MIN, "ops-email"),
                    level(30 * MIN, "oncall-sms"),
                ],
                repeat_ms: Some(60 * MIN),
            },
        )]),
        channels: BTreeMap::from([
            ("ops-webhook".to_owned(), Severity::Info),
            ("ops-email".to_owned(), Severity::Info),
            ("oncall-sms".to_owned(), Severity::Warning),
        ]),
        default_escalation: Some("field-ops".into()),
        ..Settings::default()
    }
}

fn raise(name: &str, target: &str) -> Signal {
    Signal::Raise(Raise {
        name: name.into(),
        target: Some(target.into()),
        labels: BTreeMap::new(),
        severity: Severity::Critical,
        summary: format!("{target} is failing"),
        escalation: Some("field-ops".into()),
        delay_ms: 0,
        root_cause: None,
    })
}

fn failing(target: &str, root_cause: Option<&str>) -> Signal {
    match raise("target-failing", target) {
        Signal::Raise(mut r) => {
            r.root_cause = root_cause.map(str::to_owned);
            Signal::Raise(r)
        }
        _ => unreachable!(),
    }
}

fn clear(target: &str) -> Signal {
    Signal::Clear {
        name: "target-failing".into(),
        target: Some(target.into()),
        labels: BTreeMap::new(),
    }
}

fn fp(target: &str) -> String {
    fingerprint("target-failing", Some(target), &BTreeMap::new())
}

/// A simulated clock driving an engine, collecting what it sends.
struct Sim {
    engine: Engine,
    now: u64,
    sent: Vec<Notification>,
    effects: Vec<Effect>,
}

impl Sim {
    fn new(settings: Settings) -> Sim {
        Sim {
            engine: Engine::new(settings),
            now: T0,
            sent: Vec::new(),
            effects: Vec::new(),
        }
    }

    fn take(&mut self, effects: Vec<Effect>) {
        for e in effects {
            if let Effect::Notify(n) = &e {
                self.sent.push(n.clone());
            }
            self.effects.push(e);
        }
    }

    fn signal(&mut self, s: Signal) {
        let out = self.engine.signal(s, self.now);
        self.take(out);
    }

    /// Lets `ms` pass, ticking every second as the task does.
    fn pass(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + S).min(end);
            let out = self.engine.tick(self.now);
            self.take(out);
        }
    }

    /// (channel, why, target) of everything sent, in order.
    fn log(&self) -> Vec<(String, &'static str, String)> {
        self.sent
            .iter()
            .flat_map(|n| {
                n.items.iter().map(|i| {
                    (
                        n.channel.clone(),
                        i.why.as_str(),
                        i.target.clone().unwrap_or_default(),
                    )
                })
            })
            .collect()
    }

    fn sent_to(&self, channel: &str) -> Vec<&Notification> {
        self.sent.iter().filter(|n| n.channel == channel).collect()
    }
}

fn row(channel: &str, why: &'static str, target: &str) -> (String, &'static str, String) {
    (channel.to_owned(), why, target.to_owned())
}

#[test]
fn an_unacknowledged_alert_climbs_the_chain_at_each_levels_delay() {
    let mut sim = Sim::new(settings());
    sim.signal(failing("camera", None));
    sim.pass(9 * S);
    assert!(sim.sent.is_empty(), "the group waits 10 s");
    sim.pass(S);
    assert_eq!(sim.log(), vec![row("ops-webhook", "firing", "camera")]);
    sim.pass(10 * MIN - 11 * S);
    assert_eq!(
        sim.sent.len(),
        1,
        "the email level is not reached before 10 min"
    );
    sim.pass(11 * S);
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(sim.log()[1], row("ops-email", "escalated", "camera"));
    sim.pass(20 * MIN);
    assert_eq!(sim.log()[2], row("oncall-sms", "escalated", "camera"));
    assert_eq!(sim.sent.len(), 3);
}

#[test]
fn an_acknowledged_alert_stops_climbing_and_its_resolution_still_goes_out() {
    let mut sim = Sim::new(settings());
    sim.signal(failing("camera", None));
    sim.pass(5 * MIN);
    assert_eq!(sim.sent.len(), 1);
    let out = sim
        .engine
        .ack(&fp("camera"), "ana", "on my way", sim.now)
        .unwrap();
    sim.take(out);
    let a = sim.engine.alert(&fp("camera")).unwrap();
    assert_eq!(a.state, AlertState::Acknowledged);
    assert_eq!(a.ack.as_ref().unwrap().comment, "on my way");
    sim.pass(3 * 60 * MIN);
    assert_eq!(
        sim.sent.len(),
        1,
        "no email, SMS or repeat once acknowledged"
    );
    sim.signal(clear("camera"));
    sim.pass(10 * S);
    assert_eq!(sim.log()[1], row("ops-webhook", "resolved", "camera"));
    assert_eq!(sim.sent.len(), 2);
}

#[test]
fn suppressed_time_does_not_advance_the_chain() {
    let mut sim = Sim::new(Settings {
        release_grace_ms: 0,
        ..settings()
    });
    // The API target fails while its uplink is the root cause.
    sim.signal(failing("uplink", None));
    sim.signal(failing("myrvm-api", Some("uplink")));
    sim.pass(10 * S);
    assert_eq!(
        sim.log(),
        vec![
            row("ops-webhook", "firing", "uplink"),
            row("ops-webhook", "suppressed", "myrvm-api")
        ]
    );
    // Acknowledge the uplink so that only the API alert could climb.
    let out = sim
        .engine
        .ack(&fp("uplink"), "ana", "ISP ticket", sim.now)
        .unwrap();
    sim.take(out);
    sim.pass(25 * MIN);
    assert_eq!(
        sim.sent.len(),
        1,
        "the suppressed alert is not sent, nor escalated"
    );
    // The uplink comes back; the API stays down: now its chain starts, from zero.
    sim.signal(clear("uplink"));
    sim.pass(10 * S);
    let log = sim.log();
    assert!(log.contains(&row("ops-webhook", "resolved", "uplink")));
    assert!(log.contains(&row("ops-webhook", "firing", "myrvm-api")));
    let before = sim.sent.len();
    sim.pass(9 * MIN);
    assert_eq!(
        sim.sent.len(),
        before,
        "25 suppressed minutes did not count toward 10"
    );
    sim.pass(MIN);
    assert_eq!(
        sim.log().last().unwrap(),
        &row("ops-email", "escalated", "myrvm-api")
    );
}

#[test]
fn a_restart_mid_chain_resumes_at_the_same_level() {
    let mut sim = Sim::new(settings());
    sim.signal(failing("camera", None));
    sim.pass(12 * MIN);
    assert_eq!(sim.sent.len(), 2, "webhook, then email");
    // Saved as the task saves them, then restored by a new engine.
    let saved: Vec<_> = sim.engine.alerts().values().cloned().collect();
    let json = serde_json::to_string(&saved).unwrap();
    let back: Vec<super::Alert> = serde_json::from_str(&json).unwrap();
    let mut sim2 = Sim::new(settings());
    sim2.now = sim.now + 2 * MIN; // down for two minutes
    sim2.engine = Engine::restore(settings(), back, Vec::new(), Vec::new(), sim2.now);
    sim2.pass(S);
    assert!(
        sim2.sent.is_empty(),
        "no channel is told again: {:?}",
        sim2.log()
    );
    // 12 + 2 minutes counted; the SMS level is at 30.
    sim2.pass(15 * MIN);
    assert!(sim2.sent.is_empty());
    sim2.pass(MIN + 10 * S);
    assert_eq!(sim2.log(), vec![row("oncall-sms", "escalated", "camera")]);
}

#[test]
fn a_level_handed_on_but_not_sent_before_a_restart_is_sent_after_it() {
    let mut sim = Sim::new(settings());
    sim.signal(failing("camera", None));
    sim.pass(5 * S); // the firing message waits in the group
    assert!(sim.sent.is_empty());
    let saved: Vec<_> = sim.engine.alerts().values().cloned().collect();
    let mut sim2 = Sim::new(settings());
    sim2.now = sim.now;
    sim2.engine = Engine::restore(settings(), saved, Vec::new(), Vec::new(), sim2.now);
    sim2.pass(11 * S);
    assert_eq!(sim2.log(), vec![row("ops-webhook", "firing", "camera")]);
}

#[test]
fn one_uplink_outage_is_one_notification_and_both_resolutions_go_out() {
    let mut sim = Sim::new(settings());
    sim.signal(failing("uplink", None));
    sim.pass(2 * S);
    sim.signal(Signal::Held {
        target: "myrvm-api".into(),
        by: "uplink".into(),
    });
    sim.signal(failing("myrvm-api", Some("uplink")));
    sim.pass(MIN);
    // One notification: the uplink firing, the API listed as suppressed by it.
    assert_eq!(sim.sent.len(), 1, "{:?}", sim.log());
    assert_eq!(
        sim.log(),
        vec![
            row("ops-webhook", "firing", "uplink"),
            row("ops-webhook", "suppressed", "myrvm-api")
        ]
    );
    let api = sim.engine.alert(&fp("myrvm-api")).unwrap();
    assert_eq!(api.suppressed_by.as_deref(), Some("uplink"));
    assert_eq!(
        sim.sent[0].items[1].suppressed_by.as_deref(),
        Some("uplink")
    );
    // Both resolve: both resolutions, together.
    sim.signal(clear("myrvm-api"));
    sim.signal(clear("uplink"));
    sim.pass(10 * S);
    assert_eq!(sim.sent.len(), 2);
    let mut resolved: Vec<_> = sim.sent[1]
        .items
        .iter()
        .map(|i| (i.why, i.target.clone().unwrap()))
        .collect();
    resolved.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        resolved,
        vec![
            (Why::Resolved, "myrvm-api".to_owned()),
            (Why::Resolved, "uplink".to_owned())
        ]
    );
}

#[test]
fn a_dependent_that_heals_within_the_release_grace_is_never_sent_on_its_own() {
    let mut sim = Sim::new(settings());
    sim.signal(failing("uplink", None));
    sim.pass(10 * S);
    // The API fails after the uplink's message left: nobody is told of it.
    sim.signal(failing("myrvm-api", Some("uplink")));
    sim.pass(MIN);
    sim.signal(clear("uplink"));
    sim.signal(Signal::Released {
        target: "myrvm-api".into(),
    });
    sim.pass(30 * S);
    let api = sim.engine.alert(&fp("myrvm-api")).unwrap();
    assert_eq!(api.state, AlertState::Pending, "it gets its grace");
    // Its own restart heals it within the grace: never sent.
    sim.signal(clear("myrvm-api"));
    sim.pass(5 * MIN);
    assert_eq!(
        sim.log(),
        vec![
            row("ops-webhook", "firing", "uplink"),
            row("ops-webhook", "resolved", "uplink")
        ]
    );
    // Still failing past the grace, another time: sent then.
    sim.pass(11 * MIN);
    sim.signal(failing("uplink", None));
    sim.signal(failing("myrvm-api", Some("uplink")));
    sim.pass(10 * S);
    sim.signal(clear("uplink"));
    sim.pass(MIN + 10 * S);
    let log = sim.log();
    assert_eq!(
        log.last().unwrap(),
        &row("ops-webhook", "firing", "myrvm-api"),
        "{log:?}"
    );
}

#[test]
fn both_resolutions_go_out_when_both_alerts_were_sent() {
    // The API failed first (and was sent); then its uplink failed.
    let mut sim = Sim::new(settings());
    sim.signal(failing("myrvm-api", None));
    sim.pass(10 * S);
    sim.signal(failing("uplink", None));
    sim.signal(Signal::Held {
        target: "myrvm-api".into(),
        by: "uplink".into(),
    });
    sim.pass(10 * S);
    assert_eq!(sim.sent.len(), 2);
    sim.signal(clear("uplink"));
    sim.signal(clear("myrvm-api"));
    sim.pass(10 * S);
    let log = sim.log();
    assert!(log.contains(&row("ops-webhook", "resolved", "uplink")));
    assert!(log.contains(&row("ops-webhook", "resolved", "myrvm-api")));
    assert_eq!(
        sim.sent.len(),
        3,
        "the two resolutions leave as one notification"
    );
}

#[test]
fn a_silence_mutes_until_it_expires_and_never_hides_a_resolution() {
    let mut sim = Sim::new(settings());
    // The camera alert was sent before the silence.
    sim.signal(failing("camera", None));
    sim.pass(10 * S);
    assert_eq!(sim.sent.len(), 1);
    let matcher = Matcher {
        target: Some("cam*".into()),
        ..Matcher::default()
    };
    let (silence, out) = sim
        .engine
        .silence(
            matcher,
            sim.now + 30 * MIN,
            "lens cleaning",
            "budi",
            sim.now,
        )
        .unwrap();
    sim.take(out);
    // A new camera alert while silenced: not sent; the email level of the
    // first is not reached while muted.
    sim.signal(raise("recovery-failed", "camera"));
    sim.pass(20 * MIN);
    assert_eq!(sim.sent.len(), 1, "muted: {:?}", sim.log());
    // The first resolves under the silence: its resolution goes out.
    sim.signal(clear("camera"));
    sim.pass(10 * S);
    assert_eq!(sim.log()[1], row("ops-webhook", "resolved", "camera"));
    // The silence expires: the still-firing one is sent then.
    sim.pass(10 * MIN);
    assert!(!sim.engine.silences().contains_key(&silence.id));
    let log = sim.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2], row("ops-webhook", "firing", "camera"));
    assert_eq!(sim.sent[2].items[0].name, "recovery-failed");
}

#[test]
fn a_maintenance_window_mutes_while_it_is_in_effect_and_says_when_it_begins_and_ends() {
    let mut sim = Sim::new(settings());
    sim.signal(failing("camera", None));
    sim.pass(10 * S);
    let (m, out) = sim
        .engine
        .add_maintenance(
            Schedule::Once {
                from: sim.now,
                until: Some(sim.now + 60 * MIN),
            },
            Matcher::default(),
            "lens replacement",
            "budi",
            sim.now,
        )
        .unwrap();
    sim.take(out);
    sim.signal(failing("gpu", None));
    sim.signal(clear("camera"));
    sim.pass(59 * MIN);
    let log = sim.log();
    assert_eq!(
        log,
        vec![
            row("ops-webhook", "firing", "camera"),
            row("ops-webhook", "notice", ""),
            row("ops-webhook", "resolved", "camera"),
        ],
        "the start notice and the camera's resolution only"
    );
    assert!(sim.sent[1].items[0].summary.contains(&m.id));
    sim.pass(MIN + 10 * S);
    let log = sim.log();
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(log.contains(&row("ops-webhook", "firing", "gpu")));
    assert!(
        sim.sent
            .iter()
            .any(|n| n.items.iter().any(|i| i.name == "maintenance-ended"))
    );
    assert!(
        sim.engine.maintenance().is_empty(),
        "a one-off window over is forgotten"
    );
}

#[test]
fn a_weekly_window_mutes_every_sunday_night_in_local_time() {
    let mut s = settings();
    s.zone = jiff::tz::TimeZone::get("Asia/Jakarta").unwrap();
    let mut sim = Sim::new(s);
    // 2026-12-05 19:00 UTC is Sunday 2026-12-06 02:00 in Jakarta.
    sim.now = 1_796_497_200_000;
    let (_, out) = sim
        .engine
        .add_maintenance(
            Schedule::Weekly {
                every: "sun 02:00-03:00".into(),
            },
            Matcher::default(),
            "weekly reboot",
            "ops",
            sim.now,
        )
        .unwrap();
    sim.take(out);
    sim.signal(failing("camera", None));
    sim.pass(30 * MIN);
    assert!(
        sim.log().iter().all(|r| r.1 == "notice"),
        "only the start notice: {:?}",
        sim.log()
    );
    sim.pass(31 * MIN);
    assert!(sim.log().contains(&row("ops-webhook", "firing", "camera")));
}

#[test]
fn the_same_failure_reported_a_hundred_times_is_one_notification_per_repeat_interval() {
    let mut sim = Sim::new(settings());
    let mut s = settings();
    s.chains.get_mut("field-ops").unwrap().levels.truncate(1);
    sim.engine = Engine::new(s);
    for _ in 0..100 {
        sim.signal(failing("camera", None));
        sim.pass(S);
    }
    assert_eq!(sim.sent.len(), 1);
    assert_eq!(sim.engine.alert(&fp("camera")).unwrap().occurrences, 100);
    sim.pass(60 * MIN);
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(sim.log()[1], row("ops-webhook", "repeat", "camera"));
    sim.pass(60 * MIN);
    assert_eq!(sim.sent.len(), 3);
}

#[test]
fn five_alerts_firing_within_the_group_window_leave_as_one_notification() {
    let mut sim = Sim::new(settings());
    for (i, t) in ["camera", "gpu", "myrvm-api", "uplink", "inference"]
        .iter()
        .enumerate()
    {
        sim.signal(failing(t, None));
        if i < 4 {
            sim.pass(2 * S);
        }
    }
    sim.pass(10 * S);
    assert_eq!(sim.sent.len(), 1, "{:?}", sim.log());
    assert_eq!(sim.sent[0].items.len(), 5);
    assert!(sim.sent[0].items.iter().all(|i| i.why == Why::Firing));
}

#[test]
fn a_target_flapping_twenty_times_in_a_minute_gives_one_flapping_notice() {
    let mut sim = Sim::new(settings());
    for _ in 0..20 {
        sim.signal(failing("camera", None));
        sim.pass(1500);
        sim.signal(clear("camera"));
        sim.pass(1500);
    }
    assert_eq!(sim.log(), vec![row("ops-webhook", "flapping", "camera")]);
    assert!(sim.engine.alert(&fp("camera")).unwrap().flapping);
    // Steady (resolved) for the flap window: its channel learns it ended.
    sim.pass(11 * MIN);
    assert_eq!(sim.log().len(), 2);
    assert_eq!(sim.log()[1], row("ops-webhook", "resolved", "camera"));
}

#[test]
fn a_pending_alert_that_clears_within_its_delay_is_never_sent() {
    let mut sim = Sim::new(settings());
    let mut r = match failing("camera", None) {
        Signal::Raise(r) => r,
        _ => unreachable!(),
    };
    r.delay_ms = 2 * MIN;
    sim.signal(Signal::Raise(r.clone()));
    sim.pass(MIN);
    assert_eq!(
        sim.engine.alert(&fp("camera")).unwrap().state,
        AlertState::Pending
    );
    sim.signal(clear("camera"));
    sim.pass(5 * MIN);
    assert!(sim.sent.is_empty());
    // Raised again and still failing past its delay: sent.
    sim.pass(11 * MIN); // past the flap window
    sim.signal(Signal::Raise(r));
    sim.pass(2 * MIN + 10 * S);
    assert_eq!(sim.log(), vec![row("ops-webhook", "firing", "camera")]);
}

#[test]
fn notices_go_to_the_first_level_and_channels_take_only_their_severities() {
    let mut sim = Sim::new(settings());
    let mut s = settings();
    // Everything to webhook and SMS at once; SMS takes warnings and worse.
    s.chains.get_mut("field-ops").unwrap().levels[0]
        .channels
        .push("oncall-sms".into());
    sim.engine = Engine::new(s);
    sim.signal(Signal::Notice(Notice {
        name: "config-reloaded".into(),
        target: None,
        severity: Severity::Info,
        summary: "configuration reloaded".into(),
        escalation: None,
    }));
    sim.pass(10 * S);
    assert_eq!(sim.log(), vec![row("ops-webhook", "notice", "")]);
    sim.signal(failing("camera", None));
    sim.pass(10 * S);
    assert_eq!(sim.sent_to("oncall-sms").len(), 1);
}

#[test]
fn a_route_sends_critical_alerts_at_night_to_its_own_chain() {
    use super::settings::Route;
    let mut s = settings();
    s.chains.insert(
        "night".into(),
        Chain {
            levels: vec![Level {
                after_ms: 0,
                channels: vec!["oncall-sms".into()],
            }],
            repeat_ms: None,
        },
    );
    s.routes.push(Route {
        matcher: Matcher {
            severity: Some(Severity::Critical),
            ..Matcher::default()
        },
        during: Some(super::silence::Weekly::parse("22:00-06:00").unwrap()),
        escalation: "night".into(),
    });
    let mut sim = Sim::new(s);
    sim.now = T0 + 12 * 60 * MIN; // noon: the route is not in effect
    sim.signal(failing("gpu", None));
    sim.pass(10 * S);
    sim.now = T0 + 23 * 60 * MIN; // 23:00 UTC
    sim.signal(failing("camera", None));
    sim.pass(10 * S);
    let log = sim.log();
    assert!(
        log.contains(&row("oncall-sms", "firing", "camera")),
        "{log:?}"
    );
    assert!(
        log.contains(&row("ops-webhook", "firing", "gpu")),
        "{log:?}"
    );
    assert!(!log.contains(&row("ops-webhook", "firing", "camera")));
}

fn rule(condition: RuleCondition, hold_s: u64, clear: Option<f64>) -> Rule {
    Rule {
        name: "gpu-hot".into(),
        series: "rvm_jetson_temperature_celsius{zone=\"gpu\"}".into(),
        condition,
        hold_for: std::time::Duration::from_secs(hold_s),
        clear,
        severity: Severity::Warning,
        escalation: Some("field-ops".into()),
    }
}

#[test]
fn a_rule_with_for_and_a_clear_threshold_fires_once_and_resolves_once_on_a_noisy_series() {
    let key = SeriesKey::new("rvm_jetson_temperature_celsius", [("zone", "gpu")]);
    let other = SeriesKey::new("rvm_jetson_temperature_celsius", [("zone", "cpu")]);
    let mut rules = Rules::new(&[rule(RuleCondition::Above(80.0), 30, Some(75.0))]);
    let mut sim = Sim::new(settings());
    let (mut raised, mut cleared) = (0, 0);
    // Ten minutes around 81 ± 3 (crossing 80 both ways every few seconds),
    // then ten minutes around 78.5 ± 3 (crossing 80 again, never down to 75),
    // then ten minutes at 70.
    for i in 0..1800u64 {
        let noise = [3.0, -2.0, 1.5, -3.0, 2.5, -1.0][(i % 6) as usize];
        let value = match i {
            0..600 => 81.0 + noise,
            600..1200 => 78.5 + noise,
            _ => 70.0,
        };
        let values = [(&key, value), (&other, 40.0)];
        for s in rules.evaluate(values.iter().copied(), sim.now) {
            match &s {
                Signal::Raise(r) => {
                    raised += 1;
                    assert_eq!(r.labels["zone"], "gpu");
                }
                Signal::Clear { .. } => cleared += 1,
                _ => {}
            }
            sim.signal(s);
        }
        sim.pass(S);
    }
    assert_eq!((raised, cleared), (1, 1));
    let a = sim.engine.alerts().values().next().unwrap();
    let (started, resolved) = (a.started_at - T0, a.resolved_at.unwrap() - T0);
    assert!(
        (30 * S..60 * S).contains(&started),
        "raised after its 30 s: {started}"
    );
    assert_eq!(resolved, 1200 * S, "cleared once back at or below 75");
    let log = sim.log();
    // Twenty minutes raised: the email level was reached; each channel
    // hears of it once, and of its resolution once.
    assert_eq!(
        log,
        vec![
            row("ops-webhook", "firing", ""),
            row("ops-email", "escalated", ""),
            row("ops-email", "resolved", ""),
            row("ops-webhook", "resolved", ""),
        ]
    );
}

#[test]
fn a_rule_holds_its_fire_for_its_duration() {
    let key = SeriesKey::new("rvm_jetson_temperature_celsius", [("zone", "gpu")]);
    let mut rules = Rules::new(&[rule(RuleCondition::Above(80.0), 60, None)]);
    let mut now = T0;
    // Above for 59 s, then below once: nothing; then above for 60 s: raised.
    for _ in 0..59 {
        assert!(rules.evaluate([(&key, 85.0)], now).is_empty());
        now += S;
    }
    assert!(rules.evaluate([(&key, 79.0)], now).is_empty());
    now += S;
    let mut raised = None;
    for i in 0..=60 {
        let out = rules.evaluate([(&key, 85.0)], now);
        if !out.is_empty() {
            raised = Some(i);
        }
        now += S;
    }
    assert_eq!(raised, Some(60));
    // The series disappears: its alert clears.
    let out = rules.evaluate(std::iter::empty(), now);
    assert!(matches!(out.as_slice(), [Signal::Clear { .. }]));
}

#[test]
fn a_trend_rule_fires_when_the_projected_time_to_full_drops_under_its_window() {
    let key = SeriesKey::new("rvm_host_disk_used_ratio", [("mount", "/")]);
    let within = std::time::Duration::from_secs(6 * 3600);
    let over = std::time::Duration::from_secs(3600);
    let mut rules = Rules::new(&[Rule {
        name: "disk-filling".into(),
        series: "rvm_host_disk_used_ratio{mount=\"/\"}".into(),
        condition: RuleCondition::PredictAbove {
            within,
            bound: 0.95,
            over,
        },
        hold_for: std::time::Duration::ZERO,
        clear: None,
        severity: Severity::Warning,
        escalation: None,
    }]);
    // Filling at 0.01 an hour from 0.80: full (0.95) in 15 h — no alert.
    // Then a log storm: 0.03 an hour more (0.04 an hour): 0.95 is reached
    // within 6 h once the fit sees the faster slope.
    let mut now = T0;
    let mut value = 0.80;
    let mut fired_at = None;
    for minute in 0..300u64 {
        let per_min = if minute < 120 {
            0.01 / 60.0
        } else {
            0.04 / 60.0
        };
        value += per_min;
        for s in rules.evaluate([(&key, value)], now) {
            if let Signal::Raise(r) = s {
                assert!(r.summary.contains("heading for 0.95"), "{}", r.summary);
                fired_at.get_or_insert(minute);
            }
        }
        now += MIN;
    }
    let fired_at = fired_at.expect("the trend rule fired");
    assert!(
        (120..180).contains(&fired_at),
        "fired at minute {fired_at}: not before the storm, and within the hour fitted"
    );
    // At the slow rate (15 h to full) it had said nothing.
}

#[test]
fn the_same_notice_again_within_the_flap_window_is_folded_into_the_next() {
    let mut sim = Sim::new(settings());
    let restarted = || {
        Signal::Notice(Notice {
            name: "restarted".into(),
            target: Some("camera".into()),
            severity: Severity::Info,
            summary: "the watchdog restarted myrvm-camera.service".into(),
            escalation: None,
        })
    };
    for _ in 0..5 {
        sim.signal(restarted());
        sim.pass(10 * S);
    }
    assert_eq!(sim.log(), vec![row("ops-webhook", "notice", "camera")]);
    sim.pass(10 * MIN);
    sim.signal(restarted());
    sim.pass(10 * S);
    assert_eq!(sim.sent.len(), 2);
    let summary = &sim.sent[1].items[0].summary;
    assert!(summary.contains("and 4 more like it"), "{summary}");
}

#[test]
fn an_alertmanager_channel_hears_every_resolution_even_with_notify_resolved_off() {
    let mut s = settings();
    s.notify_resolved = false;
    s.chains.get_mut("field-ops").unwrap().levels[0]
        .channels
        .push("fleet".into());
    s.channels.insert("fleet".into(), Severity::Info);
    s.always_resolved = vec!["fleet".into()];
    let mut sim = Sim::new(s);
    sim.signal(failing("camera", None));
    sim.pass(10 * S);
    assert_eq!(
        sim.log(),
        vec![
            row("fleet", "firing", "camera"),
            row("ops-webhook", "firing", "camera")
        ]
    );
    sim.signal(clear("camera"));
    sim.pass(10 * S);
    assert_eq!(
        sim.log()[2..],
        [row("fleet", "resolved", "camera")],
        "the webhook is not told (notify-resolved = false); Alertmanager is"
    );
}
