//! From outcomes to a probe's health: N failures in a row to turn failing,
//! M passes in a row to turn passing again. Pure.

use serde::Serialize;

use super::Status;

/// A probe's health after hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeHealth {
    /// Not enough runs yet.
    #[default]
    Unknown,
    /// Passing (warnings included).
    Passing,
    /// Failing.
    Failing,
}

impl ProbeHealth {
    /// `unknown`, `passing` or `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeHealth::Unknown => "unknown",
            ProbeHealth::Passing => "passing",
            ProbeHealth::Failing => "failing",
        }
    }
}

/// Counts consecutive results.
#[derive(Debug, Clone, Default)]
pub struct Hysteresis {
    fail_after: u32,
    pass_after: u32,
    failures: u32,
    passes: u32,
    /// The health now.
    pub health: ProbeHealth,
}

impl Hysteresis {
    /// Turns failing after `fail_after` failures in a row and passing after
    /// `pass_after` passes in a row. From unknown, one result decides.
    pub fn new(fail_after: u32, pass_after: u32) -> Self {
        Hysteresis {
            fail_after: fail_after.max(1),
            pass_after: pass_after.max(1),
            ..Hysteresis::default()
        }
    }

    /// Takes one outcome; returns the new health when it changed.
    pub fn observe(&mut self, status: Status) -> Option<ProbeHealth> {
        let before = self.health;
        if status == Status::Fail {
            self.failures += 1;
            self.passes = 0;
            if self.failures >= self.fail_after {
                self.health = ProbeHealth::Failing;
            }
        } else {
            self.passes += 1;
            self.failures = 0;
            if self.health == ProbeHealth::Unknown || self.passes >= self.pass_after {
                self.health = ProbeHealth::Passing;
            }
        }
        (self.health != before).then_some(self.health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Fail, Pass, Warn};

    #[test]
    fn fail_fail_pass_fail_fail_fail_turns_failing_exactly_once() {
        let mut h = Hysteresis::new(3, 2);
        let changes: Vec<Option<ProbeHealth>> = [Fail, Fail, Pass, Fail, Fail, Fail]
            .iter()
            .map(|s| h.observe(*s))
            .collect();
        assert_eq!(
            changes,
            [
                None,
                None,
                Some(ProbeHealth::Passing),
                None,
                None,
                Some(ProbeHealth::Failing)
            ]
        );
        assert_eq!(
            changes
                .iter()
                .filter(|c| **c == Some(ProbeHealth::Failing))
                .count(),
            1
        );
    }

    #[test]
    fn passing_again_needs_pass_after_in_a_row_and_warn_counts_as_pass() {
        let mut h = Hysteresis::new(1, 3);
        assert_eq!(h.observe(Fail), Some(ProbeHealth::Failing));
        assert_eq!(h.observe(Pass), None);
        assert_eq!(h.observe(Warn), None);
        assert_eq!(h.observe(Fail), None, "a failure starts the count over");
        assert_eq!(h.observe(Pass), None);
        assert_eq!(h.observe(Pass), None);
        assert_eq!(h.observe(Warn), Some(ProbeHealth::Passing));
    }
}
