//! Trends: a straight line fitted to a series by least squares, and when
//! that line crosses a threshold ("the disk is full in 6 hours"). Pure
//! functions of query results and `now`.

use std::time::Duration;

use super::query::Point;

/// A straight line through a series' values over time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Change of the value per second.
    pub slope_per_s: f64,
    /// The mean time of the points, in milliseconds since the epoch.
    pub mean_at_ms: u64,
    /// The mean value of the points: the line passes through it at `mean_at_ms`.
    pub mean_value: f64,
}

/// When a line crosses a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Eta {
    /// The line is already at or past the threshold at `now`.
    Reached,
    /// The line gets there after this long.
    In(Duration),
    /// The line is flat or moves away: it never gets there.
    Never,
}

/// Which side of a threshold is watched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// The value rising to or above this.
    Above(f64),
    /// The value falling to or below this.
    Below(f64),
}

impl Fit {
    /// The least-squares line through `(time in ms, value)` pairs; `None`
    /// with fewer than two distinct times or a value that is not finite.
    pub fn new(points: impl IntoIterator<Item = (u64, f64)>) -> Option<Fit> {
        let points: Vec<(u64, f64)> = points.into_iter().collect();
        let n = points.len();
        if n < 2 || points.iter().any(|(_, v)| !v.is_finite()) {
            return None;
        }
        // Times relative to the first, in seconds, so that the sums keep
        // their precision; the mean is taken exactly in integers.
        let t0 = points.iter().map(|p| p.0).min()?;
        let mean_offset_ms = points.iter().map(|p| u128::from(p.0 - t0)).sum::<u128>() / n as u128;
        let mean_at_ms = t0 + u64::try_from(mean_offset_ms).ok()?;
        let mean_value = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for &(at, v) in &points {
            let dx = (at as f64 - mean_at_ms as f64) / 1000.0;
            sxy += dx * (v - mean_value);
            sxx += dx * dx;
        }
        if sxx == 0.0 {
            return None;
        }
        Some(Fit {
            slope_per_s: sxy / sxx,
            mean_at_ms,
            mean_value,
        })
    }

    /// The line through a query's points, taking each point's mean at the
    /// middle of its step of `step_ms`.
    pub fn of_means(points: &[Point], step_ms: u64) -> Option<Fit> {
        Fit::new(points.iter().map(|p| (p.at_ms + step_ms / 2, p.mean)))
    }

    /// The line's value at a time.
    pub fn value_at(&self, at_ms: u64) -> f64 {
        self.mean_value + self.slope_per_s * (at_ms as f64 - self.mean_at_ms as f64) / 1000.0
    }

    /// When the line crosses `threshold`, seen from `now_ms`.
    pub fn eta(&self, threshold: Threshold, now_ms: u64) -> Eta {
        let value = self.value_at(now_ms);
        let (gap, speed) = match threshold {
            Threshold::Above(limit) => (limit - value, self.slope_per_s),
            Threshold::Below(limit) => (value - limit, -self.slope_per_s),
        };
        if gap <= 0.0 {
            Eta::Reached
        } else if speed <= 0.0 || !speed.is_finite() {
            Eta::Never
        } else {
            Duration::try_from_secs_f64(gap / speed).map_or(Eta::Never, Eta::In)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_760_000_000_000;

    fn line(per_s: f64, start: f64, every_ms: u64, n: u64) -> Vec<(u64, f64)> {
        (0..n)
            .map(|i| {
                (
                    T0 + i * every_ms,
                    start + per_s * (i * every_ms) as f64 / 1000.0,
                )
            })
            .collect()
    }

    #[test]
    fn a_linear_series_gives_its_slope_and_crossing_exactly() {
        // A disk filling by 0.01 a minute from 0.5, sampled every minute for two hours.
        let per_s = 0.01 / 60.0;
        let fit = Fit::new(line(per_s, 0.5, 60_000, 120)).unwrap();
        assert!((fit.slope_per_s - per_s).abs() < 1e-12, "{fit:?}");
        let now = T0 + 119 * 60_000;
        assert!((fit.value_at(now) - (0.5 + 0.01 * 119.0)).abs() < 1e-9);
        // At 1.69 now; 1.99 is 30 minutes away.
        let Eta::In(eta) = fit.eta(Threshold::Above(1.99), now) else {
            panic!("{:?}", fit.eta(Threshold::Above(1.99), now))
        };
        assert!((eta.as_secs_f64() - 1800.0).abs() < 1e-3, "{eta:?}");
        assert_eq!(fit.eta(Threshold::Above(1.0), now), Eta::Reached);
        // Falling free space reaches a floor the same way.
        let free = Fit::new(line(-2.0, 1000.0, 10_000, 50)).unwrap();
        let now = T0 + 490_000;
        let Eta::In(eta) = free.eta(Threshold::Below(0.0), now) else {
            panic!("falling reaches zero")
        };
        assert!((eta.as_secs_f64() - 10.0).abs() < 1e-6, "{eta:?}");
    }

    #[test]
    fn a_flat_or_falling_series_never_rises_to_a_threshold() {
        let now = T0 + 3_600_000;
        let flat = Fit::new(line(0.0, 0.7, 60_000, 60)).unwrap();
        assert_eq!(flat.slope_per_s, 0.0);
        assert_eq!(flat.eta(Threshold::Above(0.95), now), Eta::Never);
        let falling = Fit::new(line(-0.001, 0.7, 60_000, 60)).unwrap();
        assert_eq!(falling.eta(Threshold::Above(0.95), now), Eta::Never);
        let rising = Fit::new(line(0.001, 0.7, 60_000, 60)).unwrap();
        assert_eq!(rising.eta(Threshold::Below(0.0), now), Eta::Never);
    }

    #[test]
    fn too_few_points_fit_no_line() {
        assert_eq!(Fit::new([]), None);
        assert_eq!(Fit::new([(T0, 1.0)]), None);
        assert_eq!(Fit::new([(T0, 1.0), (T0, 2.0)]), None);
        assert_eq!(Fit::new([(T0, 1.0), (T0 + 1, f64::NAN)]), None);
    }

    #[test]
    fn means_are_taken_at_the_middle_of_their_step() {
        let points: Vec<Point> = (0..10u64)
            .map(|i| Point {
                at_ms: T0 + i * 60_000,
                count: 6,
                min: 0.0,
                max: 0.0,
                mean: i as f64,
                last: 0.0,
                increase: None,
            })
            .collect();
        let fit = Fit::of_means(&points, 60_000).unwrap();
        assert!((fit.slope_per_s - 1.0 / 60.0).abs() < 1e-12);
        assert!((fit.value_at(T0 + 30_000) - 0.0).abs() < 1e-9);
    }
}
