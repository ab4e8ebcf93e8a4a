//! Value types shared by the configuration files: human durations,
//! budgets (`"1/6h"`), severities and the name rules.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration written for humans: `"500ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"2d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parses a human duration, with an error that says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("invalid duration \"\": expected a number and a unit, like \"500ms\", \"30s\", \"5m\", \"1h\"".into());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "invalid duration \"{text}\": a unit is required, like \"{trimmed}s\" or \"{trimmed}ms\""
        ));
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        format!(
            "invalid duration \"{text}\" ({e}); expected a number and a unit (ms, s, m, h, d), like \"500ms\", \"30s\", \"5m\", \"1h30m\""
        )
    })
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"30s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: write it as a string with a unit, like \"{v}s\""
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: write it as a string with a unit, like \"{v}s\""
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// "At most `count` times within `window`", written `"1/6h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// How many times.
    pub count: u32,
    /// Within how long a sliding window.
    pub window: Duration,
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            humantime::format_duration(self.window)
        )
    }
}

/// Parses `"N/DURATION"`.
pub fn parse_budget(text: &str) -> Result<Budget, String> {
    let bad = |why: &str| {
        format!("invalid budget \"{text}\": {why}; expected COUNT/WINDOW, like \"1/6h\" or \"3/1d\"")
    };
    let (count, window) = text.split_once('/').ok_or_else(|| bad("no `/`"))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| bad(&format!("count \"{}\" is not a whole number", count.trim())))?;
    let window_text = window.trim();
    // "1/h" reads naturally as once an hour.
    let window = if window_text.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        parse_duration(&format!("1{window_text}"))
    } else {
        parse_duration(window_text)
    }
    .map_err(|_| bad(&format!("window \"{window_text}\" is not a duration")))?;
    Ok(Budget { count, window })
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_budget(&text).map_err(de::Error::custom)
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing; nobody needs to act now.
    Info,
    /// Degraded; someone should look today.
    #[default]
    Warning,
    /// The machine cannot serve customers; act now.
    Critical,
}

impl Severity {
    /// The lowercase name used in files, logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Checks a name used for targets, probes, channels and chains: it appears
/// in URLs, metric labels and file names, so it is kept plain.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.');
    if name.is_empty() {
        Err("name is empty".into())
    } else if name.len() > 64 {
        Err(format!("name \"{name}\" is longer than 64 characters"))
    } else if !ok_first || !ok_rest {
        Err(format!(
            "name \"{name}\" may only hold lowercase letters, digits, '-', '_' and '.', and must start with a letter or digit"
        ))
    } else {
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_only() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30").unwrap_err().contains("a unit is required"));
        assert!(parse_duration("30x").unwrap_err().contains("invalid duration \"30x\""));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn budgets_parse() {
        assert_eq!(
            parse_budget("1/6h").unwrap(),
            Budget { count: 1, window: Duration::from_secs(6 * 3600) }
        );
        assert_eq!(parse_budget("2/h").unwrap().window, Duration::from_secs(3600));
        assert!(parse_budget("6h").unwrap_err().contains("no `/`"));
        assert!(parse_budget("x/6h").unwrap_err().contains("count \"x\""));
        assert!(parse_budget("1/soon").unwrap_err().contains("window \"soon\""));
    }

    #[test]
    fn names_are_plain() {
        assert!(check_name("camera").is_ok());
        assert!(check_name("usb-bus.0_a").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Camera").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["interval", "timeout", "fail-after"];
        assert_eq!(did_you_mean("intervall", keys), Some("interval"));
        assert_eq!(did_you_mean("fail_after", keys), Some("fail-after"));
        assert_eq!(did_you_mean("colour", keys), None);
    }
}
