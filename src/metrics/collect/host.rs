//! The host collector: the machine as `/proc` shows it under the host root.
//!
//! | series | labels | kind |
//! |---|---|---|
//! | `rvm_host_cpu_usage_ratio` | `cpu` (`total`, `0`, `1`, …) | gauge |
//! | `rvm_host_load_average` | `window` (`1m`, `5m`, `15m`) | gauge |
//! | `rvm_host_memory_bytes` | `kind` (`total`, `available`, `used`) | gauge |
//! | `rvm_host_swap_bytes` | `kind` (`total`, `free`, `used`) | gauge |
//! | `rvm_host_pressure_stall_avg10_ratio` | `resource` (`cpu`, `memory`, `io`), `scope` (`some`, `full`) | gauge |
//! | `rvm_host_pressure_stall_seconds_total` | `resource`, `scope` | counter |
//! | `rvm_host_disk_size_bytes`, `_used_bytes`, `_available_bytes`, `_used_ratio` | `mount` | gauge |
//! | `rvm_host_disk_read_bytes_total`, `_written_bytes_total`, `_reads_completed_total`, `_writes_completed_total`, `_io_seconds_total` | `device` | counter |
//! | `rvm_host_network_{receive,transmit}_{bytes,packets,errors,drops}_total` | `interface` | counter |
//! | `rvm_host_uptime_seconds` | | gauge |
//!
//! **CPU usage** is the busy share of the clock ticks between two rounds
//! (iowait counts as idle), so the first round has none; a core taken
//! offline (Jetson power modes do) has no series until it is back.
//! **Memory used** is total less available, as `free` computes it; the
//! disk's used ratio is used over used plus available, as `df` does (the
//! blocks reserved for root count as neither).
//!
//! **Pressure stall information** comes from `proc/pressure/{cpu,memory,io}`
//! where the kernel has it (built with `CONFIG_PSI` and not booted with
//! `psi=0`); elsewhere there are no such series.
//!
//! **Disk space** is reported for the filesystems of `proc/mounts` that
//! hold data: pseudo filesystems (`proc`, `sysfs`, `cgroup`, …),
//! read-only images (`squashfs`, `erofs`, `iso9660`: always full) and
//! anything under `/dev`, `/proc`, `/sys` or a container engine's
//! directory are skipped; so are network filesystems, whose `statvfs`
//! blocks for minutes when the server is gone and would hold up every host
//! series. A mount point listed twice is reported once, as the last mount
//! (the one in sight). **Disk I/O** is reported for whole disks
//! ([`procfs::is_whole_disk`]). **Network** counters are reported for every
//! interface but loopback and containers' `veth` pairs (their traffic also
//! crosses the bridge).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::procfs::{self, CpuTimes};
use super::{Collector, Round, read_into};
use crate::metrics::Sample;

/// Filesystem types that hold no data of their own, or are read-only
/// images, or live on another machine.
const SKIPPED_FSTYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
    // Read-only images.
    "erofs",
    "iso9660",
    "squashfs",
    // Network filesystems.
    "ceph",
    "cifs",
    "nfs",
    "nfs4",
    "smb3",
    "smbfs",
    "sshfs",
];

/// Mount points under which nothing is reported.
const SKIPPED_MOUNT_DIRS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials",
    "/snap",
    "/var/lib/containers",
    "/var/lib/docker",
];

/// A filesystem's space, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Its size.
    pub size: u64,
    /// In use.
    pub used: u64,
    /// Free for anyone (not counting the blocks reserved for root).
    pub available: u64,
}

/// How a filesystem's space is read: given the mount point as
/// `proc/mounts` names it and its path under the host root.
pub type SpaceReader = fn(mount_point: &str, path: &Path) -> Option<Space>;

/// `statvfs` of `path`; `None` when it fails or the filesystem has no size.
pub fn statvfs_space(_mount_point: &str, path: &Path) -> Option<Space> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let block = st.fragment_size() as u64;
    let size = st.blocks() as u64 * block;
    let free = st.blocks_free() as u64 * block;
    (size > 0).then(|| Space {
        size,
        used: size.saturating_sub(free),
        available: st.blocks_available() as u64 * block,
    })
}

/// Whether a mount's space is reported (see the module's words).
pub fn reports_space(mount: &procfs::Mount) -> bool {
    let under = |dir: &str| {
        mount
            .point
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    !SKIPPED_FSTYPES.contains(&mount.fstype.as_str())
        && !mount.fstype.starts_with("fuse.")
        && !SKIPPED_MOUNT_DIRS.iter().any(|dir| under(dir))
}

/// Reads the host's figures under a host root; keeps the last CPU ticks.
#[derive(Debug)]
pub struct HostCollector {
    root: PathBuf,
    space: SpaceReader,
    previous_cpu: HashMap<String, CpuTimes>,
    buf: String,
}

impl HostCollector {
    /// A collector of the machine under `root`.
    pub fn new(root: PathBuf) -> HostCollector {
        HostCollector::with_space(root, statvfs_space)
    }

    /// A collector that reads disk space with `space` instead of `statvfs`
    /// (tests give fixed figures).
    pub fn with_space(root: PathBuf, space: SpaceReader) -> HostCollector {
        HostCollector {
            root,
            space,
            previous_cpu: HashMap::new(),
            buf: String::new(),
        }
    }

    /// The text of `proc/<name>` under the root, in the reused buffer.
    fn proc_file(&mut self, name: &str) -> Option<&str> {
        let path = self.root.join("proc").join(name);
        read_into(&path, &mut self.buf).then_some(self.buf.as_str())
    }

    fn cpu(&mut self, round: &mut Round) {
        let Some(stat) = self.proc_file("stat") else {
            return;
        };
        let now = procfs::cpu_times(stat);
        let mut previous = std::mem::take(&mut self.previous_cpu);
        for (cpu, times) in now {
            if let Some(ratio) = previous
                .remove(&cpu)
                .and_then(|before| procfs::usage_ratio(before, times))
            {
                round.gauge("rvm_host_cpu_usage_ratio", &[("cpu", &cpu)], ratio);
            }
            self.previous_cpu.insert(cpu, times);
        }
    }

    fn load_and_memory(&mut self, round: &mut Round) {
        if let Some(loads) = self.proc_file("loadavg").and_then(procfs::load_averages) {
            for (window, load) in ["1m", "5m", "15m"].into_iter().zip(loads) {
                round.gauge("rvm_host_load_average", &[("window", window)], load);
            }
        }
        let Some(meminfo) = self.proc_file("meminfo") else {
            return;
        };
        let m = procfs::memory(meminfo);
        let bytes = |v: u64| v as f64;
        let memory = "rvm_host_memory_bytes";
        if let Some(total) = m.total {
            round.gauge(memory, &[("kind", "total")], bytes(total));
            if let Some(available) = m.available {
                round.gauge(memory, &[("kind", "available")], bytes(available));
                round.gauge(
                    memory,
                    &[("kind", "used")],
                    bytes(total.saturating_sub(available)),
                );
            }
        }
        if let (Some(total), Some(free)) = (m.swap_total, m.swap_free) {
            let swap = "rvm_host_swap_bytes";
            round.gauge(swap, &[("kind", "total")], bytes(total));
            round.gauge(swap, &[("kind", "free")], bytes(free));
            round.gauge(swap, &[("kind", "used")], bytes(total.saturating_sub(free)));
        }
    }

    fn pressure(&mut self, round: &mut Round) {
        for resource in ["cpu", "memory", "io"] {
            let Some(text) = self.proc_file(&format!("pressure/{resource}")) else {
                continue;
            };
            for p in procfs::pressure(text) {
                let labels = [("resource", resource), ("scope", p.scope.as_str())];
                round.gauge(
                    "rvm_host_pressure_stall_avg10_ratio",
                    &labels,
                    p.avg10_ratio,
                );
                round.push(
                    crate::metrics::Kind::Counter,
                    "rvm_host_pressure_stall_seconds_total",
                    &labels,
                    p.total_us as f64 / 1e6,
                );
            }
        }
    }

    fn disk_space(&mut self, round: &mut Round) {
        let Some(text) = self.proc_file("mounts") else {
            return;
        };
        let mut mounts = procfs::mounts(text);
        mounts.retain(reports_space);
        // The last mount on a point is the one in sight.
        let mut seen = HashSet::new();
        mounts.reverse();
        mounts.retain(|m| seen.insert(m.point.clone()));
        mounts.reverse();
        for mount in mounts {
            let path = self.root.join(mount.point.trim_start_matches('/'));
            let Some(space) = (self.space)(&mount.point, &path) else {
                continue;
            };
            let labels = [("mount", mount.point.as_str())];
            round.gauge("rvm_host_disk_size_bytes", &labels, space.size as f64);
            round.gauge("rvm_host_disk_used_bytes", &labels, space.used as f64);
            round.gauge(
                "rvm_host_disk_available_bytes",
                &labels,
                space.available as f64,
            );
            let usable = space.used + space.available;
            if usable > 0 {
                round.gauge(
                    "rvm_host_disk_used_ratio",
                    &labels,
                    space.used as f64 / usable as f64,
                );
            }
        }
    }

    fn disk_io(&mut self, round: &mut Round) {
        let Some(text) = self.proc_file("diskstats") else {
            return;
        };
        for d in procfs::disk_io(text) {
            if !procfs::is_whole_disk(&d.device) {
                continue;
            }
            let labels = [("device", d.device.as_str())];
            round.counter("rvm_host_disk_read_bytes_total", &labels, d.read_bytes);
            round.counter(
                "rvm_host_disk_written_bytes_total",
                &labels,
                d.written_bytes,
            );
            round.counter("rvm_host_disk_reads_completed_total", &labels, d.reads);
            round.counter("rvm_host_disk_writes_completed_total", &labels, d.writes);
            round.push(
                crate::metrics::Kind::Counter,
                "rvm_host_disk_io_seconds_total",
                &labels,
                d.io_ms as f64 / 1000.0,
            );
        }
    }

    fn network(&mut self, round: &mut Round) {
        let Some(text) = self.proc_file("net/dev") else {
            return;
        };
        for dev in procfs::net_dev(text) {
            if dev.interface == "lo" || dev.interface.starts_with("veth") {
                continue;
            }
            let labels = [("interface", dev.interface.as_str())];
            for (direction, t) in [("receive", dev.receive), ("transmit", dev.transmit)] {
                for (what, value) in [
                    ("bytes", t.bytes),
                    ("packets", t.packets),
                    ("errors", t.errors),
                    ("drops", t.drops),
                ] {
                    let name = format!("rvm_host_network_{direction}_{what}_total");
                    round.counter(&name, &labels, value);
                }
            }
        }
    }
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(&mut self, now_ms: u64) -> Vec<Sample> {
        let mut round = Round::new(now_ms);
        self.cpu(&mut round);
        self.load_and_memory(&mut round);
        self.pressure(&mut round);
        self.disk_space(&mut round);
        self.disk_io(&mut round);
        self.network(&mut round);
        if let Some(up) = self.proc_file("uptime").and_then(procfs::uptime_seconds) {
            round.gauge("rvm_host_uptime_seconds", &[], up);
        }
        round.samples
    }
}

/// Fixed disk space for the fixture trees.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use super::Space;

    /// `/`: 64 GiB, 16 GiB used, 44 GiB available (4 GiB reserved);
    /// `/data`: 100 MiB, all of it used; any other: nothing.
    pub(crate) fn space(mount_point: &str, _path: &Path) -> Option<Space> {
        const GIB: u64 = 1 << 30;
        match mount_point {
            "/" => Some(Space {
                size: 64 * GIB,
                used: 16 * GIB,
                available: 44 * GIB,
            }),
            "/data" => Some(Space {
                size: 100 << 20,
                used: 100 << 20,
                available: 0,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind::{Counter, Gauge};
    use crate::metrics::collect::testing::{
        close, copy_tree, find, fixture, host_rounds, names, value,
    };

    fn two_rounds() -> (Vec<Sample>, Vec<Sample>) {
        host_rounds(1_000, 11_000)
    }

    #[test]
    fn cpu_usage_comes_from_the_second_round() {
        let (first, second) = two_rounds();
        assert!(
            first
                .iter()
                .all(|s| s.key.name != "rvm_host_cpu_usage_ratio")
        );
        // host-a → host-b: cpu0 busy 300 of 1000 ticks, cpu1 100 of 1000,
        // total 400 of 2000; cpu2 went offline in between.
        let ratio = |cpu: &str| {
            value(
                &second,
                &format!("rvm_host_cpu_usage_ratio{{cpu=\"{cpu}\"}}"),
            )
        };
        assert_eq!(ratio("total"), (0.2, Gauge));
        assert_eq!(ratio("0"), (0.3, Gauge));
        assert_eq!(ratio("1"), (0.1, Gauge));
        assert!(find(&second, "rvm_host_cpu_usage_ratio{cpu=\"2\"}").is_none());
        assert!(second.iter().all(|s| s.at_ms == 11_000));
    }

    #[test]
    fn load_memory_swap_and_uptime() {
        let (first, _) = two_rounds();
        assert_eq!(
            value(&first, "rvm_host_load_average{window=\"1m\"}"),
            (0.52, Gauge)
        );
        assert_eq!(
            value(&first, "rvm_host_load_average{window=\"15m\"}").0,
            2.59
        );
        let kib = |k: f64| k * 1024.0;
        let m = |kind: &str| value(&first, &format!("rvm_host_memory_bytes{{kind=\"{kind}\"}}"));
        assert_eq!(m("total"), (kib(7_620_000.0), Gauge));
        assert_eq!(m("available").0, kib(3_810_000.0));
        assert_eq!(m("used").0, kib(3_810_000.0));
        let s = |kind: &str| value(&first, &format!("rvm_host_swap_bytes{{kind=\"{kind}\"}}")).0;
        assert_eq!(
            (s("total"), s("free"), s("used")),
            (kib(3_810_000.0), kib(3_574_000.0), kib(236_000.0))
        );
        assert_eq!(value(&first, "rvm_host_uptime_seconds"), (12_345.67, Gauge));
    }

    #[test]
    fn pressure_stall_figures() {
        let (first, second) = two_rounds();
        assert_eq!(
            value(
                &first,
                "rvm_host_pressure_stall_avg10_ratio{resource=\"io\",scope=\"some\"}"
            ),
            (0.0195, Gauge)
        );
        assert_eq!(
            value(
                &second,
                "rvm_host_pressure_stall_seconds_total{resource=\"io\",scope=\"full\"}"
            ),
            (40.5, Counter)
        );
        assert_eq!(
            value(
                &first,
                "rvm_host_pressure_stall_seconds_total{resource=\"memory\",scope=\"some\"}"
            ),
            (1.25, Counter)
        );
        // host-a's kernel has no full line for cpu.
        let psi = |s: &Sample| s.key.name.starts_with("rvm_host_pressure_stall");
        assert_eq!(first.iter().filter(|s| psi(s)).count(), 10);
    }

    #[test]
    fn without_proc_pressure_there_are_no_pressure_series() {
        let root = tempfile::tempdir().unwrap();
        copy_tree(&fixture("host-a"), root.path());
        std::fs::remove_dir_all(root.path().join("proc/pressure")).unwrap();
        let samples = HostCollector::with_space(root.path().to_owned(), testing::space).collect(1);
        assert!(!samples.is_empty());
        assert!(samples.iter().all(|s| !s.key.name.contains("pressure")));
        assert!(find(&samples, "rvm_host_uptime_seconds").is_some());
    }

    #[test]
    fn disk_space_of_real_filesystems_only() {
        let (first, _) = two_rounds();
        let mounts: HashSet<&str> = first
            .iter()
            .filter(|s| s.key.name == "rvm_host_disk_used_bytes")
            .filter_map(|s| s.key.label("mount"))
            .collect();
        // The fixture also mounts proc, sysfs, tmpfs on /dev/shm, cgroups,
        // a squashfs snap, an NFS share and a sshfs; /boot/efi has no
        // figures from the space reader.
        assert_eq!(mounts, HashSet::from(["/", "/data"]));
        let gib = (1u64 << 30) as f64;
        let d = |name: &str| value(&first, &format!("rvm_host_disk_{name}{{mount=\"/\"}}"));
        assert_eq!(d("size_bytes"), (64.0 * gib, Gauge));
        assert_eq!(d("used_bytes").0, 16.0 * gib);
        assert_eq!(d("available_bytes").0, 44.0 * gib);
        assert!(close(d("used_ratio").0, 16.0 / 60.0));
        assert_eq!(
            value(&first, "rvm_host_disk_used_ratio{mount=\"/data\"}").0,
            1.0
        );
    }

    #[test]
    fn which_mounts_report_space() {
        let m = |source: &str, point: &str, fstype: &str| procfs::Mount {
            source: source.to_owned(),
            point: point.to_owned(),
            fstype: fstype.to_owned(),
        };
        assert!(reports_space(&m("/dev/mmcblk0p1", "/", "ext4")));
        assert!(reports_space(&m("tmpfs", "/run", "tmpfs")));
        assert!(reports_space(&m("/dev/sda1", "/devices", "ext4")));
        assert!(!reports_space(&m("tmpfs", "/dev/shm", "tmpfs")));
        assert!(!reports_space(&m("proc", "/proc", "proc")));
        assert!(!reports_space(&m("cgroup2", "/sys/fs/cgroup", "cgroup2")));
        assert!(!reports_space(&m("/dev/loop3", "/snap/core/1", "squashfs")));
        assert!(!reports_space(&m("nas:/x", "/mnt/nas", "nfs4")));
        assert!(!reports_space(&m("u@h:", "/mnt/h", "fuse.sshfs")));
        assert!(!reports_space(&m(
            "overlay",
            "/var/lib/docker/overlay2/a/merged",
            "overlay"
        )));
    }

    #[test]
    fn statvfs_reads_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let space = statvfs_space("/", dir.path()).unwrap();
        assert!(space.size > 0);
        assert!(space.used + space.available <= space.size);
        assert_eq!(statvfs_space("/", &dir.path().join("absent")), None);
    }

    #[test]
    fn disk_io_of_whole_disks_as_counters() {
        let (first, second) = two_rounds();
        let devices: HashSet<&str> = first
            .iter()
            .filter(|s| s.key.name == "rvm_host_disk_read_bytes_total")
            .filter_map(|s| s.key.label("device"))
            .collect();
        assert_eq!(devices, HashSet::from(["mmcblk0", "nvme0n1"]));
        let io = |samples: &[Sample], name: &str| {
            value(
                samples,
                &format!("rvm_host_disk_{name}{{device=\"mmcblk0\"}}"),
            )
        };
        assert_eq!(io(&first, "read_bytes_total"), (137_248.0 * 512.0, Counter));
        assert_eq!(io(&first, "written_bytes_total").0, 1_323_975.0 * 512.0);
        assert_eq!(io(&first, "reads_completed_total").0, 5298.0);
        assert_eq!(io(&first, "writes_completed_total").0, 15_766.0);
        assert_eq!(io(&first, "io_seconds_total").0, 12.51);
        assert_eq!(io(&second, "written_bytes_total").0, 1_325_023.0 * 512.0);
    }

    #[test]
    fn network_counters_per_interface_without_loopback() {
        let (first, second) = two_rounds();
        let interfaces: HashSet<&str> = first
            .iter()
            .filter_map(|s| s.key.label("interface"))
            .collect();
        assert_eq!(interfaces, HashSet::from(["eth0", "wlan0", "docker0"]));
        let n = |samples: &[Sample], what: &str| {
            value(
                samples,
                &format!("rvm_host_network_{what}_total{{interface=\"eth0\"}}"),
            )
        };
        assert_eq!(n(&first, "receive_bytes"), (74_684_632.0, Counter));
        assert_eq!(n(&first, "receive_packets").0, 4248.0);
        assert_eq!(n(&first, "receive_errors").0, 1.0);
        assert_eq!(n(&first, "receive_drops").0, 2.0);
        assert_eq!(n(&first, "transmit_bytes").0, 292_057.0);
        assert_eq!(n(&first, "transmit_packets").0, 3658.0);
        assert_eq!(n(&first, "transmit_errors").0, 3.0);
        assert_eq!(n(&first, "transmit_drops").0, 4.0);
        assert_eq!(n(&second, "receive_bytes").0, 75_684_632.0);
    }

    #[test]
    fn the_series_of_a_round() {
        let (_, second) = two_rounds();
        assert_eq!(
            names(&second),
            [
                "rvm_host_cpu_usage_ratio",
                "rvm_host_disk_available_bytes",
                "rvm_host_disk_io_seconds_total",
                "rvm_host_disk_read_bytes_total",
                "rvm_host_disk_reads_completed_total",
                "rvm_host_disk_size_bytes",
                "rvm_host_disk_used_bytes",
                "rvm_host_disk_used_ratio",
                "rvm_host_disk_writes_completed_total",
                "rvm_host_disk_written_bytes_total",
                "rvm_host_load_average",
                "rvm_host_memory_bytes",
                "rvm_host_network_receive_bytes_total",
                "rvm_host_network_receive_drops_total",
                "rvm_host_network_receive_errors_total",
                "rvm_host_network_receive_packets_total",
                "rvm_host_network_transmit_bytes_total",
                "rvm_host_network_transmit_drops_total",
                "rvm_host_network_transmit_errors_total",
                "rvm_host_network_transmit_packets_total",
                "rvm_host_pressure_stall_avg10_ratio",
                "rvm_host_pressure_stall_seconds_total",
                "rvm_host_swap_bytes",
                "rvm_host_uptime_seconds",
            ]
        );
    }

    #[test]
    fn an_empty_root_gives_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            HostCollector::new(root.path().to_owned()).collect(1),
            vec![]
        );
    }

    #[test]
    fn this_machine_has_memory_uptime_and_a_root_filesystem() {
        let mut c = HostCollector::new("/".into());
        c.collect(1);
        let samples = c.collect(2);
        let total = value(&samples, "rvm_host_memory_bytes{kind=\"total\"}").0;
        assert!(total > 0.0);
        assert!(value(&samples, "rvm_host_uptime_seconds").0 > 0.0);
        assert!(find(&samples, "rvm_host_disk_size_bytes{mount=\"/\"}").is_some());
    }
}
