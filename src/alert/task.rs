//! The alert task: the one owner of the engine. It follows the event path
//! losslessly (starting from the current state), evaluates the rules on
//! the recorder's latest values every second, answers the API, and carries
//! out what the engine returns: alerts, silences and windows saved as state
//! documents, notifications written to the outbox (with the alerts they
//! changed, in the same transaction), incident records kept, every change
//! said in the journal. Its figures go to the recorder as series.
//!
//! Crash safety: a notification and what its channels were told are
//! written together, so a restart neither loses nor repeats one that was
//! written; an operator's change is saved at once, and so is an incident
//! record when it opens and when it closes; other changes (a count, a
//! pending alert firing, an incident's actions) within [`SAVE_EVERY`]
//! seconds, so that a flapping target does not write to the flash every
//! second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::engine::{Effect, Refused};
use super::incident::{Incidents, Record};
use super::rules::Rules;
use super::silence::{Maintenance, Matcher, Schedule, Silence};
use super::source::{self, GAVE_UP, RECOVERY_FAILED, TARGET_FAILING};
use super::{Alert, Engine, Ms, Notice, Notification, Settings, Severity, Signal};
use crate::config::Config;
use crate::event::Stamped;
use crate::metrics::recorder::Latest;
use crate::metrics::{Kind, Sample, SeriesKey};
use crate::store::{IncidentRow, OutboxRow, StoreThread};

/// State document key prefixes.
const ALERT_KEY: &str = "alert/";
const SILENCE_KEY: &str = "silence/";
const MAINTENANCE_KEY: &str = "maintenance/";
/// The version that last ran, to tell an upgrade.
const VERSION_KEY: &str = "watchdog-version";

/// How often the engine is ticked and the rules evaluated.
const TICK: Duration = Duration::from_secs(1);
/// How often the figures go to the recorder.
const FIGURES_EVERY: u64 = 10;
/// How often, in ticks, alert changes not written yet are saved.
pub const SAVE_EVERY: u64 = 10;
/// Outbox rows and closed incident records are kept this long.
const KEEP_MS: Ms = 90 * 86_400_000;
/// At most this many notifications are kept (nothing drains the outbox in
/// this version: it is the record of what was decided).
const KEEP_NOTIFICATIONS: usize = 100_000;

/// Which alerts a list asks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `pending`, `firing`, `acknowledged`, `resolved`; open ones when `None`
    /// and `all` is false.
    pub state: Option<super::AlertState>,
    /// Every state.
    pub all: bool,
    /// Of this target.
    pub target: Option<String>,
    /// Of this severity.
    pub severity: Option<Severity>,
}

/// A notification and its delivery attempts.
pub type Delivered = (OutboxRow, Vec<crate::store::Attempt>);

/// What the API asks the alert task.
pub enum Request {
    /// The alerts a filter picks, newest first.
    List(Filter, oneshot::Sender<Vec<Alert>>),
    /// One alert, its notifications and their delivery attempts.
    Get(String, oneshot::Sender<Option<(Alert, Vec<Delivered>)>>),
    /// Acknowledge: fingerprint, who, comment.
    Ack(
        String,
        String,
        String,
        oneshot::Sender<Result<Alert, Refused>>,
    ),
    /// Take an acknowledgement back: fingerprint, who.
    Unack(String, String, oneshot::Sender<Result<Alert, Refused>>),
    /// Make a silence: matcher, until, reason, who.
    Silence(
        Matcher,
        Ms,
        String,
        String,
        oneshot::Sender<Result<Silence, Refused>>,
    ),
    /// The silences.
    Silences(oneshot::Sender<Vec<Silence>>),
    /// End a silence.
    Expire(String, oneshot::Sender<Result<(), Refused>>),
    /// Add a maintenance window: schedule, matcher, reason, who.
    Maintain(
        Schedule,
        Matcher,
        String,
        String,
        oneshot::Sender<Result<Maintenance, Refused>>,
    ),
    /// The maintenance windows, and whether each is in effect.
    Windows(oneshot::Sender<Vec<(Maintenance, bool)>>),
    /// End a maintenance window.
    EndWindow(String, oneshot::Sender<Result<(), Refused>>),
    /// Notifications in the outbox, newest first: channel, limit.
    Outbox(
        Option<String>,
        usize,
        oneshot::Sender<Result<Vec<OutboxRow>, String>>,
    ),
    /// Incident records, newest first: target, limit.
    Incidents(
        Option<String>,
        usize,
        oneshot::Sender<Result<Vec<Record>, String>>,
    ),
    /// One incident record.
    Incident(String, oneshot::Sender<Result<Option<Record>, String>>),
    /// A reload: new settings, rules and policies.
    Reconfigure(Box<Config>),
}

/// How the rest of the daemon reaches the alert task.
#[derive(Clone)]
pub struct Handle {
    /// Requests (bounded).
    pub requests: mpsc::Sender<Request>,
    /// Each target's open alerts in brief, for `/health` (read without
    /// asking the task).
    pub open: watch::Receiver<Arc<OpenByTarget>>,
}

/// A target's open alerts in brief.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenAlerts {
    /// How many are open (pending, firing or acknowledged).
    pub count: usize,
    /// Every one of them is acknowledged: by whom (the latest).
    pub acknowledged_by: Option<String>,
    /// They are held back while this dependency fails.
    pub suppressed_by: Option<String>,
}

/// [`OpenAlerts`] by target name; targets with none are absent.
pub type OpenByTarget = BTreeMap<String, OpenAlerts>;

/// The open alerts of `alerts`, by target.
fn open_by_target<'a>(alerts: impl Iterator<Item = &'a Alert>) -> OpenByTarget {
    let mut by: OpenByTarget = BTreeMap::new();
    let mut unacked: BTreeSet<&str> = BTreeSet::new();
    for a in alerts {
        let Some(t) = a.target.as_deref() else {
            continue;
        };
        if a.state == super::AlertState::Resolved {
            continue;
        }
        let entry = by.entry(t.to_owned()).or_default();
        entry.count += 1;
        match &a.ack {
            Some(ack) if a.state == super::AlertState::Acknowledged => {
                entry.acknowledged_by = Some(ack.by.clone());
            }
            _ => {
                unacked.insert(t);
            }
        }
        if a.suppressed_by.is_some() {
            entry.suppressed_by = a.suppressed_by.clone();
        }
    }
    for t in unacked {
        if let Some(e) = by.get_mut(t) {
            e.acknowledged_by = None;
        }
    }
    by
}

/// What the task starts from.
pub struct Start {
    /// The configuration in force.
    pub config: Config,
    /// The state store, if it opened.
    pub store: Option<StoreThread>,
    /// The events that still hold, and every later one.
    pub events: (Vec<Arc<Stamped>>, mpsc::Receiver<Arc<Stamped>>),
    /// The recorder's latest values (for rules).
    pub latest: watch::Receiver<Arc<Latest>>,
    /// The recorder (for the task's own figures).
    pub metrics: mpsc::Sender<crate::metrics::recorder::Request>,
    /// Safe mode holds at start.
    pub safe_mode: bool,
    /// Targets whose saved ladder has an open incident.
    pub failing: BTreeSet<String>,
    /// Woken when a notification was written to the outbox.
    pub delivery: Option<Arc<tokio::sync::Notify>>,
    /// Stops the task.
    pub stop: CancellationToken,
}

fn now_ms() -> Ms {
    crate::metrics::collect::now_ms()
}

/// Starts the alert task.
pub fn spawn(start: Start) -> Handle {
    let (requests, rx) = mpsc::channel(64);
    let (open_tx, open) = watch::channel(Arc::new(OpenByTarget::new()));
    tokio::spawn(run(start, rx, open_tx));
    Handle { requests, open }
}

struct Task {
    config: Config,
    engine: Engine,
    rules: Rules,
    incidents: Incidents,
    store: Option<StoreThread>,
    metrics: mpsc::Sender<crate::metrics::recorder::Request>,
    delivery: Option<Arc<tokio::sync::Notify>>,
    /// Alerts changed and not yet saved.
    dirty: BTreeSet<String>,
    /// Incident records changed and not yet saved, by id.
    dirty_incidents: BTreeMap<String, Record>,
    /// Messages the stages dropped, by stage.
    dropped: BTreeMap<&'static str, u64>,
    /// Notifications handed to the outbox, by channel.
    notified: BTreeMap<String, u64>,
    /// Notifications given up by the outbox's bounds, this run.
    given_up: u64,
    /// Notifications waiting in the outbox, at the last look.
    depth: Option<u64>,
}

/// The alert the outbox's backlog raises.
pub const OUTBOX_BACKLOG: &str = "outbox-backlog";

async fn load<T: serde::de::DeserializeOwned + Send + 'static>(
    store: &StoreThread,
    prefix: &'static str,
) -> Vec<T> {
    match store.query(move |s| s.states_with_prefix(prefix)).await {
        Ok(docs) => docs
            .into_iter()
            .filter_map(|(key, v)| match serde_json::from_value(v) {
                Ok(t) => Some(t),
                Err(e) => {
                    warn!(key = %key, error = %e, "cannot read a saved alert document; it is left out");
                    None
                }
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "cannot read the saved alerts");
            Vec::new()
        }
    }
}

async fn run(
    start: Start,
    mut requests: mpsc::Receiver<Request>,
    open: watch::Sender<Arc<OpenByTarget>>,
) {
    let Start {
        config,
        store,
        events: (current, mut events),
        latest,
        metrics,
        safe_mode,
        failing,
        delivery,
        stop,
    } = start;
    let now = now_ms();
    let settings = Settings::from_config(&config);
    let (alerts, silences, windows, records, version) = match &store {
        Some(s) => {
            let records = s
                .query(|s| s.incidents(None, 100_000))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| serde_json::from_str::<Record>(&r.doc).ok())
                .collect();
            let version = s.query(|s| s.get_state(VERSION_KEY)).await.ok().flatten();
            (
                load::<Alert>(s, ALERT_KEY).await,
                load::<Silence>(s, SILENCE_KEY).await,
                load::<Maintenance>(s, MAINTENANCE_KEY).await,
                records,
                version.and_then(|v| v.as_str().map(str::to_owned)),
            )
        }
        None => Default::default(),
    };
    let restored: Vec<Alert> = alerts
        .iter()
        .filter(|a| a.state.is_open())
        .cloned()
        .collect();
    let mut task = Task {
        rules: Rules::new(&config.rules),
        engine: Engine::restore(settings, alerts, silences, windows, now),
        incidents: Incidents::restore(records),
        config,
        store,
        metrics,
        delivery,
        dirty: BTreeSet::new(),
        dirty_incidents: BTreeMap::new(),
        dropped: BTreeMap::new(),
        notified: BTreeMap::new(),
        given_up: 0,
        depth: None,
    };
    info!(
        open = restored.len(),
        silences = task.engine.silences().len(),
        maintenance = task.engine.maintenance().len(),
        "the alert engine follows the event path"
    );

    // Settle what the watchdog missed while it was down: an alert whose
    // cause is gone resolves. A target's incident is open in its saved
    // ladder until the core closes it; the bus is connected anew (a lost
    // one is raised again).
    for e in &current {
        task.on_event(e);
    }
    for a in restored {
        let gone = match a.name.as_str() {
            TARGET_FAILING | RECOVERY_FAILED | GAVE_UP => {
                a.target.as_ref().is_none_or(|t| !failing.contains(t))
            }
            "bus-lost" => true,
            "safe-mode" => !safe_mode,
            _ => false,
        };
        if gone {
            let now = now_ms();
            let out = task.engine.signal(
                Signal::Clear {
                    name: a.name.clone(),
                    target: a.target.clone(),
                    labels: a.labels.clone(),
                },
                now,
            );
            task.perform(out);
        }
    }
    task.started(version);
    let publish = |task: &Task| {
        let now = open_by_target(task.engine.alerts().values());
        open.send_if_modified(|was| {
            let changed = **was != now;
            if changed {
                *was = Arc::new(now);
            }
            changed
        });
    };
    publish(&task);

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            e = events.recv() => match e {
                Some(e) => task.on_event(&e),
                None => break,
            },
            Some(r) = requests.recv() => task.answer(r).await,
            _ = tick.tick() => {
                let now = now_ms();
                let values = latest.borrow().clone();
                let signals = task
                    .rules
                    .evaluate(values.values.iter().map(|(k, (_, v))| (&**k, *v)), now);
                for s in signals {
                    let out = task.engine.signal(s, now);
                    task.perform(out);
                }
                let out = task.engine.tick(now);
                task.perform(out);
                ticks += 1;
                if ticks.is_multiple_of(SAVE_EVERY) {
                    task.save_dirty();
                }
                if ticks.is_multiple_of(FIGURES_EVERY) {
                    task.bound_outbox(now).await;
                    task.figures(now).await;
                }
                if ticks % 3600 == 60 {
                    task.prune(now);
                }
            }
        }
        publish(&task);
    }
    task.save_dirty();
}

impl Task {
    fn on_event(&mut self, e: &Stamped) {
        let now = now_ms();
        for s in source::signals(&e.event, &self.config) {
            let out = self.engine.signal(s, now);
            self.perform(out);
        }
        // An incident's opening and closing are written at once; what
        // happens in between with the other alert changes.
        let now_too = matches!(
            e.event,
            crate::event::Event::IncidentOpened { .. } | crate::event::Event::IncidentClosed { .. }
        );
        for r in self.incidents.on_event(e) {
            if now_too {
                self.dirty_incidents.remove(&r.id);
                self.save_incident(&r);
            } else {
                self.dirty_incidents.insert(r.id.clone(), r);
            }
        }
    }

    /// Says that the watchdog started (or was upgraded).
    fn started(&mut self, previous: Option<String>) {
        let version = env!("CARGO_PKG_VERSION");
        let (name, summary) = match previous.as_deref() {
            Some(v) if v != version => (
                "watchdog-upgraded",
                format!("the watchdog started, upgraded from {v} to {version}"),
            ),
            _ => (
                "watchdog-started",
                format!("the watchdog {version} started"),
            ),
        };
        let out = self.engine.signal(
            Signal::Notice(Notice {
                name: name.into(),
                target: None,
                severity: Severity::Info,
                summary,
                escalation: None,
            }),
            now_ms(),
        );
        self.perform(out);
        if let Some(store) = &self.store {
            store.write("remember the watchdog's version", move |s| {
                s.put_state(VERSION_KEY, &serde_json::json!(version))
            });
        }
    }

    /// Carries out what the engine returned.
    fn perform(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Save(fp) => {
                    self.dirty.insert(fp);
                }
                Effect::Forget(fp) => {
                    self.dirty.remove(&fp);
                    if let Some(store) = &self.store {
                        store.write_batched("forget an alert", move |s| {
                            s.delete_state(&format!("{ALERT_KEY}{fp}"))
                        });
                    }
                }
                Effect::SaveSilence(id) => {
                    if let Some(s) = self.engine.silences().get(&id) {
                        self.put(format!("{SILENCE_KEY}{id}"), s);
                    }
                }
                Effect::ForgetSilence(id) => self.delete(format!("{SILENCE_KEY}{id}")),
                Effect::SaveMaintenance(id) => {
                    if let Some(m) = self.engine.maintenance().get(&id) {
                        self.put(format!("{MAINTENANCE_KEY}{id}"), m);
                    }
                }
                Effect::ForgetMaintenance(id) => self.delete(format!("{MAINTENANCE_KEY}{id}")),
                Effect::Notify(n) => self.notify(n),
                Effect::Log(c) => {
                    let target = c.target.as_deref().unwrap_or("");
                    match c.what {
                        "firing" | "flapping" if c.severity >= Severity::Warning => warn!(
                            alert = %c.fingerprint,
                            alert_name = %c.name,
                            target_name = target,
                            severity = c.severity.as_str(),
                            change = c.what,
                            "alert {} {}: {}",
                            c.name,
                            c.what,
                            c.detail
                        ),
                        _ => info!(
                            alert = %c.fingerprint,
                            alert_name = %c.name,
                            target_name = target,
                            severity = c.severity.as_str(),
                            change = c.what,
                            "alert {} {}: {}",
                            c.name,
                            c.what,
                            c.detail
                        ),
                    }
                }
                Effect::Dropped {
                    fingerprint,
                    why,
                    stage,
                    reason,
                } => {
                    *self.dropped.entry(stage).or_default() += 1;
                    debug!(alert = %fingerprint, why = why.as_str(), stage, "not sent: {reason}");
                }
            }
        }
    }

    fn put(&self, key: String, value: &impl serde::Serialize) {
        let Some(store) = &self.store else { return };
        let value = serde_json::to_value(value).unwrap_or_default();
        store.write_batched("save alert state", move |s| s.put_state(&key, &value));
    }

    fn delete(&self, key: String) {
        let Some(store) = &self.store else { return };
        store.write_batched("delete alert state", move |s| s.delete_state(&key));
    }

    /// Writes a notification to the outbox together with the alerts whose
    /// channels it tells, so that neither is kept without the other.
    fn notify(&mut self, n: Notification) {
        *self.notified.entry(n.channel.clone()).or_default() += 1;
        let alerts: Vec<(String, serde_json::Value)> = n
            .items
            .iter()
            .filter_map(|i| self.engine.alert(&i.fingerprint))
            .map(|a| {
                (
                    format!("{ALERT_KEY}{}", a.fingerprint),
                    serde_json::to_value(a).unwrap_or_default(),
                )
            })
            .collect();
        for i in &n.items {
            self.dirty.remove(&i.fingerprint);
        }
        let engine = &self.engine;
        let records = self
            .incidents
            .on_notification(&n, |fp| engine.alert(fp).and_then(|a| a.target.clone()));
        for r in records {
            self.dirty_incidents.insert(r.id.clone(), r);
        }
        let Some(store) = &self.store else { return };
        let row = OutboxRow {
            key: n.key.clone(),
            channel: n.channel.clone(),
            created_ms: n.created_at as i64,
            severity: n.severity.as_str().to_owned(),
            body: serde_json::to_string(&n).unwrap_or_default(),
            state: "queued".into(),
            attempts: 0,
            fingerprints: n
                .items
                .iter()
                .filter(|i| i.why != super::Why::Notice)
                .map(|i| i.fingerprint.clone())
                .collect(),
        };
        store.write_batched("write a notification to the outbox", move |s| {
            s.enqueue(&row)?;
            for (key, value) in &alerts {
                s.put_state(key, value)?;
            }
            Ok(())
        });
        if let Some(wake) = &self.delivery {
            wake.notify_one();
        }
    }

    fn save_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for fp in dirty {
            if let Some(a) = self.engine.alert(&fp) {
                self.put(format!("{ALERT_KEY}{fp}"), a);
            }
        }
        for (_, r) in std::mem::take(&mut self.dirty_incidents) {
            self.save_incident(&r);
        }
    }

    fn save_incident(&self, r: &Record) {
        let Some(store) = &self.store else { return };
        let row = IncidentRow {
            id: r.id.clone(),
            target: r.target.clone(),
            opened_ms: r.opened_at as i64,
            closed_ms: r.closed_at.map(|c| c as i64),
            doc: serde_json::to_string(r).unwrap_or_default(),
        };
        store.write_batched("write an incident record", move |s| s.put_incident(&row));
    }

    /// Keeps the outbox inside `[alerts] outbox-max` and `outbox-max-age`:
    /// what waited longer, then the oldest beyond the bound, is given up,
    /// each with a line in its delivery log saying why, and counted. A
    /// backlog is an alert of its own: raised once the outbox is 80 % full
    /// or gave anything up, cleared under half full.
    async fn bound_outbox(&mut self, now: Ms) {
        let Some(store) = &self.store else { return };
        let max = self.config.alerts.outbox_max;
        let age = self.config.alerts.outbox_max_age;
        let before = now.saturating_sub(age.as_millis() as u64) as i64;
        let why_age = format!(
            "given up: it waited longer than `[alerts] outbox-max-age` ({})",
            humantime::format_duration(age)
        );
        let why_max =
            format!("given up: more than `[alerts] outbox-max` ({max}) notifications waited");
        let answer = store
            .query(move |s| s.give_up_queued(before, max as usize, now as i64, &why_age, &why_max))
            .await;
        let (given_up, depth) = match answer {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "cannot bound the outbox");
                return;
            }
        };
        self.depth = Some(depth);
        if given_up > 0 {
            self.given_up += given_up as u64;
            warn!(
                given_up,
                waiting = depth,
                "the outbox gave up {given_up} notification{} that could not be delivered in time (see `rvm-watchdog notifications`)",
                if given_up == 1 { "" } else { "s" }
            );
        }
        let open = self
            .engine
            .alerts()
            .values()
            .any(|a| a.name == OUTBOX_BACKLOG && a.state.is_open());
        let signal = if given_up > 0 || depth * 10 >= max * 8 {
            Some(Signal::Raise(super::Raise {
                name: OUTBOX_BACKLOG.into(),
                target: None,
                labels: BTreeMap::new(),
                severity: Severity::Warning,
                summary: format!(
                    "the outbox holds {depth} notifications waiting for delivery (bound {max}); {} given up",
                    self.given_up
                ),
                escalation: None,
                delay_ms: 0,
                root_cause: None,
            }))
        } else if open && depth * 2 < max {
            Some(Signal::Clear {
                name: OUTBOX_BACKLOG.into(),
                target: None,
                labels: BTreeMap::new(),
            })
        } else {
            None
        };
        if let Some(signal) = signal {
            let out = self.engine.signal(signal, now);
            self.perform(out);
        }
    }

    fn prune(&self, now: Ms) {
        let Some(store) = &self.store else { return };
        let before = now.saturating_sub(KEEP_MS) as i64;
        store.write("prune the outbox and incident records", move |s| {
            s.prune_alerts(before, KEEP_NOTIFICATIONS)
        });
    }

    /// The task's figures, as series in the recorder.
    async fn figures(&self, now: Ms) {
        let mut samples = Vec::new();
        let mut gauge = |name: &str, labels: &[(&str, &str)], value: f64, kind: Kind| {
            samples.push(Sample {
                key: SeriesKey::new(name, labels.iter().copied()),
                kind,
                at_ms: now,
                value,
            });
        };
        let mut by_state: BTreeMap<&str, f64> = ["pending", "firing", "acknowledged", "resolved"]
            .into_iter()
            .map(|s| (s, 0.0))
            .collect();
        let mut suppressed = 0.0;
        for a in self.engine.alerts().values() {
            *by_state.entry(a.state.as_str()).or_default() += 1.0;
            if a.state.is_open() && a.suppressed_by.is_some() {
                suppressed += 1.0;
            }
        }
        for (state, n) in &by_state {
            gauge("rvm_watchdog_alerts", &[("state", state)], *n, Kind::Gauge);
        }
        gauge(
            "rvm_watchdog_alerts_suppressed",
            &[],
            suppressed,
            Kind::Gauge,
        );
        gauge(
            "rvm_watchdog_silences",
            &[],
            self.engine.silences().len() as f64,
            Kind::Gauge,
        );
        for (channel, n) in &self.notified {
            gauge(
                "rvm_watchdog_notifications_total",
                &[("channel", channel)],
                *n as f64,
                Kind::Counter,
            );
        }
        for (stage, n) in &self.dropped {
            gauge(
                "rvm_watchdog_alert_messages_dropped_total",
                &[("stage", stage)],
                *n as f64,
                Kind::Counter,
            );
        }
        let (opened, open, closed, mean) = self.incidents.figures();
        gauge(
            "rvm_watchdog_incidents_opened_total",
            &[],
            opened as f64,
            Kind::Counter,
        );
        gauge("rvm_watchdog_incidents_open", &[], open as f64, Kind::Gauge);
        gauge(
            "rvm_watchdog_incidents_closed_total",
            &[],
            closed as f64,
            Kind::Counter,
        );
        if let Some(mean) = mean {
            gauge(
                "rvm_watchdog_incident_recovery_seconds_mean",
                &[],
                mean / 1000.0,
                Kind::Gauge,
            );
        }
        if let Some(depth) = self.depth {
            gauge("rvm_watchdog_outbox_queued", &[], depth as f64, Kind::Gauge);
            gauge(
                "rvm_watchdog_outbox_given_up_total",
                &[],
                self.given_up as f64,
                Kind::Counter,
            );
        }
        let (reply, _) = oneshot::channel();
        let _ = self
            .metrics
            .try_send(crate::metrics::recorder::Request::Ingest { samples, reply });
    }

    async fn answer(&mut self, request: Request) {
        let now = now_ms();
        match request {
            Request::List(filter, reply) => {
                let mut list: Vec<Alert> = self
                    .engine
                    .alerts()
                    .values()
                    .filter(|a| match filter.state {
                        Some(s) => a.state == s,
                        None => filter.all || a.state.is_open(),
                    })
                    .filter(|a| {
                        filter
                            .target
                            .as_deref()
                            .is_none_or(|t| a.target.as_deref() == Some(t))
                    })
                    .filter(|a| filter.severity.is_none_or(|s| a.severity == s))
                    .cloned()
                    .collect();
                list.sort_by_key(|a| std::cmp::Reverse(a.started_at));
                let _ = reply.send(list);
            }
            Request::Get(fp, reply) => {
                let Some(a) = self.engine.alert(&fp).cloned() else {
                    let _ = reply.send(None);
                    return;
                };
                let log = match &self.store {
                    Some(s) => {
                        let key = fp.clone();
                        s.query(move |s| {
                            let rows = s.outbox(Some(&key), None, 500)?;
                            rows.into_iter()
                                .map(|r| {
                                    let attempts = s.attempts(&r.key)?;
                                    Ok((r, attempts))
                                })
                                .collect()
                        })
                        .await
                        .unwrap_or_default()
                    }
                    None => Vec::new(),
                };
                let _ = reply.send(Some((a, log)));
            }
            Request::Ack(fp, by, comment, reply) => {
                let result = self.engine.ack(&fp, &by, &comment, now);
                let _ = reply.send(self.done(result, &fp));
            }
            Request::Unack(fp, by, reply) => {
                let result = self.engine.unack(&fp, &by, now);
                let _ = reply.send(self.done(result, &fp));
            }
            Request::Silence(matcher, until, reason, by, reply) => {
                let result =
                    self.engine
                        .silence(matcher, until, &reason, &by, now)
                        .map(|(s, out)| {
                            self.perform(out);
                            s
                        });
                self.save_dirty();
                let _ = reply.send(result);
            }
            Request::Silences(reply) => {
                let _ = reply.send(self.engine.silences().values().cloned().collect());
            }
            Request::Expire(id, reply) => {
                let result = self.engine.expire_silence(&id, now).map(|out| {
                    self.perform(out);
                });
                self.save_dirty();
                let _ = reply.send(result);
            }
            Request::Maintain(schedule, matcher, reason, by, reply) => {
                let result = self
                    .engine
                    .add_maintenance(schedule, matcher, &reason, &by, now)
                    .map(|(m, out)| {
                        self.perform(out);
                        m
                    });
                self.save_dirty();
                let _ = reply.send(result);
            }
            Request::Windows(reply) => {
                let zone = self.engine.settings().zone.clone();
                let _ = reply.send(
                    self.engine
                        .maintenance()
                        .values()
                        .map(|m| (m.clone(), m.active(now, &zone)))
                        .collect(),
                );
            }
            Request::EndWindow(id, reply) => {
                let result = self.engine.end_maintenance(&id, now).map(|out| {
                    self.perform(out);
                });
                self.save_dirty();
                let _ = reply.send(result);
            }
            Request::Outbox(channel, limit, reply) => {
                let result = match &self.store {
                    Some(s) => s
                        .query(move |s| s.outbox(None, channel.as_deref(), limit))
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err(NO_STORE.into()),
                };
                let _ = reply.send(result);
            }
            Request::Incidents(target, limit, reply) => {
                let result = match &self.store {
                    Some(s) => s
                        .query(move |s| s.incidents(target.as_deref(), limit))
                        .await
                        .map(|rows| {
                            rows.into_iter()
                                .filter_map(|r| serde_json::from_str(&r.doc).ok())
                                .collect()
                        })
                        .map_err(|e| e.to_string()),
                    None => Err(NO_STORE.into()),
                };
                let _ = reply.send(result);
            }
            Request::Incident(id, reply) => {
                let result = match &self.store {
                    Some(s) => s
                        .query(move |s| s.incident(&id))
                        .await
                        .map(|row| row.and_then(|r| serde_json::from_str(&r.doc).ok()))
                        .map_err(|e| e.to_string()),
                    None => Err(NO_STORE.into()),
                };
                let _ = reply.send(result);
            }
            Request::Reconfigure(config) => {
                self.engine.reconfigure(Settings::from_config(&config));
                let out: Vec<Signal> = self.rules.reconfigure(&config.rules);
                self.config = *config;
                for s in out {
                    let out = self.engine.signal(s, now);
                    self.perform(out);
                }
            }
        }
    }

    /// An operator's change, carried out: the alert as it is now.
    fn done(&mut self, result: Result<Vec<Effect>, Refused>, fp: &str) -> Result<Alert, Refused> {
        let out = result?;
        self.perform(out);
        self.save_dirty();
        self.engine
            .alert(fp)
            .cloned()
            .ok_or_else(|| Refused::NoAlert(fp.to_owned()))
    }
}

const NO_STORE: &str = "the state store could not be opened; see the watchdog's log";
