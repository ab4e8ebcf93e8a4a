//! Metrics: what the watchdog measures, keeps and exposes.
//!
//! A **series** is a metric name with its labels ([`SeriesKey`]); a
//! [`Sample`] is one value of one series at one time. Collectors produce
//! samples; [`history`] keeps them on the device (the last hour as
//! recorded, minute and hour rollups in `history.db`); [`exposition`]
//! renders the watchdog's own counters and gauges for Prometheus at
//! `/metrics`.

pub mod collect;
pub mod exposition;
pub mod history;
pub mod ingest;
pub mod kpi;
pub mod recorder;
pub mod scrape;
pub mod text;

pub use exposition::{render, render_counters};

use std::fmt;

/// How a series' values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A value that goes up and down (a temperature, bytes in use).
    Gauge,
    /// A total that only grows, but may restart from zero (bytes sent).
    Counter,
}

/// A series' identity: a metric name and its labels, sorted by label name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The metric name, e.g. `rvm_host_cpu_usage_ratio`.
    pub name: String,
    /// Label names and values, sorted by name, names unique.
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    /// A key from a name and labels in any order (a later duplicate name wins).
    pub fn new<'a>(name: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in labels {
            map.insert(k.to_owned(), v.to_owned());
        }
        SeriesKey {
            name: name.to_owned(),
            labels: map.into_iter().collect(),
        }
    }

    /// The value of a label, if the key has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for SeriesKey {
    /// `name{label="value",…}` as Prometheus writes it (no braces without labels).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.labels.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )?;
        }
        f.write_str("}")
    }
}

/// One value of one series at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which series.
    pub key: SeriesKey,
    /// How its values are read.
    pub kind: Kind,
    /// When, in milliseconds since the epoch.
    pub at_ms: u64,
    /// The value.
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sorts_its_labels_and_prints_like_prometheus() {
        let k = SeriesKey::new(
            "rvm_host_network_bytes_total",
            [("iface", "eth0"), ("dir", "rx")],
        );
        assert_eq!(
            k.to_string(),
            r#"rvm_host_network_bytes_total{dir="rx",iface="eth0"}"#
        );
        assert_eq!(
            k,
            SeriesKey::new(
                "rvm_host_network_bytes_total",
                [("dir", "rx"), ("iface", "eth0")]
            )
        );
        assert_eq!(k.label("iface"), Some("eth0"));
        assert_eq!(SeriesKey::new("up", []).to_string(), "up");
        let odd = SeriesKey::new("x", [("v", "a\"b\\c\nd")]);
        assert_eq!(odd.to_string(), r#"x{v="a\"b\\c\nd"}"#);
    }
}
