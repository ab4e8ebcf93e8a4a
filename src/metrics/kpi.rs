//! KPIs: figures an operator defines over the series, such as the
//! detection success rate, deposits accepted per hour or the processing
//! time's 95th percentile, each over a window. A KPI is evaluated into a
//! gauge sample, stored, charted and alertable like any other series.
//!
//! A **selector** picks series: a metric name and label equalities,
//! `rvm_detections_total{result="ok"}`; the series it matches are summed.
//! Counters are read by their **increase** over the window, with resets
//! (a service that restarted counts from zero again) handled as Prometheus
//! does: a drop starts a new run, whose value counts whole.

use std::fmt;

use super::SeriesKey;

/// Picks series by name and label equalities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name.
    pub name: String,
    /// Labels that must have these values.
    pub labels: Vec<(String, String)>,
}

impl Selector {
    /// Reads `name` or `name{a="x",b="y"}`.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let sample =
            super::text::parse(&format!("{} 0", text.trim()), 0).map_err(|e| match e.first() {
                Some(e) => format!("selector {text:?}: {}", e.message),
                None => format!("selector {text:?} cannot be read"),
            })?;
        let key = &sample[0].key;
        Ok(Selector {
            name: key.name.clone(),
            labels: key.labels.clone(),
        })
    }

    /// Whether `key` is one of the series picked.
    pub fn matches(&self, key: &SeriesKey) -> bool {
        key.name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| key.label(k) == Some(v.as_str()))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = SeriesKey::new(
            &self.name,
            self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        key.fmt(f)
    }
}

/// How a KPI is computed from its selectors over its window.
#[derive(Debug, Clone, PartialEq)]
pub enum Formula {
    /// A counter's increase per second (× `per_seconds`: 3600 for "per hour").
    Rate {
        /// The counter.
        of: Selector,
        /// Seconds per unit of the answer.
        per_seconds: f64,
    },
    /// The increase of one counter over the increase of another.
    Ratio {
        /// Numerator counter.
        numerator: Selector,
        /// Denominator counter.
        denominator: Selector,
    },
    /// A gauge's mean over the window.
    Mean {
        /// The gauge.
        of: Selector,
    },
    /// A quantile of a histogram (its `_bucket` series, by `le`).
    Quantile {
        /// The histogram's name (without `_bucket`) and labels.
        of: Selector,
        /// Between 0 and 1, e.g. 0.95.
        q: f64,
    },
}

/// The points of one series in a window, oldest first: (ms, value).
pub type Points = Vec<(u64, f64)>;

/// The increase of a counter over `points`, resets handled.
pub fn increase(points: &[(u64, f64)]) -> f64 {
    let mut total = 0.0;
    for pair in points.windows(2) {
        let (before, after) = (pair[0].1, pair[1].1);
        total += if after < before {
            after
        } else {
            after - before
        };
    }
    total
}

/// The `q` quantile of a histogram from each bucket's count (by upper
/// bound `le`, `+Inf` included), interpolating linearly inside the bucket
/// as Prometheus' `histogram_quantile` does. `None` without observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = buckets.to_vec();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                // In the open bucket: the last finite bound is the best answer.
                return Some(lower);
            }
            let inside = count - below;
            let into = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * into);
        }
        lower = le;
        below = count;
    }
    Some(lower)
}

/// Evaluates `formula` over the window `from..=to`. `points` gives the
/// points of every series a selector matches in the window. `None` when
/// there is nothing to compute from (no series, no increase of the
/// denominator, no observations).
pub fn evaluate(
    formula: &Formula,
    from_ms: u64,
    to_ms: u64,
    points: &dyn Fn(&Selector) -> Vec<(SeriesKey, Points)>,
) -> Option<f64> {
    let summed_increase = |s: &Selector| -> Option<f64> {
        let series = points(s);
        if series.is_empty() {
            return None;
        }
        Some(series.iter().map(|(_, p)| increase(p)).sum())
    };
    match formula {
        Formula::Rate { of, per_seconds } => {
            let seconds = (to_ms.saturating_sub(from_ms)) as f64 / 1000.0;
            if seconds <= 0.0 {
                return None;
            }
            Some(summed_increase(of)? / seconds * per_seconds)
        }
        Formula::Ratio {
            numerator,
            denominator,
        } => {
            let d = summed_increase(denominator)?;
            if d <= 0.0 {
                return None;
            }
            Some(summed_increase(numerator).unwrap_or(0.0) / d)
        }
        Formula::Mean { of } => {
            let values: Vec<f64> = points(of)
                .into_iter()
                .flat_map(|(_, p)| p.into_iter().map(|(_, v)| v))
                .collect();
            if values.is_empty() {
                return None;
            }
            Some(values.iter().sum::<f64>() / values.len() as f64)
        }
        Formula::Quantile { of, q } => {
            let buckets_of = Selector {
                name: format!("{}_bucket", of.name),
                labels: of.labels.clone(),
            };
            let mut by_le: Vec<(f64, f64)> = Vec::new();
            for (key, p) in points(&buckets_of) {
                let le = match key.label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().ok()?,
                    None => continue,
                };
                let inc = increase(&p);
                match by_le.iter_mut().find(|(l, _)| *l == le) {
                    Some(slot) => slot.1 += inc,
                    None => by_le.push((le, inc)),
                }
            }
            histogram_quantile(*q, &by_le)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(name, labels.iter().copied())
    }

    #[test]
    fn selectors_pick_by_name_and_labels() {
        let s = Selector::parse(r#"rvm_detections_total{result="ok"}"#).unwrap();
        assert!(s.matches(&key(
            "rvm_detections_total",
            &[("result", "ok"), ("cam", "1")]
        )));
        assert!(!s.matches(&key("rvm_detections_total", &[("result", "bad")])));
        assert!(!s.matches(&key("rvm_other", &[("result", "ok")])));
        assert_eq!(s.to_string(), r#"rvm_detections_total{result="ok"}"#);
        assert!(
            Selector::parse("x{a=1}")
                .unwrap_err()
                .contains("needs quotes")
        );
    }

    #[test]
    fn an_increase_survives_a_counter_reset() {
        // 10 → 40 (+30), restart: 0 → 5 (+5 counted whole), → 25 (+20).
        let p = [(0, 10.0), (10, 40.0), (20, 5.0), (30, 25.0)];
        assert_eq!(increase(&p), 55.0);
        assert_eq!(increase(&p[..1]), 0.0);
    }

    #[test]
    fn a_ratio_of_two_counters_is_right_across_a_reset() {
        // Successes: 90 → 141, reset, 0 → 39: 90. Failures: 10 → 19, reset, 0 → 1: 10.
        let ok = vec![(0, 90.0), (30_000, 141.0), (40_000, 0.0), (60_000, 39.0)];
        let f = Formula::Ratio {
            numerator: Selector::parse(r#"det_total{result="ok"}"#).unwrap(),
            denominator: Selector::parse("det_total").unwrap(),
        };
        let series = [
            (key("det_total", &[("result", "ok")]), ok),
            (
                key("det_total", &[("result", "bad")]),
                vec![(0, 10.0), (30_000, 19.0), (40_000, 0.0), (60_000, 1.0)],
            ),
        ];
        let points = |s: &Selector| -> Vec<(SeriesKey, Points)> {
            series
                .iter()
                .filter(|(k, _)| s.matches(k))
                .cloned()
                .collect()
        };
        let ratio = evaluate(&f, 0, 60_000, &points).unwrap();
        assert!((ratio - 90.0 / 100.0).abs() < 1e-12, "{ratio}");
        let rate = Formula::Rate {
            of: Selector::parse("det_total").unwrap(),
            per_seconds: 3600.0,
        };
        // 100 detections in 60 s: 6,000 an hour.
        assert_eq!(evaluate(&rate, 0, 60_000, &points), Some(6000.0));
        let nothing = Formula::Mean {
            of: Selector::parse("absent").unwrap(),
        };
        assert_eq!(evaluate(&nothing, 0, 60_000, &points), None);
    }

    #[test]
    fn a_quantile_over_a_histogram_is_right() {
        // 100 observations: 50 ≤ 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1].
        let buckets = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(histogram_quantile(0.5, &buckets), Some(0.1));
        // The 95th: rank 95, halfway into (0.5, 1].
        assert!((histogram_quantile(0.95, &buckets).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(histogram_quantile(0.95, &[(f64::INFINITY, 0.0)]), None);

        // From bucket counters over a window, one with a reset.
        let series = [
            (
                key("proc_seconds_bucket", &[("le", "0.1")]),
                vec![(0, 0.0), (60_000, 50.0)],
            ),
            (
                key("proc_seconds_bucket", &[("le", "0.5")]),
                vec![(0, 0.0), (60_000, 90.0)],
            ),
            (
                key("proc_seconds_bucket", &[("le", "1")]),
                vec![(0, 500.0), (30_000, 0.0), (60_000, 100.0)],
            ),
            (
                key("proc_seconds_bucket", &[("le", "+Inf")]),
                vec![(0, 0.0), (60_000, 100.0)],
            ),
        ];
        let points = |s: &Selector| -> Vec<(SeriesKey, Points)> {
            series
                .iter()
                .filter(|(k, _)| s.matches(k))
                .cloned()
                .collect()
        };
        let f = Formula::Quantile {
            of: Selector::parse("proc_seconds").unwrap(),
            q: 0.95,
        };
        let p95 = evaluate(&f, 0, 60_000, &points).unwrap();
        assert!((p95 - 0.75).abs() < 1e-12, "{p95}");
    }
}
