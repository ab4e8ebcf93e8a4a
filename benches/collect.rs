//! What collecting costs: the CPU time of one round of each collector on
//! this machine's real `/proc` (the Jetson collector on the JetPack 6
//! fixture tree, as this machine is no Jetson), of the default set, and of
//! the scheduler running the default set with a stand-in recorder that
//! keeps the latest value of each series: every 100 ms on this machine,
//! and every second on a host tree widened to about 1,000 series (the
//! `host-a` fixture with 115 network interfaces; target: under 1 % of one
//! core). Run with `bench/collect.sh`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use rvm_watchdog::metrics::collect::{
    self, Collector, HostCollector, JetsonCollector, Scheduler, WatchdogCollector,
};
use rvm_watchdog::metrics::{Sample, SeriesKey};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const ROUNDS: u32 = 2_000;
const RUN_FOR: Duration = Duration::from_secs(20);
const SCHEDULED_INTERVAL: Duration = Duration::from_millis(100);
const INTERFACES: usize = 115;

/// The default set at `interval` for [`RUN_FOR`] into a stand-in
/// recorder: seconds run, process CPU used, rounds, samples, series, drops.
async fn scheduled(
    host: &Path,
    jetson: &Path,
    interval: Duration,
) -> (f64, Duration, u64, usize, usize, u64) {
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(64);
    let stop = CancellationToken::new();
    let set: Vec<Box<dyn Collector>> = vec![
        Box::new(HostCollector::new(host.to_owned())),
        Box::new(JetsonCollector::new(jetson.to_owned())),
        Box::new(WatchdogCollector::new()),
    ];
    let set = set
        .into_iter()
        .map(|collector| collect::Scheduled {
            collector,
            interval,
        })
        .collect();
    let scheduler = Scheduler::spawn(set, tx, stop.clone());
    let mut latest: HashMap<SeriesKey, (u64, f64)> = HashMap::new();
    let warm = tokio::time::Instant::now() + interval * 2;
    while let Ok(Some(round)) = tokio::time::timeout_at(warm, rx.recv()).await {
        for s in round {
            latest.insert(s.key, (s.at_ms, s.value));
        }
    }
    let (start, wall) = (cpu(UsageWho::RUSAGE_SELF), Instant::now());
    let rounds0: u64 = scheduler.counts().iter().map(|c| c.rounds).sum();
    let mut samples = 0usize;
    let deadline = tokio::time::Instant::now() + RUN_FOR;
    while let Ok(Some(round)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        samples += round.len();
        for s in round {
            latest.insert(s.key, (s.at_ms, s.value));
        }
    }
    let used = cpu(UsageWho::RUSAGE_SELF) - start;
    let elapsed = wall.elapsed().as_secs_f64();
    let rounds = scheduler.counts().iter().map(|c| c.rounds).sum::<u64>() - rounds0;
    stop.cancel();
    scheduler.stopped().await;
    (
        elapsed,
        used,
        rounds,
        samples,
        latest.len(),
        scheduler.dropped(),
    )
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// CPU time used so far, user and system, by this thread or this process.
fn cpu(who: UsageWho) -> Duration {
    let usage = getrusage(who).unwrap();
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    micros(usage.user_time()) + micros(usage.system_time())
}

/// Rounds of `collectors` back to back on this thread: CPU per round and
/// series per round.
fn rounds(collectors: &mut [Box<dyn Collector>]) -> (Duration, usize) {
    for _ in 0..20 {
        for c in collectors.iter_mut() {
            c.collect(collect::now_ms());
        }
    }
    let mut series = 0;
    let start = cpu(UsageWho::RUSAGE_THREAD);
    for _ in 0..ROUNDS {
        for c in collectors.iter_mut() {
            series += c.collect(collect::now_ms()).len();
        }
    }
    let used = cpu(UsageWho::RUSAGE_THREAD) - start;
    (used / ROUNDS, series / ROUNDS as usize)
}

fn report(what: &str, per_round: Duration, series: usize) {
    let us = per_round.as_secs_f64() * 1e6;
    let per_series = us / series.max(1) as f64;
    println!(
        "{what:<44} {series:>4} series  {us:>8.1} µs CPU a round  {per_series:>5.2} µs a series  \
         1,000 series/s: {:.3} % of a core",
        per_series * 1000.0 / 1e6 * 100.0
    );
}

fn main() {
    let jp6 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jetson/jp6-orin-nano");
    let host: Box<dyn Collector> = Box::new(HostCollector::new("/".into()));
    let (per, n) = rounds(&mut [host]);
    report("host (this machine's /proc)", per, n);
    let jetson: Box<dyn Collector> = Box::new(JetsonCollector::new(jp6.clone()));
    let (per, n) = rounds(&mut [jetson]);
    report("jetson (JetPack 6 fixture tree)", per, n);
    let watchdog: Box<dyn Collector> = Box::new(WatchdogCollector::new());
    let (per, n) = rounds(&mut [watchdog]);
    report("watchdog (/proc/self)", per, n);
    let mut set: Vec<Box<dyn Collector>> = vec![
        Box::new(HostCollector::new("/".into())),
        Box::new(JetsonCollector::new(jp6.clone())),
        Box::new(WatchdogCollector::new()),
    ];
    let (per, n) = rounds(&mut set);
    report("default set, one round each", per, n);

    // The scheduler with the default set into a stand-in recorder; the
    // whole process's CPU, runtime included.
    let wide = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/collect/host-a"),
        wide.path(),
    );
    let mut dev = String::from("Inter-| Receive | Transmit\n face |bytes packets|bytes packets\n");
    for i in 0..INTERFACES {
        dev.push_str(&format!(
            "  eth{i}: 74684632 4248 1 2 0 0 0 0 292057 3658 3 4 0 0 0 0\n"
        ));
    }
    std::fs::write(wide.path().join("proc/net/dev"), dev).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (what, host, interval) in [
            ("this machine", Path::new("/"), SCHEDULED_INTERVAL),
            ("the widened tree", wide.path(), Duration::from_secs(1)),
        ] {
            let (elapsed, used, rounds, samples, series, dropped) =
                scheduled(host, &jp6, interval).await;
            let share = used.as_secs_f64() / elapsed * 100.0;
            println!(
                "scheduler, default set on {what} every {} ms for {elapsed:.0} s: {rounds} rounds, \
                 {samples} samples ({:.0}/s, {series} series), dropped {dropped}",
                interval.as_millis(),
                samples as f64 / elapsed,
            );
            println!(
                "  process CPU {share:.3} % of a core, {:.2} µs a sample   (target for 1,000 series/s: < 1 %)",
                used.as_secs_f64() * 1e6 / samples.max(1) as f64
            );
        }
    });
}
