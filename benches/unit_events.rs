//! How fast the watchdog sees a crash, and how fast it brings a service back,
//! against systemd's own signal and systemd's own `Restart=`, in one run on a
//! private systemd (see tests/support/systemd.rs).
//!
//! 1. Detection: a unit's main process is killed 50 times. For each kill, the
//!    delay to the supervisor's failure event is measured beside the delay to
//!    systemd's own `PropertiesChanged` signal (`ActiveState=failed`) as seen
//!    by an independent listener on its own bus connection.
//! 2. Recovery: crash → running again, 100 times each, alternating: the
//!    watchdog restarting a `Restart=no` unit as soon as it sees the failure
//!    (no backoff), and systemd restarting a `Restart=always`, `RestartSec=0`
//!    unit. "Running again" is the listener's `ActiveState=active` signal.
//!    Each kill comes 100 ms after the last start, so that neither path
//!    rides on the other's cgroup migration (see [`SETTLE`]).
//!
//! Run with `bench/unit-events.sh` (as root).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rvm_watchdog::supervisor::perform;
use rvm_watchdog::supervisor::{BusTarget, Supervisor, UnitAction, UnitChanged, unit_path};
use support::systemd::PrivateSystemd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zbus::{MatchRule, MessageStream, OwnedVariant};

const KILLS: usize = 50;
const RESTARTS: usize = 100;
const WAIT: Duration = Duration::from_secs(10);
/// The pause before each kill of the recovery runs. Both paths end in
/// systemd moving the new process into the unit's cgroup v2, which costs a
/// kernel RCU grace period (about 10 ms on this VM) unless another
/// migration happened within the last grace period or so; a short pause
/// let one path ride on the other's migration. 100 ms gives both the same
/// full cost.
const SETTLE: Duration = Duration::from_millis(100);

/// `ActiveState` changes of the given units, as systemd signals them.
async fn listen(
    address: String,
    units: Vec<String>,
    tx: mpsc::UnboundedSender<(Instant, String, String)>,
) {
    let conn = zbus::connection::Builder::address(address.as_str())
        .build()
        .await
        .unwrap();
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.freedesktop.DBus.Properties")
        .member("PropertiesChanged")
        .path_namespace("/org/freedesktop/systemd1/unit")
        .build()
        .unwrap();
    let mut stream = MessageStream::for_match_rule(rule, &conn, NonZeroUsize::new(4096))
        .await
        .unwrap();
    // systemd sends unit signals only to subscribed clients.
    conn.call_method(
        Some("org.freedesktop.systemd1"),
        "/org/freedesktop/systemd1",
        Some("org.freedesktop.systemd1.Manager"),
        "Subscribe",
        &(),
    )
    .await
    .unwrap();
    let paths: HashMap<String, String> = units.iter().map(|u| (unit_path(u), u.clone())).collect();
    while let Some(Ok(message)) = stream.next().await {
        let at = Instant::now();
        let header = message.header();
        let Some(unit) = header.path().and_then(|p| paths.get(p.as_str())) else {
            continue;
        };
        let Ok((_, changed, _)) =
            message
                .body()
                .deserialize::<(String, HashMap<String, OwnedVariant>, Vec<String>)>()
        else {
            continue;
        };
        if let Some(zbus::Variant::Str(state)) = changed.get("ActiveState").map(|v| &**v) {
            let _ = tx.send((at, unit.clone(), state.as_str().to_owned()));
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (median, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
    println!(
        "{name:<44} n={:<3} median {median:>7.2} ms  p99 {p99:>7.2} ms  min {:>6.2}  max {:>7.2}",
        ms.len(),
        ms[0],
        ms[ms.len() - 1]
    );
    (median, p99)
}

async fn wait_signal(
    rx: &mut mpsc::UnboundedReceiver<(Instant, String, String)>,
    unit: &str,
    state: &str,
) -> Instant {
    tokio::time::timeout(WAIT, async {
        loop {
            let (at, u, s) = rx.recv().await.unwrap();
            if u == unit && s == state {
                return at;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {state} signal for {unit}"))
}

/// The first matching event: when it arrived, and the unit's state.
async fn wait_event(
    rx: &mut mpsc::Receiver<UnitChanged>,
    unit: &str,
    pred: impl Fn(&UnitChanged) -> bool,
) -> (Instant, rvm_watchdog::supervisor::UnitState) {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = rx.recv().await.unwrap();
            if e.state.unit == unit && pred(&e) {
                return (Instant::now(), e.state);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching event for {unit}"))
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) {
    while rx.try_recv().is_ok() {}
}

fn drain_events(rx: &mut mpsc::Receiver<UnitChanged>) {
    while rx.try_recv().is_ok() {}
}

fn main() {
    let sd = PrivateSystemd::shared().expect("a private systemd (run as root)");
    let crash = "bench-crash.service";
    let healed = "bench-watchdog-restart.service";
    let native = "bench-systemd-restart.service";
    sd.write_unit(
        crash,
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep 1000\n",
    );
    sd.write_unit(
        healed,
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep 1000\n",
    );
    sd.write_unit(
        native,
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep 1000\nRestart=always\nRestartSec=0\n",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (sig_tx, mut signals) = mpsc::unbounded_channel();
        let units = vec![crash.to_owned(), healed.to_owned(), native.to_owned()];
        tokio::spawn(listen(sd.bus_address(), units.clone(), sig_tx));
        let (tx, mut events) = mpsc::channel(1024);
        let stop = CancellationToken::new();
        let supervisor = Supervisor::spawn(
            BusTarget::Address(sd.bus_address()),
            units.iter().cloned().collect::<BTreeSet<_>>(),
            tx,
            stop.clone(),
        );
        let mut status = supervisor.status();
        status.wait_for(|s| s.connected).await.unwrap();
        let act = Duration::from_secs(10);

        // 1. Detection.
        let (mut to_signal, mut to_event) = (Vec::new(), Vec::new());
        for _ in 0..KILLS {
            supervisor.act(crash, UnitAction::Start, act).await.unwrap();
            wait_event(&mut events, crash, |e| e.state.main_pid != 0 && e.state.active_state == "active").await;
            let pid = sd.main_pid(crash);
            tokio::time::sleep(Duration::from_millis(20)).await;
            drain(&mut signals);
            drain_events(&mut events);
            let t0 = Instant::now();
            kill9(pid);
            let (signal, event) = tokio::join!(
                wait_signal(&mut signals, crash, "failed"),
                wait_event(&mut events, crash, |e| e.failure().is_some())
            );
            to_signal.push((signal - t0).as_secs_f64() * 1000.0);
            to_event.push((event.0 - t0).as_secs_f64() * 1000.0);
        }
        println!("kill -9 → seen, {KILLS} kills:");
        let (sys_median, sys_p99) = report("systemd's PropertiesChanged (independent)", to_signal);
        let (wd_median, wd_p99) = report("watchdog's failure event", to_event);
        println!(
            "ratio watchdog/systemd: median {:.2}, p99 {:.2}   (target: median < 5 ms, p99 < 20 ms)",
            wd_median / sys_median,
            wd_p99 / sys_p99
        );

        // 2. Recovery, alternating the two paths.
        supervisor.act(native, UnitAction::Start, act).await.unwrap();
        let (mut by_watchdog, mut by_systemd) = (Vec::new(), Vec::new());
        let (mut to_decision, mut start_jobs) = (Vec::new(), Vec::new());
        for _ in 0..RESTARTS {
            // The watchdog's path: failure event → start, no backoff.
            supervisor.act(healed, UnitAction::Start, act).await.unwrap();
            let pid = sd.main_pid(healed);
            tokio::time::sleep(SETTLE).await;
            drain(&mut signals);
            drain_events(&mut events);
            let t0 = Instant::now();
            kill9(pid);
            let (seen, failed) = wait_event(&mut events, healed, |e| e.failure().is_some()).await;
            // The `restart` step's own action.
            let call = Instant::now();
            let done = perform::restart_unit(&supervisor, healed, Some(&failed)).await;
            assert!(done.ok, "{}", done.detail);
            let took = call.elapsed();
            let up = wait_signal(&mut signals, healed, "active").await;
            by_watchdog.push((up - t0).as_secs_f64() * 1000.0);
            to_decision.push((seen - t0).as_secs_f64() * 1000.0);
            start_jobs.push(took.as_secs_f64() * 1000.0);

            // systemd's own path.
            let pid = sd.main_pid(native);
            tokio::time::sleep(SETTLE).await;
            drain(&mut signals);
            let t0 = Instant::now();
            kill9(pid);
            let up = wait_signal(&mut signals, native, "active").await;
            by_systemd.push((up - t0).as_secs_f64() * 1000.0);
        }
        println!("crash → running again, {RESTARTS} each:");
        let (sd_median, _) = report("systemd Restart=always, RestartSec=0", by_systemd);
        let (wd_median, _) = report("watchdog restart on the failure event", by_watchdog);
        println!("ratio watchdog/systemd: median {:.2}   (target: within 1.5)", wd_median / sd_median);
        println!("the watchdog's path, in parts:");
        report("  kill → failure event (the watchdog's part)", to_decision);
        report("  RestartUnit → job done (systemd's job)", start_jobs);
        stop.cancel();
    });
    for unit in [crash, healed, native] {
        sd.systemctl(&["stop", unit]);
        sd.systemctl(&["reset-failed", unit]);
    }
}
