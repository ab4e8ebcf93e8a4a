//! The Jetson collector: what the `gpu` probe reads of a Jetson
//! ([`crate::probe::jetson::Reader`]), as series, whether or not a policy
//! names a `gpu` probe.
//!
//! | series | labels | kind |
//! |---|---|---|
//! | `rvm_jetson_info` (always 1) | `model`, `l4t`, `jetpack` (those known) | gauge |
//! | `rvm_jetson_gpu_load_ratio` | `gpu` (the devfreq entry, `17000000.gpu`) | gauge |
//! | `rvm_jetson_gpu_frequency_hertz`, `_min_frequency_hertz`, `_max_frequency_hertz` | `gpu` | gauge |
//! | `rvm_jetson_gpu_throttled` (1 or 0) | `gpu` | gauge |
//! | `rvm_jetson_temperature_celsius` | `zone` (`gpu-thermal`, `GPU-therm`) | gauge |
//! | `rvm_jetson_rail_power_watts`, `_voltage_volts`, `_current_amperes` | `rail` (`VDD_IN`) | gauge |
//! | `rvm_jetson_input_power_watts` | | gauge |
//! | `rvm_jetson_fan_duty_ratio`, `rvm_jetson_fan_speed_rpm` | | gauge |
//! | `rvm_jetson_power_mode_info` (always 1) | `id`, `name` | gauge |
//!
//! A machine is taken for a Jetson when it has an L4T release
//! (`etc/nv_tegra_release`) or a Jetson GPU; elsewhere the collector gives
//! nothing, not even the thermal zones a PC has. Thermal zones that are
//! missing (offline, or no sensor) are left out and tried again only every
//! [`crate::probe::jetson::MISSING_ZONE_RETRY`], as the probe does; a zone
//! type seen twice is reported once, the first. The `tegrastats` and NVML
//! fallbacks stay with the `gpu` probe: this collector reads sysfs only.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use super::{Collector, Round};
use crate::metrics::Sample;
use crate::probe::jetson::{Reader, Telemetry};

/// Reads a Jetson's telemetry under a host root.
#[derive(Debug)]
pub struct JetsonCollector {
    reader: Reader,
}

impl JetsonCollector {
    /// A collector of the Jetson under `root`.
    pub fn new(root: PathBuf) -> JetsonCollector {
        JetsonCollector {
            reader: Reader::new(root),
        }
    }
}

impl Collector for JetsonCollector {
    fn name(&self) -> &'static str {
        "jetson"
    }

    fn collect(&mut self, now_ms: u64) -> Vec<Sample> {
        let telemetry = self.reader.read(Instant::now());
        samples(&telemetry, now_ms)
    }
}

/// The series of one telemetry snapshot; none when it is not a Jetson's.
pub fn samples(t: &Telemetry, now_ms: u64) -> Vec<Sample> {
    let mut round = Round::new(now_ms);
    if t.board.l4t.is_none() && t.gpu.is_none() {
        return round.samples;
    }
    let board: Vec<(&str, &str)> = [
        ("model", &t.board.model),
        ("l4t", &t.board.l4t),
        ("jetpack", &t.board.jetpack),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.as_deref().map(|v| (label, v)))
    .collect();
    round.gauge("rvm_jetson_info", &board, 1.0);
    if let Some(gpu) = &t.gpu {
        let labels = [("gpu", gpu.name.as_str())];
        if let Some(load) = gpu.load_percent {
            round.gauge("rvm_jetson_gpu_load_ratio", &labels, load / 100.0);
        }
        for (name, hz) in [
            ("rvm_jetson_gpu_frequency_hertz", gpu.cur_hz),
            ("rvm_jetson_gpu_min_frequency_hertz", gpu.min_hz),
            ("rvm_jetson_gpu_max_frequency_hertz", gpu.max_hz),
        ] {
            if let Some(hz) = hz {
                round.gauge(name, &labels, hz as f64);
            }
        }
        round.gauge(
            "rvm_jetson_gpu_throttled",
            &labels,
            f64::from(u8::from(gpu.throttled)),
        );
    }
    let mut zones = HashSet::new();
    for zone in &t.temperatures {
        if zones.insert(zone.zone.as_str()) {
            round.gauge(
                "rvm_jetson_temperature_celsius",
                &[("zone", &zone.zone)],
                zone.celsius,
            );
        }
    }
    for rail in &t.rails {
        let labels = [("rail", rail.name.as_str())];
        round.gauge(
            "rvm_jetson_rail_power_watts",
            &labels,
            rail.milliwatts / 1000.0,
        );
        if let Some(mv) = rail.millivolts {
            round.gauge("rvm_jetson_rail_voltage_volts", &labels, mv / 1000.0);
        }
        if let Some(ma) = rail.milliamps {
            round.gauge("rvm_jetson_rail_current_amperes", &labels, ma / 1000.0);
        }
    }
    if let Some(mw) = t.total_power_mw {
        round.gauge("rvm_jetson_input_power_watts", &[], mw / 1000.0);
    }
    if let Some(fan) = &t.fan {
        if let Some(percent) = fan.percent {
            round.gauge("rvm_jetson_fan_duty_ratio", &[], percent / 100.0);
        }
        if let Some(rpm) = fan.rpm {
            round.gauge("rvm_jetson_fan_speed_rpm", &[], f64::from(rpm));
        }
    }
    if let Some(mode) = &t.power_mode {
        let id = mode.id.to_string();
        let mut labels = vec![("id", id.as_str())];
        if let Some(name) = &mode.name {
            labels.push(("name", name));
        }
        round.gauge("rvm_jetson_power_mode_info", &labels, 1.0);
    }
    round.samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;
    use crate::metrics::collect::testing::{close, names, value};
    use crate::probe::jetson::fixture;

    fn collect(root: &std::path::Path) -> Vec<Sample> {
        JetsonCollector::new(root.to_owned()).collect(42)
    }

    #[test]
    fn jetpack_6_gpu_zones_rails_fan_and_mode() {
        let s = collect(&fixture::path("jp6-orin-nano"));
        assert!(s.iter().all(|s| s.kind == Kind::Gauge && s.at_ms == 42));
        assert_eq!(
            value(
                &s,
                "rvm_jetson_info{jetpack=\"6.2\",l4t=\"36.4.3\",model=\"NVIDIA Jetson Orin Nano \
                 Engineering Reference Developer Kit Super\"}"
            )
            .0,
            1.0
        );
        let gpu = |name: &str| {
            value(
                &s,
                &format!("rvm_jetson_gpu_{name}{{gpu=\"17000000.gpu\"}}"),
            )
            .0
        };
        assert!(close(gpu("load_ratio"), 0.123));
        assert_eq!(gpu("frequency_hertz"), 306_000_000.0);
        assert_eq!(gpu("max_frequency_hertz"), 1_020_000_000.0);
        assert_eq!(gpu("throttled"), 0.0);
        let zones: Vec<(&str, f64)> = s
            .iter()
            .filter(|s| s.key.name == "rvm_jetson_temperature_celsius")
            .map(|s| (s.key.label("zone").unwrap(), s.value))
            .collect();
        // The offline cv zones and tboard (-256 °C) are absent.
        assert_eq!(
            zones,
            [
                ("cpu-thermal", 44.125),
                ("gpu-thermal", 44.531),
                ("soc0-thermal", 42.125),
                ("soc1-thermal", 43.156),
                ("soc2-thermal", 43.375),
                ("tj-thermal", 46.968),
            ]
        );
        let rail = |name: &str, rail: &str| {
            value(&s, &format!("rvm_jetson_rail_{name}{{rail=\"{rail}\"}}")).0
        };
        assert!(close(rail("power_watts", "VDD_IN"), 5.032 * 0.977));
        assert!(close(rail("voltage_volts", "VDD_IN"), 5.032));
        assert!(close(rail("current_amperes", "VDD_SOC"), 0.282));
        assert!(close(rail("power_watts", "VDD_CPU_GPU_CV"), 5.032 * 0.089));
        let rails: HashSet<&str> = s.iter().filter_map(|s| s.key.label("rail")).collect();
        assert_eq!(
            rails,
            HashSet::from(["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"])
        );
        assert!(close(value(&s, "rvm_jetson_input_power_watts").0, 4.916264));
        assert!(close(
            value(&s, "rvm_jetson_fan_duty_ratio").0,
            76.0 / 255.0
        ));
        assert_eq!(value(&s, "rvm_jetson_fan_speed_rpm").0, 1456.0);
        assert_eq!(
            value(
                &s,
                "rvm_jetson_power_mode_info{id=\"2\",name=\"MAXN_SUPER\"}"
            )
            .0,
            1.0
        );
    }

    #[test]
    fn jetpack_5_names_its_gpu_and_zones_its_own_way() {
        let s = collect(&fixture::path("jp5-orin-nano"));
        assert!(close(
            value(&s, "rvm_jetson_gpu_load_ratio{gpu=\"17000000.ga10b\"}").0,
            0.457
        ));
        assert_eq!(
            value(
                &s,
                "rvm_jetson_gpu_min_frequency_hertz{gpu=\"17000000.ga10b\"}"
            )
            .0,
            306_000_000.0
        );
        assert_eq!(
            value(&s, "rvm_jetson_temperature_celsius{zone=\"GPU-therm\"}").0,
            41.343
        );
        assert_eq!(
            value(&s, "rvm_jetson_power_mode_info{id=\"1\",name=\"7W\"}").0,
            1.0
        );
        assert_eq!(
            names(&s),
            [
                "rvm_jetson_fan_duty_ratio",
                "rvm_jetson_fan_speed_rpm",
                "rvm_jetson_gpu_frequency_hertz",
                "rvm_jetson_gpu_load_ratio",
                "rvm_jetson_gpu_max_frequency_hertz",
                "rvm_jetson_gpu_min_frequency_hertz",
                "rvm_jetson_gpu_throttled",
                "rvm_jetson_info",
                "rvm_jetson_input_power_watts",
                "rvm_jetson_power_mode_info",
                "rvm_jetson_rail_current_amperes",
                "rvm_jetson_rail_power_watts",
                "rvm_jetson_rail_voltage_volts",
                "rvm_jetson_temperature_celsius",
            ]
        );
    }

    #[test]
    fn a_throttled_gpu_reads_one() {
        let root = fixture::copy("jp6-orin-nano");
        std::fs::write(
            root.path().join("sys/class/devfreq/17000000.gpu/max_freq"),
            "612000000\n",
        )
        .unwrap();
        let s = collect(root.path());
        assert_eq!(
            value(&s, "rvm_jetson_gpu_throttled{gpu=\"17000000.gpu\"}").0,
            1.0
        );
    }

    #[test]
    fn a_machine_that_is_no_jetson_gives_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(collect(root.path()), vec![]);
        // A PC's thermal zone and a devfreq entry that is no GPU.
        let zone = root.path().join("sys/class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "x86_pkg_temp\n").unwrap();
        std::fs::write(zone.join("temp"), "48000\n").unwrap();
        let devfreq = root.path().join("sys/class/devfreq/dmc/device/of_node");
        std::fs::create_dir_all(&devfreq).unwrap();
        std::fs::write(devfreq.join("name"), "dmc\0").unwrap();
        assert_eq!(collect(root.path()), vec![]);
    }

    #[test]
    fn a_jetson_whose_gpu_has_not_appeared_yet_still_reports_the_rest() {
        let root = fixture::copy("jp6-orin-nano");
        let node = root.path().join("sys/class/devfreq/17000000.gpu");
        let aside = root.path().join("gpu-later");
        std::fs::rename(&node, &aside).unwrap();
        let mut c = JetsonCollector::new(root.path().to_owned());
        let before = c.collect(1);
        assert!(before.iter().all(|s| s.key.label("gpu").is_none()));
        assert_eq!(
            value(
                &before,
                "rvm_jetson_temperature_celsius{zone=\"tj-thermal\"}"
            )
            .0,
            46.968
        );
        std::fs::rename(&aside, &node).unwrap();
        let after = c.collect(2);
        assert!(close(
            value(&after, "rvm_jetson_gpu_load_ratio{gpu=\"17000000.gpu\"}").0,
            0.123
        ));
    }
}
