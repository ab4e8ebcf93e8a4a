//! Parsers for the `/proc` files the host and watchdog collectors read,
//! apart from the reads so that tests parse strings. Each takes a file's
//! text and returns what it found; lines it does not understand are
//! skipped, so a kernel that adds a column still parses.

/// One `cpu` line of `/proc/stat`, in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent on anything but idling and waiting for I/O.
    pub busy: u64,
    /// All ticks: user, nice, system, idle, iowait, irq, softirq, steal
    /// (guest time is already in user and nice).
    pub total: u64,
}

/// The CPU lines of `/proc/stat`: `("total", …)` for the `cpu` line, then
/// `("0", …)`, `("1", …)` for each online core. An offline core has no line.
pub fn cpu_times(stat: &str) -> Vec<(String, CpuTimes)> {
    let mut out = Vec::new();
    for line in stat.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(cpu) = fields.next().and_then(|f| f.strip_prefix("cpu")) else {
            continue;
        };
        let ticks: Vec<u64> = fields.take(8).map_while(|f| f.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal; before 2.6.11
        // there was no steal, before 2.6 not even iowait.
        if ticks.len() < 4 {
            continue;
        }
        let total: u64 = ticks.iter().sum();
        let idle = ticks[3] + ticks.get(4).copied().unwrap_or(0);
        let name = if cpu.is_empty() { "total" } else { cpu };
        out.push((
            name.to_owned(),
            CpuTimes {
                busy: total - idle,
                total,
            },
        ));
    }
    out
}

/// The share of `now - before` that was busy; `None` when no tick passed
/// or the counters went back (a core brought online again starts over).
pub fn usage_ratio(before: CpuTimes, now: CpuTimes) -> Option<f64> {
    let total = now.total.checked_sub(before.total)?;
    let busy = now.busy.checked_sub(before.busy)?;
    (total > 0 && busy <= total).then(|| busy as f64 / total as f64)
}

/// The 1, 5 and 15 minute load averages of `/proc/loadavg`.
pub fn load_averages(loadavg: &str) -> Option<[f64; 3]> {
    let mut fields = loadavg.split_ascii_whitespace().map(|f| f.parse().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Memory and swap from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemAvailable`: what could be given to programs without swapping.
    pub available: Option<u64>,
    /// `SwapTotal`.
    pub swap_total: Option<u64>,
    /// `SwapFree`.
    pub swap_free: Option<u64>,
}

/// The fields of `/proc/meminfo` the host collector reports (kB × 1024).
pub fn memory(meminfo: &str) -> Memory {
    let mut m = Memory::default();
    for line in meminfo.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match name {
            "MemTotal" => &mut m.total,
            "MemAvailable" => &mut m.available,
            "SwapTotal" => &mut m.swap_total,
            "SwapFree" => &mut m.swap_free,
            _ => continue,
        };
        *slot = rest
            .split_ascii_whitespace()
            .next()
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024);
    }
    m
}

/// One line of a `/proc/pressure/*` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pressure {
    /// `some` (at least one task stalled) or `full` (all non-idle tasks stalled).
    pub scope: String,
    /// Share of the last 10 s stalled (the kernel's `avg10` is a percentage).
    pub avg10_ratio: f64,
    /// Time stalled since boot, µs.
    pub total_us: u64,
}

/// The `some` and `full` lines of a `/proc/pressure/{cpu,memory,io}` file:
/// `some avg10=0.12 avg60=0.05 avg300=0.01 total=123456`.
pub fn pressure(text: &str) -> Vec<Pressure> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(scope @ ("some" | "full")) = fields.next() else {
            continue;
        };
        let (mut avg10, mut total) = (None, None);
        for field in fields {
            if let Some(v) = field.strip_prefix("avg10=") {
                avg10 = v.parse::<f64>().ok();
            } else if let Some(v) = field.strip_prefix("total=") {
                total = v.parse::<u64>().ok();
            }
        }
        if let (Some(avg10), Some(total_us)) = (avg10, total) {
            out.push(Pressure {
                scope: scope.to_owned(),
                avg10_ratio: avg10 / 100.0,
                total_us,
            });
        }
    }
    out
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted (`/dev/mmcblk0p1`, `tmpfs`).
    pub source: String,
    /// Where, with the kernel's octal escapes (`\040` for a space) undone.
    pub point: String,
    /// The filesystem type (`ext4`).
    pub fstype: String,
}

/// The lines of `/proc/mounts`, in order.
pub fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            Some(Mount {
                source: unescape(fields.next()?),
                point: unescape(fields.next()?),
                fstype: fields.next()?.to_owned(),
            })
        })
        .collect()
}

/// Undoes the `\ooo` escapes the kernel writes for space, tab, newline and
/// backslash in `/proc/mounts`.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One device's line of `/proc/diskstats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIo {
    /// The kernel's device name (`mmcblk0`, `nvme0n1`).
    pub device: String,
    /// Reads completed.
    pub reads: u64,
    /// Bytes read (the kernel counts 512-byte sectors whatever the device's).
    pub read_bytes: u64,
    /// Writes completed.
    pub writes: u64,
    /// Bytes written.
    pub written_bytes: u64,
    /// Time the device had I/O in flight, ms.
    pub io_ms: u64,
}

/// The lines of `/proc/diskstats` with at least the 14 fields of kernels
/// before 4.18 (later kernels add discard and flush columns).
pub fn disk_io(text: &str) -> Vec<DiskIo> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            if fields.len() < 14 {
                return None;
            }
            let n = |i: usize| fields[i].parse::<u64>().ok();
            Some(DiskIo {
                device: fields[2].to_owned(),
                reads: n(3)?,
                read_bytes: n(5)? * 512,
                writes: n(7)?,
                written_bytes: n(9)? * 512,
                io_ms: n(12)?,
            })
        })
        .collect()
}

/// Whether a diskstats name is a whole disk worth reporting: not a
/// partition (`mmcblk0p1`, `sda1`, `nvme0n1p2`), not an eMMC boot or RPMB
/// area (`mmcblk0boot0`), not a loop, RAM or zram device (zram is swap in
/// memory on a Jetson; its traffic is not disk traffic).
pub fn is_whole_disk(name: &str) -> bool {
    let digits_after = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    };
    if digits_after("loop") || digits_after("ram") || digits_after("zram") {
        return false;
    }
    // mmcblkN, nvmeNnM: a partition adds pN.
    if name.starts_with("mmcblk") || name.starts_with("nvme") {
        let base = name.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        return base.bytes().all(|b| b.is_ascii_digit() || b == b'n');
    }
    // sda, vdb, hdc, xvda: a partition adds digits.
    let letters = ["sd", "vd", "hd", "xvd"];
    if let Some(rest) = letters.iter().find_map(|p| name.strip_prefix(p)) {
        return rest.bytes().all(|b| b.is_ascii_lowercase());
    }
    true
}

/// One interface's line of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDev {
    /// Its name (`eth0`, `wlan0`).
    pub interface: String,
    /// Received: bytes, packets, errors, drops.
    pub receive: Traffic,
    /// Transmitted: bytes, packets, errors, drops.
    pub transmit: Traffic,
}

/// One direction's counters of an interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Errors.
    pub errors: u64,
    /// Packets dropped.
    pub drops: u64,
}

/// The interfaces of `/proc/net/dev` (after its two header lines):
/// `eth0: rx bytes packets errs drop fifo frame compressed multicast tx
/// bytes packets errs drop …`.
pub fn net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let n: Vec<u64> = rest
                .split_ascii_whitespace()
                .map_while(|f| f.parse().ok())
                .collect();
            if n.len() < 12 {
                return None;
            }
            let traffic = |at: usize| Traffic {
                bytes: n[at],
                packets: n[at + 1],
                errors: n[at + 2],
                drops: n[at + 3],
            };
            Some(NetDev {
                interface: name.trim().to_owned(),
                receive: traffic(0),
                transmit: traffic(8),
            })
        })
        .collect()
}

/// Seconds since boot, the first number of `/proc/uptime`.
pub fn uptime_seconds(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// From `/proc/<pid>/stat`: user and system time in clock ticks. The
/// command name in parentheses may hold spaces and parentheses itself, so
/// fields are counted after its last `)`.
pub fn process_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the name: state (field 3) … utime (14), stime (15).
    let mut fields = rest.split_ascii_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// A `Name: value` field of `/proc/<pid>/status` or `/proc/<pid>/io`: its
/// first number, times 1024 when the kernel writes `kB` after it.
pub fn field(text: &str, name: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))?;
    let mut words = line[name.len() + 1..].split_ascii_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    Some(match words.next() {
        Some("kB") => value * 1024,
        _ => value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_count_iowait_as_idle_and_leave_guest_out() {
        let stat = "cpu  100 10 50 800 40 0 5 5 30 0\n\
                    cpu0 60 5 25 400 10 0 3 2 30 0\n\
                    cpu1 40 5 25 400 30 0 2 3 0 0\n\
                    intr 12345 0 0\nctxt 999\nbtime 1700000000\n";
        assert_eq!(
            cpu_times(stat),
            vec![
                (
                    "total".to_owned(),
                    CpuTimes {
                        busy: 170,
                        total: 1010
                    }
                ),
                (
                    "0".to_owned(),
                    CpuTimes {
                        busy: 95,
                        total: 505
                    }
                ),
                (
                    "1".to_owned(),
                    CpuTimes {
                        busy: 75,
                        total: 505
                    }
                ),
            ]
        );
    }

    #[test]
    fn usage_needs_ticks_that_went_forward() {
        let t = |busy, total| CpuTimes { busy, total };
        assert_eq!(usage_ratio(t(10, 100), t(35, 200)), Some(0.25));
        assert_eq!(usage_ratio(t(10, 100), t(10, 100)), None);
        assert_eq!(usage_ratio(t(50, 500), t(10, 100)), None);
    }

    #[test]
    fn loadavg_meminfo_uptime() {
        assert_eq!(
            load_averages("0.52 1.58 2.59 1/467 12345\n"),
            Some([0.52, 1.58, 2.59])
        );
        assert_eq!(load_averages("0.52\n"), None);
        let m = memory(
            "MemTotal:        7620000 kB\nMemFree:  100 kB\nMemAvailable:    3810000 kB\n\
             SwapCached: 0 kB\nSwapTotal:       3810000 kB\nSwapFree:        3574000 kB\n",
        );
        assert_eq!(
            m,
            Memory {
                total: Some(7_620_000 * 1024),
                available: Some(3_810_000 * 1024),
                swap_total: Some(3_810_000 * 1024),
                swap_free: Some(3_574_000 * 1024),
            }
        );
        assert_eq!(uptime_seconds("12345.67 23456.78\n"), Some(12345.67));
        assert_eq!(uptime_seconds(""), None);
    }

    #[test]
    fn pressure_lines() {
        let p = pressure(
            "some avg10=1.95 avg60=2.26 avg300=1.27 total=57821431\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        );
        assert_eq!(
            p,
            vec![
                Pressure {
                    scope: "some".to_owned(),
                    avg10_ratio: 0.0195,
                    total_us: 57_821_431
                },
                Pressure {
                    scope: "full".to_owned(),
                    avg10_ratio: 0.0,
                    total_us: 0
                },
            ]
        );
        assert_eq!(pressure("nonsense\n"), vec![]);
    }

    #[test]
    fn mount_points_are_unescaped() {
        let m = mounts(
            "/dev/mmcblk0p1 / ext4 rw,relatime 0 0\n\
             /dev/sda1 /media/usb\\040stick vfat rw 0 0\n\
             short line\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1],
            Mount {
                source: "/dev/sda1".to_owned(),
                point: "/media/usb stick".to_owned(),
                fstype: "vfat".to_owned()
            }
        );
        assert_eq!(unescape(r"a\134b\011c\9"), "a\\b\tc\\9");
    }

    #[test]
    fn diskstats_in_bytes() {
        // The second line has 13 fields, fewer than any kernel writes: skipped.
        let d = disk_io(
            " 179       0 mmcblk0 5298 1058 137248 7790 15766 19811 1323975 119604 0 12510 132522 0 0 0 0\n\
             259       0 nvme0n1 10 0 80 1 2 0 16 1 0 3\n",
        );
        assert_eq!(
            d,
            vec![DiskIo {
                device: "mmcblk0".to_owned(),
                reads: 5298,
                read_bytes: 137_248 * 512,
                writes: 15766,
                written_bytes: 1_323_975 * 512,
                io_ms: 12510,
            }]
        );
    }

    #[test]
    fn whole_disks() {
        for disk in [
            "mmcblk0", "mmcblk1", "nvme0n1", "sda", "vda", "xvdb", "dm-0", "md0",
        ] {
            assert!(is_whole_disk(disk), "{disk}");
        }
        for part in [
            "mmcblk0p1",
            "mmcblk0p15",
            "mmcblk0boot0",
            "mmcblk0rpmb",
            "nvme0n1p2",
            "sda1",
            "vda3",
            "loop0",
            "ram0",
            "zram3",
        ] {
            assert!(!is_whole_disk(part), "{part}");
        }
    }

    #[test]
    fn net_dev_lines() {
        let n = net_dev(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo: 2816 23 0 0 0 0 0 0 2816 23 0 0 0 0 0 0\n  \
             eth0:74684632 4248 1 2 0 0 0 0 292057 3658 3 4 0 0 0 0\n",
        );
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[1],
            NetDev {
                interface: "eth0".to_owned(),
                receive: Traffic {
                    bytes: 74_684_632,
                    packets: 4248,
                    errors: 1,
                    drops: 2
                },
                transmit: Traffic {
                    bytes: 292_057,
                    packets: 3658,
                    errors: 3,
                    drops: 4
                },
            }
        );
    }

    #[test]
    fn process_files() {
        let stat = "4242 (rvm (watch) dog) S 1 4242 4242 0 -1 4194560 1500 0 3 0 \
                    250 75 0 0 20 0 9 0 12345 123456789 3000 18446744073709551615";
        assert_eq!(process_cpu_ticks(stat), Some((250, 75)));
        assert_eq!(process_cpu_ticks("4242 (x) S 1"), None);
        let status = "Name:\trvm-watchdog\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(field(status, "VmRSS"), Some(12345 * 1024));
        assert_eq!(field(status, "Threads"), Some(9));
        assert_eq!(field(status, "VmSwap"), None);
        let io = "rchar: 6976\nwchar: 100\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(field(io, "write_bytes"), Some(8192));
        assert_eq!(field(io, "read_bytes"), Some(4096));
    }
}
