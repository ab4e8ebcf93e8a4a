//! What the engine takes from the configuration: chains, channels, routes
//! and its timings, in milliseconds.

use std::collections::BTreeMap;

use super::silence::{Matcher, Weekly};
use super::{Ms, Severity};
use crate::config::Config;

/// An escalation chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// Levels, by non-decreasing `after_ms`.
    pub levels: Vec<Level>,
    /// Repeat the last level reached this often until acknowledged.
    pub repeat_ms: Option<Ms>,
}

/// One level of a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Counted time after which it is reached.
    pub after_ms: Ms,
    /// Channels told.
    pub channels: Vec<String>,
}

/// A route: alerts that match it, raised while it is in effect, climb its
/// chain instead of their own. The first route that matches wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Which alerts.
    pub matcher: Matcher,
    /// When, in local time; always when `None`.
    pub during: Option<Weekly>,
    /// The chain.
    pub escalation: String,
}

/// The engine's settings. See the [module documentation](super).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages wait this long for others to leave with them.
    pub group_wait_ms: Ms,
    /// Raises within `flap_window_ms` that make an alert flap.
    pub flap_count: usize,
    /// See `flap_count`; also how long a flapping alert must stay steady.
    pub flap_window_ms: Ms,
    /// Resolved alerts are listed this long, then forgotten.
    pub keep_resolved_ms: Ms,
    /// A target still failing when its dependency recovers gets this long
    /// to heal before its alert goes out.
    pub release_grace_ms: Ms,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Channels by name: the least severity each is sent.
    pub channels: BTreeMap<String, Severity>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
    /// The chain of notices about no target and of the watchdog's own alerts.
    pub default_escalation: Option<String>,
    /// Send resolutions (a policy may say otherwise for its target).
    pub notify_resolved: bool,
    /// Targets whose policy says `notify-resolved = false`.
    pub quiet_resolutions: Vec<String>,
    /// Channels told of every resolution whatever `notify-resolved` says
    /// (Alertmanager: an alert it is not told has ended stays firing until
    /// its `endsAt`).
    pub always_resolved: Vec<String>,
    /// Local time, for routes and recurring maintenance.
    pub zone: jiff::tz::TimeZone,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            group_wait_ms: 10_000,
            flap_count: 4,
            flap_window_ms: 600_000,
            keep_resolved_ms: 86_400_000,
            release_grace_ms: 60_000,
            chains: BTreeMap::new(),
            channels: BTreeMap::new(),
            routes: Vec::new(),
            default_escalation: None,
            notify_resolved: true,
            quiet_resolutions: Vec::new(),
            always_resolved: Vec::new(),
            zone: jiff::tz::TimeZone::UTC,
        }
    }
}

fn ms(d: std::time::Duration) -> Ms {
    d.as_millis() as Ms
}

impl Settings {
    /// The settings of a configuration.
    pub fn from_config(config: &Config) -> Settings {
        let a = &config.alerts;
        Settings {
            group_wait_ms: ms(a.group_wait),
            flap_count: a.flap_count,
            flap_window_ms: ms(a.flap_window),
            keep_resolved_ms: ms(a.keep_resolved),
            release_grace_ms: ms(a.release_grace),
            chains: config
                .escalations
                .iter()
                .map(|(name, e)| {
                    let chain = Chain {
                        levels: e
                            .levels
                            .iter()
                            .map(|l| Level {
                                after_ms: ms(l.after),
                                channels: l.channels.clone(),
                            })
                            .collect(),
                        repeat_ms: e.repeat.map(ms),
                    };
                    (name.clone(), chain)
                })
                .collect(),
            channels: config
                .channels
                .iter()
                .map(|(name, c)| (name.clone(), c.min_severity))
                .collect(),
            routes: a
                .routes
                .iter()
                .map(|r| Route {
                    matcher: Matcher {
                        target: r.target.clone(),
                        name: r.name.clone(),
                        severity: r.severity,
                    },
                    // `check` refused a `during` that cannot be read.
                    during: r.during.as_deref().and_then(|d| Weekly::parse(d).ok()),
                    escalation: r.escalation.clone(),
                })
                .collect(),
            default_escalation: a.default_escalation.clone(),
            notify_resolved: a.notify_resolved,
            quiet_resolutions: config
                .targets
                .iter()
                .filter(|t| !t.alert.notify_resolved)
                .map(|t| t.name.clone())
                .collect(),
            always_resolved: config
                .channels
                .iter()
                .filter(|(_, c)| matches!(c.kind, crate::config::ChannelKind::Alertmanager { .. }))
                .map(|(name, _)| name.clone())
                .collect(),
            zone: match &a.time_zone {
                Some(name) => jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC),
                None => jiff::tz::TimeZone::system(),
            },
        }
    }

    /// Whether the resolution of an alert about `target` is sent.
    pub fn resolutions_for(&self, target: Option<&str>) -> bool {
        match target {
            Some(t) if self.quiet_resolutions.iter().any(|q| q == t) => false,
            _ => self.notify_resolved,
        }
    }
}
