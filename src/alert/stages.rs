//! The stages every message goes through before it leaves, in order:
//! inhibit → silence → ack → route → dedup. Each is a small type with one
//! question; the first that says no drops the message and names itself.
//! [`pipeline`] is the list, read top to bottom.

use std::collections::BTreeMap;

use super::settings::Settings;
use super::silence::{Maintenance, Silence};
use super::{Alert, Item, Ms, Told, Why};

/// A message the engine would send: about an alert (or a notice, whose
/// item is all there is), why, and — once routed — to which channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The alert or notice, as it stood when the message was made.
    pub item: Item,
    /// The chain it climbs (a notice: whose first level is told).
    pub escalation: Option<String>,
    /// Set by [`Route`].
    pub channels: Vec<String>,
}

/// What the stages read.
pub struct Ctx<'a> {
    /// The settings.
    pub settings: &'a Settings,
    /// Alerts by fingerprint.
    pub alerts: &'a BTreeMap<String, Alert>,
    /// Silences by id.
    pub silences: &'a BTreeMap<String, Silence>,
    /// Maintenance windows by id.
    pub maintenance: &'a BTreeMap<String, Maintenance>,
    /// Now.
    pub now: Ms,
}

impl Ctx<'_> {
    /// The alert a candidate is about (a notice has none).
    fn alert(&self, c: &Candidate) -> Option<&Alert> {
        match c.item.why {
            Why::Notice => None,
            _ => self.alerts.get(&c.item.fingerprint),
        }
    }

    /// What mutes an alert or notice now, if anything: for people.
    pub fn muted_by(&self, item: &Item) -> Option<String> {
        let (name, target, severity) = (&item.name, item.target.as_deref(), item.severity);
        if let Some(s) = self
            .silences
            .values()
            .find(|s| s.active(self.now) && s.matcher.matches_parts(name, target, severity))
        {
            return Some(format!("silence {}", s.id));
        }
        self.maintenance
            .values()
            .find(|m| {
                m.active(self.now, &self.settings.zone)
                    && m.matcher.matches_parts(name, target, severity)
            })
            .map(|m| format!("maintenance {}", m.id))
    }
}

/// One stage: passes the candidate on (perhaps changed) or says why not.
pub trait Stage {
    /// Its name, for logs and counters.
    fn name(&self) -> &'static str;
    /// Its answer.
    fn apply(&self, ctx: &Ctx<'_>, c: Candidate) -> Result<Candidate, &'static str>;
}

/// The stages, in order.
pub fn pipeline() -> Vec<Box<dyn Stage + Send + Sync>> {
    vec![
        Box::new(Inhibit),
        Box::new(Mute),
        Box::new(Acked),
        Box::new(Route),
        Box::new(Dedup),
    ]
}

/// Runs `c` through `stages`: the routed candidate, or the stage that
/// dropped it and why.
pub fn run(
    stages: &[Box<dyn Stage + Send + Sync>],
    ctx: &Ctx<'_>,
    mut c: Candidate,
) -> Result<Candidate, (&'static str, &'static str)> {
    for s in stages {
        c = s.apply(ctx, c).map_err(|why| (s.name(), why))?;
    }
    Ok(c)
}

/// A dependency is the root cause, or the alert flaps: only resolutions
/// (and the flapping notice) pass.
pub struct Inhibit;

impl Stage for Inhibit {
    fn name(&self) -> &'static str {
        "inhibit"
    }
    fn apply(&self, ctx: &Ctx<'_>, c: Candidate) -> Result<Candidate, &'static str> {
        let Some(a) = ctx.alert(&c) else {
            return Ok(c);
        };
        match c.item.why {
            Why::Resolved | Why::Flapping | Why::Suppressed => Ok(c),
            _ if a.suppressed_by.is_some() => Err("suppressed by a failing dependency"),
            _ if a.flapping => Err("held while it flaps"),
            _ => Ok(c),
        }
    }
}

/// A silence or a maintenance window mutes it; never a resolution, nor the
/// notices that maintenance began or ended.
pub struct Mute;

impl Stage for Mute {
    fn name(&self) -> &'static str {
        "silence"
    }
    fn apply(&self, ctx: &Ctx<'_>, c: Candidate) -> Result<Candidate, &'static str> {
        if c.item.why == Why::Resolved || c.item.name.starts_with("maintenance-") {
            return Ok(c);
        }
        match ctx.muted_by(&c.item) {
            Some(_) => Err("muted by a silence or maintenance"),
            None => Ok(c),
        }
    }
}

/// Someone acknowledged it: the climb and the repeats stop.
pub struct Acked;

impl Stage for Acked {
    fn name(&self) -> &'static str {
        "ack"
    }
    fn apply(&self, ctx: &Ctx<'_>, c: Candidate) -> Result<Candidate, &'static str> {
        match (ctx.alert(&c), c.item.why) {
            (Some(a), Why::Escalated { .. } | Why::Repeat) if a.ack.is_some() => {
                Err("acknowledged")
            }
            _ => Ok(c),
        }
    }
}

/// Picks the channels: the chain's levels reached (a resolution: every
/// channel told of the alert), each channel only from its least severity.
pub struct Route;

impl Stage for Route {
    fn name(&self) -> &'static str {
        "route"
    }
    fn apply(&self, ctx: &Ctx<'_>, mut c: Candidate) -> Result<Candidate, &'static str> {
        let alert = ctx.alert(&c);
        let chain = c
            .escalation
            .as_ref()
            .and_then(|e| ctx.settings.chains.get(e));
        let levels = |upto: usize| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for l in chain
                .map(|ch| ch.levels.as_slice())
                .unwrap_or(&[])
                .iter()
                .take(upto + 1)
            {
                for name in &l.channels {
                    if !out.contains(name) {
                        out.push(name.clone());
                    }
                }
            }
            out
        };
        let reached = alert.and_then(|a| a.level).unwrap_or(0);
        let mut channels = match c.item.why {
            Why::Resolved => {
                let quiet = !ctx.settings.resolutions_for(c.item.target.as_deref());
                let told = alert.map(|a| &a.told);
                let channels: Vec<String> = told
                    .into_iter()
                    .flatten()
                    .filter(|(_, t)| !t.resolved)
                    .map(|(ch, _)| ch.clone())
                    .filter(|ch| !quiet || ctx.settings.always_resolved.contains(ch))
                    .collect();
                c.channels = channels;
                return if !c.channels.is_empty() {
                    Ok(c)
                } else if quiet {
                    Err("resolutions are not sent for it (notify-resolved = false)")
                } else {
                    Err("no channel was told of it")
                };
            }
            Why::Firing | Why::Flapping | Why::Suppressed => levels(reached),
            Why::Escalated { level } => levels(level),
            Why::Repeat => match chain.and_then(|ch| ch.levels.get(reached)) {
                Some(l) => l.channels.clone(),
                None => Vec::new(),
            },
            Why::Notice => levels(0),
        };
        let severity = c.item.severity;
        channels.retain(|ch| {
            ctx.settings
                .channels
                .get(ch)
                .is_none_or(|least| severity >= *least)
        });
        if channels.is_empty() {
            return Err(if chain.is_none() {
                "no escalation chain"
            } else {
                "no channel takes this severity"
            });
        }
        c.channels = channels;
        Ok(c)
    }
}

/// Whether a channel that was told `told` of an alert needs this message:
/// the dedup rule, in one place.
pub fn needs_notify(told: Option<&Told>, why: Why, repeat_ms: Option<Ms>, now: Ms) -> bool {
    match why {
        Why::Firing | Why::Escalated { .. } => {
            told.is_none_or(|t| (t.flapping || t.suppressed) && !t.resolved)
        }
        Why::Repeat => match (told, repeat_ms) {
            (Some(t), Some(r)) => !t.resolved && t.at.saturating_add(r) <= now,
            _ => false,
        },
        Why::Resolved => told.is_some_and(|t| !t.resolved),
        Why::Flapping => told.is_none_or(|t| !t.flapping),
        Why::Suppressed => told.is_none(),
        Why::Notice => true,
    }
}

/// Drops the channels already told (see [`needs_notify`]), and messages
/// about an alert that resolved before they left.
pub struct Dedup;

impl Stage for Dedup {
    fn name(&self) -> &'static str {
        "dedup"
    }
    fn apply(&self, ctx: &Ctx<'_>, mut c: Candidate) -> Result<Candidate, &'static str> {
        let Some(a) = ctx.alert(&c) else {
            return Ok(c);
        };
        if matches!(
            c.item.why,
            Why::Firing | Why::Escalated { .. } | Why::Repeat
        ) && !a.state.is_open()
        {
            return Err("resolved before it was sent");
        }
        let repeat = a
            .escalation
            .as_ref()
            .and_then(|e| ctx.settings.chains.get(e))
            .and_then(|ch| ch.repeat_ms);
        c.channels
            .retain(|ch| needs_notify(a.told.get(ch), c.item.why, repeat, ctx.now));
        if c.channels.is_empty() {
            Err("every channel was already told")
        } else {
            Ok(c)
        }
    }
}
