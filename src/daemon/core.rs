//! The core loop's state and how each input changes it.
//!
//! Every input (a unit changed, a probe reported, a process changed, an
//! action finished, a timer came due, a command) is applied here, on the
//! loop: a handler changes state, lets the recovery engine decide, and
//! returns what must happen as [`Effect`]s, queued in order: events to emit,
//! actions to carry out, reports to apply. [`Core::settle`] performs them
//! after each input, before the next: every fact is emitted once through
//! [`Events::emit`], actions run off the loop ([`runner`]) and come back as
//! reports, and no handler performs I/O or re-enters another.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::boot::{Boot, LADDER_KEY, SAFE_MODE_KEY};
use super::{now_ms, sd_notify};
use crate::command::{OperationDone, OperationError};
use crate::config::{self, Bus, Config};
use crate::event::counters::Histogram;
use crate::event::{ActionResult, Event, Events, Trouble};
use crate::logging::LogHandle;
use crate::probe::{Hysteresis, ProbeHealth, ProbeResult};
use crate::process::{ProcessEvent, ProcessHandle, ProcessState};
use crate::recovery::health::{Stop, next_stop, target_health};
use crate::recovery::{Decision, Engine, Health, LadderState, Ms};
use crate::status::{SafeMode, Snapshot};
use crate::store::{StoreThread, WriterReport};
use crate::supervisor::perform::{ActionContext, Attempt};
use crate::supervisor::runner::{self, ActionReport, Origin};
use crate::supervisor::{BusStatus, BusTarget, Supervisor, UnitAccounting, UnitChanged, UnitState};

/// The channels the core loop reads besides commands.
pub(super) struct Inputs {
    pub units: mpsc::Receiver<UnitChanged>,
    pub accounting: mpsc::Receiver<(String, UnitAccounting)>,
    pub reports: mpsc::Receiver<ActionReport>,
    pub processes: mpsc::Receiver<ProcessEvent>,
    pub probes: mpsc::Receiver<ProbeResult>,
    /// Configurations read for a reload.
    pub loaded: mpsc::Receiver<Result<config::Loaded, String>>,
}

/// What an input leaves to be done, in order.
pub(super) enum Effect {
    /// Emit this event.
    Emit(Event),
    /// Carry out this action off the loop.
    Perform(Box<Perform>),
    /// Apply this report on the loop (an action observe mode did not perform).
    Report(ActionReport),
}

/// An action to carry out, with everything it needs.
pub(super) struct Perform {
    pub ctx: ActionContext,
    pub target: config::Target,
    pub action: config::Action,
    pub attempt: Attempt,
    pub unit_state: Option<UnitState>,
    pub origin: Origin,
}

/// A probe as the core loop keeps it.
struct ProbeView {
    hysteresis: Hysteresis,
    health: ProbeHealth,
    outcome: crate::probe::Outcome,
    at: SystemTime,
}

/// The core loop's own state.
pub(super) struct Core {
    pub(super) sources: config::Sources,
    pub(super) config: Config,
    pub(super) generation: u64,
    pub(super) log: Option<LogHandle>,
    pub(super) snapshot: watch::Sender<Snapshot>,
    /// What the API's guard enforces; replaced at a reload.
    pub(super) access: watch::Sender<crate::api::Access>,
    /// The tasks told of a reload: the recorder, the alert engine.
    pub(super) followers: super::boot::Followers,
    pub(super) events: Events,
    pub(super) supervisor: Option<Supervisor>,
    unit_events: mpsc::Sender<UnitChanged>,
    accounting: mpsc::Sender<(String, UnitAccounting)>,
    pub(super) shutdown: CancellationToken,
    pub(super) engine: Engine,
    pub(super) reports: mpsc::Sender<ActionReport>,
    /// What the inputs handled so far left to be done, performed by [`Core::settle`].
    effects: VecDeque<Effect>,
    /// Each unit's last known state, for health after an action.
    pub(super) units: BTreeMap<String, UnitState>,
    /// How far each unit's stop on purpose (`systemctl stop`) has come.
    stops: BTreeMap<String, Stop>,
    store: Option<StoreThread>,
    /// What the store's writer reported at the last tick.
    store_report: WriterReport,
    /// Process targets, by name.
    pub(super) processes: BTreeMap<String, ProcessHandle>,
    /// Tasks that must finish before the daemon exits (process targets stopping).
    tasks: TaskTracker,
    /// Each probe's hysteresis and last outcome, by target, then probe.
    probes: BTreeMap<String, BTreeMap<String, ProbeView>>,
    /// How late probe runs started; published to the counters every tick.
    probe_lag: Histogram,
    probe_results: mpsc::Sender<ProbeResult>,
    /// Cancelled to stop the probes (at a reload, before they start again).
    probe_stop: CancellationToken,
    /// Each process target's last known state, with its spawn number.
    process_states: BTreeMap<String, (u64, ProcessState)>,
    process_events: mpsc::Sender<ProcessEvent>,
    /// Safe mode: no more automatic reboots.
    safe_mode: Option<SafeMode>,
    boot_id: String,
    /// Whether the bus was up when last heard of; `None` before the first news.
    bus_up: Option<bool>,
    /// Operators waiting for their action's result, by ticket.
    pub(super) operators: BTreeMap<u64, Reply>,
    /// Reloads under way.
    pub(super) reloads: super::control::Reloads,
    pub(super) next_ticket: u64,
}

/// What the core publishes to the API.
pub(super) struct Published {
    /// The snapshot handlers read.
    pub snapshot: watch::Sender<Snapshot>,
    /// Who may call what.
    pub access: watch::Sender<crate::api::Access>,
    /// The tasks told of a reload.
    pub followers: super::boot::Followers,
}

/// Where an operator waits for the result of a command.
pub(super) type Reply = oneshot::Sender<Result<OperationDone, OperationError>>;

impl Core {
    /// The core on a freshly loaded configuration: the boot reported, the
    /// supervisor, process targets and probes started.
    pub(super) fn new(
        sources: config::Sources,
        config: Config,
        log: Option<LogHandle>,
        published: Published,
        events: Events,
        boot: Boot,
        shutdown: &CancellationToken,
    ) -> (Core, Inputs) {
        let Published {
            snapshot,
            access,
            followers,
        } = published;
        let (unit_events, units) = mpsc::channel(256);
        let (accounting_tx, accounting) = mpsc::channel(64);
        let (reports_tx, reports) = mpsc::channel(64);
        let (process_events, processes) = mpsc::channel(64);
        let (probe_results, probes) = mpsc::channel(256);
        let (loads_done, loaded) = mpsc::channel(4);
        crate::process::become_subreaper();
        let seed = now_ms() ^ u64::from(std::process::id());
        let mut engine = Engine::new(&config, |name| boot.ladders.get(name).cloned(), seed);
        engine.start_grace(now_ms());
        let mut core = Core {
            sources,
            config,
            generation: 1,
            log,
            snapshot,
            access,
            followers,
            events,
            supervisor: None,
            unit_events,
            accounting: accounting_tx,
            shutdown: shutdown.clone(),
            engine,
            reports: reports_tx,
            effects: VecDeque::new(),
            units: BTreeMap::new(),
            stops: BTreeMap::new(),
            store_report: WriterReport::default(),
            store: boot.store,
            processes: BTreeMap::new(),
            tasks: TaskTracker::new(),
            probes: BTreeMap::new(),
            probe_lag: Histogram::default(),
            probe_results,
            reloads: super::control::Reloads {
                reading: None,
                queued: Vec::new(),
                done: loads_done,
            },
            probe_stop: shutdown.child_token(),
            process_states: BTreeMap::new(),
            process_events,
            safe_mode: boot.safe_mode.clone(),
            boot_id: boot.boot_id.clone(),
            bus_up: None,
            operators: BTreeMap::new(),
            next_ticket: 0,
        };
        core.events.emit(Event::BootReport {
            boot_id: boot.boot_id,
            previous: boot.previous,
        });
        if let (true, Some(mode)) = (boot.entered_safe_mode, &boot.safe_mode) {
            core.events.emit(Event::SafeModeEntered {
                reason: mode.reason.clone(),
            });
        }
        core.start_supervisor_if_needed();
        core.start_processes();
        core.start_probes();
        let inputs = Inputs {
            units,
            accounting,
            reports,
            processes,
            probes,
            loaded,
        };
        (core, inputs)
    }

    /// The supervisor's connection status, once there is a supervisor.
    pub(super) fn bus_status(&self) -> Option<watch::Receiver<BusStatus>> {
        self.supervisor.as_ref().map(|s| s.status())
    }

    /// How often unit accounting is read.
    pub(super) fn metrics_interval(&self) -> Duration {
        self.config.metrics.interval
    }

    /// Starts the supervisor once the configuration names a unit.
    pub(super) fn start_supervisor_if_needed(&mut self) {
        let units = self.config.watched_units();
        if self.supervisor.is_some() || units.is_empty() {
            return;
        }
        let bus = match self.config.daemon.bus {
            Bus::System => BusTarget::System,
            Bus::User => BusTarget::Session,
        };
        info!(bus = %bus.describe(), units = units.len(), "supervising systemd units");
        let supervisor =
            Supervisor::spawn(bus, units, self.unit_events.clone(), self.shutdown.clone());
        let status = supervisor.status().borrow().clone();
        self.snapshot.send_modify(|s| s.supervisor = Some(status));
        self.supervisor = Some(supervisor);
    }

    /// The loop's heartbeat: pings systemd's watchdog, catches a timer that
    /// came due while the loop was busy, hands lagging subscribers their
    /// backlog and reports store trouble.
    pub(super) fn tick(&mut self, now: Ms) {
        sd_notify::watchdog_ping();
        self.snapshot
            .send_modify(|s| s.last_tick = std::time::Instant::now());
        // A ladder waiting for news after its action (health unknown while
        // it verifies) is given what is known now.
        let waiting: Vec<String> = self
            .engine
            .states()
            .filter(|(_, l)| l.health == Health::Unknown && l.verifying_since.is_some())
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in waiting {
            self.observe_health(&name);
        }
        self.wake(now);
        let lag = self.probe_lag.clone();
        self.events.count(|c| c.probe_lag = lag);
        self.events.flush();
        self.check_store();
    }

    /// A timer of the engine came due.
    pub(super) fn wake(&mut self, now: Ms) {
        let decisions = self.engine.tick(now);
        self.handle(decisions);
    }

    /// When the engine next needs a tick without new input.
    pub(super) fn next_wakeup(&mut self, now: Ms) -> Option<Ms> {
        self.engine.next_wakeup(now)
    }

    /// Queues an event.
    pub(super) fn emit(&mut self, event: Event) {
        self.effects.push_back(Effect::Emit(event));
    }

    /// Queues an action to carry out off the loop.
    pub(super) fn perform(&mut self, perform: Perform) {
        self.effects.push_back(Effect::Perform(Box::new(perform)));
    }

    /// Performs the effects the last input left, and those they lead to, in order.
    pub(super) fn settle(&mut self) {
        while let Some(effect) = self.effects.pop_front() {
            match effect {
                Effect::Emit(event) => self.events.emit(event),
                Effect::Perform(p) => runner::spawn(
                    p.ctx,
                    p.target,
                    p.action,
                    p.attempt,
                    p.unit_state,
                    p.origin,
                    self.reports.clone(),
                ),
                Effect::Report(report) => self.on_action_report(report),
            }
        }
    }

    /// Reports writes the store failed or dropped since the last tick.
    fn check_store(&mut self) {
        let Some(store) = &self.store else { return };
        let now = store.report();
        let failed = now.failed - self.store_report.failed;
        let dropped = now.dropped - self.store_report.dropped;
        if failed + dropped > 0 {
            let error = now.last_error.clone().unwrap_or_default();
            self.emit(Event::Trouble(Trouble::StoreUnwritable {
                failed,
                dropped,
                error,
            }));
        }
        self.store_report = now;
    }

    pub(super) fn on_unit_changed(&mut self, event: UnitChanged) {
        // A unit's state comes over the connection: a connection the loop
        // has not seen yet is taken first, so /health never shows a live
        // unit beside "not connected".
        if let Some(status) = self
            .supervisor
            .as_ref()
            .map(|s| s.status().borrow().clone())
            && self.bus_up != Some(status.connected)
        {
            self.on_bus_status(status);
        }
        let targets: Vec<String> = self
            .config
            .targets_of_unit(&event.state.unit)
            .map(|t| t.name.clone())
            .collect();
        // Several restarts can show in one change (RestartSec=0).
        let restarted_by_systemd = event
            .previous
            .as_ref()
            .map_or(0, |p| event.state.n_restarts.saturating_sub(p.n_restarts));
        let state = event.state;
        let stop = next_stop(
            self.stops.get(&state.unit).copied().unwrap_or_default(),
            &state,
        );
        self.stops.insert(state.unit.clone(), stop);
        self.emit(Event::UnitChanged {
            target: targets.first().cloned(),
            state: state.clone(),
        });
        self.units.insert(state.unit.clone(), state.clone());
        // `unit` probes of this unit: their outcome is the unit's state.
        let probes: Vec<(String, String)> = self
            .config
            .targets
            .iter()
            .flat_map(|t| {
                t.probes
                    .iter()
                    .filter(
                        |p| matches!(&p.check, config::Check::Unit { unit } if *unit == state.unit),
                    )
                    .map(move |p| (t.name.clone(), p.name.clone()))
            })
            .collect();
        for (target, probe) in probes {
            self.on_probe_result(ProbeResult {
                target,
                probe,
                outcome: crate::probe::unit_outcome(&state),
                at: SystemTime::now(),
                lag: Duration::ZERO,
            });
        }
        for target in &targets {
            for _ in 0..restarted_by_systemd {
                let decisions = self.engine.systemd_restarted(target, now_ms());
                self.handle(decisions);
            }
            self.observe_health(target);
        }
        self.snapshot.send_modify(|s| {
            s.units.insert(state.unit.clone(), state);
        });
    }

    /// Emits every decision and starts the actions.
    pub(super) fn handle(&mut self, decisions: Vec<(String, Decision)>) {
        // Observers (and the store) see the ladders' new state before the
        // log tells of it.
        self.publish_ladders();
        for (name, decision) in decisions {
            let Some(target) = self.config.target(&name).cloned() else {
                continue;
            };
            let unit = target.unit().map(str::to_owned);
            let incident = self.incident_of(&name);
            let act = match &decision {
                Decision::Act {
                    step,
                    attempt,
                    action,
                    reason,
                    ..
                } => Some((*step, *attempt, action.clone(), reason.clone())),
                _ => None,
            };
            // A rescue names what systemd did: its restarts and its limit.
            let systemd = match (&decision, unit.as_ref().and_then(|u| self.units.get(u))) {
                (Decision::Act { rescue: true, .. }, Some(state)) => {
                    Some((state.n_restarts, state.start_limit_burst))
                }
                _ => None,
            };
            let event = match decision {
                Decision::IncidentOpened { id, reason } => Event::IncidentOpened {
                    root_cause: self.engine.failing_dependency(&name),
                    target: name,
                    unit,
                    id,
                    reason,
                },
                Decision::IncidentClosed { id, lasted } => Event::IncidentClosed {
                    target: name,
                    unit,
                    id,
                    lasted,
                },
                decision => Event::Decided {
                    target: name,
                    unit,
                    incident,
                    systemd,
                    ladder: target.ladder.iter().map(|s| s.action.as_str()).collect(),
                    reset_after: target.reset_after,
                    decision,
                },
            };
            self.emit(event);
            if let Some((step, attempt, action, reason)) = act {
                self.start_action(&target, step, attempt, action, reason);
            }
        }
    }

    /// The open incident of a target, if any.
    pub(super) fn incident_of(&self, target: &str) -> Option<String> {
        self.engine
            .state(target)
            .and_then(|s| s.incident.as_ref())
            .map(|i| i.id.clone())
    }

    /// Publishes every ladder's state and saves those that changed.
    fn publish_ladders(&mut self) {
        let ladders: BTreeMap<String, LadderState> = self
            .engine
            .states()
            .map(|(n, s)| (n.to_owned(), s.clone()))
            .collect();
        if let Some(store) = &self.store {
            let changed: Vec<(String, LadderState)> = ladders
                .iter()
                .filter(|(name, state)| self.snapshot.borrow().ladders.get(*name) != Some(*state))
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect();
            for (name, state) in changed {
                let value = serde_json::to_value(&state).unwrap_or_default();
                store.write_batched("save a ladder's state", move |s| {
                    s.put_state(&format!("{LADDER_KEY}{name}"), &value)
                });
            }
        }
        self.snapshot.send_modify(|s| s.ladders = ladders);
    }

    fn start_action(
        &mut self,
        target: &config::Target,
        step: usize,
        attempt: u32,
        action: config::Action,
        reason: String,
    ) {
        let incident = self.incident_of(&target.name);
        self.emit(Event::ActionStarted {
            target: target.name.clone(),
            unit: target.unit().map(str::to_owned),
            incident: incident.clone(),
            step,
            attempt,
            action: action.as_str(),
            reason: reason.clone(),
            observe: target.observe,
        });
        if target.observe {
            self.effects.push_back(Effect::Report(runner::observed(
                target, &action, step, attempt,
            )));
            return;
        }
        let attempt = Attempt {
            step,
            attempt,
            reason,
            incident: incident.unwrap_or_default(),
        };
        self.perform(Perform {
            ctx: self.action_context(&target.name),
            target: target.clone(),
            action,
            attempt,
            unit_state: target.unit().and_then(|u| self.units.get(u)).cloned(),
            origin: Origin::Ladder { observed: false },
        });
    }

    /// What an action on `target` needs besides the target itself.
    pub(super) fn action_context(&self, target: &str) -> ActionContext {
        let facts = self
            .probes
            .get(target)
            .into_iter()
            .flat_map(|probes| probes.values())
            .flat_map(|view| view.outcome.facts.clone())
            .collect();
        ActionContext {
            facts,
            supervisor: self.supervisor.clone(),
            store: self.store.clone(),
            reboot: self.config.reboot.clone(),
            host_root: self.config.daemon.host_root.clone(),
            safe_mode: self.safe_mode.as_ref().map(|m| m.reason.clone()),
            dashboard_url: crate::api::dashboard_url(&self.config),
            processes: self.processes.clone(),
        }
    }

    /// Enters safe mode: no more automatic reboots, persisted. The state is
    /// queued to the store ahead of the event's row, so the store records
    /// safe mode before the event log tells of it.
    fn enter_safe_mode(&mut self, reason: String) {
        if self.safe_mode.is_some() {
            return;
        }
        let mode = SafeMode {
            since: now_ms(),
            reason: reason.clone(),
        };
        if let Some(store) = &self.store {
            let value = serde_json::to_value(&mode).unwrap_or_default();
            store.write("record safe mode", move |s| {
                s.put_state(SAFE_MODE_KEY, &value)
            });
        }
        self.safe_mode = Some(mode.clone());
        self.snapshot.send_modify(|s| s.safe_mode = Some(mode));
        self.emit(Event::SafeModeEntered { reason });
        sd_notify::status(&self.status_line());
    }

    /// An action finished: a ladder's goes back to the engine, an operator's
    /// answers the operator.
    pub(super) fn on_action_report(&mut self, report: ActionReport) {
        let ActionReport {
            target: name,
            action,
            step,
            attempt,
            performed,
            took,
            origin,
        } = report;
        let Some(target) = self.config.target(&name).cloned() else {
            // Removed by a reload meanwhile.
            if let Origin::Operator { ticket, .. } = origin
                && let Some(reply) = self.operators.remove(&ticket)
            {
                let _ = reply.send(Err(OperationError::UnknownTarget(name)));
            }
            return;
        };
        let unit = target.unit().map(str::to_owned);
        let (by, observed) = match &origin {
            Origin::Operator { .. } => ("operator", false),
            Origin::Ladder { observed } => ("ladder", *observed),
        };
        let last = crate::status::LastAction {
            action,
            by,
            result: match (observed, performed.ok) {
                (true, _) => "observed",
                (false, true) => "ok",
                (false, false) => "failed",
            },
            detail: performed.detail.clone(),
            at: crate::status::rfc3339(SystemTime::now()),
        };
        let rebooted = action == "reboot" && performed.ok && !observed;
        self.snapshot.send_modify(|s| {
            s.last_actions.insert(name.clone(), last);
            if rebooted {
                // Counted against the budget as its record is (the
                // machine normally goes down before anyone reads it).
                s.reboots.push(SystemTime::now());
            }
        });
        let observed = match origin {
            Origin::Operator {
                command,
                step,
                ticket,
            } => {
                self.emit(Event::OperatorCommand {
                    target: name,
                    unit,
                    command,
                    step,
                    action: Some(action),
                    ok: performed.ok,
                    detail: performed.detail.clone(),
                    took,
                });
                if let Some(reply) = self.operators.remove(&ticket) {
                    let _ = reply.send(Ok(OperationDone {
                        ok: performed.ok,
                        detail: performed.detail,
                        took,
                    }));
                }
                return;
            }
            Origin::Ladder { observed } => observed,
        };
        let result = match (observed, performed.ok) {
            (true, _) => ActionResult::Observed,
            (false, true) => ActionResult::Ok,
            (false, false) => ActionResult::Failed,
        };
        self.emit(Event::ActionFinished {
            target: name.clone(),
            unit: unit.clone(),
            incident: self.incident_of(&name),
            step,
            attempt,
            action,
            result,
            detail: performed.detail.clone(),
            took,
            output: performed.output.clone().map(serde_json::Value::String),
        });
        if let Some(reason) = performed.safe_mode.clone() {
            self.enter_safe_mode(reason);
        }
        let decisions = self.engine.action_finished(&name, performed.ok, now_ms());
        self.handle(decisions);
        // The health known so far predates the action: observe it again
        // once the news is of the new activation.
        let fresh = match (
            unit.as_ref().and_then(|u| self.units.get(u)),
            self.process_states.get(&name),
        ) {
            // A unit not (yet) shown activating is old news, or its own
            // reset-failed: its restart's signals are on their way, and the
            // next tick observes it in any case.
            (Some(state), _) => matches!(
                state.active_state.as_str(),
                "active" | "activating" | "reloading"
            ),
            // A process's state from before the restart may still be the
            // latest here (the new one's is on its way): only news of the
            // new process counts.
            (None, Some((spawn, _))) => Some(*spawn) >= performed.process_spawn,
            _ => false,
        };
        if fresh {
            self.observe_health(&name);
        }
    }

    /// Starts the task of every process target that has none; stops those
    /// of removed targets and restarts those whose command changed.
    pub(super) fn start_processes(&mut self) {
        let wanted: BTreeMap<String, config::Target> = self
            .config
            .targets
            .iter()
            .filter(|t| {
                matches!(
                    t.kind,
                    config::TargetKind::Process(_) | config::TargetKind::Adopted(_)
                )
            })
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        self.processes.retain(|name, handle| {
            let keep = wanted.contains_key(name);
            if !keep {
                handle.stop();
            }
            keep
        });
        for (name, target) in wanted {
            if self.processes.contains_key(&name) {
                continue;
            }
            let events = self.process_events.clone();
            let handle = match target.kind {
                config::TargetKind::Adopted(_) => {
                    ProcessHandle::adopt(&target, events, &self.shutdown, &self.tasks)
                }
                _ => ProcessHandle::spawn(&target, events, &self.shutdown, &self.tasks),
            };
            if let Some(handle) = handle {
                self.processes.insert(name, handle);
            }
        }
    }

    pub(super) fn on_process_event(&mut self, event: ProcessEvent) {
        self.process_states
            .insert(event.target.clone(), (event.spawn, event.state.clone()));
        self.observe_health(&event.target);
        self.snapshot.send_modify(|s| {
            s.processes.insert(event.target, event.state);
        });
    }

    /// A target's health from everything known of it (see [`target_health`]).
    fn target_health(&self, name: &str) -> Health {
        let Some(target) = self.config.target(name) else {
            return Health::Unknown;
        };
        let probes = self.probes.get(name);
        target_health(
            target,
            target
                .unit()
                .and_then(|u| Some((self.units.get(u)?, self.stops.get(u) == Some(&Stop::Done)))),
            self.process_states.get(name).map(|(_, s)| s),
            |probe| {
                let view = probes?.get(probe)?;
                Some((view.health, view.outcome.output.as_str()))
            },
        )
    }

    /// Gives the engine a target's health as known now (every observation
    /// is news: after an action the engine waits for a fresh one), and
    /// emits a change of its state.
    fn observe_health(&mut self, name: &str) {
        let health = self.target_health(name);
        if let Some(from) = self
            .engine
            .state(name)
            .map(|s| &s.health)
            .filter(|from| std::mem::discriminant(*from) != std::mem::discriminant(&health))
            .cloned()
        {
            let unit = self
                .config
                .target(name)
                .and_then(|t| t.unit())
                .map(str::to_owned);
            self.emit(Event::HealthChanged {
                target: name.to_owned(),
                unit,
                from,
                to: health.clone(),
            });
        }
        let decisions = self.engine.health(name, health, now_ms());
        self.handle(decisions);
    }

    /// Starts the probes of every target (again, after a reload).
    pub(super) fn start_probes(&mut self) {
        self.probe_stop.cancel();
        self.probe_stop = self.shutdown.child_token();
        let ctx = crate::probe::Context::for_config(&self.config);
        for target in &self.config.targets {
            crate::probe::start(
                target,
                &ctx,
                &self.probe_results,
                &self.probe_stop,
                &self.tasks,
            );
        }
        let config = &self.config;
        let kept = |t: &str, p: &str| {
            config
                .target(t)
                .is_some_and(|t| t.probes.iter().any(|q| q.name == p))
        };
        self.probes.retain(|t, probes| {
            probes.retain(|p, _| kept(t, p));
            !probes.is_empty()
        });
        self.snapshot.send_modify(|s| {
            s.probes
                .retain(|key, _| key.split_once(':').is_some_and(|(t, p)| kept(t, p)));
        });
    }

    pub(super) fn on_probe_result(&mut self, result: ProbeResult) {
        let Some(target) = self.config.target(&result.target) else {
            return;
        };
        let Some(probe) = target.probes.iter().find(|p| p.name == result.probe) else {
            return;
        };
        let (fail_after, pass_after) = (probe.fail_after, probe.pass_after);
        let ProbeResult {
            target: name,
            probe: probe_name,
            outcome,
            at,
            lag,
        } = result;
        let view = match self
            .probes
            .entry(name.clone())
            .or_default()
            .entry(probe_name.clone())
        {
            std::collections::btree_map::Entry::Occupied(e) => {
                let view = e.into_mut();
                view.outcome = outcome;
                view.at = at;
                view
            }
            std::collections::btree_map::Entry::Vacant(e) => e.insert(ProbeView {
                hysteresis: Hysteresis::new(fail_after, pass_after),
                health: ProbeHealth::Unknown,
                outcome,
                at,
            }),
        };
        let changed = view.hysteresis.observe(view.outcome.status);
        if let Some(health) = changed {
            view.health = health;
        }
        // Observers see the probe's new state before the log tells of it.
        let public = crate::status::ProbeView {
            health: view.health,
            outcome: view.outcome.clone(),
            at: view.at,
        };
        let status = public.outcome.status;
        let changed = changed.map(|health| (health, public.outcome.output.clone()));
        self.snapshot.send_modify(|s| {
            s.probes.insert(format!("{name}:{probe_name}"), public);
        });
        self.probe_lag.observe(lag);
        match changed {
            Some((health, output)) => self.emit(Event::ProbeChanged {
                unit: self
                    .config
                    .target(&name)
                    .and_then(|t| t.unit())
                    .map(str::to_owned),
                target: name.clone(),
                probe: probe_name,
                health,
                status,
                output,
            }),
            None => debug!(
                target_name = %name,
                probe = %probe_name,
                status = status.as_str(),
                lag_ms = lag.as_millis() as u64,
                "{}",
                self.probes[&name][&probe_name].outcome.output
            ),
        }
        self.observe_health(&name);
    }

    /// Reads resource use of every unit target off the loop; the figures
    /// come back on the accounting channel.
    pub(super) fn read_accounting(&self) {
        let Some(supervisor) = &self.supervisor else {
            return;
        };
        for unit in self.config.targets.iter().filter_map(|t| t.unit()) {
            let supervisor = supervisor.clone();
            let tx = self.accounting.clone();
            let unit = unit.to_owned();
            tokio::spawn(async move {
                match supervisor.accounting(&unit).await {
                    Ok(figures) => {
                        let _ = tx.send((unit, figures)).await;
                    }
                    Err(e) => {
                        debug!(object_systemd_unit = %unit, error = %e, "cannot read accounting")
                    }
                }
            });
        }
    }

    pub(super) fn on_accounting(&mut self, unit: String, figures: UnitAccounting) {
        self.snapshot.send_modify(|s| {
            s.accounting.insert(unit, figures);
        });
    }

    pub(super) fn on_bus_status(&mut self, status: BusStatus) {
        match (self.bus_up, status.connected) {
            (Some(true) | None, false) if status.last_error.is_some() => {
                self.emit(Event::BusLost {
                    bus: status.bus.clone(),
                    error: status.last_error.clone().unwrap_or_default(),
                });
                self.bus_up = Some(false);
            }
            (Some(false), true) => {
                self.emit(Event::BusRegained {
                    bus: status.bus.clone(),
                    reconnects: status.reconnects,
                });
                self.bus_up = Some(true);
            }
            (None, true) => self.bus_up = Some(true),
            _ => {}
        }
        self.snapshot.send_modify(|s| s.supervisor = Some(status));
        sd_notify::status(&self.status_line());
    }

    pub(super) fn status_line(&self) -> String {
        let s = self.snapshot.borrow();
        let mut line = format!(
            "watching {} target(s); configuration generation {}",
            self.config.targets.len(),
            self.generation
        );
        if let Some(r) = &s.rejected_reload {
            line.push_str(&format!("; last reload refused ({} error(s))", r.errors));
        }
        if let Some(bus) = &s.supervisor
            && !bus.connected
        {
            line.push_str("; not connected to systemd");
        }
        line
    }

    /// Stops process targets (stop signal, grace, SIGKILL) and records the clean stop.
    pub(super) async fn stop(&mut self) {
        self.tasks.close();
        let grace = self
            .config
            .targets
            .iter()
            .filter_map(|t| match &t.kind {
                config::TargetKind::Process(p) => Some(p.stop_timeout),
                _ => None,
            })
            .max()
            .unwrap_or_default()
            + Duration::from_secs(5);
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("process targets did not all stop within {grace:?}");
        }
        if let Some(store) = &self.store {
            let boot_id = self.boot_id.clone();
            let done = store.query_committed(move |s| s.mark_shutdown(&boot_id, SystemTime::now()));
            if tokio::time::timeout(Duration::from_secs(5), done)
                .await
                .is_err()
            {
                warn!("the state store did not record the clean stop within 5s");
            }
        }
    }
}
