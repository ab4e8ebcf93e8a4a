//! Prometheus' text exposition format (0.0.4), read into [`Sample`]s: what
//! the RVM services expose for scraping and what they may push to
//! `/api/v1/ingest`.
//!
//! The whole text is read before anything is kept, and every line that is
//! wrong is reported with its number, so a bad body stores nothing of it
//! and its sender learns every problem in one answer. A `# TYPE` line gives
//! a family's kind: a counter, and a histogram's or summary's `_bucket`,
//! `_sum` and `_count`, are counters; everything else is a gauge. A sample's
//! own timestamp is kept when it has one.

use std::collections::HashMap;
use std::fmt;

use super::{Kind, Sample, SeriesKey};

/// One wrong line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, naming the bad text.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// At most this many errors are reported for one text.
const MAX_ERRORS: usize = 20;

/// Parses `text`; every sample without its own timestamp is taken at
/// `now_ms`. Either every line is right, or nothing is returned but the
/// errors (at most 20).
pub fn parse(text: &str, now_ms: u64) -> Result<Vec<Sample>, Vec<LineError>> {
    let mut kinds: HashMap<&str, &str> = HashMap::new();
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") {
                match (words.next(), words.next()) {
                    (Some(name), Some(kind))
                        if ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&kind) =>
                    {
                        kinds.insert(name, kind);
                    }
                    (Some(_), Some(kind)) => errors.push(LineError {
                        line: number,
                        message: format!(
                            "unknown type {}; expected counter, gauge, histogram, summary or untyped",
                            shown(kind)
                        ),
                    }),
                    _ => errors.push(LineError {
                        line: number,
                        message: "a TYPE line needs a metric name and a type".into(),
                    }),
                }
            }
            continue;
        }
        match sample(line, now_ms, &kinds) {
            Ok(s) => samples.push(s),
            Err(message) => errors.push(LineError {
                line: number,
                message,
            }),
        }
        if errors.len() >= MAX_ERRORS {
            break;
        }
    }
    if errors.is_empty() {
        Ok(samples)
    } else {
        Err(errors)
    }
}

/// A bad value as it is written, quoted, control characters escaped, cut
/// when long.
fn shown(text: &str) -> String {
    const LONG: usize = 60;
    let cut: String = text.chars().take(LONG).collect();
    let escaped = cut.escape_debug().to_string();
    if text.chars().count() > LONG {
        format!("\"{escaped}…\"")
    } else {
        format!("\"{escaped}\"")
    }
}

/// Whether `name` is a metric name: letters, digits, `_` and `:`, not
/// starting with a digit.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a label name: letters, digits and `_`, not starting
/// with a digit.
pub(crate) fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The kind of a sample's series from its family's `# TYPE`.
fn kind_of(name: &str, kinds: &HashMap<&str, &str>) -> Kind {
    if kinds.get(name) == Some(&"counter") {
        return Kind::Counter;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(family) = name.strip_suffix(suffix)
            && matches!(kinds.get(family), Some(&"histogram" | &"summary"))
        {
            return Kind::Counter;
        }
    }
    // A counter family written with its `_total` sample name.
    if let Some(family) = name.strip_suffix("_total")
        && kinds.get(family) == Some(&"counter")
    {
        return Kind::Counter;
    }
    Kind::Gauge
}

fn sample(line: &str, now_ms: u64, kinds: &HashMap<&str, &str>) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!(
            "{} is not a metric name (letters, digits, '_' and ':', not starting with a digit)",
            shown(name)
        ));
    }
    let mut rest = &line[name_end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields
        .next()
        .ok_or_else(|| format!("{} has no value", shown(name)))?;
    let value = number(value_text)
        .ok_or_else(|| format!("value {} of {name} is not a number", shown(value_text)))?;
    let at_ms = match fields.next() {
        None => now_ms,
        Some(t) => t
            .parse::<i64>()
            .ok()
            .and_then(|t| u64::try_from(t).ok())
            .ok_or_else(|| {
                format!(
                    "timestamp {} of {name} is not milliseconds since 1970",
                    shown(t)
                )
            })?,
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {} after the timestamp", shown(extra)));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, _) in &labels {
        if !seen.insert(k.as_str()) {
            return Err(format!("label {} appears twice", shown(k)));
        }
    }
    Ok(Sample {
        key: SeriesKey::new(name, labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        kind: kind_of(name, kinds),
        at_ms,
        value,
    })
}

/// A Prometheus float: `+Inf`, `-Inf`, `NaN` or a decimal number.
fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
        {
            text.parse().ok()
        }
        _ => None,
    }
}

/// Label names and values as written.
type Labels = Vec<(String, String)>;

/// The labels after `{`, up to and including `}`: the pairs and the text after.
fn label_set(mut text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = text
            .find('=')
            .ok_or_else(|| "a label needs name=\"value\"".to_owned())?;
        let name = text[..eq].trim();
        if !valid_label(name) {
            return Err(format!("{} is not a label name", shown(name)));
        }
        let after_eq = text[eq + 1..].trim_start();
        let Some(quoted) = after_eq.strip_prefix('"') else {
            return Err(format!("the value of label {name} needs quotes"));
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("the value of label {name} has no closing quote")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    Some((_, c)) => {
                        return Err(format!(
                            "the value of label {name} has an unknown escape \\{}",
                            c.escape_debug()
                        ));
                    }
                    None => {
                        return Err(format!("the value of label {name} has no closing quote"));
                    }
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        text = quoted[end + 1..].trim_start();
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err(format!(
                "expected ',' or '}}' after label {name}, found {}",
                shown(text.split_whitespace().next().unwrap_or(""))
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_600_000_000;

    #[test]
    fn families_labels_kinds_and_timestamps() {
        let text = "\
# HELP rvm_deposits_total Deposits accepted.
# TYPE rvm_deposits_total counter
rvm_deposits_total{material=\"PET\"} 1027
rvm_deposits_total{material=\"ALU\"} 88 1764599990000

# TYPE rvm_detection_seconds histogram
rvm_detection_seconds_bucket{le=\"0.1\"} 10
rvm_detection_seconds_bucket{le=\"+Inf\"} 12
rvm_detection_seconds_sum 0.9
rvm_detection_seconds_count 12
# TYPE rvm_confidence gauge
rvm_confidence 0.93
untyped_thing{a=\"x\\\"y\\\\z\\n\",b=\"\"} -Inf
";
        let samples = parse(text, NOW).unwrap();
        assert_eq!(samples.len(), 8);
        assert_eq!(
            samples[0].key.to_string(),
            r#"rvm_deposits_total{material="PET"}"#
        );
        assert_eq!(samples[0].kind, Kind::Counter);
        assert_eq!((samples[0].value, samples[0].at_ms), (1027.0, NOW));
        assert_eq!(samples[1].at_ms, 1_764_599_990_000);
        assert!(samples[2..6].iter().all(|s| s.kind == Kind::Counter));
        assert_eq!(samples[3].key.label("le"), Some("+Inf"));
        assert_eq!(samples[6].kind, Kind::Gauge);
        assert_eq!(samples[7].key.label("a"), Some("x\"y\\z\n"));
        assert_eq!(samples[7].value, f64::NEG_INFINITY);
    }

    #[test]
    fn every_bad_line_is_named_and_nothing_is_kept() {
        let text = "\
good 1
bad-name 2
no_value
v{a=\"1\"} twelve
l{a=1} 3
q{a=\"open} 4
d{a=\"1\",a=\"2\"} 5
t 1 yesterday
# TYPE x sometimes
also_good 2
";
        let errors = parse(text, NOW).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9], "{errors:#?}");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text[0],
            "line 2: \"bad-name\" is not a metric name (letters, digits, '_' and ':', not starting with a digit)"
        );
        assert_eq!(text[2], "line 4: value \"twelve\" of v is not a number");
        assert_eq!(text[3], "line 5: the value of label a needs quotes");
        assert_eq!(text[5], "line 7: label \"a\" appears twice");
        assert!(text[7].contains("\"sometimes\""), "{}", text[7]);
    }

    #[test]
    fn control_characters_and_long_values_are_shown_safely() {
        let long = "x".repeat(5000);
        let errors = parse(&format!("m {long}\nn\u{202e}\u{0} 1\n"), NOW).unwrap_err();
        assert!(errors[0].message.len() < 200, "{}", errors[0].message);
        assert!(errors[0].message.contains('…'));
        assert!(
            errors[1].message.contains("\\u{202e}\\0"),
            "{}",
            errors[1].message
        );
    }

    #[test]
    fn at_most_twenty_errors_are_reported() {
        let text = "bad line here\n".repeat(500);
        assert_eq!(parse(&text, NOW).unwrap_err().len(), MAX_ERRORS);
    }
}
