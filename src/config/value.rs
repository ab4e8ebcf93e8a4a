//! Value types shared by the configuration files: human durations,
//! budgets (`"1/6h"`), severities and the name rules.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

use super::diag::{plain, quoted};

/// A value as written in a file, parsed but not yet judged: `Err` holds
/// the message for a value that could not be parsed. Reading such values
/// never stops deserialization, so one bad duration does not hide the
/// other problems of its file; validation reports the error at its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T>(pub Result<T, String>);

/// Types read from a scalar in a file through [`Checked`].
pub trait FromScalar: Sized {
    /// What is expected, for messages.
    const EXPECTED: &'static str;
    /// Parses text.
    fn from_text(text: &str) -> Result<Self, String>;
    /// Parses a number, given as the file writes it; by default numbers
    /// are refused.
    fn from_number(n: &str) -> Result<Self, String> {
        Err(format!(
            "invalid value {}; expected {}",
            plain(n),
            Self::EXPECTED
        ))
    }
}

impl FromScalar for Duration {
    const EXPECTED: &'static str = "a duration string like \"30s\"";
    fn from_text(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }
    fn from_number(n: &str) -> Result<Self, String> {
        let like = if n.bytes().all(|b| b.is_ascii_digit()) {
            format!("{n}s")
        } else {
            "30s".to_owned()
        };
        Err(format!(
            "invalid duration {}: write it as a string with a unit, like {}",
            plain(n),
            quoted(&like)
        ))
    }
}

impl<'de, T: FromScalar> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<T: FromScalar> de::Visitor<'_> for Visitor<T> {
            type Value = Checked<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Checked<T>, E> {
                Ok(Checked(T::from_text(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Checked<T>, E> {
                Ok(Checked(T::from_number(&v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Checked<T>, E> {
                Ok(Checked(T::from_number(&v.to_string())))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Checked<T>, E> {
                Ok(Checked(T::from_number(&v.to_string())))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Checked<T>, E> {
                Ok(Checked(T::from_number(&v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Checked<T>, E> {
                Ok(Checked(T::from_number(&v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Checked<T>, E> {
                Ok(Checked(Err(format!(
                    "invalid value {v}; expected {}",
                    T::EXPECTED
                ))))
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// A duration as written: `"500ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"2d"`.
pub type HumanDuration = Checked<Duration>;

/// Parses a human duration, with an error that says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("invalid duration \"\": expected a number and a unit, like \"500ms\", \"30s\", \"5m\", \"1h\"".into());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "invalid duration {}: a unit is required, like {} or {}",
            quoted(text),
            quoted(&format!("{trimmed}s")),
            quoted(&format!("{trimmed}ms"))
        ));
    }
    humantime::parse_duration(trimmed).map_err(|_| {
        format!(
            "invalid duration {}; expected a number and a unit (ms, s, m, h, d), like \"500ms\", \"30s\", \"5m\", \"1h30m\"",
            quoted(text)
        )
    })
}

/// A duration as a file writes it, without quotes: `"30s"`, `"1h30m"`,
/// `"400d"`, `"250ms"`; [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
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
        format!(
            "invalid budget {}: {why}; expected COUNT/WINDOW, like \"1/6h\" or \"3/1d\"",
            quoted(text)
        )
    };
    let (count, window) = text.split_once('/').ok_or_else(|| bad("no `/`"))?;
    let count: u32 = count.trim().parse().map_err(|_| {
        bad(&format!(
            "count {} is not a whole number",
            quoted(count.trim())
        ))
    })?;
    let window_text = window.trim();
    // "1/h" reads naturally as once an hour.
    let window = if window_text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
    {
        parse_duration(&format!("1{window_text}"))
    } else {
        parse_duration(window_text)
    }
    .map_err(|_| bad(&format!("window {} is not a duration", quoted(window_text))))?;
    Ok(Budget { count, window })
}

impl FromScalar for Budget {
    const EXPECTED: &'static str = "a budget like \"1/6h\"";
    fn from_text(text: &str) -> Result<Self, String> {
        parse_budget(text)
    }
}

/// How urgent an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nobody needs to act now.
    Info,
    /// Degraded; someone should look today.
    #[default]
    Warning,
    /// The machine cannot serve customers; act now.
    Critical,
}

impl FromScalar for Severity {
    const EXPECTED: &'static str = "one of \"info\", \"warning\", \"critical\"";
    fn from_text(text: &str) -> Result<Self, String> {
        match text {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {}; expected {}",
                quoted(other),
                Self::EXPECTED
            )),
        }
    }
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
        Err(format!(
            "name {} is longer than 64 characters",
            quoted(name)
        ))
    } else if !ok_first || !ok_rest {
        Err(format!(
            "name {} may only hold lowercase letters, digits, '-', '_' and '.', and must start with a letter or digit",
            quoted(name)
        ))
    } else {
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip the far ones.
        .filter(|c| len.abs_diff(c.chars().count()) <= 2.max(c.len() / 4))
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
        assert!(
            parse_duration("30")
                .unwrap_err()
                .contains("a unit is required")
        );
        assert!(
            parse_duration("30x")
                .unwrap_err()
                .contains("invalid duration \"30x\"")
        );
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_are_shown_as_files_write_them() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(400 * 86400), "400d"),
            (Duration::from_secs(30 * 86400), "30d"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d, "{text} reads back");
        }
    }

    #[test]
    fn budgets_parse() {
        assert_eq!(
            parse_budget("1/6h").unwrap(),
            Budget {
                count: 1,
                window: Duration::from_secs(6 * 3600)
            }
        );
        assert_eq!(
            parse_budget("2/h").unwrap().window,
            Duration::from_secs(3600)
        );
        assert!(parse_budget("6h").unwrap_err().contains("no `/`"));
        assert!(parse_budget("x/6h").unwrap_err().contains("count \"x\""));
        assert!(
            parse_budget("1/soon")
                .unwrap_err()
                .contains("window \"soon\"")
        );
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
