//! The history as its recorder drives it: samples in, minutes closed on a
//! test clock, queries out, the file closed and opened again.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

const SECOND: u64 = 1000;
/// A whole hour, so that minutes and hours start where the tests expect.
const T0: u64 = 1_760_000_000_000 - 1_760_000_000_000 % HOUR;

fn key(name: &str) -> SeriesKey {
    SeriesKey::new(name, [("mount", "/")])
}

fn sample(key: &SeriesKey, kind: Kind, at_ms: u64, value: f64) -> Sample {
    Sample {
        key: key.clone(),
        kind,
        at_ms,
        value,
    }
}

fn open(dir: &Path) -> History {
    History::open(dir, HistoryConfig::default()).unwrap()
}

fn ask(
    h: &History,
    selector: impl Into<Selector>,
    from: u64,
    to: u64,
    step: u64,
    now: u64,
) -> Answer {
    h.query(
        &Query {
            selector: selector.into(),
            from_ms: from,
            to_ms: to,
            step_ms: step,
        },
        now,
    )
    .wait()
    .unwrap()
}

/// The points of the only series answered.
fn points(answer: &Answer) -> &[Point] {
    assert_eq!(answer.series.len(), 1, "{answer:?}");
    &answer.series[0].points
}

fn summary(p: &Point) -> (u64, u32, f64, f64, f64, f64) {
    (p.at_ms, p.count, p.min, p.max, p.mean, p.last)
}

/// Two minutes of a gauge at 1 s: value i at second i.
fn two_minutes(h: &mut History, k: &SeriesKey) {
    for i in 0..120 {
        h.record(&sample(k, Kind::Gauge, T0 + i * SECOND, i as f64));
    }
}

/// Closes minutes and waits for the writer, as a clock that runs at its
/// real pace would: the test's clock runs far faster than the disk.
fn close(h: &mut History, now_ms: u64) {
    h.close_minutes(now_ms);
    h.flush().unwrap();
}

fn file_rows(dir: &Path, table: &str) -> Vec<u64> {
    let conn = rusqlite::Connection::open(dir.join(FILE_NAME)).unwrap();
    let mut st = conn
        .prepare(&format!("SELECT start_ms FROM {table} ORDER BY start_ms"))
        .unwrap();
    st.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as u64)
        .collect()
}

#[test]
fn samples_come_back_at_full_resolution_then_as_minute_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    let k = key("disk_used_ratio");
    two_minutes(&mut h, &k);
    let now = T0 + 120 * SECOND;

    let raw = ask(&h, k.clone(), T0, now, 0, now);
    assert_eq!(raw.resolution, Resolution::Raw);
    let p = points(&raw);
    assert_eq!(p.len(), 120);
    for (i, point) in p.iter().enumerate() {
        let i = i as u64;
        assert_eq!(
            summary(point),
            (T0 + i * SECOND, 1, i as f64, i as f64, i as f64, i as f64)
        );
        assert_eq!(point.increase, None);
    }

    // Closed five seconds after the second minute ended, both go to the file.
    h.close_minutes(now + 5 * SECOND);
    h.flush().unwrap();
    let minutes = ask(&h, k.clone(), T0, now, MINUTE, now + 5 * SECOND);
    assert_eq!(minutes.resolution, Resolution::Minute);
    assert_eq!(minutes.step_ms, MINUTE);
    let p = points(&minutes);
    assert_eq!(p.len(), 2);
    assert_eq!(summary(&p[0]), (T0, 60, 0.0, 59.0, 29.5, 59.0));
    assert_eq!(summary(&p[1]), (T0 + MINUTE, 60, 60.0, 119.0, 89.5, 119.0));
    assert_eq!(file_rows(dir.path(), "minute"), [T0, T0 + MINUTE]);
    let stats = h.stats();
    assert_eq!(
        (stats.recorded, stats.ram_samples, stats.series),
        (120, 120, 1)
    );
    assert_eq!(stats.batches_written, 1);
}

#[test]
fn the_open_minute_is_answered_from_ram_before_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    let k = key("disk_used_ratio");
    two_minutes(&mut h, &k);
    // Nothing closed yet: both minutes come from RAM, the same as from the file.
    let now = T0 + 120 * SECOND;
    let p = ask(&h, k.clone(), T0, now, MINUTE, now).series[0]
        .points
        .clone();
    assert_eq!(summary(&p[0]), (T0, 60, 0.0, 59.0, 29.5, 59.0));
    assert_eq!(summary(&p[1]), (T0 + MINUTE, 60, 60.0, 119.0, 89.5, 119.0));
    assert!(file_rows(dir.path(), "minute").is_empty());
}

#[test]
fn a_counters_increase_across_a_reset_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    let k = SeriesKey::new("rvm_host_network_bytes_total", [("iface", "eth0")]);
    // Every 10 s; it restarts from zero twice.
    let values = [
        100.0, 110.0, 130.0, 5.0, 25.0, 40.0, 50.0, 60.0, 3.0, 13.0, 23.0, 33.0,
    ];
    for (i, v) in values.iter().enumerate() {
        h.record(&sample(&k, Kind::Counter, T0 + i as u64 * 10 * SECOND, *v));
    }
    let now = T0 + 2 * MINUTE;
    // Raw: each sample's growth from the one before.
    let raw = ask(&h, k.clone(), T0, now, 10 * SECOND, now);
    assert_eq!(raw.resolution, Resolution::Raw);
    let growth: Vec<f64> = points(&raw).iter().map(|p| p.increase.unwrap()).collect();
    assert_eq!(
        growth,
        [
            0.0, 10.0, 20.0, 5.0, 20.0, 15.0, 10.0, 10.0, 3.0, 10.0, 10.0, 10.0
        ]
    );

    h.close_minutes(now + 5 * SECOND);
    let minutes = ask(&h, k.clone(), T0, now, MINUTE, now + 5 * SECOND);
    let p = points(&minutes);
    assert_eq!(p[0].increase, Some(70.0));
    assert_eq!(p[1].increase, Some(53.0));
    assert_eq!(p[0].last, 40.0);
    // The growth of the second minute counts from the first's last sample.
    let both = ask(&h, k.clone(), T0, now, 2 * MINUTE, now + 5 * SECOND);
    assert_eq!(points(&both)[0].increase, Some(123.0));
    assert_eq!(
        points(&both)[0].rate_per_s(both.step_ms),
        Some(123.0 / 120.0)
    );

    // The same after a restart, from the file.
    h.shutdown(now + 5 * SECOND).unwrap();
    let h = open(dir.path());
    let minutes = ask(&h, k.clone(), T0, now, MINUTE, now + 10 * SECOND);
    let growth: Vec<_> = points(&minutes).iter().map(|p| p.increase).collect();
    assert_eq!(growth, [Some(70.0), Some(53.0)]);
    assert_eq!(minutes.series[0].kind, Kind::Counter);
}

#[test]
fn rollups_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("disk_used_ratio");
    // Two and a half hours, a sample a minute, value = minutes since T0.
    let end = T0 + 150 * MINUTE;
    {
        let mut h = open(dir.path());
        for m in 0..150 {
            let at = T0 + m * MINUTE;
            h.record(&sample(&k, Kind::Gauge, at + 30 * SECOND, m as f64));
            close(&mut h, at + MINUTE + 5 * SECOND);
        }
        h.shutdown(end + 5 * SECOND).unwrap();
    }
    let now = end + 10 * SECOND;
    let h = open(dir.path());
    let series = h.series(now);
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].key, k);
    assert_eq!(
        series[0].resolutions,
        [Resolution::Minute, Resolution::Hour]
    );

    let minutes = ask(&h, k.clone(), T0, end, MINUTE, now);
    assert_eq!(minutes.resolution, Resolution::Minute);
    let p = points(&minutes);
    assert_eq!(p.len(), 150);
    assert_eq!(summary(&p[7]), (T0 + 7 * MINUTE, 1, 7.0, 7.0, 7.0, 7.0));

    let hours = ask(&h, k.clone(), T0, end, HOUR, now);
    assert_eq!(hours.resolution, Resolution::Hour);
    let p = points(&hours);
    assert_eq!(p.len(), 3);
    assert_eq!(summary(&p[1]), (T0 + HOUR, 60, 60.0, 119.0, 89.5, 119.0));
    // The first two hours closed and were summed in the file; the third,
    // still open, is summed from its minutes when asked.
    assert_eq!(file_rows(dir.path(), "hour"), [T0, T0 + HOUR]);
    assert_eq!(
        summary(&p[2]),
        (T0 + 2 * HOUR, 30, 120.0, 149.0, 134.5, 149.0)
    );
}

#[test]
fn a_drop_without_shutdown_loses_only_the_open_minute() {
    // As a SIGKILL would: batches committed stay; the minute still open in
    // RAM is lost (so are batches a kill finds queued: none here).
    let dir = tempfile::tempdir().unwrap();
    let k = key("disk_used_ratio");
    let mut h = open(dir.path());
    two_minutes(&mut h, &k);
    h.close_minutes(T0 + 2 * MINUTE + 5 * SECOND);
    h.flush().unwrap();
    for i in 120..150 {
        h.record(&sample(&k, Kind::Gauge, T0 + i * SECOND, i as f64));
    }
    drop(h);

    let h = open(dir.path());
    let now = T0 + 3 * MINUTE;
    let p = ask(&h, k.clone(), T0, now, MINUTE, now).series[0]
        .points
        .clone();
    assert_eq!(
        p.iter().map(|p| p.at_ms).collect::<Vec<_>>(),
        [T0, T0 + MINUTE]
    );
    assert_eq!(summary(&p[1]), (T0 + MINUTE, 60, 60.0, 119.0, 89.5, 119.0));
}

#[test]
fn a_shutdown_keeps_the_open_minute_and_a_restart_within_it_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("disk_used_ratio");
    let mut h = open(dir.path());
    for i in 0..30 {
        h.record(&sample(&k, Kind::Gauge, T0 + i * SECOND, i as f64));
    }
    h.shutdown(T0 + 30 * SECOND).unwrap();

    let mut h = open(dir.path());
    for i in 31..60 {
        h.record(&sample(&k, Kind::Gauge, T0 + i * SECOND, i as f64));
    }
    h.close_minutes(T0 + MINUTE + 5 * SECOND);
    let now = T0 + MINUTE + 5 * SECOND;
    let p = ask(&h, k.clone(), T0, T0 + MINUTE, MINUTE, now).series[0]
        .points
        .clone();
    assert_eq!(p.len(), 1);
    let mean = ((0..30).sum::<u64>() + (31..60).sum::<u64>()) as f64 / 59.0;
    assert_eq!(summary(&p[0]), (T0, 59, 0.0, 59.0, mean, 59.0));
    assert_eq!(file_rows(dir.path(), "minute"), [T0]);
}

#[test]
fn retention_drops_rollups_older_than_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = HistoryConfig {
        minute_retention: Duration::from_secs(10 * 60),
        hour_retention: Duration::from_secs(3 * 3600),
        ..HistoryConfig::default()
    };
    let mut h = History::open(dir.path(), config).unwrap();
    let k = key("disk_used_ratio");
    let end = T0 + 5 * HOUR;
    for m in 0..300 {
        let at = T0 + m * MINUTE;
        h.record(&sample(&k, Kind::Gauge, at, m as f64));
        close(&mut h, at + MINUTE + 5 * SECOND);
    }
    h.flush().unwrap();
    let now = end + 5 * SECOND;
    // Minutes: those that started in the last ten minutes.
    let minutes = file_rows(dir.path(), "minute");
    assert_eq!(minutes.first(), Some(&(now - 10 * MINUTE + 55 * SECOND)));
    assert_eq!(minutes.len(), 9);
    // Hours: the closed hours that started within three hours.
    assert_eq!(
        file_rows(dir.path(), "hour"),
        [T0 + 3 * HOUR, T0 + 4 * HOUR]
    );
    // A query for the whole span gets what is left.
    let hours = ask(&h, k.clone(), T0, end, HOUR, now);
    let starts: Vec<u64> = points(&hours).iter().map(|p| p.at_ms).collect();
    assert_eq!(starts, [T0 + 3 * HOUR, T0 + 4 * HOUR]);
}

#[test]
fn the_size_cap_keeps_the_file_under_max_disk_mib() {
    let dir = tempfile::tempdir().unwrap();
    let config = HistoryConfig {
        max_disk_mib: 1,
        ..HistoryConfig::default()
    };
    let mut h = History::open(dir.path(), config).unwrap();
    let keys: Vec<SeriesKey> = (0..200)
        .map(|i| SeriesKey::new("rvm_noise", [("n", i.to_string().as_str())]))
        .collect();
    // Five hours of two noisy samples a minute: about 7 KB a minute, 2 MB in all.
    let end = T0 + 5 * HOUR;
    for m in 0..300u64 {
        let at = T0 + m * MINUTE;
        for (i, k) in keys.iter().enumerate() {
            let noise = ((m * 200 + i as u64) as f64 * 0.618).sin();
            h.record(&sample(k, Kind::Gauge, at + 10 * SECOND, noise));
            h.record(&sample(k, Kind::Gauge, at + 40 * SECOND, noise / 3.0));
        }
        close(&mut h, at + MINUTE + 5 * SECOND);
    }
    h.flush().unwrap();
    let stats = h.stats();
    assert!(stats.file_bytes <= 1 << 20, "{stats:?}");
    assert_eq!(stats.batches_failed, 0, "{stats:?}");
    // The oldest minutes went; the newest stay, and every hour.
    let minutes = file_rows(dir.path(), "minute");
    assert!(minutes[0] > T0, "{} minutes left", minutes.len());
    assert_eq!(minutes.last(), Some(&(end - MINUTE)));
    assert_eq!(file_rows(dir.path(), "hour").len(), 5);
    let now = end + 5 * SECOND;
    let recent = ask(&h, keys[3].clone(), end - 30 * MINUTE, end, MINUTE, now);
    assert_eq!(points(&recent).len(), 30);
    assert!(points(&recent).iter().all(|p| p.count == 2));
    // A query reaching before the cut is served by hours.
    let early = ask(&h, keys[3].clone(), T0, end, MINUTE, now);
    assert_eq!(early.resolution, Resolution::Hour);
    h.shutdown(now).unwrap();
    let on_disk = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
    assert!(on_disk <= 1 << 20, "{on_disk} bytes on disk");
}

#[test]
fn the_query_picks_the_resolution_by_step_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    let k = key("disk_used_ratio");
    // Two hours at 1 s; the ring keeps the last hour.
    let end = T0 + 2 * HOUR;
    for s in 0..7200 {
        let at = T0 + s * SECOND;
        h.record(&sample(&k, Kind::Gauge, at, 1.0));
        if at.is_multiple_of(MINUTE) {
            close(&mut h, at);
        }
    }
    h.close_minutes(end + 5 * SECOND);
    let now = end;
    let cases = [
        // (from, step, resolution, points)
        (end - 30 * MINUTE, 10 * SECOND, Resolution::Raw, 180),
        (end - 30 * MINUTE, 0, Resolution::Raw, 1800),
        (end - 30 * MINUTE, MINUTE, Resolution::Minute, 30),
        (end - 90 * MINUTE, 10 * SECOND, Resolution::Minute, 90),
        (end - 90 * MINUTE, 5 * MINUTE, Resolution::Minute, 18),
        (T0, HOUR, Resolution::Hour, 2),
    ];
    for (from, step, resolution, n) in cases {
        let answer = ask(&h, k.clone(), from, end, step, now);
        assert_eq!(
            (answer.resolution, points(&answer).len()),
            (resolution, n),
            "from {} min before the end, step {step} ms",
            (end - from) / MINUTE
        );
        let expected = (Resolution::Raw.step_for(step) / SECOND).clamp(1, 3600);
        if resolution == Resolution::Raw {
            assert!(
                points(&answer)
                    .iter()
                    .all(|p| u64::from(p.count) == expected)
            );
        }
    }
    assert_eq!(
        h.series(now)[0].resolutions,
        [Resolution::Raw, Resolution::Minute, Resolution::Hour]
    );
}

#[test]
fn a_matcher_selects_series_by_name_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    let names = [("eth0", "rx"), ("eth0", "tx"), ("wlan0", "rx")];
    for (iface, dir) in names {
        let k = SeriesKey::new(
            "rvm_host_network_bytes_total",
            [("iface", iface), ("dir", dir)],
        );
        h.record(&sample(&k, Kind::Counter, T0, 1.0));
    }
    h.record(&sample(&key("disk_used_ratio"), Kind::Gauge, T0, 0.5));
    let now = T0 + SECOND;
    let picked = |m: Matcher| -> Vec<String> {
        ask(&h, m, T0, now, 0, now)
            .series
            .iter()
            .map(|s| s.key.to_string())
            .collect()
    };
    assert_eq!(
        picked(Matcher::new(
            "rvm_host_network_bytes_total",
            [("iface", "eth0")]
        )),
        [
            r#"rvm_host_network_bytes_total{dir="rx",iface="eth0"}"#,
            r#"rvm_host_network_bytes_total{dir="tx",iface="eth0"}"#
        ]
    );
    assert_eq!(
        picked(Matcher::new("rvm_host_network_bytes_total", [])).len(),
        3
    );
    assert!(
        picked(Matcher::new(
            "rvm_host_network_bytes_total",
            [("iface", "lo")]
        ))
        .is_empty()
    );
    assert_eq!(
        picked(Matcher::new("disk_used_ratio", [("mount", "/")])).len(),
        1
    );
}

#[test]
fn samples_it_cannot_keep_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = HistoryConfig {
        max_series: 1,
        ..HistoryConfig::default()
    };
    let mut h = History::open(dir.path(), config).unwrap();
    let k = key("disk_used_ratio");
    h.record(&sample(&k, Kind::Gauge, T0 + MINUTE, 1.0));
    h.record(&sample(&k, Kind::Gauge, T0 + MINUTE, 2.0));
    h.record(&sample(&k, Kind::Gauge, T0, 2.0));
    h.record(&sample(&k, Kind::Gauge, T0 + MINUTE + 1, f64::NAN));
    h.record(&sample(&k, Kind::Counter, T0 + MINUTE + 2, 3.0));
    h.record(&sample(&key("other"), Kind::Gauge, T0 + MINUTE, 1.0));
    h.close_minutes(T0 + 2 * MINUTE + 5 * SECOND);
    // Closed: a sample for that minute joins the ring only.
    h.record(&sample(&k, Kind::Gauge, T0 + MINUTE + 3, 4.0));
    let s = h.stats();
    assert_eq!(
        (
            s.recorded,
            s.out_of_order,
            s.not_finite,
            s.kind_changed,
            s.too_many_series,
            s.late
        ),
        (2, 2, 1, 1, 1, 1)
    );
    let now = T0 + 2 * MINUTE + 5 * SECOND;
    let minute = ask(&h, k.clone(), T0, now, MINUTE, now);
    assert_eq!(points(&minute)[0].count, 1);
}

#[test]
fn the_writer_never_blocks_a_full_queue_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = HistoryConfig {
        queue: 2,
        ..HistoryConfig::default()
    };
    let mut h = History::open(dir.path(), config).unwrap();
    // Hold the writer on a job until the test lets it go.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    h.writer.run(move |_| {
        let _ = started_tx.send(());
        let _ = held.recv();
    });
    started.recv().unwrap();
    let k = key("disk_used_ratio");
    let begun = Instant::now();
    for m in 0..5 {
        h.record(&sample(&k, Kind::Gauge, T0 + m * MINUTE, m as f64));
        h.close_minutes(T0 + (m + 1) * MINUTE + 5 * SECOND);
    }
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );
    // Two batches fit in the queue; three are dropped, and said so.
    let s = h.stats();
    assert_eq!(s.batches_dropped, 3, "{s:?}");
    assert_eq!(
        s.last_error.as_deref(),
        Some("cannot write rollups: the metrics history's queue is full (2 jobs waiting)")
    );
    // A query meets the full queue too, at once.
    let now = T0 + 6 * MINUTE;
    let busy = h
        .query(
            &Query {
                selector: k.clone().into(),
                from_ms: T0,
                to_ms: now,
                step_ms: MINUTE,
            },
            now,
        )
        .wait();
    assert!(matches!(busy, Err(HistoryError::Busy(2))), "{busy:?}");
    assert!(busy.unwrap_err().is_retryable());
    release.send(()).unwrap();
    h.flush().unwrap();
    // The two queued minutes were written; the series reached the file.
    let p = ask(&h, k.clone(), T0, now, MINUTE, now).series[0]
        .points
        .clone();
    assert_eq!(
        p.iter().map(|p| p.at_ms).collect::<Vec<_>>(),
        [T0, T0 + MINUTE]
    );
    h.shutdown(now).unwrap();
    let h = open(dir.path());
    assert_eq!(h.series(now).len(), 1);
}

#[test]
fn a_trend_over_a_query_tells_when_the_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    let k = key("disk_used_ratio");
    // Filling by 0.001 a minute from 0.5, sampled every 10 s for two hours.
    for s in 0..720u64 {
        let at = T0 + s * 10 * SECOND;
        h.record(&sample(&k, Kind::Gauge, at, 0.5 + 0.001 * (s as f64 / 6.0)));
        close(&mut h, at);
    }
    let now = T0 + 2 * HOUR;
    let answer = ask(&h, k.clone(), T0, now, MINUTE, now);
    let fit = Fit::of_means(points(&answer), answer.step_ms).unwrap();
    assert!((fit.slope_per_s - 0.001 / 60.0).abs() < 1e-12, "{fit:?}");
    // The last sample (at now - 10 s) read 0.5 + 0.001 * 719 / 6; 0.95 is
    // (0.95 - 0.62) / 0.001 minutes after the line's value at now.
    let at_now = 0.5 + 0.001 * 720.0 / 6.0;
    let Eta::In(eta) = fit.eta(Threshold::Above(0.95), now) else {
        panic!("a rising line reaches 0.95");
    };
    // A minute's six samples average the value 25 s into it; the fit puts
    // that mean at 30 s, so its line runs 5 s behind the samples.
    let expected = (0.95 - at_now) / 0.001 * 60.0 + 5.0;
    assert!(
        (eta.as_secs_f64() - expected).abs() < 0.01,
        "{eta:?} vs {expected} s"
    );
    assert_eq!(fit.eta(Threshold::Below(0.1), now), Eta::Never);
}

#[test]
fn the_writer_counts_the_bytes_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    let k = key("disk_used_ratio");
    two_minutes(&mut h, &k);
    h.close_minutes(T0 + 2 * MINUTE + 5 * SECOND);
    h.flush().unwrap();
    if std::fs::read_to_string("/proc/thread-self/io").is_ok() {
        // Each commit passes at least one WAL frame (a 1 KiB page) to the kernel.
        assert!(h.stats().bytes_passed >= 1024, "{:?}", h.stats());
    }
    assert!(h.bytes_written() <= h.stats().bytes_passed + (1 << 20));
}

/// Every minute frame in the file, decoded in full: start, and each series'
/// bucket.
fn file_minutes(dir: &Path) -> Vec<(u64, Vec<(u32, Bucket)>)> {
    let conn = rusqlite::Connection::open(dir.join(FILE_NAME)).unwrap();
    let mut st = conn
        .prepare("SELECT start_ms, frame FROM minute ORDER BY start_ms")
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
    })
    .unwrap()
    .map(|r| {
        let (start, frame) = r.unwrap();
        let mut records = Vec::new();
        bucket::decode_frame(&frame, |id, b| records.push((id, b))).unwrap();
        (start, records)
    })
    .collect()
}

#[test]
fn a_query_of_one_series_out_of_many_gives_what_a_full_decode_gives() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path());
    // 90 series, a third counters, the rest gauges of whole and arbitrary
    // values, every 10 s for ten minutes and 30 s: the eleventh minute is
    // still open when asked.
    let series: Vec<(SeriesKey, Kind)> = (0..90)
        .map(|i| {
            let kind = if i % 3 == 0 {
                Kind::Counter
            } else {
                Kind::Gauge
            };
            let n = i.to_string();
            (SeriesKey::new("rvm_mixed", [("n", n.as_str())]), kind)
        })
        .collect();
    let value = |i: usize, t: u64| match i % 3 {
        0 => (t * (7 + i as u64) % 5000) as f64,
        1 => ((t / 30 + i as u64) % 9) as f64,
        _ => (t as f64 * 0.013 + i as f64).sin(),
    };
    let mut recorded: Vec<Vec<(u64, f64)>> = vec![Vec::new(); series.len()];
    for t in (0..=630).step_by(10) {
        let at = T0 + t * SECOND;
        for (i, (k, kind)) in series.iter().enumerate() {
            h.record(&sample(k, *kind, at, value(i, t)));
            recorded[i].push((at, value(i, t)));
        }
        close(&mut h, at);
    }
    let now = T0 + 635 * SECOND;
    close(&mut h, now);
    let minutes = file_minutes(dir.path());
    assert_eq!(minutes.len(), 10, "minutes 0 to 9 are in the file");
    assert!(minutes.iter().all(|(_, records)| records.len() == 90));

    for i in [0, 44, 89] {
        let (k, kind) = &series[i];
        // Series get ids in the order first seen.
        let id = i as u32;
        let mut expected: Vec<(u64, Bucket)> = minutes
            .iter()
            .filter_map(|(start, records)| {
                records.iter().find(|r| r.0 == id).map(|r| (*start, r.1))
            })
            .collect();
        // The open minute, from the samples as recorded.
        let open_from = T0 + 10 * MINUTE;
        let mut previous = recorded[i]
            .iter()
            .rev()
            .find(|s| s.0 < open_from)
            .map(|s| s.1);
        let mut open: Option<Bucket> = None;
        for &(_, v) in recorded[i].iter().filter(|s| s.0 >= open_from) {
            let increase = (*kind == Kind::Counter)
                .then(|| previous.map_or(0.0, |p| bucket::counter_increase(p, v)));
            previous = Some(v);
            match &mut open {
                Some(b) => b.add(v, increase),
                None => open = Some(Bucket::of(v, increase)),
            }
        }
        expected.push((open_from, open.unwrap()));
        assert_eq!(expected.len(), 11);

        let answer = ask(&h, k.clone(), T0, T0 + 11 * MINUTE, MINUTE, now);
        assert_eq!(answer.resolution, Resolution::Minute);
        assert_eq!(answer.series[0].kind, *kind);
        assert_eq!(
            points(&answer),
            query::to_points(expected, MINUTE),
            "series {i}"
        );
    }
}

#[test]
fn a_file_of_schema_version_1_is_migrated_with_its_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("disk_used_ratio");
    let gauge = |values: &[f64]| {
        let mut b = Bucket::of(values[0], None);
        for v in &values[1..] {
            b.add(*v, None);
        }
        b
    };
    let minutes = [
        (T0, vec![(0, gauge(&[1.0, 2.0])), (3, gauge(&[0.25]))]),
        (T0 + MINUTE, vec![(0, gauge(&[3.0, 0.5, 4.0]))]),
    ];
    {
        // What version 1 wrote: its schema, frames without an index.
        let conn = rusqlite::Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(
            "CREATE TABLE series (
                 id     INTEGER PRIMARY KEY,
                 name   TEXT NOT NULL,
                 labels TEXT NOT NULL,
                 kind   INTEGER NOT NULL
             );
             CREATE TABLE minute (start_ms INTEGER PRIMARY KEY, frame BLOB NOT NULL);
             CREATE TABLE hour (start_ms INTEGER PRIMARY KEY, frame BLOB NOT NULL);
             INSERT INTO series VALUES (0, 'disk_used_ratio', '[[\"mount\",\"/\"]]', 0);
             INSERT INTO series VALUES (3, 'load_ratio', '[]', 0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        for (start, records) in &minutes {
            conn.execute(
                "INSERT INTO minute (start_ms, frame) VALUES (?1, ?2)",
                rusqlite::params![*start as i64, bucket::encode_frame_v1(records)],
            )
            .unwrap();
        }
    }
    let now = T0 + 2 * MINUTE + 5 * SECOND;
    let h = open(dir.path());
    let answer = ask(&h, k.clone(), T0, T0 + 2 * MINUTE, MINUTE, now);
    let expected = query::to_points(
        minutes
            .iter()
            .map(|(start, records)| (*start, records[0].1)),
        MINUTE,
    );
    assert_eq!(points(&answer), expected);
    let load = ask(&h, key_of("load_ratio"), T0, T0 + 2 * MINUTE, MINUTE, now);
    assert_eq!(points(&load).len(), 1);
    h.shutdown(now).unwrap();
    // The frames were rewritten with their index.
    let back = file_minutes(dir.path());
    assert_eq!(back, minutes);
    let conn = rusqlite::Connection::open(dir.path().join(FILE_NAME)).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

fn key_of(name: &str) -> SeriesKey {
    SeriesKey::new(name, [])
}
