//! Probes: checks of what a target needs, each on its own schedule.
//!
//! A **probe** runs one check and gives an **outcome**: pass, warn or fail,
//! with an observed value and a one-line output. Every probe has a task of
//! its own, so a slow one never delays another; each run is bounded by the
//! probe's timeout. **Hysteresis** turns outcomes into the probe's health:
//! failing after `fail-after` failures in a row, passing again after
//! `pass-after` passes in a row, so a flapping check does not start a
//! recovery. A warning counts as a pass for hysteresis.
//!
//! The `unit` kind runs on systemd's signals, `process` in
//! [`crate::process`], and every other kind on its schedule.

pub mod camera;
pub mod checks;
pub mod gpu;
pub mod hysteresis;
pub mod jetson;
pub mod myrvm;
pub mod network;
pub mod redirect;
pub mod tegrastats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Check, Target};

pub use hysteresis::{Hysteresis, ProbeHealth};

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// All well.
    Pass,
    /// Degraded.
    Warn,
    /// Failed.
    Fail,
}

impl Status {
    /// `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One run of a probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Pass, warn or fail.
    pub status: Status,
    /// What was measured, when something was.
    pub observed_value: Option<f64>,
    /// Its unit (`ms`, `percent`, `s`, `°C`).
    pub observed_unit: Option<&'static str>,
    /// One line for people.
    pub output: String,
    /// How long the check took, milliseconds.
    pub took_ms: u64,
    /// What the check learnt that recovery can use, by name: a camera's
    /// `usb-port` (for the `{usb-port}` hook placeholder).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<&'static str, String>,
    /// Figures for `/metrics` beyond the observed value (a GPU probe's
    /// load, clocks, temperatures, rails and fan).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// One figure a probe read, exposed on `/metrics` as
/// `rvm_watchdog_<name>{target, probe[, label]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// Metric name without the `rvm_watchdog_` prefix, with its unit
    /// (`gpu_load_percent`, `temperature_celsius`).
    pub name: &'static str,
    /// One more label, e.g. `("zone", "tj-thermal")`.
    pub label: Option<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl Measurement {
    /// A figure without an extra label.
    pub fn new(name: &'static str, value: f64) -> Measurement {
        Measurement {
            name,
            label: None,
            value,
        }
    }

    /// A figure with one extra label.
    pub fn labelled(name: &'static str, key: &'static str, label: &str, value: f64) -> Measurement {
        Measurement {
            name,
            label: Some((key, label.to_owned())),
            value,
        }
    }
}

impl Outcome {
    /// An outcome without a value.
    pub fn new(status: Status, output: impl Into<String>) -> Self {
        Outcome {
            status,
            observed_value: None,
            observed_unit: None,
            output: output.into(),
            took_ms: 0,
            facts: BTreeMap::new(),
            measurements: Vec::new(),
        }
    }

    /// With a measured value.
    pub fn value(mut self, value: f64, unit: &'static str) -> Self {
        self.observed_value = Some(value);
        self.observed_unit = Some(unit);
        self
    }
}

/// A probe's run reported to the core loop.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// The target.
    pub target: String,
    /// The probe's name.
    pub probe: String,
    /// The outcome.
    pub outcome: Outcome,
    /// When it ran (wall clock).
    pub at: SystemTime,
    /// How late the run started against its schedule.
    pub lag: Duration,
}

/// Whether probes of this kind run on a schedule or, for `unit` probes,
/// on systemd's signals (see [`unit_outcome`]); `process` probes are
/// judged by the process target's own task ([`crate::process`]).
pub fn runs(check: &Check) -> bool {
    !matches!(check, Check::Process { .. })
}

/// A probe ready to run, with what its check remembers between runs (a
/// camera's last heartbeat and kernel log position, say).
pub struct Runner {
    probe: config::Probe,
    memory: Memory,
}

/// A probe that keeps state between runs and reads devices or sysfs,
/// which can block in the kernel: it runs on a worker thread, never on the
/// async runtime (the `camera` and `gpu` kinds).
pub trait Probe: Send + 'static {
    /// One run. Blocking.
    fn run(&mut self) -> Outcome;
}

impl Probe for camera::CameraProbe {
    fn run(&mut self) -> Outcome {
        camera::CameraProbe::run(self)
    }
}

impl Probe for gpu::GpuProbe {
    fn run(&mut self) -> Outcome {
        gpu::GpuProbe::run(self)
    }
}

/// What a probe keeps between runs. A [`Probe`] is held behind a mutex
/// that its worker thread takes: a run still blocked in the kernel (a
/// wedged device, a stuck sysfs read) is never run twice.
enum Memory {
    /// Kinds without state: [`checks::run`] on the runtime.
    None,
    Blocking(Arc<Mutex<dyn Probe>>),
}

impl Runner {
    /// A runner for `probe`.
    pub fn new(probe: &config::Probe, ctx: &Context) -> Runner {
        let memory = match &probe.check {
            Check::Camera {
                device,
                frame_heartbeat,
                max_frame_age,
                identical_frames,
                kernel_errors,
            } => Memory::Blocking(Arc::new(Mutex::new(camera::CameraProbe::new(
                ctx.host_root.clone(),
                camera::Settings {
                    device: device.clone(),
                    frame_heartbeat: frame_heartbeat.clone(),
                    max_frame_age: *max_frame_age,
                    identical_frames: *identical_frames,
                    kernel_errors: *kernel_errors,
                },
            )))),
            Check::Gpu { thresholds } => Memory::Blocking(Arc::new(Mutex::new(
                gpu::GpuProbe::new(ctx.host_root.clone(), *thresholds),
            ))),
            _ => Memory::None,
        };
        Runner {
            probe: probe.clone(),
            memory,
        }
    }

    /// Runs the probe once, bounded by its timeout.
    pub async fn run(&mut self, ctx: &Context) -> Outcome {
        let clock = Instant::now();
        let timeout = self.probe.timeout;
        let check = async {
            match &self.memory {
                Memory::Blocking(state) => off_runtime(state).await,
                Memory::None => checks::run(&self.probe.check, ctx, timeout).await,
            }
        };
        let mut outcome = match tokio::time::timeout(timeout, check).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::new(
                Status::Fail,
                format!("no answer within {}", humantime::format_duration(timeout)),
            ),
        };
        outcome.took_ms = clock.elapsed().as_millis() as u64;
        outcome
    }
}

/// Runs a blocking check on a worker thread. When the previous run of the
/// same probe is still blocked, says so instead of starting another.
async fn off_runtime(state: &Arc<Mutex<dyn Probe>>) -> Outcome {
    let state = Arc::clone(state);
    let work = tokio::task::spawn_blocking(move || match state.try_lock() {
        Ok(mut p) => p.run(),
        Err(TryLockError::Poisoned(e)) => e.into_inner().run(),
        Err(TryLockError::WouldBlock) => Outcome::new(
            Status::Fail,
            "the previous run is still blocked (a device or sysfs read that does not return)",
        ),
    });
    match work.await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::new(Status::Fail, format!("the check failed: {e}")),
    }
}

/// What probes share: where they read the machine from, and one HTTP
/// client (its connection pool and TLS setup are made once). The client
/// follows no redirect: probes follow them by hand (`redirect`), only
/// where their policy allows.
#[derive(Debug, Clone)]
pub struct Context {
    /// `[daemon] host-root`.
    pub host_root: PathBuf,
    /// For `http` probes.
    pub http: reqwest::Client,
    /// `[platform]`, for `myrvm` probes.
    pub platform: Option<crate::config::Platform>,
}

impl Context {
    /// A context reading under `host_root`.
    pub fn new(host_root: PathBuf) -> Context {
        install_tls();
        let http = reqwest::Client::builder()
            .user_agent(concat!("rvm-watchdog/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Context {
            host_root,
            http,
            platform: None,
        }
    }

    /// A context for a configuration: its host root and platform.
    pub fn for_config(config: &crate::config::Config) -> Context {
        let mut ctx = Context::new(config.daemon.host_root.clone());
        ctx.platform = config.platform.clone();
        ctx
    }
}

/// Installs the TLS crypto provider (ring) once per process; later calls do nothing.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts a task for every probe of `target` this version runs; they report
/// on `results` until `stop` is cancelled.
pub fn start(
    target: &Target,
    ctx: &Context,
    results: &mpsc::Sender<ProbeResult>,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) {
    for probe in &target.probes {
        // `unit` probes follow systemd's signals, `process` probes the
        // process target's own task.
        if !runs(&probe.check) || matches!(probe.check, Check::Unit { .. }) {
            continue;
        }
        tasks.spawn(schedule(
            target.name.clone(),
            Runner::new(probe, ctx),
            ctx.clone(),
            results.clone(),
            stop.clone(),
        ));
    }
}

/// Runs one probe on its interval, with a little jitter so probes of many
/// machines (and of one machine) do not fire in step.
async fn schedule(
    target: String,
    mut runner: Runner,
    ctx: Context,
    results: mpsc::Sender<ProbeResult>,
    stop: CancellationToken,
) {
    let interval = runner.probe.interval;
    let name = runner.probe.name.clone();
    let seed = target.len() as u64 * 31 + name.len() as u64 + u64::from(std::process::id());
    let mut jitter = crate::recovery::backoff::Jitter::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    // Spread the first runs over a tenth of the interval.
    let mut due = tokio::time::Instant::now() + interval.mul_f64(jitter.sample() * 0.1);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let started = tokio::time::Instant::now();
        let lag = started.saturating_duration_since(due);
        let at = SystemTime::now();
        let outcome = runner.run(&ctx).await;
        let result = ProbeResult {
            target: target.clone(),
            probe: name.clone(),
            outcome,
            at,
            lag,
        };
        if results.send(result).await.is_err() {
            return;
        }
        // ±5 % around the interval.
        let spread = 1.0 + 0.05 * (2.0 * jitter.sample() - 1.0);
        due += interval.mul_f64(spread);
        let now = tokio::time::Instant::now();
        if due < now {
            due = now;
        }
    }
}

/// The outcome of a `unit` probe from the unit's state as systemd signals
/// it: pass while active, fail while failed, inactive or missing.
pub fn unit_outcome(state: &crate::supervisor::UnitState) -> Outcome {
    let status = match state.active_state.as_str() {
        "active" | "reloading" => Status::Pass,
        "activating" | "deactivating" if state.failure().is_none() => Status::Warn,
        _ => Status::Fail,
    };
    let mut output = format!("{} is {}", state.unit, state.summary());
    if state.load_state == "not-found" {
        output = format!("{} does not exist", state.unit);
    }
    Outcome::new(status, output).value(f64::from(state.n_restarts), "restarts")
}

/// Runs one probe now, bounded by its timeout, with fresh state (the
/// `rvm-watchdog probe` command).
pub async fn run_once(probe: &config::Probe, ctx: &Context) -> Outcome {
    Runner::new(probe, ctx).run(ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProbeRole, Thresholds};

    fn gpu_probe(timeout: Duration) -> config::Probe {
        config::Probe {
            name: "gpu".into(),
            role: ProbeRole::Dependency,
            interval: Duration::from_secs(10),
            timeout,
            fail_after: 1,
            pass_after: 1,
            check: Check::Gpu {
                thresholds: Thresholds {
                    warn_above: Some(85.0),
                    fail_above: Some(95.0),
                },
            },
        }
    }

    /// A thermal zone whose read never returns (a FIFO nobody writes)
    /// costs the probe its timeout, never a runtime thread; the next run
    /// says the last one is still stuck instead of starting another, and
    /// once the read returns the probe runs again.
    #[tokio::test]
    async fn a_read_that_blocks_is_bounded_and_never_run_twice() {
        let root = tempfile::tempdir().unwrap();
        let zone = root.path().join("sys/class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "gpu-thermal\n").unwrap();
        let fifo = zone.join("temp");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let ctx = Context::new(root.path().to_owned());
        let mut runner = Runner::new(&gpu_probe(Duration::from_millis(300)), &ctx);

        let first = runner.run(&ctx).await;
        assert_eq!(first.status, Status::Fail);
        assert_eq!(first.output, "no answer within 300ms");
        let second = runner.run(&ctx).await;
        assert_eq!(second.status, Status::Fail);
        assert!(
            second
                .output
                .starts_with("the previous run is still blocked"),
            "{}",
            second.output
        );

        // The reader gets its answer; the stuck run ends and the probe runs again.
        std::fs::write(&fifo, "45000\n").unwrap();
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, "45000\n").unwrap();
        let again = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let o = runner.run(&ctx).await;
                if !o.output.starts_with("the previous run is still blocked") {
                    return o;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the probe runs again once the read returned");
        assert!(again.output.starts_with("no GPU found"), "{}", again.output);
    }

    /// A probe stuck on its check (a program waiting on a FIFO nobody
    /// writes) does not hold up another: the fast one reports again and
    /// again before the stuck one reports once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_probe_never_delays_another() {
        use crate::config::diag::SourceFile;
        use crate::config::validate;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("gate");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let fresh = dir.path().join("fresh");
        std::fs::write(&fresh, "").unwrap();
        let policy = format!(
            "[target]\nname = \"t\"\n\n\
             [[probe]]\nname = \"stuck\"\nkind = \"exec\"\ncommand = [\"/bin/cat\", \"{}\"]\n\
             interval = \"1m\"\ntimeout = \"30s\"\n\n\
             [[probe]]\nname = \"fast\"\nkind = \"file-age\"\nfile = \"{}\"\nmax-age = \"1h\"\n\
             interval = \"100ms\"\n",
            fifo.display(),
            fresh.display()
        );
        let src = SourceFile::new(
            "<embedded>/watchdog.toml",
            config::EMBEDDED_CONFIG.to_owned(),
        );
        let mut out = Vec::new();
        let raw = src.deserialize(&mut out, |_| None).unwrap();
        let cfg = validate::config(&src, raw, &mut out);
        let psrc = SourceFile::new("t.toml", policy);
        let raw = psrc.deserialize(&mut out, |_| None).unwrap();
        let target = validate::policy(&psrc, raw, &cfg, &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");

        let (tx, mut rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        start(&target, &Context::new("/".into()), &tx, &stop, &tasks);
        let mut fast = 0;
        let stuck = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let r = rx.recv().await.unwrap();
                match r.probe.as_str() {
                    "fast" => {
                        fast += 1;
                        if fast == 5 {
                            // Let the stuck one go.
                            let gate = fifo.clone();
                            tokio::task::spawn_blocking(move || std::fs::write(gate, "ok\n"));
                        }
                    }
                    _ => return (fast, r.outcome),
                }
            }
        })
        .await
        .expect("the stuck probe reports once let go");
        assert!(stuck.0 >= 5, "the fast probe ran {} times first", stuck.0);
        assert_eq!(stuck.1.status, Status::Pass, "{}", stuck.1.output);
        stop.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
