//! Collectors: what the watchdog measures of the machine and of itself,
//! as [`Sample`]s for the metrics recorder.
//!
//! A **collector** reads one source and turns it into samples, one
//! **round** at a time ([`Collector::collect`]); it keeps what it needs
//! between rounds (the previous CPU ticks, a GPU found). Three come with
//! the watchdog ([`default_set`]):
//!
//! - [`HostCollector`]: CPU, load, memory and swap, pressure stall
//!   information, disk space and I/O, network traffic, uptime
//!   (`rvm_host_*`);
//! - [`JetsonCollector`]: GPU load and clocks, thermal zones, power rails,
//!   fan and power mode, as the `gpu` probe reads them (`rvm_jetson_*`);
//! - [`WatchdogCollector`]: the watchdog's own CPU time, memory, open
//!   files and disk writes (`rvm_watchdog_process_*`).
//!
//! The [`Scheduler`] runs each collector on its own interval, off the
//! async runtime, and hands each round to the recorder over a bounded
//! channel; a round the recorder has no room for is dropped and counted.
//!
//! Every read of `/proc` and `/sys` is a blocking file read under the
//! **host root** (`[daemon] host-root`: `/` on a machine, a fixture tree
//! in tests), as the probes read them; only the watchdog's own
//! `/proc/self` is read where the watchdog runs.
//!
//! **Why not sysinfo.** The `sysinfo` crate reads the same `/proc` files
//! but always at `/proc` and `/sys`: it cannot read under a host root, so
//! the fixture trees could not test what the watchdog reports, and a
//! watchdog in a container could not read the host mounted at `/host`.
//! It has no pressure stall information either, and Jetson GPU, thermal
//! and power figures come from sysfs in any case. The few files the host
//! collector needs are a line format each ([`procfs`]); parsing them here
//! keeps every figure testable and adds no dependency to build for the
//! Jetson.
//!
//! Names follow Prometheus' conventions: a `rvm_` prefix, the unit last
//! (`_bytes`, `_seconds`, `_ratio` for 0–1 shares, `_celsius`, `_watts`,
//! `_hertz`), `_total` on counters, which are [`Kind::Counter`].

pub mod host;
pub mod jetson;
pub mod procfs;
pub mod scheduler;
pub mod watchdog;

pub use host::HostCollector;
pub use jetson::JetsonCollector;
pub use scheduler::{Counts, Scheduled, Scheduler};
pub use watchdog::WatchdogCollector;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Kind, Sample, SeriesKey};

/// How often a collector runs unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One source of samples, read a round at a time.
///
/// `collect` makes blocking reads: the [`Scheduler`] calls it on a
/// blocking thread, never on the async runtime.
pub trait Collector: Send + 'static {
    /// A short name for logs and counts (`host`).
    fn name(&self) -> &'static str;

    /// One round of samples, each stamped `now_ms` (milliseconds since the
    /// epoch). What cannot be read is left out; a source the machine lacks
    /// gives no samples.
    fn collect(&mut self, now_ms: u64) -> Vec<Sample>;
}

/// The watchdog's collectors for the machine under `host_root`, each to
/// run every `interval`.
pub fn default_set(host_root: &Path, interval: Duration) -> Vec<Scheduled> {
    let collectors: [Box<dyn Collector>; 3] = [
        Box::new(HostCollector::new(host_root.to_owned())),
        Box::new(JetsonCollector::new(host_root.to_owned())),
        Box::new(WatchdogCollector::new()),
    ];
    collectors
        .into_iter()
        .map(|collector| Scheduled {
            collector,
            interval,
        })
        .collect()
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The samples of one round, all stamped with the round's time.
struct Round {
    at_ms: u64,
    samples: Vec<Sample>,
}

impl Round {
    fn new(at_ms: u64) -> Round {
        Round {
            at_ms,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, kind: Kind, name: &str, labels: &[(&str, &str)], value: f64) {
        // A figure that did not parse into a number is no sample.
        if value.is_finite() {
            self.samples.push(Sample {
                key: SeriesKey::new(name, labels.iter().copied()),
                kind,
                at_ms: self.at_ms,
                value,
            });
        }
    }

    fn gauge(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.push(Kind::Gauge, name, labels, value);
    }

    fn counter(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.push(Kind::Counter, name, labels, value as f64);
    }
}

/// A file's text into `buf` (emptied first); false when it cannot be read.
fn read_into(path: &Path, buf: &mut String) -> bool {
    use std::io::Read;
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .is_ok()
}

/// Fixture trees and checks shared by the collectors' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use super::{Collector, HostCollector, host};
    use crate::metrics::{Kind, Sample};

    /// A committed tree under `tests/fixtures/collect`.
    pub(crate) fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/collect")
            .join(name)
    }

    /// The sample of the series printed as `key` (`name{label="value"}`).
    pub(crate) fn find<'a>(samples: &'a [Sample], key: &str) -> Option<&'a Sample> {
        samples.iter().find(|s| s.key.to_string() == key)
    }

    /// The value and kind of the series printed as `key`; panics naming
    /// the key when the round lacks it.
    pub(crate) fn value(samples: &[Sample], key: &str) -> (f64, Kind) {
        let s = find(samples, key).unwrap_or_else(|| {
            let keys: Vec<String> = samples.iter().map(|s| s.key.to_string()).collect();
            panic!("no {key} among {keys:#?}")
        });
        (s.value, s.kind)
    }

    /// The distinct metric names of a round, sorted.
    pub(crate) fn names(samples: &[Sample]) -> Vec<&str> {
        let mut names: Vec<&str> = samples.iter().map(|s| s.key.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Two rounds of the host collector on a copy of `host-a`, to which
    /// `host-b`'s files are copied for the second, stamped `first_ms` and
    /// `second_ms`.
    pub(crate) fn host_rounds(first_ms: u64, second_ms: u64) -> (Vec<Sample>, Vec<Sample>) {
        let root = tempfile::tempdir().unwrap();
        copy_tree(&fixture("host-a"), root.path());
        let mut c = HostCollector::with_space(root.path().to_owned(), host::testing::space);
        let first = c.collect(first_ms);
        copy_tree(&fixture("host-b"), root.path());
        let second = c.collect(second_ms);
        (first, second)
    }

    /// Copies files and directories.
    pub(crate) fn copy_tree(from: &Path, to: &Path) {
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

    pub(crate) fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::probe::jetson::fixture as jetson_fixture;

    fn valid_name(name: &str, colon: bool) -> bool {
        let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
        let rest_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
        let mut chars = name.chars();
        chars.next().is_some_and(first_ok) && chars.all(rest_ok)
    }

    #[test]
    fn the_name_rules_reject_what_prometheus_rejects() {
        assert!(valid_name("rvm_host_cpu_usage_ratio", true));
        assert!(valid_name("a:b", true));
        assert!(!valid_name("a:b", false));
        assert!(!valid_name("9lives", true));
        assert!(!valid_name("rvm-host", true));
        assert!(!valid_name("", true));
    }

    #[test]
    fn every_series_and_label_name_is_valid_and_every_key_unique() {
        let (first, second) = host_rounds(1, 2);
        let mut rounds = vec![first, second];
        for tree in ["jp5-orin-nano", "jp6-orin-nano"] {
            rounds.push(JetsonCollector::new(jetson_fixture::path(tree)).collect(3));
        }
        rounds.push(WatchdogCollector::at(fixture("watchdog/proc/self")).collect(4));
        rounds.push(WatchdogCollector::new().collect(5));
        for samples in &rounds {
            assert!(!samples.is_empty());
            let mut keys = std::collections::HashSet::new();
            for s in samples {
                assert!(valid_name(&s.key.name, true), "{}", s.key);
                for (label, _) in &s.key.labels {
                    assert!(valid_name(label, false), "{}", s.key);
                }
                assert!(
                    s.key.name.starts_with("rvm_host_")
                        || s.key.name.starts_with("rvm_jetson_")
                        || s.key.name.starts_with("rvm_watchdog_process_"),
                    "{}",
                    s.key
                );
                assert_eq!(
                    s.kind == Kind::Counter,
                    s.key.name.ends_with("_total"),
                    "{}",
                    s.key
                );
                assert!(keys.insert(s.key.clone()), "{} twice in a round", s.key);
            }
        }
    }

    #[test]
    fn the_default_set_names_its_collectors() {
        let set = default_set(Path::new("/"), DEFAULT_INTERVAL);
        let names: Vec<&str> = set.iter().map(|s| s.collector.name()).collect();
        assert_eq!(names, ["host", "jetson", "watchdog"]);
        assert!(set.iter().all(|s| s.interval == DEFAULT_INTERVAL));
    }
}
