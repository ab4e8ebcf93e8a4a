//! What a service may push to `POST /api/v1/ingest`: Prometheus' text
//! format, or JSON in this shape (version 1):
//!
//! ```json
//! {"samples": [
//!   {"name": "rvm_deposits_total", "labels": {"material": "PET"},
//!    "value": 1027, "kind": "counter", "at": 1764600000000}
//! ]}
//! ```
//!
//! `kind` is `"gauge"` (the default) or `"counter"`; `at` is milliseconds
//! since 1970 and defaults to the time of arrival. A body is taken whole
//! or not at all: every problem is reported (the line of a text body, the
//! index of a JSON sample), and nothing of a bad body is kept. Names the
//! watchdog writes itself (`rvm_watchdog_*`, `rvm_host_*`, `rvm_jetson_*`,
//! `rvm_scrape_*`, `rvm_trend_*`) cannot be pushed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Kind, Sample, SeriesKey};

/// Name prefixes only the watchdog writes.
pub const RESERVED: [&str; 5] = [
    "rvm_watchdog_",
    "rvm_host_",
    "rvm_jetson_",
    "rvm_scrape_",
    "rvm_trend_",
];

/// At most this many samples in one body.
pub const MAX_SAMPLES: usize = 10_000;

/// How a body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format.
    Text,
    /// The JSON shape above.
    Json,
}

impl Format {
    /// The format a `Content-Type` names; `None` for one not accepted.
    pub fn of_content_type(content_type: Option<&str>) -> Option<Format> {
        let media = content_type
            .unwrap_or("text/plain")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Some(Format::Json),
            "text/plain" | "" => Some(Format::Text),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    samples: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    value: f64,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    at: Option<u64>,
}

/// Reads a pushed body; samples without a time are taken at `now_ms`.
/// `Err` holds every problem, each naming where it is.
pub fn parse(format: Format, body: &str, now_ms: u64) -> Result<Vec<Sample>, Vec<String>> {
    let samples = match format {
        Format::Text => super::text::parse(body, now_ms)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?,
        Format::Json => json(body, now_ms)?,
    };
    let mut problems = Vec::new();
    if samples.len() > MAX_SAMPLES {
        problems.push(format!(
            "{} samples in one body; at most {MAX_SAMPLES}",
            samples.len()
        ));
    }
    for s in &samples {
        if let Some(prefix) = RESERVED.iter().find(|p| s.key.name.starts_with(*p)) {
            problems.push(format!(
                "{}: names starting with {prefix} are the watchdog's own",
                s.key.name
            ));
        }
        if problems.len() >= 20 {
            break;
        }
    }
    if problems.is_empty() {
        Ok(samples)
    } else {
        Err(problems)
    }
}

fn json(body: &str, now_ms: u64) -> Result<Vec<Sample>, Vec<String>> {
    let parsed: Body = serde_json::from_str(body)
        .map_err(|e| vec![format!("line {} column {}: {e}", e.line(), e.column())])?;
    let mut samples = Vec::with_capacity(parsed.samples.len());
    let mut problems = Vec::new();
    for (i, entry) in parsed.samples.into_iter().enumerate() {
        if !super::text::valid_name(&entry.name) {
            problems.push(format!(
                "samples[{i}].name {:?} is not a metric name",
                entry.name
            ));
        }
        if let Some(bad) = entry.labels.keys().find(|k| !super::text::valid_label(k)) {
            problems.push(format!("samples[{i}].labels: {bad:?} is not a label name"));
        }
        let kind = match entry.kind.as_deref() {
            None | Some("gauge") => Kind::Gauge,
            Some("counter") => Kind::Counter,
            Some(other) => {
                problems.push(format!(
                    "samples[{i}].kind {other:?}; expected \"gauge\" or \"counter\""
                ));
                Kind::Gauge
            }
        };
        samples.push(Sample {
            key: SeriesKey::new(
                &entry.name,
                entry.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
            kind,
            at_ms: entry.at.unwrap_or(now_ms),
            value: entry.value,
        });
        if problems.len() >= 20 {
            break;
        }
    }
    if problems.is_empty() {
        Ok(samples)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_body_becomes_samples() {
        let body = r#"{"samples": [
            {"name": "rvm_deposits_total", "labels": {"material": "PET"}, "value": 3, "kind": "counter"},
            {"name": "rvm_confidence", "value": 0.91, "at": 1764599999000}
        ]}"#;
        let s = parse(Format::Json, body, 1_764_600_000_000).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].key.to_string(),
            r#"rvm_deposits_total{material="PET"}"#
        );
        assert_eq!(
            (s[0].kind, s[0].value, s[0].at_ms),
            (Kind::Counter, 3.0, 1_764_600_000_000)
        );
        assert_eq!((s[1].kind, s[1].at_ms), (Kind::Gauge, 1_764_599_999_000));
    }

    #[test]
    fn a_bad_body_is_refused_whole_naming_each_problem() {
        let body = r#"{"samples": [
            {"name": "ok", "value": 1},
            {"name": "bad name", "value": 1},
            {"name": "x", "labels": {"1a": "v"}, "value": 1, "kind": "meter"}
        ]}"#;
        let problems = parse(Format::Json, body, 0).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("samples[1].name"));
        assert!(problems[1].starts_with("samples[2].labels"));
        assert!(problems[2].starts_with("samples[2].kind"));

        let problems = parse(Format::Json, "{\"samples\": [\n{\"name\": \"x\"}]}", 0).unwrap_err();
        assert!(problems[0].starts_with("line 2 column"), "{problems:?}");

        let problems = parse(Format::Text, "a 1\nb\n", 0).unwrap_err();
        assert_eq!(problems, ["line 2: \"b\" has no value"]);
    }

    #[test]
    fn the_watchdogs_own_names_cannot_be_pushed() {
        let problems = parse(Format::Text, "rvm_host_cpu_usage_ratio 0.1\n", 0).unwrap_err();
        assert!(problems[0].contains("the watchdog's own"), "{problems:?}");
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::of_content_type(None), Some(Format::Text));
        assert_eq!(
            Format::of_content_type(Some("text/plain; version=0.0.4")),
            Some(Format::Text)
        );
        assert_eq!(
            Format::of_content_type(Some("Application/JSON; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::of_content_type(Some("application/x-www-form-urlencoded")),
            None
        );
    }
}
