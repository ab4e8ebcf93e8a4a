//! The `gpu` probe: is the GPU there, how hot is it, is it throttled.
//!
//! The probe keeps state between runs. Its **backend** is the Jetson
//! devfreq GPU under the host root ([`super::jetson`]), looked for again on
//! every run until found, because at boot the node can appear after the
//! daemon starts. Where there is none but a `tegrastats` program is
//! (`usr/bin/tegrastats`, else `usr/sbin/tegrastats` under the root), the
//! probe falls back on it: see **tegrastats** below. Where there is neither,
//! the root is `/` and the machine is no Jetson (NVML initialises on Orin
//! but supports nothing there), it uses NVML, NVIDIA's management library
//! for discrete GPUs, loaded at run time: device 0's utilisation,
//! temperature, graphics clock, power and throttle reasons. A library that
//! fails to load is tried again every [`NVML_RETRY`].
//!
//! **tegrastats** is started once as a child, `tegrastats --interval 1000`
//! ([`TEGRASTATS_INTERVAL`]), in a process group of its own; a thread keeps
//! its latest line ([`super::tegrastats::parse`]) and counts the lines that
//! do not parse. A run turns a line younger than three intervals into the
//! GPU `GR3D` (tegrastats's name for the GPU engine: its load and first
//! clock), the temperatures as tegrastats names them (`gpu`, `tj`) and the
//! power rails; the first run after a start waits up to three intervals
//! for the first line. No line for three intervals: the child is killed
//! and started again, and the run warns. A program that cannot be started
//! warns, logged once, and is tried again every [`TEGRASTATS_RETRY`]. The
//! child is stopped when a devfreq GPU appears and killed when the probe is
//! dropped. Once a devfreq GPU was seen the probe does not fall back: that
//! GPU gone is a failure, not a reason to change sources.
//!
//! The observed value is the GPU's temperature: the `gpu-thermal` or
//! `GPU-therm` zone, else the `tj` zone, else the hottest one. It is judged
//! by the probe's thresholds; a throttled GPU warns, a GPU seen before and
//! gone fails, and no GPU at all warns.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use tracing::{info, warn};

use super::checks::judge;
use super::jetson::{Backend, Gpu, Rail, Reader, Telemetry, Temperature};
use super::tegrastats::{self, Sample};
use super::{Measurement, Outcome, Status};
use crate::config::Thresholds;

/// How long after NVML failed to load it is tried again.
pub const NVML_RETRY: Duration = Duration::from_secs(300);

/// How often tegrastats is asked to print a line.
pub const TEGRASTATS_INTERVAL: Duration = Duration::from_millis(1000);

/// How long after tegrastats failed to start it is tried again.
pub const TEGRASTATS_RETRY: Duration = Duration::from_secs(300);

/// Where tegrastats is looked for under the host root, in this order.
const TEGRASTATS_PATHS: [&str; 2] = ["usr/bin/tegrastats", "usr/sbin/tegrastats"];

/// Intervals without a line after which tegrastats is restarted.
const STALE_INTERVALS: u32 = 3;

/// The longest tegrastats line read; a longer one counts as a bad line.
const MAX_LINE: usize = 64 * 1024;

/// How long a killed tegrastats is waited for before it is left behind.
const REAP_WAIT: Duration = Duration::from_secs(1);

/// The `gpu` probe with what it remembers between runs.
pub struct GpuProbe {
    root: PathBuf,
    thresholds: Thresholds,
    jetson: Reader,
    nvml: Option<Nvml>,
    nvml_retry_at: Option<Instant>,
    /// NVML's library: `None` is the driver's `libnvidia-ml.so`, looked
    /// for only on a machine (root `/`) that is no Jetson; a path is used
    /// whatever the root.
    nvml_library: Option<PathBuf>,
    tegrastats: Tegrastats,
    absence_logged: bool,
    /// The GPU judged last time, and where it came from.
    seen: Option<(String, Backend)>,
    telemetry: Option<Telemetry>,
}

impl fmt::Debug for GpuProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuProbe")
            .field("root", &self.root)
            .field("thresholds", &self.thresholds)
            .field("nvml", &self.nvml.is_some())
            .field("tegrastats", &self.tegrastats)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl GpuProbe {
    /// A probe of the GPU of the machine under `host_root`.
    pub fn new(host_root: PathBuf, thresholds: Thresholds) -> GpuProbe {
        GpuProbe {
            jetson: Reader::new(host_root.clone()),
            root: host_root,
            thresholds,
            nvml: None,
            nvml_retry_at: None,
            nvml_library: None,
            tegrastats: Tegrastats::new(None, TEGRASTATS_INTERVAL),
            absence_logged: false,
            seen: None,
            telemetry: None,
        }
    }

    /// A probe that falls back on `program` (always tried, present or not)
    /// instead of the tegrastats under `host_root`, asking it for a line
    /// every `interval` (tests use a stand-in).
    #[cfg(test)]
    pub(crate) fn with_tegrastats(
        host_root: PathBuf,
        thresholds: Thresholds,
        program: PathBuf,
        interval: Duration,
    ) -> GpuProbe {
        let mut probe = GpuProbe::new(host_root, thresholds);
        probe.tegrastats = Tegrastats::new(Some(program), interval);
        probe
    }

    /// A probe that reads NVML from `library` where sysfs shows no GPU
    /// (tests use a stand-in for the driver's library).
    #[cfg(test)]
    pub(crate) fn with_nvml_library(
        host_root: PathBuf,
        thresholds: Thresholds,
        library: PathBuf,
    ) -> GpuProbe {
        let mut probe = GpuProbe::new(host_root, thresholds);
        probe.nvml_library = Some(library);
        probe
    }

    /// Blocking: reads sysfs (or tegrastats, or NVML). The caller runs it
    /// off the runtime.
    pub fn run(&mut self) -> Outcome {
        self.run_at(Instant::now())
    }

    /// The last telemetry read, for /health and metrics later.
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    fn run_at(&mut self, now: Instant) -> Outcome {
        let mut telemetry = self.jetson.read(now);
        if telemetry.gpu.is_some() {
            if self.tegrastats.stop() {
                info!("a Jetson devfreq GPU was found; stopped tegrastats");
            }
        } else if let Some(program) = self.tegrastats_program() {
            match self.tegrastats.latest(now, &program, &self.root) {
                Ok((sample, problem)) => {
                    fill_from_tegrastats(sample, &mut telemetry);
                    telemetry.problems.extend(problem);
                }
                Err(warning) => {
                    self.telemetry = Some(telemetry);
                    return warning;
                }
            }
        } else if self.nvml_library.is_some()
            || (self.root == Path::new("/") && !self.root.join("etc/nv_tegra_release").exists())
        {
            self.read_nvml(now, &mut telemetry);
        }
        let mut outcome = self.judge(&telemetry);
        outcome.measurements = measurements(&telemetry);
        self.telemetry = Some(telemetry);
        outcome
    }

    /// The tegrastats to fall back on: none once a devfreq GPU was seen.
    fn tegrastats_program(&self) -> Option<PathBuf> {
        if matches!(self.seen, Some((_, Backend::Devfreq))) {
            return None;
        }
        if let Some(program) = &self.tegrastats.program {
            return Some(program.clone());
        }
        TEGRASTATS_PATHS
            .iter()
            .map(|path| self.root.join(path))
            .find(|path| path.is_file())
    }

    /// The tegrastats child's process id, while one runs.
    #[cfg(test)]
    fn tegrastats_pid(&self) -> Option<u32> {
        self.tegrastats.child.as_ref().map(|c| c.child.id())
    }

    fn judge(&mut self, t: &Telemetry) -> Outcome {
        let Some(gpu) = &t.gpu else {
            if let Some((name, _)) = &self.seen {
                return Outcome::new(Status::Fail, format!("GPU {name} vanished"));
            }
            let why = format!(
                "no GPU found (no Jetson devfreq GPU under {}, no NVML)",
                self.root.display()
            );
            if !self.absence_logged {
                info!(root = %self.root.display(), "{why}");
                self.absence_logged = true;
            }
            return Outcome::new(Status::Warn, why);
        };
        if self.seen.as_ref().map(|(name, _)| name) != Some(&gpu.name) {
            info!(gpu = %gpu.name, "GPU {} found", gpu.name);
            self.seen = Some((gpu.name.clone(), gpu.backend));
        }
        let temperature = gpu_temperature(&t.temperatures);
        let mut status = match temperature {
            Some(zone) => judge(zone.celsius, &self.thresholds),
            None => Status::Warn,
        };
        if gpu.throttled && status == Status::Pass {
            status = Status::Warn;
        }
        let mut outcome = Outcome::new(status, summary(gpu, temperature, t));
        if let Some(zone) = temperature {
            outcome = outcome.value(zone.celsius, "°C");
        }
        outcome
    }

    /// Fills the GPU, its temperature and power from NVML device 0.
    fn read_nvml(&mut self, now: Instant, t: &mut Telemetry) {
        if self.nvml.is_none() && self.nvml_retry_at.is_none_or(|at| now >= at) {
            let init = match &self.nvml_library {
                Some(path) => Nvml::builder().lib_path(path.as_os_str()).init(),
                None => Nvml::init(),
            };
            match init {
                Ok(nvml) => self.nvml = Some(nvml),
                Err(e) => {
                    tracing::debug!("NVML is not available: {e}");
                    self.nvml_retry_at = Some(now + NVML_RETRY);
                }
            }
        }
        let Some(device) = self.nvml.as_ref().and_then(|n| n.device_by_index(0).ok()) else {
            return;
        };
        let slowdown = ThrottleReasons::SW_POWER_CAP
            | ThrottleReasons::HW_SLOWDOWN
            | ThrottleReasons::SW_THERMAL_SLOWDOWN
            | ThrottleReasons::HW_THERMAL_SLOWDOWN
            | ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN;
        let hz = |mhz: u32| u64::from(mhz) * 1_000_000;
        t.gpu = Some(Gpu {
            name: device.name().unwrap_or_else(|_| "NVML device 0".to_owned()),
            backend: Backend::Nvml,
            load_percent: device.utilization_rates().ok().map(|u| f64::from(u.gpu)),
            cur_hz: device.clock_info(Clock::Graphics).ok().map(hz),
            min_hz: None,
            max_hz: device.max_clock_info(Clock::Graphics).ok().map(hz),
            governor: None,
            available_hz: Vec::new(),
            throttled: device
                .current_throttle_reasons()
                .is_ok_and(|r| r.intersects(slowdown)),
        });
        if let Ok(celsius) = device.temperature(TemperatureSensor::Gpu) {
            t.temperatures.push(Temperature {
                zone: "gpu".to_owned(),
                celsius: f64::from(celsius),
            });
        }
        if let Ok(mw) = device.power_usage() {
            t.total_power_mw = Some(f64::from(mw));
        }
    }
}

/// The tegrastats fallback: which program, its child while it runs, and
/// what failed.
#[derive(Debug)]
struct Tegrastats {
    /// Given by a test; else looked for under the root.
    program: Option<PathBuf>,
    /// Asked of tegrastats with `--interval`.
    interval: Duration,
    child: Option<TegrastatsChild>,
    /// After a failed start: when to try again, and the warning until then.
    failed: Option<(Instant, String)>,
    failure_logged: bool,
    /// Restarts after tegrastats fell silent, over the probe's life.
    restarts: u64,
}

impl Tegrastats {
    fn new(program: Option<PathBuf>, interval: Duration) -> Tegrastats {
        Tegrastats {
            program,
            interval,
            child: None,
            failed: None,
            failure_logged: false,
            restarts: 0,
        }
    }

    /// How long tegrastats may go without a line.
    fn window(&self) -> Duration {
        self.interval * STALE_INTERVALS
    }

    /// The latest line's sample and, when lines failed to parse since the
    /// last run, a problem saying so; starts or restarts `program` as
    /// needed. Err: the warning to give instead.
    fn latest(
        &mut self,
        now: Instant,
        program: &Path,
        root: &Path,
    ) -> Result<(Sample, Option<String>), Outcome> {
        let window = self.window();
        let mut child = match self.child.take() {
            Some(child) => child,
            None => {
                let child = self.start(now, program, root)?;
                info!(
                    program = %program.display(),
                    "no Jetson devfreq GPU under {}; reading the GPU from {}",
                    root.display(),
                    program.display()
                );
                child
            }
        };
        let lines = child.wait_for_sample(child.started + window);
        let problem = child.new_bad_lines(&lines);
        if let Some((sample, at)) = lines.latest
            && now.saturating_duration_since(at) <= window
        {
            self.child = Some(child);
            return Ok((sample, problem));
        }
        let exited = child.stop();
        self.restarts += 1;
        let secs = window.as_secs_f64();
        let mut why = match &lines.last_error {
            Some(e) if lines.bad > 0 => format!(
                "tegrastats gave no line that parses in {secs} s ({} did not, the last: {e})",
                lines.bad
            ),
            _ => format!("tegrastats gave no line in {secs} s"),
        };
        match exited.map(|status| (status.code(), status.signal())) {
            Some((Some(code), _)) => why.push_str(&format!(" (it had exited with code {code})")),
            Some((None, Some(signal))) => {
                why.push_str(&format!(" (it had been killed by signal {signal})"));
            }
            _ => {}
        }
        warn!(
            program = %program.display(),
            restarts = self.restarts,
            "{why}; restarting it (restart {})",
            self.restarts
        );
        self.child = Some(self.start(now, program, root)?);
        Err(Outcome::new(Status::Warn, format!("{why}; restarted it")))
    }

    /// Starts `program` unless it failed to start less than
    /// [`TEGRASTATS_RETRY`] ago.
    fn start(
        &mut self,
        now: Instant,
        program: &Path,
        root: &Path,
    ) -> Result<TegrastatsChild, Outcome> {
        if let Some((retry_at, why)) = &self.failed
            && now < *retry_at
        {
            return Err(Outcome::new(Status::Warn, why.clone()));
        }
        match TegrastatsChild::spawn(program, self.interval) {
            Ok(child) => {
                self.failed = None;
                self.failure_logged = false;
                Ok(child)
            }
            Err(e) => {
                let why = format!("no Jetson devfreq GPU under {} and {e}", root.display());
                if !self.failure_logged {
                    warn!(program = %program.display(), "{why}");
                    self.failure_logged = true;
                }
                self.failed = Some((now + TEGRASTATS_RETRY, why.clone()));
                Err(Outcome::new(Status::Warn, why))
            }
        }
    }

    /// Stops the child; whether there was one.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        child.stop();
        true
    }
}

/// A running tegrastats and the thread reading its lines. Dropping it
/// kills the child.
struct TegrastatsChild {
    child: Child,
    started: Instant,
    lines: Arc<SharedLines>,
    /// Bad lines already reported as a problem.
    reported_bad: u64,
    stopped: bool,
}

impl fmt::Debug for TegrastatsChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TegrastatsChild")
            .field("pid", &self.child.id())
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// What the reader thread has seen, with a signal for each line.
#[derive(Default)]
struct SharedLines {
    lines: Mutex<Lines>,
    arrived: Condvar,
}

/// The reader thread's findings.
#[derive(Debug, Clone, Default)]
struct Lines {
    /// The last line that parsed and when it arrived.
    latest: Option<(Sample, Instant)>,
    /// Lines that did not parse, in all.
    bad: u64,
    /// Why the last of them did not.
    last_error: Option<String>,
}

impl SharedLines {
    fn lock(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, line: Result<Sample, String>, at: Instant) {
        let mut lines = self.lock();
        match line {
            Ok(sample) => lines.latest = Some((sample, at)),
            Err(e) => {
                lines.bad += 1;
                lines.last_error = Some(e);
            }
        }
        self.arrived.notify_all();
    }
}

impl TegrastatsChild {
    /// Starts `program --interval MS` in a process group of its own, its
    /// output read by a thread.
    fn spawn(program: &Path, interval: Duration) -> Result<TegrastatsChild, String> {
        let mut command = Command::new(program);
        command
            .arg("--interval")
            .arg(interval.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .current_dir("/")
            .process_group(0);
        // ETXTBSY: the file is open for writing somewhere right now (being
        // installed, or a write descriptor inherited by a child of another
        // thread between its fork and exec); that passes within moments.
        let mut busy = 0;
        let mut child = loop {
            match command.spawn() {
                Ok(child) => break child,
                Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && busy < 5 => {
                    busy += 1;
                    std::thread::sleep(Duration::from_millis(20 * busy));
                }
                Err(e) => return Err(format!("cannot start {}: {e}", program.display())),
            }
        };
        let stdout = child.stdout.take();
        let lines = Arc::new(SharedLines::default());
        let mut started = TegrastatsChild {
            child,
            started: Instant::now(),
            lines: Arc::clone(&lines),
            reported_bad: 0,
            stopped: false,
        };
        let Some(stdout) = stdout else {
            started.stop();
            return Err(format!("cannot read the output of {}", program.display()));
        };
        let reader = std::thread::Builder::new()
            .name("tegrastats".to_owned())
            .spawn(move || read_lines(stdout, &lines));
        if let Err(e) = reader {
            started.stop();
            return Err(format!(
                "cannot start a thread to read {}: {e}",
                program.display()
            ));
        }
        Ok(started)
    }

    /// What was read, after waiting until `deadline` for a first line
    /// that parses when there is none yet.
    fn wait_for_sample(&self, deadline: Instant) -> Lines {
        let mut lines = self.lines.lock();
        loop {
            let now = Instant::now();
            if lines.latest.is_some() || now >= deadline {
                return lines.clone();
            }
            lines = self
                .lines
                .arrived
                .wait_timeout(lines, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A problem naming the lines that did not parse since the last call.
    fn new_bad_lines(&mut self, lines: &Lines) -> Option<String> {
        let new = lines
            .bad
            .checked_sub(self.reported_bad)
            .filter(|&n| n > 0)?;
        self.reported_bad = lines.bad;
        let what = if new == 1 { "line" } else { "lines" };
        Some(format!(
            "{new} tegrastats {what} did not parse, the last: {}",
            lines.last_error.as_deref().unwrap_or("?")
        ))
    }

    /// Kills the child's process group and the child, and reaps it; how
    /// it had ended when it had already.
    fn stop(&mut self) -> Option<ExitStatus> {
        self.stopped = true;
        let exited = self.child.try_wait().ok().flatten();
        // The group, as made by `process_group(0)`, has the child's pid for
        // id; killing it also ends what the child started.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if exited.is_some() {
            return exited;
        }
        let _ = self.child.kill();
        let deadline = Instant::now() + REAP_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return None,
                Ok(None) if Instant::now() >= deadline => {
                    warn!(
                        pid = self.child.id(),
                        "tegrastats (pid {}) did not end within {} s of SIGKILL; left behind",
                        self.child.id(),
                        REAP_WAIT.as_secs_f64()
                    );
                    return None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for TegrastatsChild {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
    }
}

/// Reads tegrastats's lines until its output ends.
fn read_lines(stdout: ChildStdout, shared: &SharedLines) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let parsed = if line.len() < MAX_LINE || line.ends_with(b"\n") {
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            tegrastats::parse(&text).map_err(|e| e.to_string())
        } else {
            if !skip_line(&mut reader) {
                return;
            }
            Err(format!("a line longer than {MAX_LINE} bytes"))
        };
        shared.record(parsed, Instant::now());
    }
}

/// Skips the rest of a line; false at the end of the output.
fn skip_line(reader: &mut impl BufRead) -> bool {
    loop {
        let (consumed, done) = match reader.fill_buf() {
            Ok([]) | Err(_) => return false,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buf.len(), false),
            },
        };
        reader.consume(consumed);
        if done {
            return true;
        }
    }
}

/// Puts a tegrastats sample where sysfs readings go: the GPU `GR3D`, the
/// temperatures and the rails (power only).
fn fill_from_tegrastats(sample: Sample, t: &mut Telemetry) {
    t.gpu = Some(Gpu {
        name: "GR3D".to_owned(),
        backend: Backend::Tegrastats,
        load_percent: sample.gpu_load_percent,
        cur_hz: sample
            .gpu_mhz
            .first()
            .map(|&mhz| u64::from(mhz) * 1_000_000),
        min_hz: None,
        max_hz: None,
        governor: None,
        available_hz: Vec::new(),
        throttled: false,
    });
    t.temperatures = sample
        .temperatures
        .into_iter()
        .map(|(zone, celsius)| Temperature { zone, celsius })
        .collect();
    t.rails = sample
        .rails
        .into_iter()
        .map(|rail| Rail {
            name: rail.name,
            millivolts: None,
            milliamps: None,
            milliwatts: f64::from(rail.current_mw),
            crit_milliamps: None,
        })
        .collect();
    t.total_power_mw = match t.rails.iter().find(|r| r.name == "VDD_IN") {
        Some(input) => Some(input.milliwatts),
        None if t.rails.is_empty() => None,
        None => Some(t.rails.iter().map(|r| r.milliwatts).sum()),
    };
}

/// The telemetry as figures for `/metrics`.
pub fn measurements(t: &Telemetry) -> Vec<Measurement> {
    let mut out = Vec::new();
    if let Some(gpu) = &t.gpu {
        if let Some(load) = gpu.load_percent {
            out.push(Measurement::new("gpu_load_percent", load));
        }
        if let Some(hz) = gpu.cur_hz {
            out.push(Measurement::new("gpu_frequency_hertz", hz as f64));
        }
        if let Some(hz) = gpu.max_hz {
            out.push(Measurement::new("gpu_max_frequency_hertz", hz as f64));
        }
        out.push(Measurement::new(
            "gpu_throttled",
            f64::from(u8::from(gpu.throttled)),
        ));
    }
    for zone in &t.temperatures {
        out.push(Measurement::labelled(
            "temperature_celsius",
            "zone",
            &zone.zone,
            zone.celsius,
        ));
    }
    for rail in &t.rails {
        out.push(Measurement::labelled(
            "power_watts",
            "rail",
            &rail.name,
            rail.milliwatts / 1000.0,
        ));
    }
    if let Some(fan) = &t.fan {
        if let Some(percent) = fan.percent {
            out.push(Measurement::new("fan_percent", percent));
        }
        if let Some(rpm) = fan.rpm {
            out.push(Measurement::new("fan_rpm", f64::from(rpm)));
        }
    }
    out
}

/// A zone's name lower-cased without its `-thermal` or `-therm` suffix.
fn base_name(zone: &str) -> String {
    let zone = zone.to_lowercase();
    zone.strip_suffix("-thermal")
        .or_else(|| zone.strip_suffix("-therm"))
        .unwrap_or(&zone)
        .to_owned()
}

/// The GPU zone, else the junction (`tj`), else the hottest.
fn gpu_temperature(zones: &[Temperature]) -> Option<&Temperature> {
    let named = |name: &str| zones.iter().find(|z| base_name(&z.zone) == name);
    named("gpu")
        .or_else(|| named("tj"))
        .or_else(|| zones.iter().max_by(|a, b| a.celsius.total_cmp(&b.celsius)))
}

/// `GPU 17000000.gpu: load 12.3 %, 306 MHz of 1020 MHz, gpu-thermal 44.5 °C,
/// tj-thermal 47.0 °C, VDD_IN 4916 mW`; `GPU GR3D (tegrastats): …` from
/// tegrastats.
fn summary(gpu: &Gpu, temperature: Option<&Temperature>, t: &Telemetry) -> String {
    let mut parts = Vec::new();
    if let Some(load) = gpu.load_percent {
        parts.push(format!("load {load:.1} %"));
    }
    let mhz = |hz: u64| hz as f64 / 1e6;
    match (gpu.cur_hz, gpu.max_hz) {
        (Some(cur), Some(max)) => parts.push(format!("{:.0} MHz of {:.0} MHz", mhz(cur), mhz(max))),
        (Some(cur), None) => parts.push(format!("{:.0} MHz", mhz(cur))),
        _ => {}
    }
    if gpu.throttled {
        parts.push("throttled".to_owned());
    }
    match temperature {
        Some(zone) => parts.push(format!("{} {:.1} °C", zone.zone, zone.celsius)),
        None => parts.push("no temperature".to_owned()),
    }
    let tj = t.temperatures.iter().find(|z| base_name(&z.zone) == "tj");
    if let Some(tj) = tj.filter(|tj| temperature != Some(*tj)) {
        parts.push(format!("{} {:.1} °C", tj.zone, tj.celsius));
    }
    match t.rails.iter().find(|r| r.name == "VDD_IN") {
        Some(input) => parts.push(format!("VDD_IN {:.0} mW", input.milliwatts)),
        None => {
            if let Some(mw) = t.total_power_mw {
                parts.push(format!("power {mw:.0} mW"));
            }
        }
    }
    let source = match gpu.backend {
        Backend::Tegrastats => " (tegrastats)",
        Backend::Devfreq | Backend::Nvml => "",
    };
    let mut line = format!("GPU {}{source}: {}", gpu.name, parts.join(", "));
    if let Some(problem) = t.problems.first() {
        line.push_str("; ");
        line.push_str(problem);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::jetson::fixture;

    fn thresholds(warn: f64, fail: f64) -> Thresholds {
        Thresholds {
            warn_above: Some(warn),
            fail_above: Some(fail),
        }
    }

    fn probe(root: &Path) -> GpuProbe {
        GpuProbe::new(root.to_owned(), thresholds(85.0, 95.0))
    }

    #[test]
    fn jetpack_6_passes_with_the_gpu_zone() {
        let mut p = probe(&fixture::path("jp6-orin-nano"));
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert_eq!(
            (o.observed_value, o.observed_unit),
            (Some(44.531), Some("°C"))
        );
        assert_eq!(
            o.output,
            "GPU 17000000.gpu: load 12.3 %, 306 MHz of 1020 MHz, gpu-thermal 44.5 °C, \
             tj-thermal 47.0 °C, VDD_IN 4916 mW"
        );
        let t = p.telemetry().unwrap();
        assert_eq!(t.gpu.as_ref().unwrap().name, "17000000.gpu");
        // The same reading, as figures for /metrics.
        let figure = |name: &str, label: Option<&str>| {
            o.measurements
                .iter()
                .find(|m| m.name == name && m.label.as_ref().map(|(_, v)| v.as_str()) == label)
                .map(|m| m.value)
        };
        assert_eq!(figure("gpu_load_percent", None), Some(12.3));
        assert_eq!(figure("gpu_frequency_hertz", None), Some(306_000_000.0));
        assert_eq!(figure("gpu_throttled", None), Some(0.0));
        assert_eq!(
            figure("temperature_celsius", Some("gpu-thermal")),
            Some(44.531)
        );
        // Offline zones are missing, not zero.
        assert_eq!(figure("temperature_celsius", Some("cv0-thermal")), None);
        assert!(figure("power_watts", Some("VDD_IN")).is_some_and(|w| w > 4.9 && w < 5.0));
    }

    #[test]
    fn jetpack_5_passes_with_the_upper_case_zone() {
        let o = probe(&fixture::path("jp5-orin-nano")).run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert_eq!(o.observed_value, Some(41.343));
        assert_eq!(
            o.output,
            "GPU 17000000.ga10b: load 45.7 %, 306 MHz of 408 MHz, GPU-therm 41.3 °C, \
             tj-therm 47.0 °C, VDD_IN 4914 mW"
        );
    }

    #[test]
    fn thresholds_warn_and_fail_on_the_gpu_temperature() {
        let root = fixture::path("jp6-orin-nano");
        let run = |warn, fail| GpuProbe::new(root.clone(), thresholds(warn, fail)).run();
        assert_eq!(run(40.0, 50.0).status, Status::Warn);
        assert_eq!(run(30.0, 44.0).status, Status::Fail);
        assert_eq!(run(44.6, 50.0).status, Status::Pass);
    }

    #[test]
    fn without_a_gpu_zone_tj_counts_then_the_hottest() {
        let zone = |name: &str, celsius| Temperature {
            zone: name.to_owned(),
            celsius,
        };
        let zones = [zone("cpu-thermal", 60.0), zone("tj-thermal", 50.0)];
        assert_eq!(gpu_temperature(&zones).unwrap().zone, "tj-thermal");
        let zones = [zone("CPU-therm", 60.0), zone("SOC0-therm", 70.0)];
        assert_eq!(gpu_temperature(&zones).unwrap().zone, "SOC0-therm");
        assert_eq!(gpu_temperature(&[]), None);
    }

    #[test]
    fn a_throttled_gpu_warns() {
        let root = fixture::copy("jp6-orin-nano");
        std::fs::write(
            root.path().join("sys/class/devfreq/17000000.gpu/max_freq"),
            "612000000\n",
        )
        .unwrap();
        let o = probe(root.path()).run();
        assert_eq!(o.status, Status::Warn);
        assert!(
            o.output.contains("306 MHz of 612 MHz, throttled"),
            "{}",
            o.output
        );
        assert_eq!(o.observed_value, Some(44.531));
    }

    #[test]
    fn a_gpu_that_vanishes_fails_and_passes_when_back() {
        let root = fixture::copy("jp6-orin-nano");
        let node = root.path().join("sys/class/devfreq/17000000.gpu");
        let aside = root.path().join("gone");
        let mut p = probe(root.path());
        assert_eq!(p.run().status, Status::Pass);
        std::fs::rename(&node, &aside).unwrap();
        let o = p.run();
        assert_eq!(
            (o.status, o.output.as_str()),
            (Status::Fail, "GPU 17000000.gpu vanished")
        );
        assert!(p.telemetry().unwrap().gpu.is_none());
        std::fs::rename(&aside, &node).unwrap();
        assert_eq!(p.run().status, Status::Pass);
    }

    #[test]
    fn a_late_gpu_node_is_picked_up() {
        let root = fixture::copy("jp5-orin-nano");
        let node = root.path().join("sys/class/devfreq/17000000.ga10b");
        let aside = root.path().join("later");
        std::fs::rename(&node, &aside).unwrap();
        let mut p = probe(root.path());
        assert_eq!(p.run().status, Status::Warn);
        std::fs::rename(&aside, &node).unwrap();
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
    }

    #[test]
    fn an_empty_root_has_no_gpu_and_does_not_try_nvml() {
        let root = tempfile::tempdir().unwrap();
        let mut p = probe(root.path());
        let o = p.run();
        assert_eq!(o.status, Status::Warn);
        assert_eq!(
            o.output,
            format!(
                "no GPU found (no Jetson devfreq GPU under {}, no NVML)",
                root.path().display()
            )
        );
        assert_eq!(o.observed_value, None);
        assert!(p.nvml.is_none() && p.nvml_retry_at.is_none());
        assert!(p.absence_logged);
        assert_eq!(p.run().status, Status::Warn);
    }

    #[test]
    fn a_bad_value_is_named_in_the_output() {
        let root = fixture::copy("jp6-orin-nano");
        let load = "sys/devices/platform/bus@0/17000000.gpu/load";
        std::fs::write(root.path().join(load), "lots\n").unwrap();
        let o = probe(root.path()).run();
        assert_eq!(o.status, Status::Pass);
        let via = root
            .path()
            .join("sys/class/devfreq/17000000.gpu/device/load");
        assert!(
            o.output
                .starts_with("GPU 17000000.gpu: 306 MHz of 1020 MHz")
                && o.output
                    .ends_with(&format!("; {}: bad value \"lots\"", via.display())),
            "{}",
            o.output
        );
    }

    /// The first JetPack 5 line of `shared/domain/JETSON.md`.
    const JP5_LINE: &str = "01-24-2024 09:17:09 RAM 3503/7337MB (lfb 7x1MB) SWAP 430/3668MB (cached 1MB) CPU [11%@729,13%@729,9%@729,18%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@305 GR3D2_FREQ 0%@0 VIC_FREQ 115 APE 174 CV0@42.718C CPU@44.093C SOC2@42.625C SOC0@43.281C CV1@42.25C GPU@41.343C tj@46.968C SOC1@46.968C CV2@42.875C VDD_IN 4915mW/4915mW VDD_CPU_GPU_CV 449mW/449mW VDD_SOC 1431mW/1431mW";

    const FAST: Duration = Duration::from_millis(200);

    /// A fake tegrastats at `path`: writes its arguments to `<path>.args`,
    /// then runs `body`.
    fn fake_at(path: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let script = format!("#!/bin/sh\necho \"$@\" > \"$0.args\"\n{body}\n");
        std::fs::write(path, script).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_owned()
    }

    /// A fake that prints the JetPack 5 line every 0.2 s, 300 times at most.
    fn printing(path: &Path) -> PathBuf {
        fake_at(
            path,
            &format!(
                "i=0\nwhile [ $i -lt 300 ]; do\n  echo '{JP5_LINE}'\n  sleep 0.2\n  i=$((i+1))\ndone"
            ),
        )
    }

    fn with_fake(root: &Path, program: PathBuf) -> GpuProbe {
        GpuProbe::with_tegrastats(root.to_owned(), thresholds(85.0, 95.0), program, FAST)
    }

    /// Whether process `pid` is gone (reaped), waiting up to 5 s.
    fn gone(pid: u32) -> bool {
        let pid = Pid::from_raw(i32::try_from(pid).unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if nix::sys::signal::kill(pid, None) == Err(Errno::ESRCH) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn without_devfreq_tegrastats_gives_the_gpu() {
        let root = tempfile::tempdir().unwrap();
        let program = printing(&root.path().join("fake-tegrastats"));
        let mut p = with_fake(root.path(), program.clone());
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert_eq!(
            (o.observed_value, o.observed_unit),
            (Some(41.343), Some("°C"))
        );
        assert_eq!(
            o.output,
            "GPU GR3D (tegrastats): load 0.0 %, 305 MHz, gpu 41.3 °C, tj 47.0 °C, VDD_IN 4915 mW"
        );
        let t = p.telemetry().unwrap();
        let gpu = t.gpu.as_ref().unwrap();
        assert_eq!(
            (gpu.backend, gpu.load_percent, gpu.cur_hz),
            (Backend::Tegrastats, Some(0.0), Some(305_000_000))
        );
        assert_eq!(t.temperatures.len(), 9);
        let rails: Vec<(&str, f64)> = t
            .rails
            .iter()
            .map(|r| (r.name.as_str(), r.milliwatts))
            .collect();
        assert_eq!(
            rails,
            [
                ("VDD_IN", 4915.0),
                ("VDD_CPU_GPU_CV", 449.0),
                ("VDD_SOC", 1431.0)
            ]
        );
        assert_eq!(t.total_power_mw, Some(4915.0));
        let args = std::fs::read_to_string(program.with_extension("args")).unwrap();
        assert_eq!(args, "--interval 200\n");
        let pid = p.tegrastats_pid().unwrap();
        assert_eq!(p.run().status, Status::Pass);
        assert_eq!(p.tegrastats_pid(), Some(pid), "started once");
    }

    #[test]
    fn tegrastats_is_found_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let program = printing(&root.path().join("usr/sbin/tegrastats"));
        let mut p = probe(root.path());
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(
            o.output.starts_with("GPU GR3D (tegrastats): "),
            "{}",
            o.output
        );
        let args = std::fs::read_to_string(program.with_extension("args")).unwrap();
        assert_eq!(args, "--interval 1000\n");
    }

    /// Runs the probe until a run does not pass (within 5 s): a tegrastats
    /// that goes quiet is noticed after three of its intervals.
    fn first_not_passing(p: &mut GpuProbe) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let o = p.run();
            if o.status != Status::Pass || Instant::now() >= deadline {
                return o;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_silent_tegrastats_is_restarted() {
        let root = tempfile::tempdir().unwrap();
        let program = fake_at(
            &root.path().join("fake-tegrastats"),
            &format!("echo '{JP5_LINE}'\nsleep 30"),
        );
        let mut p = with_fake(root.path(), program);
        assert_eq!(p.run().status, Status::Pass);
        let first = p.tegrastats_pid().unwrap();
        let o = first_not_passing(&mut p);
        assert_eq!(
            (o.status, o.output.as_str()),
            (
                Status::Warn,
                "tegrastats gave no line in 0.6 s; restarted it"
            )
        );
        assert_eq!(p.tegrastats.restarts, 1);
        assert!(gone(first), "the silent child {first} was killed");
        let second = p.tegrastats_pid().unwrap();
        assert_ne!(second, first);
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "the new child's line: {}", o.output);
    }

    #[test]
    fn a_tegrastats_that_exits_is_restarted_with_its_exit_code() {
        let root = tempfile::tempdir().unwrap();
        let program = fake_at(
            &root.path().join("fake-tegrastats"),
            &format!("echo '{JP5_LINE}'\nexit 3"),
        );
        let mut p = with_fake(root.path(), program);
        assert_eq!(p.run().status, Status::Pass);
        let o = first_not_passing(&mut p);
        assert_eq!(
            (o.status, o.output.as_str()),
            (
                Status::Warn,
                "tegrastats gave no line in 0.6 s (it had exited with code 3); restarted it"
            )
        );
    }

    #[test]
    fn lines_that_do_not_parse_are_counted_and_named() {
        let root = tempfile::tempdir().unwrap();
        let program = fake_at(
            &root.path().join("fake-tegrastats"),
            &format!("echo 'hello'\nsleep 0.1\necho '{JP5_LINE}'\nsleep 30"),
        );
        let mut p = with_fake(root.path(), program);
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(
            o.output.ends_with(
                "; 1 tegrastats line did not parse, the last: \
                 not a tegrastats line (no RAM or CPU field): \"hello\""
            ),
            "{}",
            o.output
        );
        assert_eq!(p.run().output.find("did not parse"), None, "reported once");
    }

    #[test]
    fn dropping_the_probe_kills_tegrastats() {
        let root = tempfile::tempdir().unwrap();
        let mut p = with_fake(root.path(), printing(&root.path().join("fake-tegrastats")));
        assert_eq!(p.run().status, Status::Pass);
        let pid = p.tegrastats_pid().unwrap();
        drop(p);
        assert!(gone(pid), "tegrastats {pid} still runs");
    }

    #[test]
    fn a_tegrastats_that_cannot_start_warns_and_is_retried_later() {
        let root = tempfile::tempdir().unwrap();
        let program = root.path().join("missing-tegrastats");
        let mut p = with_fake(root.path(), program.clone());
        let o = p.run();
        let why = format!(
            "no Jetson devfreq GPU under {} and cannot start {}: No such file or directory (os error 2)",
            root.path().display(),
            program.display()
        );
        assert_eq!((o.status, &o.output), (Status::Warn, &why));
        assert!(p.tegrastats.failure_logged && p.tegrastats_pid().is_none());
        printing(&program);
        let o = p.run();
        assert_eq!(
            (o.status, &o.output),
            (Status::Warn, &why),
            "not retried yet"
        );
        assert!(p.tegrastats_pid().is_none());
        // As if TEGRASTATS_RETRY had passed.
        p.tegrastats.failed = Some((Instant::now(), why));
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(!p.tegrastats.failure_logged);
    }

    #[test]
    fn with_devfreq_tegrastats_is_never_started() {
        let scratch = tempfile::tempdir().unwrap();
        let program = printing(&scratch.path().join("fake-tegrastats"));
        let mut p = with_fake(&fixture::path("jp6-orin-nano"), program.clone());
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(o.output.starts_with("GPU 17000000.gpu: "), "{}", o.output);
        assert_eq!(p.tegrastats_pid(), None);
        assert!(!program.with_extension("args").exists(), "it ran");
    }

    #[test]
    fn a_late_devfreq_gpu_stops_tegrastats() {
        let root = fixture::copy("jp5-orin-nano");
        let node = root.path().join("sys/class/devfreq/17000000.ga10b");
        let aside = root.path().join("later");
        std::fs::rename(&node, &aside).unwrap();
        let mut p = with_fake(root.path(), printing(&root.path().join("fake-tegrastats")));
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(o.output.contains("(tegrastats)"), "{}", o.output);
        let pid = p.tegrastats_pid().unwrap();
        std::fs::rename(&aside, &node).unwrap();
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(o.output.starts_with("GPU 17000000.ga10b: "), "{}", o.output);
        assert_eq!(p.tegrastats_pid(), None);
        assert!(gone(pid), "tegrastats {pid} still runs");
        // That GPU gone again fails: no falling back once devfreq was seen.
        std::fs::rename(&node, &aside).unwrap();
        let o = p.run();
        assert_eq!(
            (o.status, o.output.as_str()),
            (Status::Fail, "GPU 17000000.ga10b vanished")
        );
        assert_eq!(p.tegrastats_pid(), None);
    }

    #[test]
    fn the_tegrastats_backend_is_serialised_by_name() {
        assert_eq!(
            serde_json::to_string(&Backend::Tegrastats).unwrap(),
            "\"tegrastats\""
        );
    }

    #[test]
    fn the_probe_can_run_on_another_thread() {
        fn send<T: Send>() {}
        send::<GpuProbe>();
    }

    /// A stand-in for the NVIDIA driver's `libnvidia-ml.so`: the calls the
    /// probe makes, with fixed answers; `defines` pick the variant.
    fn fake_nvml(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
        let source = dir.join(format!("{name}.c"));
        std::fs::write(
            &source,
            r#"
#include <string.h>
typedef int ret;
typedef struct { unsigned gpu; unsigned memory; } util;
#ifndef DEVICES
#define DEVICES 1
#endif
#ifndef REASONS
#define REASONS 0x1ULL
#endif
ret nvmlInit_v2(void) { return 0; }
ret nvmlShutdown(void) { return 0; }
ret nvmlSystemGetDriverVersion(char *v, unsigned n) { strncpy(v, "550.54.14", n); return 0; }
ret nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d) {
    if (i >= DEVICES) return 2;
    *d = (void *)0x1; return 0;
}
ret nvmlDeviceGetName(void *d, char *name, unsigned n) { strncpy(name, "NVIDIA RTX A2000", n); return 0; }
ret nvmlDeviceGetUtilizationRates(void *d, util *u) { u->gpu = 37; u->memory = 12; return 0; }
ret nvmlDeviceGetTemperature(void *d, int sensor, unsigned *t) { *t = 66; return 0; }
ret nvmlDeviceGetClockInfo(void *d, int type, unsigned *mhz) { *mhz = 1200; return 0; }
ret nvmlDeviceGetMaxClockInfo(void *d, int type, unsigned *mhz) { *mhz = 1800; return 0; }
ret nvmlDeviceGetPowerUsage(void *d, unsigned *mw) { *mw = 45250; return 0; }
ret nvmlDeviceGetCurrentClocksThrottleReasons(void *d, unsigned long long *r) { *r = REASONS; return 0; }
"#,
        )
        .unwrap();
        let library = dir.join(format!("lib{name}.so"));
        let cc = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .args(defines)
            .output()
            .expect("a C compiler (cc) to build the NVML stand-in");
        assert!(
            cc.status.success(),
            "{}",
            String::from_utf8_lossy(&cc.stderr)
        );
        library
    }

    #[test]
    fn a_discrete_gpu_is_read_through_nvml() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let t = thresholds(85.0, 95.0);

        let idle = fake_nvml(dir.path(), "idle", &[]);
        let mut p = GpuProbe::with_nvml_library(root.clone(), t, idle);
        let o = p.run();
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert_eq!(
            (o.observed_value, o.observed_unit),
            (Some(66.0), Some("°C"))
        );
        assert_eq!(
            o.output,
            "GPU NVIDIA RTX A2000: load 37.0 %, 1200 MHz of 1800 MHz, gpu 66.0 °C, power 45250 mW"
        );
        let gpu = p.telemetry().unwrap().gpu.clone().unwrap();
        assert_eq!(gpu.backend, Backend::Nvml);
        assert!(!gpu.throttled, "GPU_IDLE alone is not throttling");
        assert!(
            o.measurements
                .contains(&Measurement::new("gpu_load_percent", 37.0))
        );

        // A thermal slowdown warns; the threshold still judges the heat.
        let hot = fake_nvml(dir.path(), "hot", &["-DREASONS=0x20ULL"]);
        let o = GpuProbe::with_nvml_library(root.clone(), t, hot).run();
        assert_eq!(o.status, Status::Warn, "{}", o.output);
        assert!(o.output.contains("throttled"), "{}", o.output);
        let o = GpuProbe::with_nvml_library(
            root.clone(),
            thresholds(50.0, 60.0),
            fake_nvml(dir.path(), "hotter", &["-DREASONS=0x20ULL"]),
        )
        .run();
        assert_eq!(o.status, Status::Fail, "{}", o.output);

        // NVML without a device, or no library at all: no GPU, a warning.
        let none = fake_nvml(dir.path(), "none", &["-DDEVICES=0"]);
        let o = GpuProbe::with_nvml_library(root.clone(), t, none).run();
        assert_eq!(o.status, Status::Warn, "{}", o.output);
        assert!(o.output.starts_with("no GPU found"), "{}", o.output);
        let o = GpuProbe::with_nvml_library(root, t, dir.path().join("libmissing.so")).run();
        assert_eq!(o.status, Status::Warn, "{}", o.output);
        assert!(o.output.starts_with("no GPU found"), "{}", o.output);
    }
}
