//! The watchdog collector: the watchdog's own use of the machine, read
//! from its `/proc/self` (where it runs, not under the host root).
//!
//! | series | labels | kind |
//! |---|---|---|
//! | `rvm_watchdog_process_cpu_seconds_total` | `mode` (`user`, `system`) | counter |
//! | `rvm_watchdog_process_resident_memory_bytes` | | gauge |
//! | `rvm_watchdog_process_virtual_memory_bytes` | | gauge |
//! | `rvm_watchdog_process_threads` | | gauge |
//! | `rvm_watchdog_process_open_fds` | | gauge |
//! | `rvm_watchdog_process_disk_read_bytes_total` | | counter |
//! | `rvm_watchdog_process_disk_written_bytes_total` | | counter |
//!
//! CPU time is in the kernel's clock ticks, [`TICKS_PER_SECOND`] to the
//! second. The disk figures are `read_bytes` and `write_bytes` of
//! `/proc/self/io`: what reached the block layer (the SQLite writes that
//! wear the eMMC), not what went through the page cache. The open
//! descriptors counted include the one that lists them.

use std::path::PathBuf;

use super::{Collector, Round, procfs, read_into};
use crate::metrics::Sample;

/// Clock ticks per second in `/proc/<pid>/stat` and `/proc/stat`: the
/// kernel's `USER_HZ`, 100 on every architecture the watchdog runs on
/// (arm64, x86-64) whatever the kernel's own tick rate.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// Reads the watchdog's own figures.
#[derive(Debug)]
pub struct WatchdogCollector {
    dir: PathBuf,
    buf: String,
}

impl Default for WatchdogCollector {
    fn default() -> Self {
        WatchdogCollector::new()
    }
}

impl WatchdogCollector {
    /// A collector of this process (`/proc/self`).
    pub fn new() -> WatchdogCollector {
        WatchdogCollector::at(PathBuf::from("/proc/self"))
    }

    /// A collector of the process whose `/proc` directory is `dir`.
    pub fn at(dir: PathBuf) -> WatchdogCollector {
        WatchdogCollector {
            dir,
            buf: String::new(),
        }
    }

    fn file(&mut self, name: &str) -> Option<&str> {
        read_into(&self.dir.join(name), &mut self.buf).then_some(self.buf.as_str())
    }
}

impl Collector for WatchdogCollector {
    fn name(&self) -> &'static str {
        "watchdog"
    }

    fn collect(&mut self, now_ms: u64) -> Vec<Sample> {
        let mut round = Round::new(now_ms);
        let counter = crate::metrics::Kind::Counter;
        if let Some((user, system)) = self.file("stat").and_then(procfs::process_cpu_ticks) {
            let name = "rvm_watchdog_process_cpu_seconds_total";
            round.push(
                counter,
                name,
                &[("mode", "user")],
                user as f64 / TICKS_PER_SECOND,
            );
            round.push(
                counter,
                name,
                &[("mode", "system")],
                system as f64 / TICKS_PER_SECOND,
            );
        }
        if let Some(status) = self.file("status") {
            let fields = [
                ("VmRSS", "rvm_watchdog_process_resident_memory_bytes"),
                ("VmSize", "rvm_watchdog_process_virtual_memory_bytes"),
                ("Threads", "rvm_watchdog_process_threads"),
            ];
            let values = fields.map(|(field, _)| procfs::field(status, field));
            for ((_, name), value) in fields.into_iter().zip(values) {
                if let Some(value) = value {
                    round.gauge(name, &[], value as f64);
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir(self.dir.join("fd")) {
            round.gauge("rvm_watchdog_process_open_fds", &[], fds.count() as f64);
        }
        if let Some(io) = self.file("io") {
            let read = procfs::field(io, "read_bytes");
            let written = procfs::field(io, "write_bytes");
            if let Some(read) = read {
                round.counter("rvm_watchdog_process_disk_read_bytes_total", &[], read);
            }
            if let Some(written) = written {
                round.counter(
                    "rvm_watchdog_process_disk_written_bytes_total",
                    &[],
                    written,
                );
            }
        }
        round.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind::{Counter, Gauge};
    use crate::metrics::collect::testing::{find, fixture, names, value};

    #[test]
    fn the_fixture_process() {
        let s = WatchdogCollector::at(fixture("watchdog/proc/self")).collect(7);
        let v = |key: &str| value(&s, key);
        assert_eq!(
            v("rvm_watchdog_process_cpu_seconds_total{mode=\"user\"}"),
            (2.5, Counter)
        );
        assert_eq!(
            v("rvm_watchdog_process_cpu_seconds_total{mode=\"system\"}"),
            (0.75, Counter)
        );
        assert_eq!(
            v("rvm_watchdog_process_resident_memory_bytes"),
            (12_345.0 * 1024.0, Gauge)
        );
        assert_eq!(
            v("rvm_watchdog_process_virtual_memory_bytes").0,
            123_456.0 * 1024.0
        );
        assert_eq!(v("rvm_watchdog_process_threads"), (9.0, Gauge));
        assert_eq!(v("rvm_watchdog_process_open_fds"), (7.0, Gauge));
        assert_eq!(
            v("rvm_watchdog_process_disk_read_bytes_total"),
            (4096.0, Counter)
        );
        assert_eq!(
            v("rvm_watchdog_process_disk_written_bytes_total"),
            (819_200.0, Counter)
        );
        assert_eq!(names(&s).len(), 7);
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn this_process_is_read_where_it_runs() {
        let s = WatchdogCollector::new().collect(1);
        assert!(value(&s, "rvm_watchdog_process_resident_memory_bytes").0 > 0.0);
        // stdin, stdout, stderr at least.
        assert!(value(&s, "rvm_watchdog_process_open_fds").0 >= 3.0);
        assert!(value(&s, "rvm_watchdog_process_threads").0 >= 1.0);
        let cpu = value(&s, "rvm_watchdog_process_cpu_seconds_total{mode=\"user\"}");
        assert_eq!(cpu.1, Counter);
        assert!(find(&s, "rvm_watchdog_process_disk_written_bytes_total").is_some());
    }

    #[test]
    fn a_missing_directory_gives_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            WatchdogCollector::at(dir.path().join("gone")).collect(1),
            vec![]
        );
    }
}
