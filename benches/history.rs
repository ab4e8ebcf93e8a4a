//! The metrics history under load, on a simulated clock:
//!
//! 1. Recording: 1,000 series sampled every second for an hour. CPU time
//!    of the recording thread per sample, and the RSS the RAM hour adds.
//! 2. Flash: 300 series every 10 s for a day, minutes closed and written as
//!    the recorder would (one batch a minute). Bytes the writer passed to
//!    the kernel and bytes it dirtied for storage, per day.
//! 3. Query: 24 hours of 20 of those series at 1-minute resolution, read
//!    back from the file.
//!
//! The series are a third counters (whole numbers that grow), a third
//! gauges that change every 30 s (whole numbers), a third noisy ratios
//! (arbitrary floats, the worst case for compression).
//!
//! Run with `cargo bench --bench history`; `cargo bench --bench history --
//! query` skips the recording part (the query reads the day of part 2).

use std::time::Instant;

use rvm_watchdog::metrics::history::{History, HistoryConfig, Matcher, Query, Resolution};
use rvm_watchdog::metrics::{Kind, Sample, SeriesKey};

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
/// A whole hour.
const T0: u64 = 1_760_000_000_000 - 1_760_000_000_000 % HOUR;

/// CPU time of this thread in milliseconds (`/proc/thread-self/stat`,
/// ticks of 10 ms).
fn thread_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()) * 10
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            // 20 of the noisy ratios are the ones the query reads.
            let group = if i % 3 == 2 && i < 60 {
                "query"
            } else {
                "rest"
            };
            let n = i.to_string();
            let (name, kind) = match i % 3 {
                0 => ("bench_bytes_total", Kind::Counter),
                1 => ("bench_memory_bytes", Kind::Gauge),
                _ => ("bench_usage_ratio", Kind::Gauge),
            };
            Sample {
                key: SeriesKey::new(name, [("n", n.as_str()), ("group", group)]),
                kind,
                at_ms: 0,
                value: 0.0,
            }
        })
        .collect()
}

/// Series `i`'s value at second `t`.
fn value(i: usize, t: u64) -> f64 {
    let i64 = i as u64;
    match i % 3 {
        0 => (t * (1000 + i64 * 17) + (t * t) % 97) as f64,
        1 => (100_000_000 + ((t / 30 + i64) % 50) * 4096) as f64,
        _ => 0.5 + 0.3 * ((t as f64) * 0.01 + i as f64).sin() + ((t * 7 + i64) % 13) as f64 * 1e-4,
    }
}

/// Records `series` every `every_s` for `seconds`, closing minutes each
/// tick and waiting for the writer each minute, as a real clock would give
/// it time to. Returns the recording thread's CPU milliseconds.
fn run(h: &mut History, series: &mut [Sample], every_s: u64, seconds: u64) -> u64 {
    let start = thread_cpu_ms();
    let mut waiting = 0;
    for t in (0..seconds).step_by(every_s as usize) {
        let at = T0 + t * SECOND;
        for (i, s) in series.iter_mut().enumerate() {
            s.at_ms = at;
            s.value = value(i, t);
            h.record(s);
        }
        h.close_minutes(at);
        if at.is_multiple_of(MINUTE) {
            let before = thread_cpu_ms();
            h.flush().unwrap();
            waiting += thread_cpu_ms() - before;
        }
    }
    thread_cpu_ms() - start - waiting
}

fn main() {
    if !std::env::args().any(|a| a == "query") {
        record();
    }
    flash_and_query();
}

/// 1. An hour of 1,000 series at 1 s.
fn record() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = samples(1000);
    let rss_before = rss_kib();
    let mut h = History::open(dir.path(), HistoryConfig::default()).unwrap();
    let wall = Instant::now();
    let cpu_ms = run(&mut h, &mut series, 1, 3600);
    let wall = wall.elapsed();
    let rss_after = rss_kib();
    let stats = h.stats();
    let n = stats.recorded;
    println!("record: 1000 series x 3600 s = {n} samples");
    println!(
        "  cpu {cpu_ms} ms on the recording thread = {:.0} ns/sample ({:.2} ms per second of samples); wall {:.2} s",
        cpu_ms as f64 * 1e6 / n as f64,
        cpu_ms as f64 / 3600.0,
        wall.as_secs_f64()
    );
    println!(
        "  RAM hour: {} samples held, {:.1} MiB counted by the rings ({:.2} B/sample), VmRSS +{:.1} MiB ({} -> {} KiB)",
        stats.ram_samples,
        stats.ram_bytes as f64 / 1048576.0,
        stats.ram_bytes as f64 / stats.ram_samples as f64,
        (rss_after - rss_before) as f64 / 1024.0,
        rss_before,
        rss_after
    );
    h.shutdown(T0 + HOUR).unwrap();
}

/// 2. A day of 300 series at 10 s, then 3. the query.
fn flash_and_query() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = samples(300);
    let mut h = History::open(dir.path(), HistoryConfig::default()).unwrap();
    let wall = Instant::now();
    run(&mut h, &mut series, 10, 86_400);
    h.close_minutes(T0 + 86_400 * SECOND + 5 * SECOND);
    h.flush().unwrap();
    let stats = h.stats();
    println!(
        "flash: 300 series x 10 s for a day ({} samples, {} batches, {} dropped) in {:.1} s",
        stats.recorded,
        stats.batches_written,
        stats.batches_dropped,
        wall.elapsed().as_secs_f64()
    );
    println!(
        "  passed to write calls {:.1} MB/day; dirtied for storage {:.1} MB/day; file {:.1} MB",
        stats.bytes_passed as f64 / 1e6,
        stats.bytes_written as f64 / 1e6,
        stats.file_bytes as f64 / 1e6
    );

    // 3. 24 h of 20 series at 1 minute, from the file.
    let now = T0 + 86_400 * SECOND + 5 * SECOND;
    let query = Query {
        selector: Matcher::new("bench_usage_ratio", [("group", "query")]).into(),
        from_ms: T0,
        to_ms: T0 + 86_400 * SECOND,
        step_ms: MINUTE,
    };
    let mut times = Vec::new();
    let mut shape = (Resolution::Raw, 0, 0);
    for _ in 0..20 {
        let started = Instant::now();
        let answer = h.query(&query, now).wait().unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let points = answer.series.iter().map(|s| s.points.len()).sum::<usize>();
        shape = (answer.resolution, answer.series.len(), points);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "query: 24 h of {} series at {:?} ({} points): median {:.2} ms, max {:.2} ms over {} runs",
        shape.1,
        shape.0,
        shape.2,
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    h.shutdown(now).unwrap();
}
