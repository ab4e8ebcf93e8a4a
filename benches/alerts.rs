//! Events through the alert engine: 200 targets flapping, 10,000 events a
//! second for 10 seconds of a simulated clock, each event turned into
//! signals, fed to the engine and to the incident records, the engine
//! ticked every simulated second — what the alert task does, without the
//! store. Prints the engine's CPU, the decision latency per event (median,
//! p99, max) and the RSS at each simulated second (flat, or it leaks).
//! Run with `cargo bench --bench alerts`.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use rvm_watchdog::alert::incident::Incidents;
use rvm_watchdog::alert::{Engine, Settings, source};
use rvm_watchdog::event::{ActionResult, Event, Stamped};
use rvm_watchdog::probe::{ProbeHealth, Status};
use rvm_watchdog::recovery::{Decision, Health};

const TARGETS: usize = 200;
const PER_SECOND: usize = 10_000;
const SECONDS: u64 = 10;
const T0: u64 = 1_796_000_000_000;

fn thread_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    (f[0] + f[1]) * 1000 / 100
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One flap of a target: the ten events the daemon emits.
fn flap(target: &str, n: u64) -> Vec<Event> {
    let unit = Some(format!("{target}.service"));
    let id = format!("{target}-{n}");
    let failing = Health::Failing {
        reason: format!("unit {target}.service failed (exit-code)"),
        systemd_restarting: false,
    };
    vec![
        Event::ProbeChanged {
            target: target.into(),
            unit: unit.clone(),
            probe: "liveness".into(),
            health: ProbeHealth::Failing,
            status: Status::Fail,
            output: "connection refused".into(),
        },
        Event::HealthChanged {
            target: target.into(),
            unit: unit.clone(),
            from: Health::Healthy,
            to: failing,
        },
        Event::IncidentOpened {
            target: target.into(),
            unit: unit.clone(),
            id: id.clone(),
            reason: "unit failed".into(),
            root_cause: None,
        },
        Event::Decided {
            target: target.into(),
            unit: unit.clone(),
            incident: Some(id.clone()),
            systemd: None,
            ladder: vec!["restart"],
            reset_after: Duration::from_secs(600),
            decision: Decision::Scheduled {
                step: 0,
                attempt: 1,
                delay: Duration::from_millis(0),
            },
        },
        Event::ActionStarted {
            target: target.into(),
            unit: unit.clone(),
            incident: Some(id.clone()),
            step: 0,
            attempt: 1,
            action: "restart",
            reason: "unit failed".into(),
            observe: false,
        },
        Event::ActionFinished {
            target: target.into(),
            unit: unit.clone(),
            incident: Some(id.clone()),
            step: 0,
            attempt: 1,
            action: "restart",
            result: ActionResult::Ok,
            detail: "restarted".into(),
            took: Duration::from_millis(20),
            output: None,
        },
        Event::Decided {
            target: target.into(),
            unit: unit.clone(),
            incident: Some(id.clone()),
            systemd: None,
            ladder: vec!["restart"],
            reset_after: Duration::from_secs(600),
            decision: Decision::Recovered { step: 0 },
        },
        Event::HealthChanged {
            target: target.into(),
            unit: unit.clone(),
            from: Health::Unknown,
            to: Health::Healthy,
        },
        Event::IncidentClosed {
            target: target.into(),
            unit: unit.clone(),
            id,
            lasted: Duration::from_millis(150),
        },
        Event::ProbeChanged {
            target: target.into(),
            unit,
            probe: "liveness".into(),
            health: ProbeHealth::Passing,
            status: Status::Pass,
            output: String::new(),
        },
    ]
}

fn main() {
    let config = rvm_watchdog::config::load(&rvm_watchdog::config::Sources::default())
        .config
        .expect("the embedded configuration");
    let mut settings = Settings::from_config(&config);
    // The shipped chain, in small: a channel at once and one after 10 min.
    settings.chains.insert(
        "field-ops".into(),
        rvm_watchdog::alert::settings::Chain {
            levels: vec![
                rvm_watchdog::alert::settings::Level {
                    after_ms: 0,
                    channels: vec!["ops-webhook".into()],
                },
                rvm_watchdog::alert::settings::Level {
                    after_ms: 600_000,
                    channels: vec!["ops-email".into()],
                },
            ],
            repeat_ms: Some(3_600_000),
        },
    );
    settings.default_escalation = Some("field-ops".into());
    let mut engine = Engine::new(settings);
    let mut incidents = Incidents::default();
    let targets: Vec<String> = (0..TARGETS).map(|i| format!("t{i:03}")).collect();
    // Touched up front, so that the RSS below is the engine's alone.
    let mut latencies: Vec<u32> = vec![1; PER_SECOND * SECONDS as usize + SECONDS as usize];
    latencies.clear();
    let mut notifications = 0usize;
    let mut rss = Vec::new();
    let cpu0 = thread_cpu_ms();
    let wall = Instant::now();
    let mut seq = 0u64;
    for second in 0..SECONDS {
        // 10,000 events: every target flaps 5 times a second (10 events a flap).
        let flaps_per_target = PER_SECOND / TARGETS / 10;
        for k in 0..flaps_per_target {
            for (ti, t) in targets.iter().enumerate() {
                for e in flap(t, second * 10 + k as u64) {
                    seq += 1;
                    let now = T0
                        + second * 1000
                        + ((k * TARGETS + ti) * 10) as u64 * 1000 / PER_SECOND as u64;
                    let stamped = Arc::new(Stamped {
                        seq,
                        at: UNIX_EPOCH + Duration::from_millis(now),
                        event: e,
                    });
                    let start = Instant::now();
                    for s in source::signals(&stamped.event, &config) {
                        for effect in engine.signal(s, now) {
                            if let rvm_watchdog::alert::Effect::Notify(n) = effect {
                                notifications += 1;
                                std::hint::black_box(incidents.on_notification(&n, |_| None));
                            }
                        }
                    }
                    std::hint::black_box(incidents.on_event(&stamped));
                    latencies.push(start.elapsed().as_nanos() as u32);
                }
            }
        }
        let start = Instant::now();
        notifications += engine
            .tick(T0 + (second + 1) * 1000)
            .iter()
            .filter(|e| matches!(e, rvm_watchdog::alert::Effect::Notify(_)))
            .count();
        latencies.push(start.elapsed().as_nanos() as u32);
        rss.push(rss_kib());
    }
    let cpu = thread_cpu_ms() - cpu0;
    let wall = wall.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "alert engine: {} events ({} targets flapping, {PER_SECOND}/s for {SECONDS} s simulated)",
        latencies.len() - SECONDS as usize,
        TARGETS
    );
    println!(
        "  cpu {cpu} ms ({:.1} % of a core at {PER_SECOND} events/s), wall {:.2} s",
        cpu as f64 / (SECONDS * 1000) as f64 * 100.0,
        wall.as_secs_f64()
    );
    println!(
        "  decision latency per event: median {:.1} µs, p99 {:.1} µs, max {:.1} µs (target p99 under 1 ms)",
        pct(0.5),
        pct(0.99),
        *latencies.last().unwrap() as f64 / 1000.0
    );
    println!(
        "  notifications handed on: {notifications}; alerts held: {}, flapping: {}",
        engine.alerts().len(),
        engine.alerts().values().filter(|a| a.flapping).count()
    );
    println!("  RSS each simulated second (KiB): {rss:?}");
}
