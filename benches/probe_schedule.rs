//! 500 probes at a 1 s interval: how late each run starts against its
//! schedule (p50/p99), and how much CPU the scheduler and checks use.
//! Each probe is a `file-age` check of one file (cheap, real I/O), so the
//! figures are the scheduler's, not a slow check's. Run with
//! `bench/probe-schedule.sh`.

use std::time::{Duration, Instant};

use rvm_watchdog::config::diag::SourceFile;
use rvm_watchdog::config::{self, validate};
use rvm_watchdog::probe::{self, Context};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const PROBES: usize = 500;
const RUN_FOR: Duration = Duration::from_secs(30);

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the state.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heartbeat");
    std::fs::write(&file, "1").unwrap();
    let mut policy = String::from("[target]\nname = \"bench\"\n");
    for i in 0..PROBES {
        policy.push_str(&format!(
            "\n[[probe]]\nname = \"p{i}\"\nkind = \"file-age\"\nfile = \"{}\"\nmax-age = \"1h\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            file.display()
        ));
    }
    let src = SourceFile::new(
        "<embedded>/watchdog.toml",
        config::EMBEDDED_CONFIG.to_owned(),
    );
    let mut out = Vec::new();
    let raw = src.deserialize(&mut out, |_| None).unwrap();
    let config = validate::config(&src, raw, &mut out);
    let psrc = SourceFile::new("bench.toml", policy);
    let raw = psrc.deserialize(&mut out, |_| None).unwrap();
    let target = validate::policy(&psrc, raw, &config, &mut out).unwrap();
    assert!(out.is_empty(), "{out:?}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (tx, mut rx) = mpsc::channel(4096);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let ctx = Context::new("/".into());
        probe::start(&target, &ctx, &tx, &stop, &tasks);
        // Warm-up: the first runs are spread over a tenth of the interval.
        tokio::time::sleep(Duration::from_secs(2)).await;
        while rx.try_recv().is_ok() {}
        let ticks0 = cpu_ticks();
        let wall = Instant::now();
        let mut lags = Vec::new();
        let deadline = tokio::time::Instant::now() + RUN_FOR;
        while let Ok(Some(result)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            lags.push(result.lag.as_secs_f64() * 1000.0);
        }
        let ticks = cpu_ticks() - ticks0;
        let elapsed = wall.elapsed().as_secs_f64();
        stop.cancel();
        lags.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| lags[((p / 100.0) * (lags.len() as f64 - 1.0)).round() as usize];
        let hz = 100.0; // USER_HZ on Linux
        let cpu = ticks as f64 / hz / elapsed * 100.0;
        println!(
            "{PROBES} probes at 1s for {:.0} s: {} runs ({:.1}/s)",
            elapsed,
            lags.len(),
            lags.len() as f64 / elapsed
        );
        println!(
            "scheduling lag: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms   (target: p99 < 10 ms)",
            at(50.0),
            at(99.0),
            lags[lags.len() - 1]
        );
        println!("CPU: {cpu:.1} % of one core   (target: < 5 %)");
    });
}
