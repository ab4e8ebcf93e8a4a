//! The `camera` probe: a V4L2 camera present and answering, its USB port
//! still there, frames arriving and changing, and no UVC or USB errors in
//! the kernel log since the last run.
//!
//! Cheapest first, never streaming and never blocking on the device:
//! 1. the node exists (a stable `/dev/v4l/by-id/...` name is resolved);
//! 2. `VIDIOC_QUERYCAP` answers on an `O_RDWR | O_NONBLOCK` open, which is
//!    safe while the capture service streams from the camera;
//! 3. the USB port behind `/sys/class/video4linux/videoN/device` is still
//!    under `/sys/bus/usb/devices`;
//! 4. the frame heartbeat file (see [`Heartbeat`]) is fresh, its sequence
//!    advances, and its frame hash changes;
//! 5. `/dev/kmsg` held no UVC/USB error signature over the last five
//!    minutes (each one is logged once, and warns for that long).
//!
//! The probe remembers the previous heartbeat and its place in the kernel
//! log between runs; it is blocking code, run off the async runtime.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::{Outcome, Status};

/// `struct v4l2_capability` from `linux/videodev2.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    /// Driver name, NUL-padded.
    pub driver: [u8; 16],
    /// Device name, NUL-padded.
    pub card: [u8; 32],
    /// Bus location, NUL-padded.
    pub bus_info: [u8; 32],
    /// Driver version.
    pub version: u32,
    /// Capabilities of the physical device.
    pub capabilities: u32,
    /// Capabilities of this node.
    pub device_caps: u32,
    /// Zero.
    pub reserved: [u32; 3],
}

/// `V4L2_CAP_VIDEO_CAPTURE`.
const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
/// `V4L2_CAP_STREAMING`.
const CAP_STREAMING: u32 = 0x0400_0000;
/// `V4L2_CAP_DEVICE_CAPS`: `device_caps` is filled in.
const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

nix::ioctl_read!(vidioc_querycap, b'V', 0, Capability);

/// What `VIDIOC_QUERYCAP` told, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The node does not exist.
    Absent,
    /// It cannot be opened.
    CannotOpen(String),
    /// It is not a V4L2 device (the ioctl is not known).
    NotV4l2,
    /// The ioctl failed otherwise.
    Failed(String),
    /// A V4L2 device.
    Device {
        /// Card, e.g. `HD Pro Webcam C920`.
        card: String,
        /// The node's capabilities.
        caps: u32,
    },
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The device a `device` setting names: itself, or when its file name holds
/// `*` (`/dev/v4l/by-id/usb-*-video-index0`: any one USB camera), the one
/// entry of its directory that matches. None or several is an error that
/// says so; the directory is read each run, so a camera plugged in later
/// is found.
pub fn resolve(device: &Path) -> Result<PathBuf, String> {
    let Some(pattern) = device.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(device.to_owned());
    };
    if !pattern.contains('*') {
        return Ok(device.to_owned());
    }
    let dir = device.parent().unwrap_or(Path::new("/"));
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| wildcard(&pattern, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    };
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("no camera matches {}", device.display())),
        n => Err(format!(
            "{n} cameras match {} ({}): name one in device",
            device.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters (none included) and every other character for itself.
fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut left) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(i) => left = &left[i + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

/// Opens `device` without blocking and asks it `VIDIOC_QUERYCAP`.
pub fn query(device: &Path) -> Query {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(device)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Query::Absent,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => return Query::Absent,
        Err(e) => return Query::CannotOpen(e.to_string()),
    };
    let mut cap = Capability {
        driver: [0; 16],
        card: [0; 32],
        bus_info: [0; 32],
        version: 0,
        capabilities: 0,
        device_caps: 0,
        reserved: [0; 3],
    };
    // SAFETY: `cap` is a properly sized, writable v4l2_capability and the
    // descriptor stays open for the call.
    match unsafe { vidioc_querycap(file.as_raw_fd(), &mut cap) } {
        Ok(_) => {
            let caps = if cap.capabilities & CAP_DEVICE_CAPS != 0 {
                cap.device_caps
            } else {
                cap.capabilities
            };
            Query::Device {
                card: text(&cap.card),
                caps,
            }
        }
        Err(nix::errno::Errno::ENOTTY | nix::errno::Errno::EINVAL) => Query::NotV4l2,
        Err(nix::errno::Errno::ENODEV) => Query::Absent,
        Err(e) => Query::Failed(e.desc().to_owned()),
    }
}

/// The USB port (e.g. `2-1.4`) behind a video node, from sysfs under
/// `root`; `None` for a node that is not on USB (a CSI camera) or that
/// sysfs does not know.
pub fn usb_port(root: &Path, node: &str) -> Option<String> {
    let device = root.join("sys/class/video4linux").join(node).join("device");
    let interface = std::fs::canonicalize(device).ok()?;
    // The interface is named `<port>:<config>.<interface>`, e.g. `2-1.4:1.0`.
    let name = interface.file_name()?.to_str()?;
    let (port, _) = name.split_once(':')?;
    let looks_usb = port
        .split(['-', '.'])
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    looks_usb.then(|| port.to_owned())
}

/// Whether a USB port is present under `root`'s `/sys/bus/usb/devices`.
pub fn port_present(root: &Path, port: &str) -> bool {
    root.join("sys/bus/usb/devices").join(port).exists()
}

/// One frame heartbeat, as the capture service writes it.
///
/// The file holds one line of `key=value` fields separated by spaces:
///
/// ```text
/// ts=1764251234.512 seq=48213 hash=9f2c4e01a7
/// ```
///
/// - `ts`: when the frame arrived, Unix seconds (fractions allowed);
///   without it, the file's modification time is used.
/// - `seq`: the frame's sequence number, counting up from any start; it
///   may start again from 0 when the capture service restarts.
/// - `hash`: any short digest of the frame's bytes (a dead pipeline that
///   returns its last frame gives the same hash again and again).
///
/// Unknown fields are ignored. The service should write a new file and
/// rename it over the old one, so that the probe never reads half a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// When the frame arrived.
    pub at: SystemTime,
    /// Sequence number.
    pub seq: Option<u64>,
    /// Frame hash.
    pub hash: Option<String>,
}

impl Heartbeat {
    /// Reads and parses the heartbeat file. Errors name the file and the
    /// bad text.
    pub fn read(path: &Path) -> Result<Heartbeat, String> {
        let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        // One open: the time and the text are of the same file, even when
        // the capture service renames a new one over it meanwhile.
        let mut file = File::open(path).map_err(cannot)?;
        let modified = file.metadata().and_then(|m| m.modified()).map_err(cannot)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(cannot)?;
        Heartbeat::parse(&text, modified).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a heartbeat line; `modified` stands in for a missing `ts`.
    pub fn parse(text: &str, modified: SystemTime) -> Result<Heartbeat, String> {
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let mut beat = Heartbeat {
            at: modified,
            seq: None,
            hash: None,
        };
        for field in line.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!("\"{field}\" is not key=value"));
            };
            match key {
                "ts" => {
                    let secs: f64 = value
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| format!("ts \"{value}\" is not Unix seconds"))?;
                    beat.at = UNIX_EPOCH + Duration::from_secs_f64(secs);
                }
                "seq" => {
                    beat.seq = Some(
                        value
                            .parse()
                            .map_err(|_| format!("seq \"{value}\" is not a whole number"))?,
                    );
                }
                "hash" if !value.is_empty() => beat.hash = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(beat)
    }
}

/// How long a kernel error keeps the probe warning: long enough to be seen
/// on `/health` and in the metrics history, not a single probe interval.
pub const KERNEL_WINDOW: Duration = Duration::from_secs(300);

/// Kernel errors logged per run; the rest are counted.
const KERNEL_LOG_LINES: usize = 5;

/// Kernel errors remembered for the window, at most.
const KERNEL_KEPT: usize = 1000;

/// The kernel's UVC/USB trouble, as written to the kernel log.
const KERNEL_SIGNATURES: &[&str] = &[
    "uvcvideo: Non-zero status",
    "Failed to set UVC probe control",
    "USB disconnect",
    "cannot reset (err = -71)",
    "uvcvideo: Failed to",
    "device descriptor read/64, error",
    "device not accepting address",
];

/// Whether a kernel log message is UVC/USB trouble for the camera on
/// `port` (messages about other USB devices do not count; with the port
/// unknown, all do).
pub fn kernel_trouble(message: &str, port: Option<&str>) -> bool {
    if !KERNEL_SIGNATURES.iter().any(|s| message.contains(s)) {
        return false;
    }
    if message.contains("uvcvideo") {
        return true;
    }
    // `usb 2-1.4: USB disconnect, device number 5`: the device, or the hub
    // it hangs from.
    match (port, message.strip_prefix("usb ")) {
        (Some(port), Some(rest)) => {
            let device = rest.split(':').next().unwrap_or("");
            port == device || port.starts_with(&format!("{device}."))
        }
        _ => true,
    }
}

/// New records in the kernel log since the last read.
struct KernelLog {
    file: File,
    pending: Vec<u8>,
}

impl KernelLog {
    /// Opens `/dev/kmsg` (or a fixture file) at its end: only what is
    /// written later is read.
    fn open(path: &Path) -> std::io::Result<KernelLog> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(KernelLog {
            file,
            pending: Vec::new(),
        })
    }

    /// The messages written since the last call. `/dev/kmsg` gives one
    /// record per read (`prio,seq,usec,flags;message`, then indented
    /// key=value lines); a record overwritten before it was read gives
    /// EPIPE, and the next read goes on.
    fn read_new(&mut self) -> Vec<String> {
        let mut buf = [0u8; 8192];
        for _ in 0..10_000 {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                // A record ends in a newline; a partial one waits for the rest.
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EAGAIN: nothing more now
            }
        }
        let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.pending.drain(..=last).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.is_empty())
            .map(|l| match l.split_once(';') {
                Some((_, message)) => message.to_owned(),
                None => l.to_owned(),
            })
            .collect()
    }
}

/// What the camera probe checks, from its policy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Device node.
    pub device: PathBuf,
    /// Frame heartbeat file.
    pub frame_heartbeat: Option<PathBuf>,
    /// Fail when the last frame is older.
    pub max_frame_age: Duration,
    /// This many identical hashes in a row = frozen.
    pub identical_frames: u32,
    /// Watch the kernel log.
    pub kernel_errors: bool,
}

/// A camera probe with what it remembers between runs.
pub struct CameraProbe {
    root: PathBuf,
    settings: Settings,
    /// The USB port last seen behind the node.
    port: Option<String>,
    /// The previous heartbeat's sequence number.
    last_seq: Option<u64>,
    /// The previous heartbeat's hash and how many heartbeats in a row had it.
    last_hash: Option<(String, u32)>,
    kmsg: Option<KernelLog>,
    /// Kernel errors seen within the last [`KERNEL_WINDOW`], oldest first.
    recent: VecDeque<(Instant, String)>,
    /// The kernel log could not be opened: said once, not tried again.
    kmsg_unavailable: bool,
}

impl CameraProbe {
    /// A probe reading sysfs and the kernel log under `root`.
    pub fn new(root: PathBuf, settings: Settings) -> CameraProbe {
        CameraProbe {
            root,
            settings,
            port: None,
            last_seq: None,
            last_hash: None,
            kmsg: None,
            recent: VecDeque::new(),
            kmsg_unavailable: false,
        }
    }

    /// One run. Blocking: the caller runs it off the runtime.
    pub fn run(&mut self) -> Outcome {
        let mut fails: Vec<String> = Vec::new();
        let mut warns: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        // The kernel log first: its errors explain what follows.
        let kernel = self.kernel_errors(Instant::now());
        let (device, matched) = match resolve(&self.settings.device) {
            Ok(found) => (found, true),
            Err(why) => {
                fails.push(why);
                (self.settings.device.clone(), false)
            }
        };
        let device = &device;
        if device != &self.settings.device {
            notes.push(format!("matched {}", device.display()));
        }

        // No match: absent, and said once (above).
        let answer = if matched {
            query(device)
        } else {
            Query::Absent
        };
        let real = std::fs::canonicalize(device).ok();
        if answer != Query::Absent {
            // The port, whatever the node answered: a wedged camera (EIO)
            // is reset through it too.
            let node = real
                .as_ref()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            if let Some(port) = node.and_then(|n| usb_port(&self.root, &n)) {
                if port_present(&self.root, &port) {
                    notes.push(format!("USB {port}"));
                } else {
                    fails.push(format!("USB port {port} is gone"));
                }
                self.port = Some(port);
            }
        }
        match answer {
            Query::Absent => {
                let port = match &self.port {
                    Some(p) if port_present(&self.root, p) => {
                        format!(" (USB port {p} is still there)")
                    }
                    Some(p) => format!(" (USB port {p} is gone)"),
                    None => String::new(),
                };
                if matched {
                    fails.push(format!("{} is absent{port}", device.display()));
                } else if let Some(p) = &self.port {
                    let there = if port_present(&self.root, p) {
                        "still there"
                    } else {
                        "gone"
                    };
                    fails.push(format!(
                        "it was last seen on USB port {p}, which is {there}"
                    ));
                }
            }
            Query::CannotOpen(e) => {
                fails.push(format!("cannot open {}: {e}", device.display()));
            }
            Query::NotV4l2 => {
                fails.push(format!("{} is not a V4L2 device", device.display()));
            }
            Query::Failed(e) => {
                fails.push(format!("{}: VIDIOC_QUERYCAP failed: {e}", device.display()));
            }
            Query::Device { card, caps, .. } => {
                if caps & CAP_VIDEO_CAPTURE == 0 {
                    fails.push(format!(
                        "{} ({card}) cannot capture video (a metadata node?)",
                        device.display()
                    ));
                } else if caps & CAP_STREAMING == 0 {
                    warns.push(format!("{} ({card}) cannot stream", device.display()));
                }
                match &real {
                    Some(r) if r != device => notes.insert(0, format!("{card} at {}", r.display())),
                    _ => notes.insert(0, card),
                }
            }
        }

        let mut age = None;
        if let Some(path) = self.settings.frame_heartbeat.clone() {
            match Heartbeat::read(&path) {
                Ok(beat) => age = Some(self.judge_heartbeat(&beat, &mut fails, &mut notes)),
                Err(e) => fails.push(format!("frame heartbeat: {e}")),
            }
        }

        if let Some((count, last)) = kernel {
            warns.push(format!(
                "kernel: {count} UVC/USB error{} in the last {}, last \"{last}\"",
                if count == 1 { "" } else { "s" },
                humantime::format_duration(KERNEL_WINDOW)
            ));
        }

        let status = if !fails.is_empty() {
            Status::Fail
        } else if !warns.is_empty() {
            Status::Warn
        } else {
            Status::Pass
        };
        let mut parts = fails;
        parts.extend(warns);
        if parts.is_empty() {
            parts = notes;
        }
        let mut outcome = Outcome::new(status, parts.join("; "));
        if self.settings.device.to_string_lossy().contains('*') && device != &self.settings.device {
            // A hook's `{device}` is the node the pattern matched.
            outcome.facts.insert("device", device.display().to_string());
        }
        if let Some(port) = &self.port {
            // Known, or last known: a camera that fell off the bus is reset
            // through the port it was on.
            outcome.facts.insert("usb-port", port.clone());
        }
        match age {
            Some(secs) => outcome.value(secs, "s"),
            None => outcome,
        }
    }

    /// Applies the heartbeat rules; returns the frame's age in seconds.
    fn judge_heartbeat(
        &mut self,
        beat: &Heartbeat,
        fails: &mut Vec<String>,
        notes: &mut Vec<String>,
    ) -> f64 {
        let age = SystemTime::now()
            .duration_since(beat.at)
            .unwrap_or_default()
            .as_secs_f64();
        if age > self.settings.max_frame_age.as_secs_f64() {
            fails.push(format!(
                "stale: the last frame is {age:.1} s old (limit {})",
                humantime::format_duration(self.settings.max_frame_age)
            ));
        } else {
            notes.push(format!("last frame {age:.1} s ago"));
        }
        if let Some(seq) = beat.seq {
            if self.last_seq == Some(seq) {
                fails.push(format!("stuck: frame sequence still at {seq}"));
            }
            self.last_seq = Some(seq);
        }
        if let Some(hash) = &beat.hash {
            let count = match &self.last_hash {
                Some((last, n)) if last == hash => n + 1,
                _ => 1,
            };
            if count >= self.settings.identical_frames {
                fails.push(format!(
                    "frozen: frame hash {hash} in {count} heartbeats in a row"
                ));
            }
            self.last_hash = Some((hash.clone(), count));
        }
        age
    }

    /// UVC/USB errors in the kernel log over the last [`KERNEL_WINDOW`]:
    /// how many and the last one. Each new one is logged once. The first
    /// run only opens the log at its end.
    fn kernel_errors(&mut self, now: Instant) -> Option<(usize, String)> {
        if !self.settings.kernel_errors || self.kmsg_unavailable {
            return None;
        }
        let Some(log) = &mut self.kmsg else {
            let path = self.root.join("dev/kmsg");
            match KernelLog::open(&path) {
                Ok(log) => self.kmsg = Some(log),
                Err(e) => {
                    info!(
                        "camera probe: cannot read the kernel log {}: {e}; \
                         kernel errors are not watched",
                        path.display()
                    );
                    self.kmsg_unavailable = true;
                }
            }
            return None;
        };
        let port = self.port.as_deref();
        let device = self.settings.device.display();
        let mut logged = 0;
        for message in log.read_new() {
            if !kernel_trouble(&message, port) {
                continue;
            }
            // A failing camera can flood the kernel log: the journal gets
            // the first few of each run and a count of the rest.
            if logged < KERNEL_LOG_LINES {
                warn!(device = %device, "camera {device}: kernel: {message}");
            }
            logged += 1;
            self.recent.push_back((now, message));
        }
        if logged > KERNEL_LOG_LINES {
            warn!(
                device = %device,
                "camera {device}: kernel: {} more UVC/USB errors not logged",
                logged - KERNEL_LOG_LINES
            );
        }
        // Bounded however many arrive: the count and the last one are
        // what the outcome tells.
        while self.recent.len() > KERNEL_KEPT {
            self.recent.pop_front();
        }
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > KERNEL_WINDOW)
        {
            self.recent.pop_front();
        }
        let (_, last) = self.recent.back()?;
        Some((self.recent.len(), last.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn settings(device: &Path, heartbeat: Option<&Path>) -> Settings {
        Settings {
            device: device.to_owned(),
            frame_heartbeat: heartbeat.map(Path::to_owned),
            max_frame_age: Duration::from_secs(10),
            identical_frames: 3,
            kernel_errors: false,
        }
    }

    fn now_secs() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    fn beat(path: &Path, ts: f64, seq: u64, hash: &str) {
        std::fs::write(path, format!("ts={ts:.3} seq={seq} hash={hash}\n")).unwrap();
    }

    #[test]
    fn a_node_that_is_not_v4l2_says_so() {
        let mut probe =
            CameraProbe::new(PathBuf::from("/"), settings(Path::new("/dev/null"), None));
        let out = probe.run();
        assert_eq!(out.status, Status::Fail);
        assert_eq!(out.output, "/dev/null is not a V4L2 device");
    }

    #[test]
    fn a_missing_node_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("usb-046d_HD_Pro_Webcam_C920-video-index0");
        let mut probe = CameraProbe::new(dir.path().to_owned(), settings(&device, None));
        let out = probe.run();
        assert_eq!(out.status, Status::Fail);
        assert_eq!(out.output, format!("{} is absent", device.display()));
    }

    #[test]
    fn heartbeat_rules_fire_stale_stuck_and_frozen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("camera.heartbeat");
        let mut s = settings(Path::new("/dev/null"), Some(&file));
        // Only the heartbeat is judged here: a node that exists but is not
        // V4L2 would fail too, so check the heartbeat rules directly.
        s.device = dir.path().join("unused");
        let mut probe = CameraProbe::new(dir.path().to_owned(), s);
        let mut run = |ts: f64, seq: u64, hash: &str| {
            beat(&file, ts, seq, hash);
            let mut fails = Vec::new();
            let mut notes = Vec::new();
            let b = Heartbeat::read(&file).unwrap();
            let age = probe.judge_heartbeat(&b, &mut fails, &mut notes);
            (age, fails)
        };
        let now = now_secs();
        // Fresh, advancing, changing: nothing.
        assert!(run(now, 100, "aa").1.is_empty());
        assert!(run(now, 130, "bb").1.is_empty());
        // Stale.
        let (age, fails) = run(now - 42.0, 160, "cc");
        assert!(age > 41.0, "{age}");
        assert_eq!(fails.len(), 1, "{fails:?}");
        assert!(
            fails[0].starts_with("stale: the last frame is 42"),
            "{fails:?}"
        );
        // Stuck sequence.
        let (_, fails) = run(now_secs(), 160, "dd");
        assert_eq!(fails, ["stuck: frame sequence still at 160"]);
        // The same hash three times in a row (identical-frames = 3), while
        // the sequence advances.
        assert!(run(now_secs(), 190, "ee").1.is_empty());
        assert!(run(now_secs(), 220, "ee").1.is_empty());
        let (_, fails) = run(now_secs(), 250, "ee");
        assert_eq!(fails, ["frozen: frame hash ee in 3 heartbeats in a row"]);
        // A new frame clears it; a restart of the service (seq from 0) is fine.
        assert!(run(now_secs(), 0, "ff").1.is_empty());
    }

    #[test]
    fn the_whole_probe_reports_a_stale_heartbeat_with_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("camera.heartbeat");
        beat(&file, now_secs() - 30.0, 7, "ab");
        let mut probe = CameraProbe::new(
            dir.path().to_owned(),
            settings(Path::new("/dev/null"), Some(&file)),
        );
        let out = probe.run();
        assert_eq!(out.status, Status::Fail);
        assert!(
            out.output.contains("stale: the last frame is 30"),
            "{}",
            out.output
        );
        assert!(out.observed_value.unwrap() >= 29.9);
        assert_eq!(out.observed_unit, Some("s"));
    }

    #[test]
    fn heartbeat_parse_errors_name_the_bad_text_and_ts_falls_back_to_mtime() {
        let t = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            Heartbeat::parse("ts=abc seq=1", t).unwrap_err(),
            "ts \"abc\" is not Unix seconds"
        );
        assert_eq!(
            Heartbeat::parse("seq=-4", t).unwrap_err(),
            "seq \"-4\" is not a whole number"
        );
        assert_eq!(
            Heartbeat::parse("garbage", t).unwrap_err(),
            "\"garbage\" is not key=value"
        );
        let b = Heartbeat::parse("seq=5 hash=x extra=1\n", t).unwrap();
        assert_eq!(b.at, t);
        assert_eq!(b.seq, Some(5));
        assert_eq!(b.hash.as_deref(), Some("x"));
    }

    #[test]
    fn usb_port_comes_from_sysfs_and_its_absence_is_noticed() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let iface = r.join("sys/devices/platform/3610000.usb/usb2/2-1/2-1.4/2-1.4:1.0");
        std::fs::create_dir_all(&iface).unwrap();
        std::fs::create_dir_all(r.join("sys/class/video4linux/video0")).unwrap();
        std::os::unix::fs::symlink(
            "../../../devices/platform/3610000.usb/usb2/2-1/2-1.4/2-1.4:1.0",
            r.join("sys/class/video4linux/video0/device"),
        )
        .unwrap();
        std::fs::create_dir_all(r.join("sys/bus/usb/devices")).unwrap();
        std::os::unix::fs::symlink(
            "../../../devices/platform/3610000.usb/usb2/2-1/2-1.4",
            r.join("sys/bus/usb/devices/2-1.4"),
        )
        .unwrap();
        assert_eq!(usb_port(r, "video0").as_deref(), Some("2-1.4"));
        assert!(port_present(r, "2-1.4"));
        assert_eq!(usb_port(r, "video1"), None);
        std::fs::remove_dir_all(r.join("sys/devices/platform/3610000.usb/usb2/2-1/2-1.4")).unwrap();
        assert!(!port_present(r, "2-1.4"));
    }

    #[test]
    fn kernel_errors_warn_for_a_window_and_other_devices_do_not_count() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        let kmsg = root.path().join("dev/kmsg");
        std::fs::write(
            &kmsg,
            "3,100,5000,-;uvcvideo: Non-zero status (-71) in video completion handler\n",
        )
        .unwrap();
        let mut s = settings(Path::new("/dev/null"), None);
        s.kernel_errors = true;
        let mut probe = CameraProbe::new(root.path().to_owned(), s);
        probe.port = Some("2-1.4".into());
        let t0 = Instant::now();
        // The first run opens the log at its end: old errors do not count.
        assert_eq!(probe.kernel_errors(t0), None);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&kmsg)
            .unwrap();
        writeln!(f, "6,101,6000,-;usb 1-2: USB disconnect, device number 3").unwrap();
        writeln!(f, " SUBSYSTEM=usb").unwrap();
        writeln!(f, "3,102,7000,-;usb 2-1.4: cannot reset (err = -71)").unwrap();
        writeln!(
            f,
            "3,103,8000,-;uvcvideo: Failed to set UVC probe control : -71"
        )
        .unwrap();
        let last = "uvcvideo: Failed to set UVC probe control : -71".to_owned();
        assert_eq!(probe.kernel_errors(t0), Some((2, last.clone())));
        // Nothing new: they still count while within the window.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(probe.kernel_errors(t1), Some((2, last.clone())));
        // A hub above the camera counts.
        writeln!(f, "6,104,9000,-;usb 2-1: USB disconnect, device number 2").unwrap();
        let hub = "usb 2-1: USB disconnect, device number 2".to_owned();
        assert_eq!(probe.kernel_errors(t1), Some((3, hub.clone())));
        // Past the window the first two are forgotten, then the last.
        assert_eq!(
            probe.kernel_errors(t0 + KERNEL_WINDOW + Duration::from_secs(1)),
            Some((1, hub))
        );
        assert_eq!(
            probe.kernel_errors(t1 + KERNEL_WINDOW + Duration::from_secs(1)),
            None
        );
        // A flood is bounded: the newest are kept, the last one told.
        for n in 0..1200 {
            writeln!(
                f,
                "3,{},9000,-;uvcvideo: Non-zero status (-71) #{n}",
                200 + n
            )
            .unwrap();
        }
        let later = t1 + 2 * KERNEL_WINDOW;
        assert_eq!(
            probe.kernel_errors(later),
            Some((
                KERNEL_KEPT,
                "uvcvideo: Non-zero status (-71) #1199".to_owned()
            ))
        );
    }

    #[test]
    fn a_pattern_finds_the_one_camera_and_says_when_there_are_none_or_several() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = dir.path().join("usb-*-video-index0");
        assert_eq!(
            resolve(&pattern).unwrap_err(),
            format!("no camera matches {}", pattern.display())
        );
        let c920 = dir.path().join("usb-046d_HD_Pro_Webcam_C920-video-index0");
        std::fs::write(&c920, "").unwrap();
        std::fs::write(
            dir.path().join("usb-046d_HD_Pro_Webcam_C920-video-index1"),
            "",
        )
        .unwrap();
        assert_eq!(resolve(&pattern).unwrap(), c920);
        std::fs::write(dir.path().join("usb-0c45_USB_Camera-video-index0"), "").unwrap();
        let two = resolve(&pattern).unwrap_err();
        assert!(two.starts_with("2 cameras match"), "{two}");
        assert!(two.contains("name one in device"), "{two}");
        // A plain name is itself, there or not.
        assert_eq!(resolve(&c920).unwrap(), c920);
        assert_eq!(
            resolve(Path::new("/dev/v4l/by-id/absent")).unwrap(),
            Path::new("/dev/v4l/by-id/absent")
        );
    }

    #[test]
    fn wildcards_match_runs_of_any_characters() {
        assert!(wildcard("usb-*-video-index0", "usb-x-video-index0"));
        assert!(wildcard("usb-*-video-index0", "usb--video-index0"));
        assert!(!wildcard("usb-*-video-index0", "usb-x-video-index1"));
        assert!(!wildcard("usb-*-video-index0", "pci-x-video-index0"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("a*b*c", "aXbYc"));
        assert!(!wildcard("a*b*c", "aXcYb"));
        assert!(!wildcard("ab*ba", "aba"));
    }

    #[test]
    fn the_probe_reports_the_node_a_pattern_matched() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(&dir.path().join("usb-*-video-index0"), None);
        s.kernel_errors = false;
        let mut probe = CameraProbe::new(dir.path().to_owned(), s.clone());
        let none = probe.run();
        assert_eq!(none.status, Status::Fail);
        assert!(
            none.output.starts_with("no camera matches"),
            "{}",
            none.output
        );
        assert!(
            !none.output.contains("absent"),
            "said once: {}",
            none.output
        );
        assert!(!none.facts.contains_key("device"));
        let node = dir.path().join("usb-cam-video-index0");
        std::fs::write(&node, "").unwrap();
        let found = probe.run();
        // A plain file is no V4L2 device: the probe fails, naming it.
        assert!(
            found.output.contains(&node.display().to_string()),
            "{}",
            found.output
        );
        assert_eq!(found.facts.get("device"), Some(&node.display().to_string()));
    }
}
