//! The `gpu` probe: is the GPU there, how hot is it, is it throttled.
//!
//! The probe keeps state between runs. Its **backend** is the Jetson
//! devfreq GPU under the host root ([`super::jetson`]), looked for again on
//! every run until found, because at boot the node can appear after the
//! daemon starts. Where there is none, the root is `/` and the machine is
//! no Jetson (NVML initialises on Orin but supports nothing there), it uses
//! NVML, NVIDIA's management library for discrete GPUs, loaded at run
//! time: device 0's utilisation, temperature, graphics clock, power and
//! throttle reasons. A library that fails to load is tried again every
//! [`NVML_RETRY`].
//!
//! The observed value is the GPU's temperature: the `gpu-thermal` or
//! `GPU-therm` zone, else the `tj` zone, else the hottest one. It is judged
//! by the probe's thresholds; a throttled GPU warns, a GPU seen before and
//! gone fails, and no GPU at all warns.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use tracing::info;

use super::checks::judge;
use super::jetson::{Backend, Gpu, Reader, Telemetry, Temperature};
use super::{Outcome, Status};
use crate::config::Thresholds;

/// How long after NVML failed to load it is tried again.
pub const NVML_RETRY: Duration = Duration::from_secs(300);

/// The `gpu` probe with what it remembers between runs.
pub struct GpuProbe {
    root: PathBuf,
    thresholds: Thresholds,
    jetson: Reader,
    nvml: Option<Nvml>,
    nvml_retry_at: Option<Instant>,
    absence_logged: bool,
    seen: Option<String>,
    telemetry: Option<Telemetry>,
}

impl fmt::Debug for GpuProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuProbe")
            .field("root", &self.root)
            .field("thresholds", &self.thresholds)
            .field("nvml", &self.nvml.is_some())
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
            absence_logged: false,
            seen: None,
            telemetry: None,
        }
    }

    /// Blocking: reads sysfs (or NVML). The caller runs it off the runtime.
    pub fn run(&mut self) -> Outcome {
        self.run_at(Instant::now())
    }

    /// The last telemetry read, for /health and metrics later.
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    fn run_at(&mut self, now: Instant) -> Outcome {
        let mut telemetry = self.jetson.read(now);
        if telemetry.gpu.is_none()
            && self.root == Path::new("/")
            && !self.root.join("etc/nv_tegra_release").exists()
        {
            self.read_nvml(now, &mut telemetry);
        }
        let outcome = self.judge(&telemetry);
        self.telemetry = Some(telemetry);
        outcome
    }

    fn judge(&mut self, t: &Telemetry) -> Outcome {
        let Some(gpu) = &t.gpu else {
            if let Some(name) = &self.seen {
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
        if self.seen.as_deref() != Some(&gpu.name) {
            info!(gpu = %gpu.name, "GPU {} found", gpu.name);
            self.seen = Some(gpu.name.clone());
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
            match Nvml::init() {
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
/// tj-thermal 47.0 °C, VDD_IN 4916 mW`.
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
    let mut line = format!("GPU {}: {}", gpu.name, parts.join(", "));
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

    #[test]
    fn the_probe_can_run_on_another_thread() {
        fn send<T: Send>() {}
        send::<GpuProbe>();
    }
}
