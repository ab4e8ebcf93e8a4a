//! A parser for one line of `tegrastats` output, the fallback source of
//! Jetson telemetry when sysfs cannot be read.
//!
//! A **line** is whitespace-separated fields: an optional
//! `MM-DD-YYYY HH:MM:SS` timestamp, then `KEY value` pairs (`RAM 3503/7337MB`,
//! `CPU [11%@729,off]`, `GR3D_FREQ 0%@[305]`), **temperatures** written
//! `name@42.5C` (JetPack 7 adds the maximum: `cpu@52.9C/52.9C`) and power
//! **rails** written `NAME cur/avg` or `NAME cur/avg/max` in mW. Fields this
//! parser does not know (`NVDEC off`, `VIC_FREQ 115`, `APE 174`,
//! `GR3D2_FREQ 0%@0`, the `(lfb 7x1MB)` notes) are skipped; a known field
//! with a bad value is an error.
//!
//! Temperature names are reported lower-cased without a `-therm` or
//! `-thermal` suffix, so JetPack 5's `GPU@41.3C` and JetPack 6's
//! `gpu@44.5C` both give `gpu`.

use thiserror::Error;

/// What one `tegrastats` line says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// The `MM-DD-YYYY HH:MM:SS` prefix newer releases print.
    pub timestamp: Option<String>,
    /// RAM in use, MB.
    pub ram_used_mb: Option<u64>,
    /// RAM in all, MB.
    pub ram_total_mb: Option<u64>,
    /// Swap in use and in all, MB.
    pub swap: Option<(u64, u64)>,
    /// Per core: load in percent and clock in MHz, `None` for a core that is off.
    pub cpus: Vec<Option<(f64, u32)>>,
    /// Memory controller load, percent (`EMC_FREQ`).
    pub emc_load_percent: Option<f64>,
    /// Memory controller clock, MHz.
    pub emc_mhz: Option<u32>,
    /// GPU load, percent (`GR3D_FREQ`).
    pub gpu_load_percent: Option<f64>,
    /// GPU clock per GPC in MHz; empty when the line gives none.
    pub gpu_mhz: Vec<u32>,
    /// Temperatures, °C, by lower-cased name (`cpu`, `gpu`, `tj`).
    pub temperatures: Vec<(String, f64)>,
    /// Power rails.
    pub rails: Vec<Rail>,
}

/// One power rail's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rail {
    /// As printed: `VDD_IN`, `VDD_CPU_GPU_CV`.
    pub name: String,
    /// Now, mW.
    pub current_mw: u32,
    /// Average since tegrastats started, mW.
    pub average_mw: u32,
    /// Maximum since tegrastats started, mW (JetPack 7 prints it).
    pub max_mw: Option<u32>,
}

/// Why a line could not be parsed. Not retryable: the same text fails again.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Neither a `RAM` nor a `CPU` field.
    #[error("not a tegrastats line (no RAM or CPU field): {0:?}")]
    NotTegrastats(String),
    /// A known field whose value does not parse.
    #[error("bad {field} value in tegrastats line: {text:?}")]
    BadValue {
        /// The field (`RAM`, `CPU`, `GR3D_FREQ`, a temperature, a rail).
        field: String,
        /// The text that does not parse (empty when the value is missing).
        text: String,
    },
}

/// Parses one `tegrastats` line.
pub fn parse(line: &str) -> Result<Sample, ParseError> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut sample = Sample::default();
    let mut i = 0;
    if tokens.len() >= 2 && is_date(tokens[0]) && is_time(tokens[1]) {
        sample.timestamp = Some(format!("{} {}", tokens[0], tokens[1]));
        i = 2;
    }
    while i < tokens.len() {
        let token = tokens[i];
        let next = tokens.get(i + 1).copied();
        let value = || {
            next.ok_or_else(|| ParseError::BadValue {
                field: token.to_owned(),
                text: String::new(),
            })
        };
        match token {
            "RAM" => {
                let (used, total) = pair_mb(token, value()?)?;
                sample.ram_used_mb = Some(used);
                sample.ram_total_mb = Some(total);
            }
            "SWAP" => sample.swap = Some(pair_mb(token, value()?)?),
            "CPU" => sample.cpus = cpus(value()?)?,
            "EMC_FREQ" => {
                let (load, mhz) = load_at(token, value()?)?;
                sample.emc_load_percent = Some(load);
                sample.emc_mhz = mhz.first().copied();
            }
            "GR3D_FREQ" => {
                let (load, mhz) = load_at(token, value()?)?;
                sample.gpu_load_percent = Some(load);
                sample.gpu_mhz = mhz;
            }
            _ if next.is_some_and(is_rail_value) => {
                sample.rails.push(rail(token, value()?)?);
            }
            _ => {
                if let Some(t) = temperature(token)? {
                    sample.temperatures.push(t);
                }
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    if sample.ram_total_mb.is_none() && sample.cpus.is_empty() {
        return Err(ParseError::NotTegrastats(line.trim().to_owned()));
    }
    Ok(sample)
}

fn bad(field: &str, text: &str) -> ParseError {
    ParseError::BadValue {
        field: field.to_owned(),
        text: text.to_owned(),
    }
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3 && parts.iter().all(|p| is_digits(p))
}

fn is_time(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 3 && parts.iter().all(|p| is_digits(p))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `3503/7337MB`.
fn pair_mb(field: &str, text: &str) -> Result<(u64, u64), ParseError> {
    text.strip_suffix("MB")
        .and_then(|t| t.split_once('/'))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| bad(field, text))
}

/// `[11%@729,off,...]`.
fn cpus(text: &str) -> Result<Vec<Option<(f64, u32)>>, ParseError> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| bad("CPU", text))?;
    inner
        .split(',')
        .map(|core| {
            if core == "off" {
                return Ok(None);
            }
            core.split_once('@')
                .and_then(|(load, mhz)| Some((percent(load)?, mhz.parse().ok()?)))
                .map(Some)
                .ok_or_else(|| bad("CPU", text))
        })
        .collect()
}

fn percent(text: &str) -> Option<f64> {
    text.strip_suffix('%')?.parse().ok()
}

/// `0%`, `0%@305`, `0%@[305]`, `12%@[1300,1300]`: load and clocks in MHz.
fn load_at(field: &str, text: &str) -> Result<(f64, Vec<u32>), ParseError> {
    let (load, clocks) = match text.split_once('@') {
        Some((load, clocks)) => (load, Some(clocks)),
        None => (text, None),
    };
    let load = percent(load).ok_or_else(|| bad(field, text))?;
    let Some(clocks) = clocks else {
        return Ok((load, Vec::new()));
    };
    let list = clocks
        .strip_prefix('[')
        .and_then(|c| c.strip_suffix(']'))
        .unwrap_or(clocks);
    let mhz = list
        .split(',')
        .map(|c| c.parse().map_err(|_| bad(field, text)))
        .collect::<Result<Vec<u32>, _>>()?;
    Ok((load, mhz))
}

/// `4915mW/4915mW` or `5139mW/5139mW/5139mW` (the `mW` may be absent).
fn milliwatts(text: &str) -> Option<Vec<u32>> {
    text.split('/')
        .map(|part| part.strip_suffix("mW").unwrap_or(part).parse().ok())
        .collect()
}

fn is_rail_value(text: &str) -> bool {
    text.contains('/') && milliwatts(text).is_some_and(|v| (2..=3).contains(&v.len()))
}

fn rail(name: &str, text: &str) -> Result<Rail, ParseError> {
    match milliwatts(text).as_deref() {
        Some(&[current_mw, average_mw]) => Ok(Rail {
            name: name.to_owned(),
            current_mw,
            average_mw,
            max_mw: None,
        }),
        Some(&[current_mw, average_mw, max]) => Ok(Rail {
            name: name.to_owned(),
            current_mw,
            average_mw,
            max_mw: Some(max),
        }),
        _ => Err(bad(name, text)),
    }
}

/// `CPU@44.093C` or `cpu@52.968C/52.968C`; `None` for a token that is no
/// temperature at all.
fn temperature(token: &str) -> Result<Option<(String, f64)>, ParseError> {
    let Some((name, value)) = token.split_once('@') else {
        return Ok(None);
    };
    let current = value.split('/').next().unwrap_or(value);
    if name.is_empty() || !current.ends_with('C') || name.contains('%') {
        return Ok(None);
    }
    let celsius = current
        .strip_suffix('C')
        .and_then(|c| c.parse::<f64>().ok())
        .ok_or_else(|| bad(name, token))?;
    let name = name.to_lowercase();
    let name = name
        .strip_suffix("-thermal")
        .or_else(|| name.strip_suffix("-therm"))
        .unwrap_or(&name);
    Ok(Some((name.to_owned(), celsius)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JP5: &str = "01-24-2024 09:17:09 RAM 3503/7337MB (lfb 7x1MB) SWAP 430/3668MB (cached 1MB) CPU [11%@729,13%@729,9%@729,18%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@305 GR3D2_FREQ 0%@0 VIC_FREQ 115 APE 174 CV0@42.718C CPU@44.093C SOC2@42.625C SOC0@43.281C CV1@42.25C GPU@41.343C tj@46.968C SOC1@46.968C CV2@42.875C VDD_IN 4915mW/4915mW VDD_CPU_GPU_CV 449mW/449mW VDD_SOC 1431mW/1431mW";
    const JP6: &str = "09-21-2025 15:38:17 RAM 3645/7620MB (lfb 63x4MB) SWAP 236/3810MB (cached 0MB) CPU [1%@729,1%@729,4%@729,1%@729,0%@729,0%@729] EMC_FREQ 0%@204 GR3D_FREQ 0%@[305] NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@44.125C soc2@43.375C soc0@42.125C gpu@44.531C tj@44.531C soc1@43.156C VDD_IN 2957mW/2957mW VDD_CPU_GPU_CV 486mW/486mW VDD_SOC 1012mW/1012mW";
    const NO_TIMESTAMP: &str = "RAM 3645/7620MB (lfb 63x4MB) SWAP 236/3810MB (cached 0MB) CPU [0%@729,0%@729,off,off,off,off] GR3D_FREQ 0% cpu@46.125C soc2@45.843C soc0@44.156C gpu@45.062C tj@46.125C soc1@46C VDD_IN 4742mW/4742mW VDD_CPU_GPU_CV 482mW/482mW VDD_SOC 1446mW/1446mW";
    const JP7: &str = "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,20%@2201] EMC_FREQ 3%@3199 GR3D_FREQ 12%@[1300,1300] NVENC0 off APE 174 cpu@52.968C/52.968C soc2@48.406C/48.406C gpu@47.625C/47.625C VDD_GPU_SOC 5139mW/5139mW/5139mW VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW";

    fn rail(name: &str, current_mw: u32, average_mw: u32, max_mw: Option<u32>) -> Rail {
        Rail {
            name: name.to_owned(),
            current_mw,
            average_mw,
            max_mw,
        }
    }

    fn temps(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        list.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    #[test]
    fn jetpack_5_line() {
        let s = parse(JP5).unwrap();
        assert_eq!(s.timestamp.as_deref(), Some("01-24-2024 09:17:09"));
        assert_eq!((s.ram_used_mb, s.ram_total_mb), (Some(3503), Some(7337)));
        assert_eq!(s.swap, Some((430, 3668)));
        let on = Some((11.0, 729));
        assert_eq!(s.cpus.len(), 6);
        assert_eq!(s.cpus[0], on);
        assert_eq!(s.cpus[3], Some((18.0, 729)));
        assert_eq!(&s.cpus[4..], &[None, None]);
        assert_eq!((s.emc_load_percent, s.emc_mhz), (Some(0.0), Some(2133)));
        assert_eq!(s.gpu_load_percent, Some(0.0));
        assert_eq!(s.gpu_mhz, vec![305]);
        assert_eq!(
            s.temperatures,
            temps(&[
                ("cv0", 42.718),
                ("cpu", 44.093),
                ("soc2", 42.625),
                ("soc0", 43.281),
                ("cv1", 42.25),
                ("gpu", 41.343),
                ("tj", 46.968),
                ("soc1", 46.968),
                ("cv2", 42.875),
            ])
        );
        assert_eq!(
            s.rails,
            vec![
                rail("VDD_IN", 4915, 4915, None),
                rail("VDD_CPU_GPU_CV", 449, 449, None),
                rail("VDD_SOC", 1431, 1431, None),
            ]
        );
    }

    #[test]
    fn jetpack_6_line() {
        let s = parse(JP6).unwrap();
        assert_eq!(s.timestamp.as_deref(), Some("09-21-2025 15:38:17"));
        assert_eq!((s.ram_used_mb, s.ram_total_mb), (Some(3645), Some(7620)));
        assert_eq!(s.swap, Some((236, 3810)));
        assert_eq!(s.cpus.len(), 6);
        assert_eq!(s.cpus[2], Some((4.0, 729)));
        assert!(s.cpus.iter().all(Option::is_some));
        assert_eq!((s.emc_load_percent, s.emc_mhz), (Some(0.0), Some(204)));
        assert_eq!((s.gpu_load_percent, s.gpu_mhz), (Some(0.0), vec![305]));
        assert_eq!(
            s.temperatures,
            temps(&[
                ("cpu", 44.125),
                ("soc2", 43.375),
                ("soc0", 42.125),
                ("gpu", 44.531),
                ("tj", 44.531),
                ("soc1", 43.156),
            ])
        );
        assert_eq!(
            s.rails,
            vec![
                rail("VDD_IN", 2957, 2957, None),
                rail("VDD_CPU_GPU_CV", 486, 486, None),
                rail("VDD_SOC", 1012, 1012, None),
            ]
        );
    }

    #[test]
    fn line_without_timestamp_emc_or_gpu_clock() {
        let s = parse(NO_TIMESTAMP).unwrap();
        assert_eq!(s.timestamp, None);
        assert_eq!(s.ram_used_mb, Some(3645));
        assert_eq!(
            s.cpus,
            vec![Some((0.0, 729)), Some((0.0, 729)), None, None, None, None]
        );
        assert_eq!((s.emc_load_percent, s.emc_mhz), (None, None));
        assert_eq!(s.gpu_load_percent, Some(0.0));
        assert!(s.gpu_mhz.is_empty());
        assert_eq!(s.temperatures.len(), 6);
        assert_eq!(s.temperatures[5], ("soc1".to_owned(), 46.0));
        assert_eq!(s.rails[0], rail("VDD_IN", 4742, 4742, None));
        assert_eq!(s.rails.len(), 3);
    }

    #[test]
    fn jetpack_7_line() {
        let s = parse(JP7).unwrap();
        assert_eq!(s.timestamp.as_deref(), Some("07-25-2026 09:08:28"));
        assert_eq!((s.ram_used_mb, s.ram_total_mb), (Some(20642), Some(62817)));
        assert_eq!(s.swap, None);
        assert_eq!(s.cpus, vec![Some((23.0, 2201)), Some((20.0, 2201))]);
        assert_eq!((s.emc_load_percent, s.emc_mhz), (Some(3.0), Some(3199)));
        assert_eq!(s.gpu_load_percent, Some(12.0));
        assert_eq!(s.gpu_mhz, vec![1300, 1300]);
        assert_eq!(
            s.temperatures,
            temps(&[("cpu", 52.968), ("soc2", 48.406), ("gpu", 47.625)])
        );
        assert_eq!(
            s.rails,
            vec![
                rail("VDD_GPU_SOC", 5139, 5139, Some(5139)),
                rail("VDD_CPU_CV", 3268, 3268, Some(3268)),
                rail("VIN_SYS_5V0", 5500, 5500, Some(5500)),
            ]
        );
    }

    #[test]
    fn every_gpu_clock_form() {
        let gpu = |field: &str| {
            let s = parse(&format!("CPU [1%@729] GR3D_FREQ {field}")).unwrap();
            (s.gpu_load_percent, s.gpu_mhz)
        };
        assert_eq!(gpu("7%"), (Some(7.0), vec![]));
        assert_eq!(gpu("7%@612"), (Some(7.0), vec![612]));
        assert_eq!(gpu("7%@[612]"), (Some(7.0), vec![612]));
        assert_eq!(gpu("7%@[612,306]"), (Some(7.0), vec![612, 306]));
    }

    #[test]
    fn temperature_names_in_any_case_and_with_a_maximum() {
        let s = parse("CPU [1%@729] GPU@41.5C Tdiode@40C gpu-thermal@39C tj@50.5C/90.25C").unwrap();
        assert_eq!(
            s.temperatures,
            temps(&[("gpu", 41.5), ("tdiode", 40.0), ("gpu", 39.0), ("tj", 50.5)])
        );
    }

    #[test]
    fn rails_with_two_or_three_values() {
        let s = parse("CPU [1%@729] VDD_IN 10/20mW VIN 1mW/2mW/3mW POM_5V_IN 3124/3124").unwrap();
        assert_eq!(
            s.rails,
            vec![
                rail("VDD_IN", 10, 20, None),
                rail("VIN", 1, 2, Some(3)),
                rail("POM_5V_IN", 3124, 3124, None),
            ]
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let s =
            parse("RAM 1/2MB NVDEC off VIC_FREQ 115 APE 174 NVENC0 off OFA 12%@[1] (cached 0MB)")
                .unwrap();
        assert_eq!((s.ram_used_mb, s.ram_total_mb), (Some(1), Some(2)));
        assert!(s.cpus.is_empty() && s.rails.is_empty() && s.temperatures.is_empty());
    }

    #[test]
    fn garbage_is_not_a_tegrastats_line() {
        assert_eq!(
            parse("hello world 42"),
            Err(ParseError::NotTegrastats("hello world 42".to_owned()))
        );
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "not a tegrastats line (no RAM or CPU field): \"\""
        );
    }

    #[test]
    fn bad_values_of_known_fields_name_the_text() {
        let err = |line: &str| parse(line).unwrap_err().to_string();
        assert_eq!(
            err("RAM 12/xMB"),
            "bad RAM value in tegrastats line: \"12/xMB\""
        );
        assert_eq!(
            err("CPU [1%@729,lots]"),
            "bad CPU value in tegrastats line: \"[1%@729,lots]\""
        );
        assert_eq!(
            err("CPU [1%@729] GR3D_FREQ high"),
            "bad GR3D_FREQ value in tegrastats line: \"high\""
        );
        assert_eq!(
            err("CPU [1%@729] gpu@hotC"),
            "bad gpu value in tegrastats line: \"gpu@hotC\""
        );
        assert_eq!(err("RAM"), "bad RAM value in tegrastats line: \"\"");
    }
}
