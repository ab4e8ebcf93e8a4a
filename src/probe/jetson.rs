//! Jetson telemetry read from sysfs under a **host root** (`/` on a real
//! machine, a fixture tree in tests); see `shared/domain/JETSON.md`.
//!
//! A **telemetry** snapshot holds the board's identity, the GPU's load and
//! clocks, the thermal zones, the INA3221 power rails, the fan and the
//! nvpmodel power mode; anything the machine lacks is left out. The GPU is
//! the `sys/class/devfreq` entry whose device-tree node is a Jetson GPU; it
//! is looked for again on every read until found, because the node can
//! appear after the daemon starts at boot.
//!
//! A **missing** thermal zone is one whose `temp` cannot be read (offline
//! `cv*` zones on Orin Nano fail with EAGAIN) or reads -256000 (no sensor).
//! It is left out of the snapshot and tried again only every
//! [`MISSING_ZONE_RETRY`].
//!
//! The GPU is **throttled** when devfreq's `max_freq` is below the highest
//! available frequency that the power mode allows: thermal and power
//! capping lower `max_freq`, and so does nvpmodel, whose cap (`GPU
//! MAX_FREQ` of the active mode in `nvpmodel.conf`, `-1` for none) is
//! therefore not counted as throttling.
//!
//! All reads are blocking `std::fs` calls: run them off the async runtime.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long a missing thermal zone is left alone before it is read again.
pub const MISSING_ZONE_RETRY: Duration = Duration::from_secs(300);

/// Device-tree node names of Jetson GPUs (Orin on JetPack 5, Orin on
/// JetPack 6 and 7, Xavier, TX2).
const GPU_NODES: [&str; 4] = ["ga10b", "gpu", "gv11b", "gp10b"];

/// One snapshot of a Jetson's telemetry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Telemetry {
    /// Model and software release.
    pub board: Board,
    /// The GPU, when one was found.
    pub gpu: Option<Gpu>,
    /// Readable thermal zones, in zone order.
    pub temperatures: Vec<Temperature>,
    /// INA3221 power rails.
    pub rails: Vec<Rail>,
    /// The board's input power, mW: the `VDD_IN` rail, or the sum of the
    /// rails where there is none.
    pub total_power_mw: Option<f64>,
    /// The fan, when there is one.
    pub fan: Option<Fan>,
    /// The nvpmodel power mode.
    pub power_mode: Option<PowerMode>,
    /// Files that exist but could not be read or hold a bad value, each
    /// naming the file and the value (and, from tegrastats, lines that did
    /// not parse).
    pub problems: Vec<String>,
}

/// What the board is and runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Board {
    /// `proc/device-tree/model`, e.g. `NVIDIA Orin Nano Developer Kit`.
    pub model: Option<String>,
    /// L4T release from `etc/nv_tegra_release`, e.g. `35.3.1`.
    pub l4t: Option<String>,
    /// The JetPack release of that L4T; see [`jetpack_for`].
    pub jetpack: Option<String>,
}

/// Where GPU readings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Jetson sysfs (`sys/class/devfreq`).
    Devfreq,
    /// NVIDIA's management library, on discrete GPUs.
    Nvml,
    /// The `tegrastats` program's lines, where sysfs shows no Jetson GPU.
    Tegrastats,
}

/// The GPU's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// The devfreq entry (`17000000.gpu`), NVML's device name, or `GR3D`
    /// (tegrastats's name for the GPU engine).
    pub name: String,
    /// Where the readings came from.
    pub backend: Backend,
    /// Utilisation, percent.
    pub load_percent: Option<f64>,
    /// Current clock, Hz.
    pub cur_hz: Option<u64>,
    /// Lowest allowed clock, Hz.
    pub min_hz: Option<u64>,
    /// Highest allowed clock now, Hz (lowered by capping).
    pub max_hz: Option<u64>,
    /// devfreq governor (`nvhost_podgov`).
    pub governor: Option<String>,
    /// The clocks the GPU can run at, Hz.
    pub available_hz: Vec<u64>,
    /// Clocked below what the power mode allows.
    pub throttled: bool,
}

/// One thermal zone's reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Temperature {
    /// The zone's `type` as the kernel names it (`gpu-thermal`, `GPU-therm`),
    /// or as tegrastats prints it, lower-cased (`gpu`, `tj`).
    pub zone: String,
    /// °C.
    pub celsius: f64,
}

/// One INA3221 channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rail {
    /// Its label (`VDD_IN`).
    pub name: String,
    /// Bus voltage, mV; `None` from tegrastats, which prints power only.
    pub millivolts: Option<f64>,
    /// Current, mA; `None` from tegrastats.
    pub milliamps: Option<f64>,
    /// Power, mW (mV × mA / 1000).
    pub milliwatts: f64,
    /// Critical current limit, mA.
    pub crit_milliamps: Option<f64>,
}

/// The fan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fan {
    /// PWM duty, percent.
    pub percent: Option<f64>,
    /// Speed from the tachometer.
    pub rpm: Option<u32>,
}

/// The nvpmodel power mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PowerMode {
    /// Its id in `var/lib/nvpmodel/status`.
    pub id: u32,
    /// Its name in `etc/nvpmodel.conf` (`MAXN_SUPER`).
    pub name: Option<String>,
    /// The GPU clock cap the mode sets, Hz; `None` for no cap.
    pub gpu_max_hz: Option<u64>,
}

/// Reads telemetry under one host root, remembering the GPU found and the
/// missing thermal zones between reads.
#[derive(Debug)]
pub struct Reader {
    root: PathBuf,
    gpu: Option<PathBuf>,
    missing_zones: HashMap<PathBuf, Instant>,
}

impl Reader {
    /// A reader of the machine under `root`.
    pub fn new(root: PathBuf) -> Reader {
        Reader {
            root,
            gpu: None,
            missing_zones: HashMap::new(),
        }
    }

    /// Whether a Jetson GPU devfreq entry is there now (looked for again
    /// when none was found or the one found is gone).
    fn find_gpu(&mut self) -> bool {
        if self.gpu.as_ref().is_none_or(|entry| !entry.exists()) {
            self.gpu = find_gpu(&self.root);
        }
        self.gpu.is_some()
    }

    /// Reads a snapshot; `now` decides which missing zones are tried again.
    pub fn read(&mut self, now: Instant) -> Telemetry {
        let mut problems = Vec::new();
        let root = self.root.clone();
        let power_mode = read_power_mode(&root, &mut problems);
        let gpu_cap = power_mode.as_ref().and_then(|m| m.gpu_max_hz);
        self.find_gpu();
        let gpu = self
            .gpu
            .as_deref()
            .map(|entry| read_gpu(entry, gpu_cap, &mut problems));
        let temperatures = self.read_zones(now, &mut problems);
        let rails = read_rails(&root, &mut problems);
        let total_power_mw = match rails.iter().find(|r| r.name == "VDD_IN") {
            Some(input) => Some(input.milliwatts),
            None if rails.is_empty() => None,
            None => Some(rails.iter().map(|r| r.milliwatts).sum()),
        };
        Telemetry {
            board: read_board(&root, &mut problems),
            gpu,
            temperatures,
            rails,
            total_power_mw,
            fan: read_fan(&root, &mut problems),
            power_mode,
            problems,
        }
    }

    fn read_zones(&mut self, now: Instant, problems: &mut Vec<String>) -> Vec<Temperature> {
        let mut zones: Vec<PathBuf> = entries(&self.root.join("sys/class/thermal"))
            .into_iter()
            .filter(|p| file_name(p).starts_with("thermal_zone"))
            .collect();
        zones.sort_by_key(|p| {
            file_name(p)
                .trim_start_matches("thermal_zone")
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        let mut readings = Vec::new();
        for zone in zones {
            if self
                .missing_zones
                .get(&zone)
                .is_some_and(|&retry_at| now < retry_at)
            {
                continue;
            }
            let path = zone.join("temp");
            let milli = match std::fs::read_to_string(&path) {
                Ok(raw) => match raw.trim().parse::<i64>() {
                    Ok(m) if m > -256_000 => Some(m),
                    Ok(_) => None,
                    Err(_) => {
                        problems.push(bad_value(&path, &raw));
                        None
                    }
                },
                Err(_) => None,
            };
            let Some(milli) = milli else {
                self.missing_zones.insert(zone, now + MISSING_ZONE_RETRY);
                continue;
            };
            self.missing_zones.remove(&zone);
            let kind = text(&zone.join("type"), problems).unwrap_or_else(|| file_name(&zone));
            readings.push(Temperature {
                zone: kind,
                celsius: milli as f64 / 1000.0,
            });
        }
        readings
    }
}

/// The first `sys/class/devfreq` entry (by name) whose device-tree node is
/// a Jetson GPU.
fn find_gpu(root: &Path) -> Option<PathBuf> {
    entries(&root.join("sys/class/devfreq"))
        .into_iter()
        .find(|entry| {
            std::fs::read(entry.join("device/of_node/name")).is_ok_and(|raw| {
                let name = clean(&raw);
                GPU_NODES.contains(&name.as_str()) || name.contains("gpu")
            })
        })
}

fn read_gpu(entry: &Path, mode_cap_hz: Option<u64>, problems: &mut Vec<String>) -> Gpu {
    let available_path = entry.join("available_frequencies");
    let available_hz = match text(&available_path, problems) {
        Some(list) => match list.split_whitespace().map(str::parse).collect() {
            Ok(hz) => hz,
            Err(_) => {
                problems.push(bad_value(&available_path, &list));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let max_hz = number(&entry.join("max_freq"), problems);
    let allowed = available_hz
        .iter()
        .copied()
        .filter(|&hz| mode_cap_hz.is_none_or(|cap| hz <= cap))
        .max();
    Gpu {
        name: file_name(entry),
        backend: Backend::Devfreq,
        load_percent: number::<f64>(&entry.join("device/load"), problems).map(|l| l / 10.0),
        cur_hz: number(&entry.join("cur_freq"), problems),
        min_hz: number(&entry.join("min_freq"), problems),
        max_hz,
        governor: text(&entry.join("governor"), problems),
        available_hz,
        throttled: matches!((max_hz, allowed), (Some(max), Some(top)) if max < top),
    }
}

/// INA3221 channels: `inK_label`, `inK_input` (mV), `currK_input` (mA),
/// `currK_crit`; channel 7 (the shunt sum) and `NC` labels are skipped.
fn read_rails(root: &Path, problems: &mut Vec<String>) -> Vec<Rail> {
    let mut rails = Vec::new();
    for device in entries(&root.join("sys/bus/i2c/devices")) {
        if !text(&device.join("name"), problems).is_some_and(|n| n.contains("ina3221")) {
            continue;
        }
        for hwmon in entries(&device.join("hwmon")) {
            for file in entries(&hwmon) {
                let name = file_name(&file);
                let Some(k) = name
                    .strip_prefix("in")
                    .and_then(|n| n.strip_suffix("_label"))
                else {
                    continue;
                };
                let Some(label) = text(&file, problems) else {
                    continue;
                };
                if k == "7" || label.contains("NC") {
                    continue;
                }
                let millivolts = number::<f64>(&hwmon.join(format!("in{k}_input")), problems);
                let milliamps = number::<f64>(&hwmon.join(format!("curr{k}_input")), problems);
                let (Some(millivolts), Some(milliamps)) = (millivolts, milliamps) else {
                    continue;
                };
                rails.push(Rail {
                    name: label,
                    millivolts: Some(millivolts),
                    milliamps: Some(milliamps),
                    milliwatts: millivolts * milliamps / 1000.0,
                    crit_milliamps: number(&hwmon.join(format!("curr{k}_crit")), problems),
                });
            }
        }
    }
    rails
}

/// `pwmfan` gives `pwm1` (0–255), `pwm_tach` gives `rpm`.
fn read_fan(root: &Path, problems: &mut Vec<String>) -> Option<Fan> {
    let mut fan: Option<Fan> = None;
    for hwmon in entries(&root.join("sys/class/hwmon")) {
        match text(&hwmon.join("name"), problems).as_deref() {
            Some("pwmfan") => {
                fan.get_or_insert_default().percent =
                    number::<f64>(&hwmon.join("pwm1"), problems).map(|pwm| pwm * 100.0 / 255.0);
            }
            Some("pwm_tach") => {
                fan.get_or_insert_default().rpm = number(&hwmon.join("rpm"), problems);
            }
            _ => {}
        }
    }
    fan
}

/// `var/lib/nvpmodel/status` (`pmode:0002 fmode:quiet`) named through
/// `etc/nvpmodel.conf`.
fn read_power_mode(root: &Path, problems: &mut Vec<String>) -> Option<PowerMode> {
    let path = root.join("var/lib/nvpmodel/status");
    let status = text(&path, problems)?;
    let id = status
        .split_whitespace()
        .find_map(|field| field.strip_prefix("pmode:"))
        .and_then(|id| id.parse().ok());
    let Some(id) = id else {
        problems.push(bad_value(&path, &status));
        return None;
    };
    let (name, gpu_max_hz) = text(&root.join("etc/nvpmodel.conf"), problems)
        .map(|conf| mode_in_conf(&conf, id))
        .unwrap_or_default();
    Some(PowerMode {
        id,
        name,
        gpu_max_hz,
    })
}

/// The name and GPU cap of power model `id` in `nvpmodel.conf` text:
/// `< POWER_MODEL ID=2 NAME=MAXN_SUPER >` opens a model, whose
/// `GPU MAX_FREQ 612000000` line caps the GPU (`-1`: no cap).
pub fn mode_in_conf(conf: &str, id: u32) -> (Option<String>, Option<u64>) {
    let (mut name, mut cap, mut inside) = (None, None, false);
    for line in conf.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('<') {
            inside = words.get(1) == Some(&"POWER_MODEL")
                && words.contains(&format!("ID={id}").as_str());
            if inside {
                name = words
                    .iter()
                    .find_map(|w| w.strip_prefix("NAME="))
                    .map(str::to_owned);
            }
        } else if inside && let ["GPU", "MAX_FREQ", hz] = words[..] {
            cap = hz.parse::<u64>().ok().filter(|&hz| hz > 0);
        }
    }
    (name, cap)
}

fn read_board(root: &Path, problems: &mut Vec<String>) -> Board {
    let path = root.join("etc/nv_tegra_release");
    let l4t = text(&path, problems).and_then(|release| {
        let version = l4t_version(&release);
        if version.is_none() {
            problems.push(bad_value(&path, release.lines().next().unwrap_or("")));
        }
        version
    });
    Board {
        model: text(&root.join("proc/device-tree/model"), problems),
        jetpack: l4t.as_deref().and_then(jetpack_for).map(str::to_owned),
        l4t,
    }
}

/// The L4T version in the first line of `nv_tegra_release`:
/// `# R35 (release), REVISION: 3.1, …` → `35.3.1`.
pub fn l4t_version(release: &str) -> Option<String> {
    let first = release.lines().next()?;
    let major = first
        .trim_start_matches('#')
        .trim()
        .strip_prefix('R')?
        .split_whitespace()
        .next()?;
    let revision = first
        .split(',')
        .find_map(|part| part.trim().strip_prefix("REVISION:"))?
        .trim();
    let version = format!("{major}.{revision}");
    version
        .split('.')
        .all(|n| n.parse::<u32>().is_ok())
        .then_some(version)
}

/// The JetPack release of an L4T version, as JETSON.md maps them: `35.x`
/// → `5.1.x`, `36.3` → `6.0`, `36.4.0` → `6.1`, `36.4.3` → `6.2`, `36.4.4`
/// and `36.4.7` → `6.2.1`, `36.5` → `6.2.2`, `38`–`39` → `7.x`. An `x` says
/// the point release is not known; `None` for other versions.
pub fn jetpack_for(l4t: &str) -> Option<&'static str> {
    let parts: Vec<u32> = l4t
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [35, ..] => Some("5.1.x"),
        [36, 3, ..] => Some("6.0"),
        [36, 4] | [36, 4, 0] => Some("6.1"),
        [36, 4, 3] => Some("6.2"),
        [36, 4, 4] | [36, 4, 7] => Some("6.2.1"),
        [36, 5, ..] => Some("6.2.2"),
        [38 | 39, ..] => Some("7.x"),
        _ => None,
    }
}

/// A directory's entries, sorted; none when it cannot be read.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    list.sort();
    list
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Text without surrounding whitespace and NULs (device-tree strings end in one).
fn clean(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_owned()
}

fn bad_value(path: &Path, value: &str) -> String {
    format!("{}: bad value {:?}", path.display(), value.trim())
}

/// A file's text; `None` when it does not exist, and a problem noted when
/// it exists but cannot be read.
fn text(path: &Path, problems: &mut Vec<String>) -> Option<String> {
    match std::fs::read(path) {
        Ok(raw) => Some(clean(&raw)),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            problems.push(format!("cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// A file holding one number; a problem noted when it holds something else.
fn number<T: FromStr>(path: &Path, problems: &mut Vec<String>) -> Option<T> {
    let value = text(path, problems)?;
    let parsed = value.parse().ok();
    if parsed.is_none() {
        problems.push(bad_value(path, &value));
    }
    parsed
}

/// Fixture trees for tests of this module and of the `gpu` probe.
#[cfg(test)]
pub(crate) mod fixture {
    use std::path::{Path, PathBuf};

    /// A committed tree under `tests/fixtures/jetson`.
    pub(crate) fn path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jetson")
            .join(name)
    }

    /// A copy of a committed tree in a temporary directory, to change.
    pub(crate) fn copy(name: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&path(name), dir.path());
        dir
    }

    /// Copies files and directories, and symlinks as symlinks.
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                let link = std::fs::read_link(entry.path()).unwrap();
                std::os::unix::fs::symlink(link, &target).unwrap();
            } else if kind.is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(root: &Path) -> Telemetry {
        Reader::new(root.to_owned()).read(Instant::now())
    }

    fn zones(t: &Telemetry) -> Vec<(&str, f64)> {
        t.temperatures
            .iter()
            .map(|z| (z.zone.as_str(), z.celsius))
            .collect()
    }

    fn rails(t: &Telemetry) -> Vec<(&str, f64)> {
        t.rails
            .iter()
            .map(|r| (r.name.as_str(), r.milliwatts))
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn jetpack_5_orin_nano() {
        let t = read(&fixture::path("jp5-orin-nano"));
        assert_eq!(t.problems, Vec::<String>::new());
        assert_eq!(
            t.board,
            Board {
                model: Some("NVIDIA Orin Nano Developer Kit".to_owned()),
                l4t: Some("35.3.1".to_owned()),
                jetpack: Some("5.1.x".to_owned()),
            }
        );
        let gpu = t.gpu.as_ref().unwrap();
        assert_eq!(gpu.name, "17000000.ga10b");
        assert_eq!(gpu.backend, Backend::Devfreq);
        assert_eq!(gpu.load_percent, Some(45.7));
        assert_eq!(
            (gpu.cur_hz, gpu.min_hz, gpu.max_hz),
            (Some(306_000_000), Some(306_000_000), Some(408_000_000))
        );
        assert_eq!(gpu.governor.as_deref(), Some("nvhost_podgov"));
        assert_eq!(gpu.available_hz.len(), 4);
        // 408 MHz of 624.75 MHz, but that is the 7W mode's cap, not throttling.
        assert!(!gpu.throttled);
        assert_eq!(
            zones(&t),
            vec![
                ("CPU-therm", 44.093),
                ("GPU-therm", 41.343),
                ("CV0-therm", 42.718),
                ("CV1-therm", 42.25),
                ("CV2-therm", 42.875),
                ("SOC0-therm", 43.281),
                ("SOC1-therm", 46.968),
                ("SOC2-therm", 42.625),
                ("tj-therm", 46.968),
            ]
        );
        // Channel 7, the shunt sum, is not a rail.
        let names: Vec<&str> = t.rails.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]);
        assert!(close(t.rails[0].milliwatts, 5056.0 * 972.0 / 1000.0));
        assert_eq!(t.rails[0].crit_milliamps, Some(7784.0));
        assert_eq!(t.rails[1].crit_milliamps, None);
        assert!(close(t.total_power_mw.unwrap(), 4914.432));
        let fan = t.fan.unwrap();
        assert!(close(fan.percent.unwrap(), 40.0));
        assert_eq!(fan.rpm, Some(2500));
        assert_eq!(
            t.power_mode,
            Some(PowerMode {
                id: 1,
                name: Some("7W".to_owned()),
                gpu_max_hz: Some(408_000_000)
            })
        );
    }

    #[test]
    fn jetpack_6_orin_nano() {
        let t = read(&fixture::path("jp6-orin-nano"));
        assert_eq!(t.problems, Vec::<String>::new());
        assert_eq!(t.board.l4t.as_deref(), Some("36.4.3"));
        assert_eq!(t.board.jetpack.as_deref(), Some("6.2"));
        assert_eq!(
            t.board.model.as_deref(),
            Some("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
        );
        // 15340000.vic sorts first but is not the GPU.
        let gpu = t.gpu.as_ref().unwrap();
        assert_eq!(gpu.name, "17000000.gpu");
        assert_eq!(gpu.load_percent, Some(12.3));
        assert_eq!(
            (gpu.cur_hz, gpu.max_hz),
            (Some(306_000_000), Some(1_020_000_000))
        );
        assert_eq!(gpu.available_hz.last(), Some(&1_020_000_000));
        assert!(!gpu.throttled);
        // Offline cv zones and the -256000 one are absent, not zero.
        assert_eq!(
            zones(&t),
            vec![
                ("cpu-thermal", 44.125),
                ("gpu-thermal", 44.531),
                ("soc0-thermal", 42.125),
                ("soc1-thermal", 43.156),
                ("soc2-thermal", 43.375),
                ("tj-thermal", 46.968),
            ]
        );
        // Channel 4 is labelled NC.
        let expected = [
            ("VDD_IN", 5032.0 * 977.0 / 1000.0),
            ("VDD_CPU_GPU_CV", 5032.0 * 89.0 / 1000.0),
            ("VDD_SOC", 5032.0 * 282.0 / 1000.0),
        ];
        let got = rails(&t);
        assert_eq!(got.len(), expected.len());
        for ((name, mw), (want_name, want_mw)) in got.iter().zip(expected) {
            assert_eq!(*name, want_name);
            assert!(close(*mw, want_mw), "{name}: {mw} mW");
        }
        assert!(close(t.total_power_mw.unwrap(), 4916.264));
        let fan = t.fan.unwrap();
        assert!(close(fan.percent.unwrap(), 76.0 * 100.0 / 255.0));
        assert_eq!(fan.rpm, Some(1456));
        let mode = t.power_mode.unwrap();
        assert_eq!(
            (mode.id, mode.name.as_deref(), mode.gpu_max_hz),
            (2, Some("MAXN_SUPER"), None)
        );
    }

    #[test]
    fn a_gpu_node_that_appears_late_is_found_on_the_next_read() {
        let root = fixture::copy("jp6-orin-nano");
        let node = root.path().join("sys/class/devfreq/17000000.gpu");
        let aside = root.path().join("gpu-not-yet");
        std::fs::rename(&node, &aside).unwrap();
        let mut reader = Reader::new(root.path().to_owned());
        let first = reader.read(Instant::now());
        assert_eq!(first.gpu, None);
        assert!(!first.temperatures.is_empty());
        std::fs::rename(&aside, &node).unwrap();
        let second = reader.read(Instant::now());
        assert_eq!(second.gpu.unwrap().load_percent, Some(12.3));
    }

    #[test]
    fn device_may_be_a_real_directory_and_a_lowered_max_freq_is_throttling() {
        let root = tempfile::tempdir().unwrap();
        let entry = root.path().join("sys/class/devfreq/gpu-devfreq");
        std::fs::create_dir_all(entry.join("device/of_node")).unwrap();
        std::fs::write(entry.join("device/of_node/name"), "ga10b\0").unwrap();
        std::fs::write(entry.join("device/load"), "1000\n").unwrap();
        std::fs::write(entry.join("available_frequencies"), "306000000 624750000\n").unwrap();
        std::fs::write(entry.join("max_freq"), "306000000\n").unwrap();
        let gpu = read(root.path()).gpu.unwrap();
        assert_eq!(gpu.load_percent, Some(100.0));
        assert!(gpu.throttled);
        std::fs::write(entry.join("max_freq"), "624750000\n").unwrap();
        assert!(!read(root.path()).gpu.unwrap().throttled);
    }

    #[test]
    fn missing_zones_are_retried_only_every_five_minutes() {
        let root = fixture::copy("jp6-orin-nano");
        let cv0 = root.path().join("sys/class/thermal/thermal_zone2");
        let cv1 = root.path().join("sys/class/thermal/thermal_zone3");
        std::fs::create_dir(cv1.join("temp")).unwrap(); // a read fails, as EAGAIN does
        let mut reader = Reader::new(root.path().to_owned());
        let start = Instant::now();
        let count =
            |t: &Telemetry, zone: &str| t.temperatures.iter().filter(|z| z.zone == zone).count();
        assert_eq!(count(&reader.read(start), "cv0-thermal"), 0);
        std::fs::write(cv0.join("temp"), "41000\n").unwrap();
        std::fs::remove_dir(cv1.join("temp")).unwrap();
        std::fs::write(cv1.join("temp"), "42000\n").unwrap();
        let soon = reader.read(start + Duration::from_secs(299));
        assert_eq!(count(&soon, "cv0-thermal"), 0);
        assert_eq!(count(&soon, "cv1-thermal"), 0);
        let later = reader.read(start + MISSING_ZONE_RETRY);
        assert_eq!(count(&later, "cv0-thermal"), 1);
        assert_eq!(count(&later, "cv1-thermal"), 1);
        assert_eq!(count(&later, "tboard-thermal"), 0);
    }

    #[test]
    fn bad_values_are_problems_naming_file_and_value() {
        let root = fixture::copy("jp6-orin-nano");
        let load = root
            .path()
            .join("sys/devices/platform/bus@0/17000000.gpu/load");
        std::fs::write(&load, "lots\n").unwrap();
        let t = read(root.path());
        assert_eq!(t.gpu.unwrap().load_percent, None);
        let via_devfreq = root
            .path()
            .join("sys/class/devfreq/17000000.gpu/device/load");
        assert_eq!(
            t.problems,
            vec![format!("{}: bad value \"lots\"", via_devfreq.display())]
        );
    }

    #[test]
    fn an_empty_root_has_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read(root.path()), Telemetry::default());
    }

    #[test]
    fn l4t_and_jetpack_versions() {
        let v = |line: &str| l4t_version(line);
        assert_eq!(
            v("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic").as_deref(),
            Some("36.4.3")
        );
        assert_eq!(
            v("# R35 (release), REVISION: 3.1, GCID: 1").as_deref(),
            Some("35.3.1")
        );
        assert_eq!(v("nonsense"), None);
        assert_eq!(jetpack_for("35.6.0"), Some("5.1.x"));
        assert_eq!(jetpack_for("36.3.0"), Some("6.0"));
        assert_eq!(jetpack_for("36.4.0"), Some("6.1"));
        assert_eq!(jetpack_for("36.4.7"), Some("6.2.1"));
        assert_eq!(jetpack_for("36.5.0"), Some("6.2.2"));
        assert_eq!(jetpack_for("38.2.0"), Some("7.x"));
        assert_eq!(jetpack_for("32.7.4"), None);
    }

    #[test]
    fn power_mode_names_and_caps_come_from_the_conf() {
        let conf = "< PARAM TYPE=CLOCK NAME=GPU >\nMAX_FREQ /sys/x\n\
                    < POWER_MODEL ID=0 NAME=15W >\nGPU MAX_FREQ 612000000\n\
                    < POWER_MODEL ID=2 NAME=MAXN_SUPER >\nGPU MAX_FREQ -1\n";
        assert_eq!(
            mode_in_conf(conf, 0),
            (Some("15W".to_owned()), Some(612_000_000))
        );
        assert_eq!(mode_in_conf(conf, 2), (Some("MAXN_SUPER".to_owned()), None));
        assert_eq!(mode_in_conf(conf, 7), (None, None));
    }
}
