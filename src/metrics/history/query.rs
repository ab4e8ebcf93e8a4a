//! Which resolution answers a query, and how buckets become points. Pure.
//!
//! A **resolution** is where points come from: the RAM ring (raw samples),
//! the 1-minute rollups or the 1-hour rollups. A query asks for a **step**,
//! the spacing of the points it wants; it is served by the coarsest
//! resolution whose buckets are no wider than the step and that reaches
//! back to the query's start, and the points are buckets of the step
//! (rounded up to a whole number of the resolution's buckets), aligned to
//! multiples of it since the epoch.

use super::bucket::{Bucket, counter_increase};
use crate::metrics::Kind;

/// Where a query's points come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// Samples as recorded, from the RAM ring (the last hour of this run).
    Raw,
    /// 1-minute rollups, from the file and the minute still open.
    Minute,
    /// 1-hour rollups, from the file; the hour still open is summed from
    /// its minutes.
    Hour,
}

impl Resolution {
    /// The width of this resolution's buckets in milliseconds (1 for raw).
    pub fn bucket_ms(self) -> u64 {
        match self {
            Resolution::Raw => 1,
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// The spacing of the points served for a requested step: at least one
    /// bucket, rounded up to whole buckets.
    pub fn step_for(self, step_ms: u64) -> u64 {
        let bucket = self.bucket_ms();
        step_ms.max(bucket).div_ceil(bucket) * bucket
    }
}

/// How far back each finer resolution reaches at the time of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizons {
    /// The oldest time the RAM ring answers for: the later of one window
    /// ago and this run's first sample; `None` before any sample.
    pub raw_from_ms: Option<u64>,
    /// The oldest time the 1-minute rollups answer for: the later of their
    /// retention ago and where the size cap cut them.
    pub minute_from_ms: u64,
}

/// The resolution for a query starting at `from_ms` with points every
/// `step_ms`: the coarsest that is no wider than the step and reaches back
/// to `from_ms`; failing that, the finest that reaches back; failing that,
/// hours.
pub fn choose_resolution(from_ms: u64, step_ms: u64, horizons: Horizons) -> Resolution {
    let reaches = |r: Resolution| match r {
        Resolution::Raw => horizons.raw_from_ms.is_some_and(|h| from_ms >= h),
        Resolution::Minute => from_ms >= horizons.minute_from_ms,
        Resolution::Hour => true,
    };
    [Resolution::Hour, Resolution::Minute, Resolution::Raw]
        .into_iter()
        .find(|r| r.bucket_ms() <= step_ms.max(1) && reaches(*r))
        .or_else(|| {
            [Resolution::Raw, Resolution::Minute]
                .into_iter()
                .find(|r| reaches(*r))
        })
        .unwrap_or(Resolution::Hour)
}

/// One point of a query's answer: the summary of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The start of the step, in milliseconds since the epoch.
    pub at_ms: u64,
    /// Samples summarised.
    pub count: u32,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The mean of the values.
    pub mean: f64,
    /// The latest value.
    pub last: f64,
    /// For a counter, its growth over the step, resets counted as growth
    /// from zero; `None` for a gauge.
    pub increase: Option<f64>,
}

impl Point {
    fn of(at_ms: u64, b: &Bucket) -> Point {
        Point {
            at_ms,
            count: b.count,
            min: b.min,
            max: b.max,
            mean: b.mean(),
            last: b.last,
            increase: b.increase,
        }
    }

    /// A counter's growth per second over a step of `step_ms`.
    pub fn rate_per_s(&self, step_ms: u64) -> Option<f64> {
        self.increase.map(|i| i * 1000.0 / step_ms.max(1) as f64)
    }
}

/// Buckets, sorted by start, summed into points of `step_ms` aligned to
/// multiples of it.
pub(crate) fn to_points(
    buckets: impl IntoIterator<Item = (u64, Bucket)>,
    step_ms: u64,
) -> Vec<Point> {
    let step = step_ms.max(1);
    let mut points: Vec<(u64, Bucket)> = Vec::new();
    for (start, bucket) in buckets {
        let at = start - start % step;
        match points.last_mut() {
            Some((last_at, sum)) if *last_at == at => sum.merge(&bucket),
            _ => points.push((at, bucket)),
        }
    }
    points.iter().map(|(at, b)| Point::of(*at, b)).collect()
}

/// Raw samples as one-sample buckets. A counter's growth is counted from
/// the sample before (`before`, or the previous one); the first sample of
/// the ring has none.
pub(crate) fn sample_buckets(
    kind: Kind,
    before: Option<f64>,
    samples: &[(u64, f64)],
) -> Vec<(u64, Bucket)> {
    let mut previous = before;
    samples
        .iter()
        .map(|&(at, v)| {
            let increase = match kind {
                Kind::Gauge => None,
                Kind::Counter => Some(previous.map_or(0.0, |p| counter_increase(p, v))),
            };
            previous = Some(v);
            (at, Bucket::of(v, increase))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 3_600_000;
    const NOW: u64 = 1_000 * HOUR;

    fn horizons() -> Horizons {
        Horizons {
            raw_from_ms: Some(NOW - HOUR),
            minute_from_ms: NOW - 7 * 24 * HOUR,
        }
    }

    #[test]
    fn the_step_and_the_range_pick_the_resolution() {
        let h = horizons();
        // A fine step within the RAM hour: raw.
        assert_eq!(
            choose_resolution(NOW - 30 * MIN, 10_000, h),
            Resolution::Raw
        );
        assert_eq!(choose_resolution(NOW - 30 * MIN, 0, h), Resolution::Raw);
        // A fine step reaching past the RAM hour: minutes, the finest that reaches.
        assert_eq!(
            choose_resolution(NOW - 3 * HOUR, 10_000, h),
            Resolution::Minute
        );
        // A step of minutes: minutes, even within the RAM hour.
        assert_eq!(
            choose_resolution(NOW - 30 * MIN, MIN, h),
            Resolution::Minute
        );
        assert_eq!(
            choose_resolution(NOW - 24 * HOUR, 5 * MIN, h),
            Resolution::Minute
        );
        // A step of hours: hours.
        assert_eq!(
            choose_resolution(NOW - 24 * HOUR, HOUR, h),
            Resolution::Hour
        );
        // Past the minutes' retention: hours, whatever the step.
        assert_eq!(
            choose_resolution(NOW - 30 * 24 * HOUR, MIN, h),
            Resolution::Hour
        );
        assert_eq!(
            choose_resolution(NOW - 30 * 24 * HOUR, 1_000, h),
            Resolution::Hour
        );
    }

    #[test]
    fn a_young_ring_or_a_cut_file_is_not_asked_for_what_it_lacks() {
        // This run started ten minutes ago: twenty minutes back needs minutes.
        let young = Horizons {
            raw_from_ms: Some(NOW - 10 * MIN),
            ..horizons()
        };
        assert_eq!(
            choose_resolution(NOW - 20 * MIN, 1_000, young),
            Resolution::Minute
        );
        assert_eq!(
            choose_resolution(NOW - 5 * MIN, 1_000, young),
            Resolution::Raw
        );
        let none = Horizons {
            raw_from_ms: None,
            ..horizons()
        };
        assert_eq!(
            choose_resolution(NOW - 5 * MIN, 1_000, none),
            Resolution::Minute
        );
        // The size cap cut the minutes at two days.
        let cut = Horizons {
            minute_from_ms: NOW - 48 * HOUR,
            ..horizons()
        };
        assert_eq!(
            choose_resolution(NOW - 72 * HOUR, MIN, cut),
            Resolution::Hour
        );
    }

    #[test]
    fn steps_round_up_to_whole_buckets() {
        assert_eq!(Resolution::Minute.step_for(90_000), 120_000);
        assert_eq!(Resolution::Minute.step_for(1_000), MIN);
        assert_eq!(Resolution::Hour.step_for(HOUR), HOUR);
        assert_eq!(Resolution::Raw.step_for(0), 1);
        assert_eq!(Resolution::Raw.step_for(10_000), 10_000);
    }

    #[test]
    fn buckets_sum_into_aligned_points() {
        let b = |v: f64| Bucket::of(v, None);
        let points = to_points(
            [
                (0, b(1.0)),
                (MIN, b(3.0)),
                (2 * MIN, b(5.0)),
                (3 * MIN, b(2.0)),
            ],
            2 * MIN,
        );
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].at_ms, 0);
        assert_eq!(
            (points[0].count, points[0].min, points[0].max),
            (2, 1.0, 3.0)
        );
        assert_eq!(points[1].at_ms, 2 * MIN);
        assert_eq!((points[1].mean, points[1].last), (3.5, 2.0));
    }

    #[test]
    fn raw_counter_samples_grow_from_the_sample_before() {
        let buckets = sample_buckets(Kind::Counter, Some(8.0), &[(1, 10.0), (2, 3.0), (3, 5.0)]);
        let growth: Vec<_> = buckets.iter().map(|(_, b)| b.increase.unwrap()).collect();
        assert_eq!(growth, [2.0, 3.0, 2.0]);
        let first = sample_buckets(Kind::Counter, None, &[(1, 10.0)]);
        assert_eq!(first[0].1.increase, Some(0.0));
        assert_eq!(
            sample_buckets(Kind::Gauge, None, &[(1, 10.0)])[0]
                .1
                .increase,
            None
        );
        let p = to_points(buckets, 10_000);
        assert_eq!(p[0].increase, Some(7.0));
        assert_eq!(p[0].rate_per_s(10_000), Some(0.7));
    }
}
