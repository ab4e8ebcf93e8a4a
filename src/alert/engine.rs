//! The engine: all alert state, and every decision as a function of that
//! state, an input and `now`. It performs nothing: it returns [`Effect`]s
//! (save this alert, hand on this notification, log this change) for the
//! task to carry out.

use std::collections::{BTreeMap, BTreeSet};

use super::settings::Settings;
use super::silence::{Maintenance, Matcher, Schedule, Silence};
use super::stages::{self, Candidate, Ctx, Stage};
use super::{
    Ack, Alert, AlertState, Item, Ms, Notice, Notification, Raise, Severity, Signal, Told, Why,
    fingerprint,
};

/// What the task must do after an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Save this alert (it changed).
    Save(String),
    /// Forget this alert.
    Forget(String),
    /// Save this silence.
    SaveSilence(String),
    /// Forget this silence (it expired).
    ForgetSilence(String),
    /// Save this maintenance window.
    SaveMaintenance(String),
    /// Forget this maintenance window.
    ForgetMaintenance(String),
    /// Hand this to the delivery queue.
    Notify(Notification),
    /// Say this in the journal.
    Log(Change),
    /// A message went no further: which stage, why.
    Dropped {
        /// The alert or notice.
        fingerprint: String,
        /// Why it was made.
        why: Why,
        /// The stage that dropped it.
        stage: &'static str,
        /// Why, for people.
        reason: &'static str,
    },
}

/// A change of an alert, for the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The alert (or notice, or window).
    pub fingerprint: String,
    /// Its name.
    pub name: String,
    /// Its target.
    pub target: Option<String>,
    /// Its severity.
    pub severity: Severity,
    /// What happened: `pending`, `firing`, `acknowledged`, `unacknowledged`,
    /// `resolved`, `suppressed`, `released`, `flapping`, `steady`,
    /// `silenced`, `silence-expired`, `maintenance-started`,
    /// `maintenance-ended`, `notified`.
    pub what: &'static str,
    /// One line for people.
    pub detail: String,
}

/// Why an operator's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No such alert.
    #[error("no alert {0}")]
    NoAlert(String),
    /// It is resolved.
    #[error("alert {0} is resolved")]
    Resolved(String),
    /// It is not acknowledged.
    #[error("alert {0} is not acknowledged")]
    NotAcknowledged(String),
    /// No such silence or window.
    #[error("no {0} {1}")]
    NoSuch(&'static str, String),
    /// A bad request.
    #[error("{0}")]
    Bad(String),
}

/// Messages waiting for others to leave with them.
#[derive(Debug, Default)]
struct Group {
    since: Option<Ms>,
    items: Vec<Candidate>,
}

/// The alert engine. See the [module documentation](super).
pub struct Engine {
    settings: Settings,
    stages: Vec<Box<dyn Stage + Send + Sync>>,
    alerts: BTreeMap<String, Alert>,
    silences: BTreeMap<String, Silence>,
    maintenance: BTreeMap<String, Maintenance>,
    /// Windows in effect at the last tick.
    in_effect: BTreeSet<String>,
    /// Targets waiting for a failing dependency: the dependency.
    held: BTreeMap<String, String>,
    /// Targets' open incidents.
    incidents: BTreeMap<String, String>,
    group: Group,
    /// Notices by fingerprint: when one was last sent, and how many like
    /// it were folded since.
    notices: BTreeMap<String, (Ms, u64)>,
    /// Ids handed out (silences, windows).
    made: u64,
}

impl Engine {
    /// An engine with nothing open.
    pub fn new(settings: Settings) -> Engine {
        Engine {
            settings,
            stages: stages::pipeline(),
            alerts: BTreeMap::new(),
            silences: BTreeMap::new(),
            maintenance: BTreeMap::new(),
            in_effect: BTreeSet::new(),
            held: BTreeMap::new(),
            incidents: BTreeMap::new(),
            group: Group::default(),
            notices: BTreeMap::new(),
            made: 0,
        }
    }

    /// An engine resuming what was saved: the alerts (their chain position
    /// and what each channel was told), silences and windows. Levels handed
    /// on but not yet told are handed on again; channels told are not told
    /// again.
    pub fn restore(
        settings: Settings,
        alerts: Vec<Alert>,
        silences: Vec<Silence>,
        maintenance: Vec<Maintenance>,
        now: Ms,
    ) -> Engine {
        let mut e = Engine::new(settings);
        for mut a in alerts {
            // A level counts as reached once every channel of it was told.
            a.level = e.told_level(&a);
            e.alerts.insert(a.fingerprint.clone(), a);
        }
        for s in silences {
            e.silences.insert(s.id.clone(), s);
        }
        for m in maintenance {
            if m.active(now, &e.settings.zone) {
                e.in_effect.insert(m.id.clone());
            }
            e.maintenance.insert(m.id.clone(), m);
        }
        e.made = now;
        e
    }

    /// The highest level of `a`'s chain whose channels were all told.
    fn told_level(&self, a: &Alert) -> Option<usize> {
        let chain = a
            .escalation
            .as_ref()
            .and_then(|c| self.settings.chains.get(c))?;
        let mut reached = None;
        for (i, l) in chain.levels.iter().enumerate() {
            let told = |ch: &String| a.told.get(ch).is_some_and(|t| !t.suppressed);
            if !l.channels.is_empty() && l.channels.iter().all(told) {
                reached = Some(i);
            } else {
                break;
            }
        }
        reached
    }

    /// New settings (a reload): open alerts keep their chain by name.
    pub fn reconfigure(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every alert, by fingerprint.
    pub fn alerts(&self) -> &BTreeMap<String, Alert> {
        &self.alerts
    }

    /// One alert.
    pub fn alert(&self, fingerprint: &str) -> Option<&Alert> {
        self.alerts.get(fingerprint)
    }

    /// Every silence, by id.
    pub fn silences(&self) -> &BTreeMap<String, Silence> {
        &self.silences
    }

    /// Every maintenance window, by id.
    pub fn maintenance(&self) -> &BTreeMap<String, Maintenance> {
        &self.maintenance
    }

    /// Feeds one signal.
    pub fn signal(&mut self, signal: Signal, now: Ms) -> Vec<Effect> {
        let mut out = Vec::new();
        match signal {
            Signal::Raise(r) => self.raise(r, now, &mut out),
            Signal::Clear {
                name,
                target,
                labels,
            } => {
                let fp = fingerprint(&name, target.as_deref(), &labels);
                self.clear(&fp, now, &mut out);
                if let Some(t) = target {
                    self.release_dependents(&t, now, &mut out);
                }
            }
            Signal::Notice(n) => self.notice(n, now, &mut out),
            Signal::Held { target, by } => {
                self.held.insert(target.clone(), by.clone());
                let fps: Vec<String> = self
                    .alerts
                    .values()
                    .filter(|a| {
                        a.state.is_open()
                            && a.target.as_deref() == Some(target.as_str())
                            && a.suppressed_by.is_none()
                            && a.told.is_empty()
                    })
                    .map(|a| a.fingerprint.clone())
                    .collect();
                for fp in fps {
                    self.suppress(&fp, &by, now, &mut out);
                }
            }
            Signal::Released { target } => {
                self.held.remove(&target);
                let fps: Vec<String> = self
                    .alerts
                    .values()
                    .filter(|a| a.target.as_deref() == Some(target.as_str()))
                    .map(|a| a.fingerprint.clone())
                    .collect();
                for fp in fps {
                    self.unsuppress(&fp, now, &mut out);
                }
            }
            Signal::Incident { target, id } => match id {
                Some(id) => {
                    self.incidents.insert(target, id);
                }
                None => {
                    self.incidents.remove(&target);
                }
            },
        }
        self.flush(now, &mut out);
        out
    }

    /// Lets time pass: delays end, levels are reached, repeats fall due,
    /// silences expire, windows open and close, flapping alerts settle,
    /// groups leave, old resolved alerts are forgotten.
    pub fn tick(&mut self, now: Ms) -> Vec<Effect> {
        let mut out = Vec::new();
        let expired: Vec<String> = self
            .silences
            .values()
            .filter(|s| s.ends_at <= now)
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            if let Some(s) = self.silences.remove(&id) {
                out.push(Effect::ForgetSilence(id.clone()));
                out.push(Effect::Log(Change {
                    fingerprint: id.clone(),
                    name: "silence".into(),
                    target: s.matcher.target.clone(),
                    severity: Severity::Info,
                    what: "silence-expired",
                    detail: format!("silence {id} ({}) expired", s.matcher.describe()),
                }));
            }
        }
        self.windows(now, &mut out);
        let fps: Vec<String> = self.alerts.keys().cloned().collect();
        for fp in fps {
            self.steady(&fp, now, &mut out);
            self.settle(&fp, now, &mut out);
        }
        let keep = self.settings.keep_resolved_ms;
        let old: Vec<String> = self
            .alerts
            .values()
            .filter(|a| {
                !a.state.is_open()
                    && !a.flapping
                    && a.resolved_at.is_some_and(|r| r + keep <= now)
                    && !self
                        .group
                        .items
                        .iter()
                        .any(|c| c.item.fingerprint == a.fingerprint)
            })
            .map(|a| a.fingerprint.clone())
            .collect();
        for fp in old {
            self.alerts.remove(&fp);
            out.push(Effect::Forget(fp));
        }
        let window = self.settings.flap_window_ms;
        self.notices
            .retain(|_, (at, folded)| now < *at + window || *folded > 0);
        self.flush(now, &mut out);
        out
    }

    /// Opens or renews the alert a raise names.
    fn raise(&mut self, r: Raise, now: Ms, out: &mut Vec<Effect>) {
        let fp = fingerprint(&r.name, r.target.as_deref(), &r.labels);
        let window = self.settings.flap_window_ms;
        if let Some(a) = self.alerts.get_mut(&fp)
            && a.state.is_open()
        {
            a.occurrences += 1;
            let mut changed = false;
            if a.summary != r.summary {
                a.summary = r.summary;
                changed = true;
            }
            if r.severity > a.severity {
                a.severity = r.severity;
                changed = true;
            }
            if changed {
                out.push(Effect::Save(fp.clone()));
            }
            return;
        }
        let previous = self.alerts.remove(&fp);
        let mut raises: Vec<Ms> = previous
            .as_ref()
            .map(|p| p.raises.clone())
            .unwrap_or_default();
        raises.retain(|t| t + window > now);
        raises.push(now);
        // Only the last `flap_count` raises matter.
        let keep = self.settings.flap_count.max(2);
        if raises.len() > keep {
            raises.drain(..raises.len() - keep);
        }
        let was_flapping = previous.as_ref().is_some_and(|p| p.flapping);
        let flapping = was_flapping || raises.len() >= self.settings.flap_count.max(2);
        let suppressed_by = r
            .root_cause
            .clone()
            .or_else(|| r.target.as_ref().and_then(|t| self.held.get(t).cloned()));
        let escalation = self.route(&r.name, r.target.as_deref(), r.severity, r.escalation, now);
        let incident = r
            .target
            .as_ref()
            .and_then(|t| self.incidents.get(t).cloned());
        let mut a = Alert {
            fingerprint: fp.clone(),
            name: r.name,
            target: r.target,
            labels: r.labels,
            severity: r.severity,
            summary: r.summary,
            state: if r.delay_ms > 0 {
                AlertState::Pending
            } else {
                AlertState::Firing
            },
            started_at: now,
            fire_at: now + r.delay_ms,
            resolved_at: None,
            ack: None,
            suppressed_by,
            escalation,
            incident,
            level: None,
            counted_ms: 0,
            counting_since: None,
            told: BTreeMap::new(),
            occurrences: 1,
            raises,
            flapping,
        };
        // A flapping alert keeps what its channels were told of the flapping.
        if was_flapping && let Some(p) = &previous {
            a.told = p.told.clone();
            a.level = p.level;
        }
        let what = if a.state == AlertState::Pending {
            "pending"
        } else {
            "firing"
        };
        out.push(log(&a, what, a.summary.clone()));
        if let Some(by) = &a.suppressed_by {
            out.push(log(
                &a,
                "suppressed",
                format!("suppressed by {by}, its root cause"),
            ));
        }
        if flapping && !was_flapping {
            out.push(log(
                &a,
                "flapping",
                format!(
                    "raised {} times within {}: held as flapping until steady",
                    a.raises.len(),
                    super::human(window)
                ),
            ));
            let c = self.candidate(&a, Why::Flapping);
            self.hold(c, now);
        }
        out.push(Effect::Save(fp.clone()));
        self.alerts.insert(fp.clone(), a);
        self.settle(&fp, now, out);
    }

    /// Resolves an alert.
    fn clear(&mut self, fp: &str, now: Ms, out: &mut Vec<Effect>) {
        let Some(a) = self.alerts.get_mut(fp) else {
            return;
        };
        if !a.state.is_open() {
            return;
        }
        a.state = AlertState::Resolved;
        a.resolved_at = Some(now);
        if let Some(s) = a.counting_since.take() {
            a.counted_ms += now.saturating_sub(s);
        }
        let lasted = now.saturating_sub(a.started_at);
        out.push(log(
            a,
            "resolved",
            format!("resolved after {}", super::human(lasted)),
        ));
        out.push(Effect::Save(fp.to_owned()));
        if !a.flapping {
            let c = self.candidate(&self.alerts[fp], Why::Resolved);
            self.hold(c, now);
        }
    }

    /// The dependency `target` recovered: alerts it suppressed may be sent.
    fn release_dependents(&mut self, target: &str, now: Ms, out: &mut Vec<Effect>) {
        let fps: Vec<String> = self
            .alerts
            .values()
            .filter(|a| a.suppressed_by.as_deref() == Some(target))
            .map(|a| a.fingerprint.clone())
            .collect();
        self.held.retain(|_, by| by != target);
        for fp in fps {
            self.unsuppress(&fp, now, out);
        }
    }

    fn suppress(&mut self, fp: &str, by: &str, now: Ms, out: &mut Vec<Effect>) {
        if let Some(a) = self.alerts.get_mut(fp) {
            a.suppressed_by = Some(by.to_owned());
            out.push(log(
                a,
                "suppressed",
                format!("suppressed by {by}, its root cause"),
            ));
            out.push(Effect::Save(fp.to_owned()));
        }
        self.settle(fp, now, out);
    }

    fn unsuppress(&mut self, fp: &str, now: Ms, out: &mut Vec<Effect>) {
        let Some(a) = self.alerts.get_mut(fp) else {
            return;
        };
        let Some(by) = a.suppressed_by.take() else {
            return;
        };
        if a.state.is_open() {
            let grace = self.settings.release_grace_ms;
            let detail = if a.told.values().all(|t| t.suppressed) && grace > 0 && a.ack.is_none() {
                // It gets a chance to heal now that its dependency is back.
                a.state = AlertState::Pending;
                a.fire_at = a.fire_at.max(now + grace);
                format!(
                    "{by} recovered: no longer suppressed; sent if still failing in {}",
                    super::human(grace)
                )
            } else {
                format!("{by} recovered: no longer suppressed")
            };
            out.push(log(a, "released", detail));
        }
        out.push(Effect::Save(fp.to_owned()));
        self.settle(fp, now, out);
    }

    /// A notice: routed like an alert, once.
    fn notice(&mut self, n: Notice, now: Ms, out: &mut Vec<Effect>) {
        let escalation = self.route(
            &n.name,
            n.target.as_deref(),
            n.severity,
            n.escalation
                .or_else(|| self.settings.default_escalation.clone()),
            now,
        );
        let fp = fingerprint(&n.name, n.target.as_deref(), &BTreeMap::new());
        // The same notice again within the flap window is folded into the
        // next one (a crash-looping service is restarted over and over).
        let window = self.settings.flap_window_ms;
        let mut summary = n.summary;
        let foldable = !n.name.starts_with("maintenance-");
        match self.notices.get_mut(&fp) {
            Some((at, folded)) if foldable && now < *at + window => {
                *folded += 1;
                out.push(Effect::Dropped {
                    fingerprint: fp,
                    why: Why::Notice,
                    stage: "fold",
                    reason: "the same notice was sent within the flap window",
                });
                return;
            }
            Some((_, folded)) if *folded > 0 => {
                summary.push_str(&format!(
                    " (and {folded} more like it before, within {} of each other)",
                    super::human(window)
                ));
            }
            _ => {}
        }
        self.notices.insert(fp.clone(), (now, 0));
        let item = Item {
            fingerprint: fp,
            why: Why::Notice,
            name: n.name,
            target: n.target,
            labels: BTreeMap::new(),
            severity: n.severity,
            summary,
            started_at: now,
            resolved_at: None,
            incident: None,
            suppressed_by: None,
        };
        out.push(Effect::Log(Change {
            fingerprint: item.fingerprint.clone(),
            name: item.name.clone(),
            target: item.target.clone(),
            severity: item.severity,
            what: "notice",
            detail: item.summary.clone(),
        }));
        self.hold(
            Candidate {
                item,
                escalation,
                channels: Vec::new(),
            },
            now,
        );
    }

    /// The chain an alert raised now climbs: the first route that matches
    /// and is in effect, else its own.
    fn route(
        &self,
        name: &str,
        target: Option<&str>,
        severity: Severity,
        own: Option<String>,
        now: Ms,
    ) -> Option<String> {
        self.settings
            .routes
            .iter()
            .find(|r| {
                r.matcher.matches_parts(name, target, severity)
                    && r.during
                        .as_ref()
                        .is_none_or(|w| w.active(now, &self.settings.zone))
            })
            .map(|r| r.escalation.clone())
            .or(own)
    }

    /// A flapping alert steady for the window stops flapping: its channels
    /// learn where it ended (resolved, or firing).
    fn steady(&mut self, fp: &str, now: Ms, out: &mut Vec<Effect>) {
        let window = self.settings.flap_window_ms;
        let Some(a) = self.alerts.get_mut(fp) else {
            return;
        };
        if !a.flapping || a.raises.last().is_some_and(|l| l + window > now) {
            return;
        }
        a.flapping = false;
        a.raises.clear();
        let ended = if a.state.is_open() {
            "firing"
        } else {
            "resolved"
        };
        out.push(log(
            a,
            "steady",
            format!("steady for the flap window: {ended}"),
        ));
        out.push(Effect::Save(fp.to_owned()));
        if !a.state.is_open() {
            let c = self.candidate(&self.alerts[fp], Why::Resolved);
            self.hold(c, now);
        }
    }

    /// Brings one alert up to date: its delay, its escalation clock, the
    /// levels and repeats now due.
    fn settle(&mut self, fp: &str, now: Ms, out: &mut Vec<Effect>) {
        let muted = match self.alerts.get(fp) {
            Some(a) => self.ctx(now).muted_by(&Item::of(a, Why::Firing)).is_some(),
            None => return,
        };
        let chains = &self.settings.chains;
        let Some(a) = self.alerts.get_mut(fp) else {
            return;
        };
        if a.state == AlertState::Pending && a.fire_at <= now {
            a.state = AlertState::Firing;
            out.push(log(a, "firing", a.summary.clone()));
            out.push(Effect::Save(fp.to_owned()));
        }
        let counting =
            a.state == AlertState::Firing && a.suppressed_by.is_none() && !a.flapping && !muted;
        match (counting, a.counting_since) {
            (true, None) => {
                a.counting_since = Some(now);
                out.push(Effect::Save(fp.to_owned()));
            }
            (false, Some(since)) => {
                a.counted_ms += now.saturating_sub(since);
                a.counting_since = None;
                out.push(Effect::Save(fp.to_owned()));
            }
            _ => {}
        }
        if !counting {
            return;
        }
        let Some(chain) = a.escalation.as_ref().and_then(|c| chains.get(c)) else {
            return;
        };
        let counted = a.counted_at(now);
        let due = chain.levels.iter().rposition(|l| l.after_ms <= counted);
        let mut made = Vec::new();
        if let Some(due) = due
            && a.level.is_none_or(|l| due > l)
        {
            // Told only as suppressed, it now fires on its own.
            let why = if a.level.is_none() && a.told.values().all(|t| t.suppressed) {
                Why::Firing
            } else {
                Why::Escalated { level: due }
            };
            a.level = Some(due);
            out.push(Effect::Save(fp.to_owned()));
            made.push(why);
        }
        if let (Some(r), Some(last)) = (chain.repeat_ms, a.told.values().map(|t| t.at).max())
            && last + r <= now
            && !self
                .group
                .items
                .iter()
                .any(|c| c.item.fingerprint == fp && c.item.why == Why::Repeat)
        {
            made.push(Why::Repeat);
        }
        for why in made {
            let c = self.candidate(&self.alerts[fp], why);
            self.hold(c, now);
        }
    }

    fn candidate(&self, a: &Alert, why: Why) -> Candidate {
        Candidate {
            item: Item::of(a, why),
            escalation: a.escalation.clone(),
            channels: Vec::new(),
        }
    }

    /// Puts a message in the group; the group's wait starts with its first.
    fn hold(&mut self, c: Candidate, now: Ms) {
        let g = &mut self.group;
        // A later message about the same alert for the same reason replaces
        // the earlier one (it carries the newer state).
        g.items
            .retain(|o| !(o.item.fingerprint == c.item.fingerprint && o.item.why == c.item.why));
        g.items.push(c);
        g.since.get_or_insert(now);
    }

    fn ctx(&self, now: Ms) -> Ctx<'_> {
        Ctx {
            settings: &self.settings,
            alerts: &self.alerts,
            silences: &self.silences,
            maintenance: &self.maintenance,
            now,
        }
    }

    /// Sends the group once it has waited: every message through the
    /// stages, then one notification per channel.
    fn flush(&mut self, now: Ms, out: &mut Vec<Effect>) {
        let Some(since) = self.group.since else {
            return;
        };
        if since + self.settings.group_wait_ms > now {
            return;
        }
        let items = std::mem::take(&mut self.group.items);
        self.group.since = None;
        let mut by_channel: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        {
            let ctx = self.ctx(now);
            for c in items {
                match stages::run(&self.stages, &ctx, c.clone()) {
                    Ok(routed) => {
                        for ch in routed.channels {
                            let list = by_channel.entry(ch).or_default();
                            if !list.iter().any(|i| {
                                i.fingerprint == routed.item.fingerprint && i.why == routed.item.why
                            }) {
                                list.push(routed.item.clone());
                            }
                        }
                    }
                    Err((stage, reason)) => out.push(Effect::Dropped {
                        fingerprint: c.item.fingerprint,
                        why: c.item.why,
                        stage,
                        reason,
                    }),
                }
            }
        }
        // Alerts suppressed by a target go with that target's own message.
        for (channel, items) in by_channel.iter_mut() {
            let ctx = self.ctx(now);
            let roots: Vec<String> = items
                .iter()
                .filter(|i| matches!(i.why, Why::Firing | Why::Escalated { .. } | Why::Repeat))
                .filter_map(|i| i.target.clone())
                .collect();
            for a in self.alerts.values() {
                if a.state.is_open()
                    && a.suppressed_by
                        .as_ref()
                        .is_some_and(|by| roots.contains(by))
                    && !a.told.contains_key(channel)
                    && !items.iter().any(|i| i.fingerprint == a.fingerprint)
                    && ctx.muted_by(&Item::of(a, Why::Suppressed)).is_none()
                {
                    items.push(Item::of(a, Why::Suppressed));
                }
            }
        }
        for (channel, items) in by_channel {
            for item in &items {
                if let Some(a) = self.alerts.get_mut(&item.fingerprint) {
                    let told = a.told.entry(channel.clone()).or_insert(Told {
                        at: now,
                        resolved: false,
                        flapping: false,
                        suppressed: false,
                    });
                    told.at = now;
                    match item.why {
                        Why::Resolved => told.resolved = true,
                        Why::Flapping => told.flapping = true,
                        Why::Suppressed => told.suppressed = true,
                        Why::Firing | Why::Escalated { .. } => {
                            told.flapping = false;
                            told.suppressed = false;
                        }
                        _ => {}
                    }
                    out.push(Effect::Save(a.fingerprint.clone()));
                }
            }
            let severity = items.iter().map(|i| i.severity).max().unwrap_or_default();
            let mut labels = BTreeMap::new();
            for (n, i) in items.iter().enumerate() {
                labels.insert(
                    n.to_string(),
                    format!("{}/{}", i.fingerprint, i.why.as_str()),
                );
            }
            let key = format!(
                "{now:x}-{}",
                fingerprint(&channel, Some(&now.to_string()), &labels)
            );
            out.push(Effect::Log(Change {
                fingerprint: key.clone(),
                name: "notification".into(),
                target: None,
                severity,
                what: "notified",
                detail: format!(
                    "{channel}: {}",
                    items
                        .iter()
                        .map(|i| format!(
                            "{} {} ({})",
                            i.name,
                            i.target.as_deref().unwrap_or("-"),
                            i.why.as_str()
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }));
            out.push(Effect::Notify(Notification {
                key,
                channel,
                created_at: now,
                severity,
                items,
            }));
        }
    }

    /// Maintenance windows that opened or closed since the last tick; one-off
    /// windows that are over are forgotten.
    fn windows(&mut self, now: Ms, out: &mut Vec<Effect>) {
        let zone = self.settings.zone.clone();
        let mut changes = Vec::new();
        for m in self.maintenance.values() {
            let active = m.active(now, &zone);
            let was = self.in_effect.contains(&m.id);
            if active != was {
                changes.push((m.id.clone(), active, m.matcher.clone(), m.reason.clone()));
            }
        }
        for (id, active, matcher, reason) in changes {
            if active {
                self.in_effect.insert(id.clone());
            } else {
                self.in_effect.remove(&id);
            }
            let (name, what) = if active {
                ("maintenance-started", "began")
            } else {
                ("maintenance-ended", "ended")
            };
            self.notice(
                Notice {
                    name: name.to_owned(),
                    target: matcher.target.clone().filter(|t| !t.contains('*')),
                    severity: Severity::Info,
                    summary: format!(
                        "maintenance {id} {what} ({}){}",
                        matcher.describe(),
                        if reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {reason}")
                        }
                    ),
                    escalation: None,
                },
                now,
                out,
            );
        }
        let over: Vec<String> = self
            .maintenance
            .values()
            .filter(|m| m.over(now) && !self.in_effect.contains(&m.id))
            .map(|m| m.id.clone())
            .collect();
        for id in over {
            self.maintenance.remove(&id);
            out.push(Effect::ForgetMaintenance(id));
        }
    }

    fn next_id(&mut self, prefix: &str, now: Ms) -> String {
        self.made = self.made.max(now.saturating_sub(1)) + 1;
        format!("{prefix}-{:x}", self.made)
    }

    /// Acknowledges an open alert: it stops climbing and repeating.
    pub fn ack(
        &mut self,
        fp: &str,
        by: &str,
        comment: &str,
        now: Ms,
    ) -> Result<Vec<Effect>, Refused> {
        let a = self
            .alerts
            .get_mut(fp)
            .ok_or_else(|| Refused::NoAlert(fp.to_owned()))?;
        if !a.state.is_open() {
            return Err(Refused::Resolved(fp.to_owned()));
        }
        a.ack = Some(Ack {
            by: by.to_owned(),
            comment: comment.to_owned(),
            at: now,
        });
        if a.state == AlertState::Firing {
            a.state = AlertState::Acknowledged;
        }
        let mut out = vec![
            log(
                a,
                "acknowledged",
                format!("acknowledged by {by}: {comment}"),
            ),
            Effect::Save(fp.to_owned()),
        ];
        self.settle(fp, now, &mut out);
        Ok(out)
    }

    /// Takes an acknowledgement back: the alert climbs again from where it was.
    pub fn unack(&mut self, fp: &str, by: &str, now: Ms) -> Result<Vec<Effect>, Refused> {
        let a = self
            .alerts
            .get_mut(fp)
            .ok_or_else(|| Refused::NoAlert(fp.to_owned()))?;
        if a.ack.is_none() || !a.state.is_open() {
            return Err(Refused::NotAcknowledged(fp.to_owned()));
        }
        a.ack = None;
        if a.state == AlertState::Acknowledged {
            a.state = AlertState::Firing;
        }
        let mut out = vec![
            log(
                a,
                "unacknowledged",
                format!("acknowledgement taken back by {by}"),
            ),
            Effect::Save(fp.to_owned()),
        ];
        self.settle(fp, now, &mut out);
        self.flush(now, &mut out);
        Ok(out)
    }

    /// Makes a silence from now until `until`.
    pub fn silence(
        &mut self,
        matcher: Matcher,
        until: Ms,
        reason: &str,
        by: &str,
        now: Ms,
    ) -> Result<(Silence, Vec<Effect>), Refused> {
        if until <= now {
            return Err(Refused::Bad("a silence must end in the future".into()));
        }
        let id = self.next_id("s", now);
        let s = Silence {
            id: id.clone(),
            matcher,
            starts_at: now,
            ends_at: until,
            reason: reason.to_owned(),
            by: by.to_owned(),
            created_at: now,
        };
        let mut out = vec![
            Effect::SaveSilence(id.clone()),
            Effect::Log(Change {
                fingerprint: id.clone(),
                name: "silence".into(),
                target: s.matcher.target.clone(),
                severity: Severity::Info,
                what: "silenced",
                detail: format!(
                    "silence {id} by {by} ({}) until {}: {reason}",
                    s.matcher.describe(),
                    fmt_ms(until)
                ),
            }),
        ];
        self.silences.insert(id, s.clone());
        self.settle_all(now, &mut out);
        Ok((s, out))
    }

    /// Ends a silence now.
    pub fn expire_silence(&mut self, id: &str, now: Ms) -> Result<Vec<Effect>, Refused> {
        let s = self
            .silences
            .get_mut(id)
            .ok_or_else(|| Refused::NoSuch("silence", id.to_owned()))?;
        s.ends_at = now;
        let mut out = self.tick(now);
        out.push(Effect::ForgetSilence(id.to_owned()));
        Ok(out)
    }

    /// Adds a maintenance window.
    pub fn add_maintenance(
        &mut self,
        schedule: Schedule,
        matcher: Matcher,
        reason: &str,
        by: &str,
        now: Ms,
    ) -> Result<(Maintenance, Vec<Effect>), Refused> {
        if let Schedule::Weekly { every } = &schedule {
            super::silence::Weekly::parse(every).map_err(Refused::Bad)?;
        }
        if let Schedule::Once {
            from,
            until: Some(until),
        } = &schedule
            && until <= from
        {
            return Err(Refused::Bad(
                "a maintenance window must end after it starts".into(),
            ));
        }
        let id = self.next_id("m", now);
        let m = Maintenance {
            id: id.clone(),
            schedule,
            matcher,
            reason: reason.to_owned(),
            by: by.to_owned(),
            created_at: now,
        };
        self.maintenance.insert(id.clone(), m.clone());
        let mut out = vec![Effect::SaveMaintenance(id)];
        out.extend(self.tick(now));
        Ok((m, out))
    }

    /// Ends a maintenance window now (a recurring one is removed).
    pub fn end_maintenance(&mut self, id: &str, now: Ms) -> Result<Vec<Effect>, Refused> {
        let m = self
            .maintenance
            .get_mut(id)
            .ok_or_else(|| Refused::NoSuch("maintenance window", id.to_owned()))?;
        let mut out = Vec::new();
        match &mut m.schedule {
            Schedule::Once { until, .. } => {
                *until = Some(now);
                out.push(Effect::SaveMaintenance(id.to_owned()));
            }
            Schedule::Weekly { .. } => {
                // Removed at once; `windows` still says it ended.
                self.maintenance.remove(id);
                out.push(Effect::ForgetMaintenance(id.to_owned()));
                if self.in_effect.remove(id) {
                    self.notice(
                        Notice {
                            name: "maintenance-ended".into(),
                            target: None,
                            severity: Severity::Info,
                            summary: format!("maintenance {id} ended"),
                            escalation: None,
                        },
                        now,
                        &mut out,
                    );
                }
            }
        }
        out.extend(self.tick(now));
        Ok(out)
    }

    fn settle_all(&mut self, now: Ms, out: &mut Vec<Effect>) {
        let fps: Vec<String> = self.alerts.keys().cloned().collect();
        for fp in fps {
            self.settle(&fp, now, out);
        }
        self.flush(now, out);
    }
}

fn log(a: &Alert, what: &'static str, detail: String) -> Effect {
    Effect::Log(Change {
        fingerprint: a.fingerprint.clone(),
        name: a.name.clone(),
        target: a.target.clone(),
        severity: a.severity,
        what,
        detail,
    })
}

/// A time for people, in UTC.
pub fn fmt_ms(at: Ms) -> String {
    jiff::Timestamp::from_millisecond(at as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| at.to_string())
}
