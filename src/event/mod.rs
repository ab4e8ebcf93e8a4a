//! Events: every fact the daemon produces, emitted once.
//!
//! An [`Event`] is one fact: a probe's health changed, a target's health
//! changed, an incident opened or closed, the recovery engine decided, an
//! action started or finished, an operator gave a command, a reload was
//! applied or refused, safe mode was entered, the bus was lost or regained,
//! the daemon booted, the watchdog itself is in trouble.
//!
//! [`Events::emit`] is the only place those facts are written: it writes the
//! journald record ([`journal`]), bumps the counters ([`counters`]) and
//! appends the store row ([`record`]) from the same value, so the three
//! cannot drift. Then it hands the event on, stamped with a sequence number:
//!
//! - to **lossless subscribers** (consumers that must see everything, like
//!   the alert engine) over a bounded channel each. A subscriber that falls
//!   behind gets a backlog kept here, so emitting never waits; past
//!   [`BACKLOG`] events the oldest are dropped, counted and reported as
//!   [`Trouble::QueueFull`], never silently.
//! - to **observers** that may lag (a live view, the history recorder) over
//!   a broadcast: a slow observer misses events and is told how many, and
//!   never slows the core.
//!
//! Every subscriber starts from **current state** and then follows the
//! stream: [`Events::slurp_and_subscribe`] returns the events that still
//! hold (each target's health, open incidents, failing probes, safe mode, a
//! lost bus) together with the receiver, taken at the same point of the
//! stream, so one that joins mid-incident sees the incident.

pub mod counters;
pub mod journal;
pub mod record;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc, watch};

use crate::probe::{ProbeHealth, Status};
use crate::recovery::{Decision, Health};
use crate::store::{PreviousBoot, StoreThread};
use crate::supervisor::UnitState;

pub use counters::Counters;

/// Events a lagging lossless subscriber may owe before the oldest are dropped.
pub const BACKLOG: usize = 10_000;

/// Events an observer may lag behind before it misses some.
pub const OBSERVER_CAPACITY: usize = 1024;

/// The latest events kept for an observer that comes back (a live stream
/// reconnecting with `Last-Event-ID`): more than an observer may lag, so
/// one that lagged and reconnects at once misses nothing.
pub const RECENT: usize = 2 * OBSERVER_CAPACITY;

/// One fact the daemon produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// systemd reported a new state of a watched unit.
    UnitChanged {
        /// The first target watching it, if any.
        target: Option<String>,
        /// The state systemd reported.
        state: UnitState,
    },
    /// A probe's health (after hysteresis) changed.
    ProbeChanged {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// The probe.
        probe: String,
        /// Its health now.
        health: ProbeHealth,
        /// The last run's status.
        status: Status,
        /// The last run's output.
        output: String,
    },
    /// A target's health, as the recovery engine sees it, changed.
    HealthChanged {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// Before.
        from: Health,
        /// Now.
        to: Health,
    },
    /// A failing period of a target began.
    IncidentOpened {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// The incident's id.
        id: String,
        /// Why it is failing.
        reason: String,
        /// The failing dependency that is the root cause, if one is.
        root_cause: Option<String>,
    },
    /// The failing period ended.
    IncidentClosed {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// The incident's id.
        id: String,
        /// How long it lasted.
        lasted: Duration,
    },
    /// The recovery engine decided (never an incident opening or closing:
    /// those are events of their own).
    Decided {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// The open incident, if any.
        incident: Option<String>,
        /// For a start-limit rescue: systemd's `NRestarts` and
        /// `StartLimitBurst` for the unit.
        systemd: Option<(u32, u32)>,
        /// Action names of the target's ladder steps, for messages.
        ladder: Vec<&'static str>,
        /// `reset-after` of the target, for messages.
        reset_after: Duration,
        /// The decision.
        decision: Decision,
    },
    /// A ladder action started.
    ActionStarted {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// The open incident, if any.
        incident: Option<String>,
        /// Step (0-based).
        step: usize,
        /// Attempt (1-based).
        attempt: u32,
        /// The action's name.
        action: &'static str,
        /// Why.
        reason: String,
        /// Observe mode: decided, not performed.
        observe: bool,
    },
    /// A ladder action finished.
    ActionFinished {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// The open incident, if any.
        incident: Option<String>,
        /// Step (0-based).
        step: usize,
        /// Attempt (1-based).
        attempt: u32,
        /// The action's name.
        action: &'static str,
        /// How it ended.
        result: ActionResult,
        /// What was done, or why it failed.
        detail: String,
        /// How long it took.
        took: Duration,
        /// A hook's output, when it has one.
        output: Option<serde_json::Value>,
    },
    /// An operator's command on a target was carried out.
    OperatorCommand {
        /// The target.
        target: String,
        /// Its unit, if any.
        unit: Option<String>,
        /// `restart`, `reset` or `step`.
        command: &'static str,
        /// The step run (0-based), for `step`.
        step: Option<usize>,
        /// The action performed (`reset` performs none).
        action: Option<&'static str>,
        /// Whether it worked.
        ok: bool,
        /// What was done, or why it failed.
        detail: String,
        /// How long it took.
        took: Duration,
    },
    /// A reload was applied.
    ReloadApplied {
        /// The new generation.
        generation: u64,
        /// Targets now.
        targets: usize,
        /// Targets added, removed, changed.
        added: Vec<String>,
        /// Removed.
        removed: Vec<String>,
        /// Changed.
        changed: Vec<String>,
    },
    /// A reload was refused; the running configuration stays.
    ReloadRefused {
        /// The generation kept.
        generation: u64,
        /// The problems, rendered.
        problems: Vec<String>,
    },
    /// Safe mode: no more automatic reboots.
    SafeModeEntered {
        /// Why.
        reason: String,
    },
    /// The connection to systemd was lost.
    BusLost {
        /// Which bus.
        bus: String,
        /// Why.
        error: String,
    },
    /// The connection to systemd is back.
    BusRegained {
        /// Which bus.
        bus: String,
        /// Reconnections so far.
        reconnects: u64,
    },
    /// The daemon started on this boot; how the previous one ended.
    BootReport {
        /// This boot's id.
        boot_id: String,
        /// The previous boot, when known.
        previous: Option<PreviousBoot>,
    },
    /// The watchdog itself is in trouble.
    Trouble(Trouble),
}

/// How a ladder action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionResult {
    /// It worked.
    Ok,
    /// It failed.
    Failed,
    /// Observe mode: decided, not performed.
    Observed,
}

impl ActionResult {
    /// `ok`, `failed` or `observed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Ok => "ok",
            ActionResult::Failed => "failed",
            ActionResult::Observed => "observed",
        }
    }
}

/// What is wrong with the watchdog itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// Writes to the state store failed or were dropped (its queue full).
    StoreUnwritable {
        /// Writes that failed since the last report.
        failed: u64,
        /// Writes dropped since the last report.
        dropped: u64,
        /// The last error.
        error: String,
    },
    /// A lossless subscriber fell [`BACKLOG`] events behind: the oldest
    /// are being dropped.
    QueueFull {
        /// The subscriber.
        queue: &'static str,
        /// Events it lost so far.
        lost: u64,
    },
    /// The subscriber caught up again.
    QueueCaughtUp {
        /// The subscriber.
        queue: &'static str,
        /// Events it lost while behind.
        lost: u64,
    },
}

impl Event {
    /// The event's kind, in kebab-case: the store row's `kind` and the
    /// `kind` label of `rvm_watchdog_events_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::UnitChanged { .. } => "unit-changed",
            Event::ProbeChanged { .. } => "probe-changed",
            Event::HealthChanged { .. } => "health-changed",
            Event::IncidentOpened { .. } => "incident-opened",
            Event::IncidentClosed { .. } => "incident-closed",
            Event::Decided { decision, .. } => match decision {
                Decision::Recovered { .. } => "recovered",
                Decision::LadderReset => "ladder-reset",
                Decision::GaveUp { .. } => "gave-up",
                _ => "decision",
            },
            Event::ActionStarted { .. } => "action-started",
            Event::ActionFinished { .. } => "action-finished",
            Event::OperatorCommand { .. } => "operator",
            Event::ReloadApplied { .. } => "reload-applied",
            Event::ReloadRefused { .. } => "reload-refused",
            Event::SafeModeEntered { .. } => "safe-mode",
            Event::BusLost { .. } => "bus-lost",
            Event::BusRegained { .. } => "bus-regained",
            Event::BootReport { .. } => "boot",
            Event::Trouble(_) => "trouble",
        }
    }

    /// The target it concerns, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Event::UnitChanged { target, .. } => target.as_deref(),
            Event::ProbeChanged { target, .. }
            | Event::HealthChanged { target, .. }
            | Event::IncidentOpened { target, .. }
            | Event::IncidentClosed { target, .. }
            | Event::Decided { target, .. }
            | Event::ActionStarted { target, .. }
            | Event::ActionFinished { target, .. }
            | Event::OperatorCommand { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// What an observer gets: the events that still hold, then a receiver of
/// every later one (which reports how many it missed when it lagged).
pub type Observer = (Vec<Arc<Stamped>>, broadcast::Receiver<Arc<Stamped>>);

/// An emitted event: its place in the stream and when it was emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// Counts up from 1 with every event of this run of the daemon.
    pub seq: u64,
    /// When it was emitted.
    pub at: SystemTime,
    /// The fact.
    pub event: Event,
}

/// A lossless subscriber: its channel and what it still owes.
struct Lossless {
    name: &'static str,
    tx: mpsc::Sender<Arc<Stamped>>,
    backlog: VecDeque<Arc<Stamped>>,
    /// Dropped since it last caught up.
    lost: u64,
}

/// The events that still hold, by what they are about: a subscriber starts from these.
#[derive(Default)]
struct Current {
    health: BTreeMap<String, Arc<Stamped>>,
    incidents: BTreeMap<String, Arc<Stamped>>,
    probes: BTreeMap<(String, String), Arc<Stamped>>,
    safe_mode: Option<Arc<Stamped>>,
    bus_lost: Option<Arc<Stamped>>,
}

impl Current {
    fn apply(&mut self, e: &Arc<Stamped>) {
        match &e.event {
            Event::HealthChanged { target, to, .. } => {
                if matches!(to, Health::Unknown) {
                    self.health.remove(target);
                } else {
                    self.health.insert(target.clone(), e.clone());
                }
            }
            Event::IncidentOpened { target, .. } => {
                self.incidents.insert(target.clone(), e.clone());
            }
            Event::IncidentClosed { target, .. } => {
                self.incidents.remove(target);
            }
            Event::ProbeChanged {
                target,
                probe,
                health,
                ..
            } => {
                let key = (target.clone(), probe.clone());
                if *health == ProbeHealth::Failing {
                    self.probes.insert(key, e.clone());
                } else {
                    self.probes.remove(&key);
                }
            }
            Event::SafeModeEntered { .. } => self.safe_mode = Some(e.clone()),
            Event::BusLost { .. } => self.bus_lost = Some(e.clone()),
            Event::BusRegained { .. } => self.bus_lost = None,
            Event::ReloadApplied { removed, .. } => {
                for t in removed {
                    self.health.remove(t);
                    self.incidents.remove(t);
                    self.probes.retain(|(pt, _), _| pt != t);
                }
            }
            _ => {}
        }
    }

    /// Everything that still holds, in the order it was emitted.
    fn events(&self) -> Vec<Arc<Stamped>> {
        let mut all: Vec<Arc<Stamped>> = self
            .health
            .values()
            .chain(self.incidents.values())
            .chain(self.probes.values())
            .chain(&self.safe_mode)
            .chain(&self.bus_lost)
            .cloned()
            .collect();
        all.sort_by_key(|e| e.seq);
        all
    }
}

/// The one place events are emitted; owned by the core loop.
pub struct Events {
    seq: u64,
    counters: watch::Sender<Counters>,
    store: Option<StoreThread>,
    observers: broadcast::Sender<Arc<Stamped>>,
    subscribers: Vec<Lossless>,
    current: Current,
    recent: VecDeque<Arc<Stamped>>,
}

impl Events {
    /// A sink that appends rows to `store` (when there is one).
    pub fn new(store: Option<StoreThread>) -> Events {
        let (observers, _) = broadcast::channel(OBSERVER_CAPACITY);
        Events {
            seq: 0,
            counters: watch::Sender::new(Counters::default()),
            store,
            observers,
            subscribers: Vec::new(),
            current: Current::default(),
            recent: VecDeque::new(),
        }
    }

    /// The counters, for `/metrics`.
    pub fn counters(&self) -> watch::Receiver<Counters> {
        self.counters.subscribe()
    }

    /// Changes a counter that no event bumps (the probe lag histogram).
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        self.counters.send_modify(f);
    }

    /// Emits one fact: its journald record, counters and store row, then
    /// hands it to subscribers and observers.
    pub fn emit(&mut self, event: Event) {
        self.seq += 1;
        let stamped = Arc::new(Stamped {
            seq: self.seq,
            at: SystemTime::now(),
            event,
        });
        journal::write(&stamped.event);
        self.counters.send_modify(|c| c.count(&stamped.event));
        if let Some(store) = &self.store {
            let row = record::row(&stamped);
            store.write_batched("append to the event log", move |s| {
                s.append_event(&row).map(|_| ())
            });
        }
        self.current.apply(&stamped);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(stamped.clone());
        let troubles = self.deliver(&stamped);
        let _ = self.observers.send(stamped);
        for t in troubles {
            self.emit(Event::Trouble(t));
        }
    }

    /// Hands an event to every lossless subscriber; returns the trouble to report.
    fn deliver(&mut self, stamped: &Arc<Stamped>) -> Vec<Trouble> {
        let mut troubles = Vec::new();
        let counters = &self.counters;
        self.subscribers.retain_mut(|sub| {
            sub.backlog.push_back(stamped.clone());
            if !flush(sub) {
                return false;
            }
            if sub.backlog.len() > BACKLOG {
                sub.backlog.pop_front();
                sub.lost += 1;
                counters.send_modify(|c| c.dropped(sub.name));
                if sub.lost == 1 {
                    troubles.push(Trouble::QueueFull {
                        queue: sub.name,
                        lost: 1,
                    });
                }
            }
            true
        });
        troubles
    }

    /// Hands what lagging subscribers owe them as far as they take it (the
    /// core loop calls this every tick).
    pub fn flush(&mut self) {
        let mut caught_up = Vec::new();
        self.subscribers.retain_mut(|sub| {
            if !flush(sub) {
                return false;
            }
            if sub.backlog.is_empty() && sub.lost > 0 {
                caught_up.push(Trouble::QueueCaughtUp {
                    queue: sub.name,
                    lost: std::mem::take(&mut sub.lost),
                });
            }
            true
        });
        for t in caught_up {
            self.emit(Event::Trouble(t));
        }
    }

    /// The events that still hold and a receiver of every later one: an
    /// observer that may lag.
    pub fn slurp_and_subscribe(&self) -> Observer {
        (self.current.events(), self.observers.subscribe())
    }

    /// Every event after the one numbered `seq` and a receiver of every
    /// later one, when the recent events still hold them all; `None` when
    /// some are gone or `seq` was never emitted (the observer then starts
    /// over from current state).
    pub fn resume_after(&self, seq: u64) -> Option<Observer> {
        let first = self.recent.front().map_or(self.seq + 1, |e| e.seq);
        if seq > self.seq || seq + 1 < first {
            return None;
        }
        let missed = self
            .recent
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect();
        Some((missed, self.observers.subscribe()))
    }

    /// The events that still hold and a channel of every later one, none
    /// lost: a consumer that must see everything. `capacity` is the
    /// channel's; behind that, up to [`BACKLOG`] more wait here.
    pub fn subscribe_lossless(
        &mut self,
        name: &'static str,
        capacity: usize,
    ) -> (Vec<Arc<Stamped>>, mpsc::Receiver<Arc<Stamped>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.subscribers.push(Lossless {
            name,
            tx,
            backlog: VecDeque::new(),
            lost: 0,
        });
        (self.current.events(), rx)
    }
}

/// Sends a subscriber's backlog as far as its channel takes it; false when
/// the subscriber is gone.
fn flush(sub: &mut Lossless) -> bool {
    while let Some(next) = sub.backlog.front() {
        match sub.tx.try_send(next.clone()) {
            Ok(()) => {
                sub.backlog.pop_front();
            }
            Err(mpsc::error::TrySendError::Full(_)) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        }
    }
    true
}

/// How many kinds of [`Event`] there are; [`variant`] numbers them.
pub const VARIANTS: usize = 16;

/// The number of an event's variant, below [`VARIANTS`]. The match has no
/// wildcard: a new variant must be numbered here, and then
/// [`examples`] must show it (a test checks).
pub fn variant(e: &Event) -> usize {
    match e {
        Event::UnitChanged { .. } => 0,
        Event::ProbeChanged { .. } => 1,
        Event::HealthChanged { .. } => 2,
        Event::IncidentOpened { .. } => 3,
        Event::IncidentClosed { .. } => 4,
        Event::Decided { .. } => 5,
        Event::ActionStarted { .. } => 6,
        Event::ActionFinished { .. } => 7,
        Event::OperatorCommand { .. } => 8,
        Event::ReloadApplied { .. } => 9,
        Event::ReloadRefused { .. } => 10,
        Event::SafeModeEntered { .. } => 11,
        Event::BusLost { .. } => 12,
        Event::BusRegained { .. } => 13,
        Event::BootReport { .. } => 14,
        Event::Trouble(_) => 15,
    }
}

/// One event of every variant, as the daemon would emit them about a
/// target `camera` on `myrvm-camera.service`: for tests and documentation.
#[doc(hidden)]
pub fn examples() -> Vec<Event> {
    let target = || "camera".to_owned();
    let unit = || Some("myrvm-camera.service".to_owned());
    let failing = Health::Failing {
        reason: "unit myrvm-camera.service failed (exit-code)".into(),
        systemd_restarting: false,
    };
    vec![
        Event::UnitChanged {
            target: Some(target()),
            state: UnitState {
                load_state: "loaded".into(),
                active_state: "failed".into(),
                sub_state: "failed".into(),
                result: "exit-code".into(),
                ..UnitState::unknown("myrvm-camera.service")
            },
        },
        Event::ProbeChanged {
            target: target(),
            unit: unit(),
            probe: "v4l2".into(),
            health: ProbeHealth::Failing,
            status: Status::Fail,
            output: "/dev/video0 is absent".into(),
        },
        Event::HealthChanged {
            target: target(),
            unit: unit(),
            from: Health::Healthy,
            to: failing,
        },
        Event::IncidentOpened {
            target: target(),
            unit: unit(),
            id: "camera-1764620000000".into(),
            reason: "unit myrvm-camera.service failed (exit-code)".into(),
            root_cause: Some("usb-bus".into()),
        },
        Event::Decided {
            target: target(),
            unit: unit(),
            incident: Some("camera-1764620000000".into()),
            systemd: None,
            ladder: vec!["restart", "hook", "reboot"],
            reset_after: Duration::from_secs(600),
            decision: Decision::Scheduled {
                step: 0,
                attempt: 2,
                delay: Duration::from_secs(2),
            },
        },
        Event::ActionStarted {
            target: target(),
            unit: unit(),
            incident: Some("camera-1764620000000".into()),
            step: 0,
            attempt: 1,
            action: "restart",
            reason: "unit myrvm-camera.service failed (exit-code)".into(),
            observe: false,
        },
        Event::ActionFinished {
            target: target(),
            unit: unit(),
            incident: Some("camera-1764620000000".into()),
            step: 0,
            attempt: 1,
            action: "restart",
            result: ActionResult::Ok,
            detail: "restarted myrvm-camera.service".into(),
            took: Duration::from_millis(18),
            output: None,
        },
        Event::IncidentClosed {
            target: target(),
            unit: unit(),
            id: "camera-1764620000000".into(),
            lasted: Duration::from_secs(42),
        },
        Event::OperatorCommand {
            target: target(),
            unit: unit(),
            command: "restart",
            step: None,
            action: Some("restart"),
            ok: true,
            detail: "restarted myrvm-camera.service".into(),
            took: Duration::from_millis(20),
        },
        Event::ReloadApplied {
            generation: 2,
            targets: 3,
            added: vec!["gpu".into()],
            removed: vec![],
            changed: vec![target()],
        },
        Event::ReloadRefused {
            generation: 2,
            problems: vec![
                "camera.toml:3:8: error: unit name \"camera\" lacks a type suffix".into(),
            ],
        },
        Event::SafeModeEntered {
            reason: "reboot budget 1/6h spent".into(),
        },
        Event::BusLost {
            bus: "system bus".into(),
            error: "connection reset by peer".into(),
        },
        Event::BusRegained {
            bus: "system bus".into(),
            reconnects: 1,
        },
        Event::BootReport {
            boot_id: "b2".into(),
            previous: Some(PreviousBoot {
                boot_id: "b1".into(),
                started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_600_000),
                ended: crate::store::BootEnd::CleanShutdown {
                    at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_610_000),
                },
            }),
        },
        Event::Trouble(Trouble::StoreUnwritable {
            failed: 1,
            dropped: 0,
            error: "cannot append to the event log: disk I/O error".into(),
        }),
    ]
}

#[cfg(test)]
mod tests;
