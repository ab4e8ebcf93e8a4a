//! Delays between attempts: exponential, capped, jittered.

use std::time::Duration;

use crate::config::Backoff;

/// The delay before attempt `attempt` (1-based) of a step: `initial ×
/// factor^(attempt-1)`, capped at `max`, then spread by ±`jitter` using
/// `u` (a uniform sample in `[0, 1)`; 0.5 means no spread). Never above
/// `max`, never below zero.
pub fn delay(backoff: &Backoff, attempt: u32, u: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(64) as i32;
    let base = backoff.initial.as_secs_f64() * backoff.factor.powi(exponent);
    let capped = base.min(backoff.max.as_secs_f64());
    let spread = 1.0 + backoff.jitter * (2.0 * u.clamp(0.0, 1.0) - 1.0);
    let jittered = (capped * spread).clamp(0.0, backoff.max.as_secs_f64());
    Duration::from_secs_f64(jittered)
}

/// A small, fast source of uniform samples for jitter (xorshift64*): jitter
/// only needs to keep many machines from acting in step, not to be secret.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded; a zero seed is replaced.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A sample in `[0, 1)`.
    pub fn sample(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(initial: u64, factor: f64, max: u64, jitter: f64) -> Backoff {
        Backoff {
            initial: Duration::from_secs(initial),
            factor,
            max: Duration::from_secs(max),
            jitter,
        }
    }

    #[test]
    fn grows_by_the_factor_up_to_the_cap() {
        let b = backoff(2, 2.0, 60, 0.0);
        let delays: Vec<u64> = (1..=7).map(|a| delay(&b, a, 0.9).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn jitter_spreads_within_bounds_and_never_past_the_cap() {
        let b = backoff(10, 1.0, 100, 0.2);
        assert_eq!(delay(&b, 1, 0.5), Duration::from_secs(10));
        assert_eq!(delay(&b, 1, 0.0), Duration::from_secs(8));
        assert!((delay(&b, 1, 0.999_999).as_secs_f64() - 12.0).abs() < 0.001);
        let capped = backoff(10, 1.0, 10, 0.5);
        assert_eq!(delay(&capped, 1, 0.999), Duration::from_secs(10));
    }

    #[test]
    fn samples_are_uniform_enough() {
        let mut j = Jitter::new(42);
        let samples: Vec<f64> = (0..10_000).map(|_| j.sample()).collect();
        assert!(samples.iter().all(|s| (0.0..1.0).contains(s)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
