//! Rules on metric series (`[[rule]]`): each series its selector picks is
//! watched on its own, and raises an alert named after the rule, labelled
//! with the series' labels.
//!
//! - `above` / `below`: the condition holds while the value is past the
//!   bound; it must hold for `for` before the alert is raised. Once raised,
//!   it clears only when the value is back past `clear` (hysteresis: a
//!   noisy value crossing the bound back and forth raises once and clears
//!   once); `clear` defaults to the bound itself. The same hysteresis holds
//!   while it waits out `for`: a value between the bound and `clear` does
//!   not start the wait over.
//! - `predict`: a straight line fitted by least squares to the series'
//!   values over `over` (default 1 h); the condition holds while that line
//!   reaches the bound within `within`. It needs five values spanning a
//!   quarter of `over` before it says anything.
//!
//! A series that disappears clears its alert. Pure: values and times are
//! given.

use std::collections::{BTreeMap, VecDeque};

use super::{Ms, Raise, Signal, human};
use crate::config::{Rule, RuleCondition};
use crate::metrics::SeriesKey;
use crate::metrics::history::{Eta, Fit, Threshold};
use crate::metrics::kpi::Selector;

/// The most values a predict rule keeps of one series.
const FIT_POINTS: usize = 240;

#[derive(Debug, Default)]
struct Watch {
    /// The condition holds since.
    since: Option<Ms>,
    /// The alert is raised.
    raised: bool,
    /// Values for a fit.
    points: VecDeque<(Ms, f64)>,
}

struct Compiled {
    rule: Rule,
    selector: Selector,
    watches: BTreeMap<SeriesKey, Watch>,
}

/// Every rule's state.
#[derive(Default)]
pub struct Rules {
    rules: Vec<Compiled>,
}

impl Rules {
    /// The rules of a configuration (a selector that cannot be read was
    /// refused by `check`; such a rule is left out).
    pub fn new(rules: &[Rule]) -> Rules {
        Rules {
            rules: rules
                .iter()
                .filter_map(|r| {
                    Some(Compiled {
                        rule: r.clone(),
                        selector: Selector::parse(&r.series).ok()?,
                        watches: BTreeMap::new(),
                    })
                })
                .collect(),
        }
    }

    /// New rules (a reload): a rule whose definition did not change keeps
    /// its state; the alerts of rules that went away are cleared.
    pub fn reconfigure(&mut self, rules: &[Rule]) -> Vec<Signal> {
        let mut old: Vec<Compiled> = std::mem::take(&mut self.rules);
        let mut fresh = Rules::new(rules);
        for c in &mut fresh.rules {
            if let Some(at) = old.iter().position(|o| o.rule == c.rule) {
                c.watches = old.remove(at).watches;
            }
        }
        let mut out = Vec::new();
        for o in old {
            for (key, w) in o.watches {
                if w.raised {
                    out.push(clear(&o.rule, &key));
                }
            }
        }
        *self = fresh;
        out
    }

    /// Looks at the latest values: the raises and clears due.
    pub fn evaluate<'a>(
        &mut self,
        values: impl IntoIterator<Item = (&'a SeriesKey, f64)> + Clone,
        now: Ms,
    ) -> Vec<Signal> {
        let mut out = Vec::new();
        for c in &mut self.rules {
            let mut seen = Vec::new();
            for (key, value) in values.clone() {
                if !c.selector.matches(key) || !value.is_finite() {
                    continue;
                }
                seen.push(key.clone());
                let w = c.watches.entry(key.clone()).or_default();
                if let Some(s) = step(&c.rule, key, w, value, now) {
                    out.push(s);
                }
            }
            c.watches.retain(|key, w| {
                let kept = seen.contains(key);
                if !kept && w.raised {
                    out.push(clear(&c.rule, key));
                }
                kept
            });
        }
        out
    }
}

fn labels(key: &SeriesKey) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = key.labels.iter().cloned().collect();
    l.insert("series".into(), key.name.clone());
    l
}

fn clear(rule: &Rule, key: &SeriesKey) -> Signal {
    Signal::Clear {
        name: rule.name.clone(),
        target: None,
        labels: labels(key),
    }
}

/// One value of one series through one rule.
fn step(rule: &Rule, key: &SeriesKey, w: &mut Watch, value: f64, now: Ms) -> Option<Signal> {
    let (holds, cleared, said) = match &rule.condition {
        RuleCondition::Above(bound) => {
            let back = rule.clear.unwrap_or(*bound);
            (
                value > *bound,
                value <= back,
                format!("{key} is {value}, above {bound}"),
            )
        }
        RuleCondition::Below(bound) => {
            let back = rule.clear.unwrap_or(*bound);
            (
                value < *bound,
                value >= back,
                format!("{key} is {value}, below {bound}"),
            )
        }
        RuleCondition::PredictAbove {
            within,
            bound,
            over,
        }
        | RuleCondition::PredictBelow {
            within,
            bound,
            over,
        } => {
            let over_ms = over.as_millis() as Ms;
            let spacing = (over_ms / FIT_POINTS as Ms).max(1);
            if w.points.back().is_none_or(|(t, _)| now >= t + spacing) {
                w.points.push_back((now, value));
            }
            while w.points.front().is_some_and(|(t, _)| t + over_ms < now) {
                w.points.pop_front();
            }
            let span = match (w.points.front(), w.points.back()) {
                (Some(a), Some(b)) => b.0 - a.0,
                _ => 0,
            };
            if w.points.len() < 5 || span < over_ms / 4 {
                return None;
            }
            let threshold = match rule.condition {
                RuleCondition::PredictAbove { .. } => Threshold::Above(*bound),
                _ => Threshold::Below(*bound),
            };
            let eta = Fit::new(w.points.iter().copied()).map(|f| f.eta(threshold, now));
            let within_ms = within.as_millis() as Ms;
            match eta {
                Some(Eta::Reached) => (true, false, format!("{key} has reached {bound}")),
                Some(Eta::In(d)) if d.as_millis() as Ms <= within_ms => (
                    true,
                    false,
                    format!(
                        "{key} is {value} and heading for {bound}: there in about {} (within {})",
                        human(d.as_millis() as Ms),
                        human(within_ms)
                    ),
                ),
                _ => (false, true, String::new()),
            }
        }
    };
    if w.raised {
        if cleared {
            w.raised = false;
            w.since = None;
            return Some(clear(rule, key));
        }
        return None;
    }
    // Pending, the condition must first hold; then only a value back
    // past `clear` starts the wait over (hysteresis on both sides).
    if cleared {
        w.since = None;
        return None;
    }
    let since = w.since.or(holds.then_some(now))?;
    w.since = Some(since);
    let hold_ms = rule.hold_for.as_millis() as Ms;
    if now.saturating_sub(since) < hold_ms {
        return None;
    }
    w.raised = true;
    let summary = if hold_ms > 0 {
        format!("{said} for {}", human(now - since))
    } else {
        said
    };
    Some(Signal::Raise(Raise {
        name: rule.name.clone(),
        target: None,
        labels: labels(key),
        severity: rule.severity,
        summary,
        escalation: rule.escalation.clone(),
        delay_ms: 0,
        root_cause: None,
    }))
}
