//! The daemon: load the configuration, serve the API, run the core loop,
//! reload on SIGHUP, stop on SIGTERM.
//!
//! The **core loop** owns the configuration in force and publishes a
//! [`Snapshot`] for observers. It is also what pings systemd's watchdog
//! (`WATCHDOG=1`): a wedged loop stops pinging and systemd restarts the
//! daemon. A **reload** reads and validates everything off the loop and
//! applies it whole, or not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::api::{self, ApiState};
use crate::config::{self, Bus, Config, Level, Loaded, Sources};
use crate::logging::{self, LogHandle};
use crate::notify;
use crate::probe::{Hysteresis, ProbeHealth, ProbeResult};
use crate::process::{ProcessEvent, ProcessHandle, ProcessState, process_health};
use crate::recovery::Health;
use crate::recovery::perform::{ActionContext, Attempt, Performed, perform, unit_health};
use crate::recovery::{Decision, Engine, LadderState, Ms};
use crate::status::SafeMode;
use crate::status::{ConfigView, IdentityView, RejectedReload, Snapshot};
use crate::store::{BootEnd, NewEvent, PreviousBoot, Store, StoreThread};
use crate::supervisor::{BusStatus, BusTarget, Supervisor, UnitAccounting, UnitChanged, UnitState};

/// How long the API gets to finish requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A request to the core loop.
#[derive(Debug)]
pub enum Command {
    /// Re-read and validate everything; apply all or nothing.
    Reload {
        /// The outcome.
        reply: oneshot::Sender<ReloadOutcome>,
    },
    /// An operator's command on a target (API, CLI).
    Operate {
        /// The target's name.
        target: String,
        /// What to do.
        operation: Operation,
        /// The outcome, once the action finished.
        reply: oneshot::Sender<Result<OperationDone, OperationError>>,
    },
}

/// An operator's command on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Restart the target now (outside its ladder).
    Restart,
    /// Reset its ladder: it starts over, and a target that gave up acts again.
    Reset,
    /// Run this step of its ladder now (1-based), outside the ladder's count.
    RunStep(usize),
}

/// An operator's command that was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationDone {
    /// Whether the action worked.
    pub ok: bool,
    /// What was done, or why it failed.
    pub detail: String,
    /// How long it took.
    pub took: Duration,
}

/// An operator's command that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    /// No such target.
    #[error("no target named \"{0}\"")]
    UnknownTarget(String),
    /// No such ladder step.
    #[error("target \"{target}\" has {steps} ladder step(s); there is no step {step}")]
    NoSuchStep {
        /// The target.
        target: String,
        /// Steps it has.
        steps: usize,
        /// The step asked for.
        step: usize,
    },
    /// The target has nothing this command can act on.
    #[error("{0}")]
    NotApplicable(String),
    /// The daemon is stopping.
    #[error("the watchdog is stopping")]
    Stopping,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Applied: the new generation and its target count.
    Applied {
        /// Generation number.
        generation: u64,
        /// Targets now watched.
        targets: usize,
    },
    /// Refused: the problems, rendered; the running configuration stays.
    Refused {
        /// `file:line:col: error: …` lines.
        problems: Vec<String>,
    },
}

/// Entry point for `rvm-watchdog run`: loads the configuration, sets up
/// logging, and runs the daemon until SIGTERM or SIGINT.
pub fn main(sources: Sources) -> anyhow::Result<()> {
    let loaded = config::load(&sources);
    let Some(config) = loaded.config.clone() else {
        // Logging is not configured yet: the problems go to stderr, which is
        // also the journal when systemd runs us.
        for d in &loaded.diagnostics {
            eprintln!("{d}");
        }
        anyhow::bail!(
            "configuration is invalid ({} error(s)); nothing started",
            loaded.error_count()
        );
    };
    let log = logging::init(config.log.level, config.log.output);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rvm-watchdog")
        .build()
        .context("cannot start the async runtime")?;
    let shutdown = CancellationToken::new();
    runtime.block_on(async {
        let signals = spawn_signal_listener(shutdown.clone())?;
        run(sources, loaded, Some(log), shutdown, signals).await
    })
}

/// Turns SIGTERM and SIGINT into cancelling `shutdown`, and SIGHUP into reload commands.
fn spawn_signal_listener(shutdown: CancellationToken) -> anyhow::Result<mpsc::Receiver<Command>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { info!(signal = "SIGTERM", "stopping"); shutdown.cancel(); break; }
                _ = int.recv() => { info!(signal = "SIGINT", "stopping"); shutdown.cancel(); break; }
                _ = hup.recv() => {
                    info!(signal = "SIGHUP", "reload requested");
                    let (reply, _) = oneshot::channel();
                    if tx.send(Command::Reload { reply }).await.is_err() { break; }
                }
            }
        }
    });
    Ok(rx)
}

/// Runs the daemon on an already loaded, valid configuration until
/// `shutdown` is cancelled. `commands` carries reload requests (SIGHUP, API).
pub async fn run(
    sources: Sources,
    loaded: Loaded,
    log: Option<LogHandle>,
    shutdown: CancellationToken,
    mut commands: mpsc::Receiver<Command>,
) -> anyhow::Result<()> {
    let config = loaded
        .config
        .clone()
        .context("run() needs a valid configuration")?;
    let started = Instant::now();
    let state_dir = prepare_state_dir(&config.daemon.state_dir)?;
    let boot = open_store(&state_dir, &config);

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set [api] listen or --listen)",
                config.api.listen
            )
        })?;
    let listen = listener
        .local_addr()
        .context("cannot read the bound address")?;

    let tick_every = notify::watchdog_interval()
        .map(|w| (w / 3).min(Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    let source = config_source(&loaded);
    let warnings = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Level::Warning)
        .count();
    let snapshot = Snapshot {
        identity: identity_view(&config),
        started_at: SystemTime::now(),
        config: ConfigView::new(&config, 1, warnings, source.clone()),
        rejected_reload: None,
        last_tick: Instant::now(),
        tick_every,
        state_dir: state_dir.display().to_string(),
        log_destination: log.as_ref().map(|l| l.destination).unwrap_or("stderr"),
        supervisor: None,
        units: Default::default(),
        accounting: Default::default(),
        ladders: Default::default(),
        safe_mode: None,
        previous_boot: None,
        processes: Default::default(),
        counters: Default::default(),
        probes: Default::default(),
    };
    let (snapshot_tx, snapshot_rx) = watch::channel(snapshot);

    let (api_commands, mut from_api) = mpsc::channel(16);
    let app = api::router(ApiState {
        snapshot: snapshot_rx,
        commands: api_commands,
        token_file: config.api.token_file.clone(),
        open_without_token: config.api.listen.ip().is_loopback(),
    });
    let api_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { api_stop.cancelled().await })
            .await
    });

    for d in &loaded.diagnostics {
        log_diagnostic(d);
    }
    info!(
        listen = %listen,
        state_dir = %state_dir.display(),
        config = %source,
        targets = config.targets.len(),
        "rvm-watchdog {} started",
        env!("CARGO_PKG_VERSION")
    );
    announce_targets(&config);

    let (unit_events_tx, mut unit_events) = mpsc::channel(256);
    let (accounting_tx, mut accounting) = mpsc::channel(64);
    let (actions_tx, mut actions) = mpsc::channel(64);
    let (process_events_tx, mut process_events) = mpsc::channel(64);
    let (probe_results_tx, mut probe_results) = mpsc::channel(256);
    crate::process::become_subreaper();
    let seed = now_ms() ^ u64::from(std::process::id());
    let mut engine = Engine::new(&config, |name| boot.ladders.get(name).cloned(), seed);
    engine.start_grace(now_ms());
    let mut core = Core {
        sources,
        config,
        generation: 1,
        log,
        snapshot: snapshot_tx,
        supervisor: None,
        unit_events: unit_events_tx,
        accounting: accounting_tx,
        shutdown: shutdown.clone(),
        engine,
        actions: actions_tx,
        units: BTreeMap::new(),
        store: boot.store.clone(),
        processes: BTreeMap::new(),
        tasks: TaskTracker::new(),
        probes: BTreeMap::new(),
        probe_results: probe_results_tx,
        probe_stop: shutdown.child_token(),
        process_states: BTreeMap::new(),
        process_events: process_events_tx,
        safe_mode: boot.safe_mode.clone(),
        boot_id: boot.boot_id.clone(),
    };
    core.snapshot.send_modify(|s| {
        s.safe_mode = core.safe_mode.clone();
        s.previous_boot = boot.previous.clone();
    });
    core.start_supervisor_if_needed();
    core.start_processes();
    core.start_probes();
    let mut bus_status = core.supervisor.as_ref().map(|s| s.status());
    debug!(
        tick_every_ms = tick_every.as_millis() as u64,
        systemd_watchdog_ms = notify::watchdog_interval().map(|w| w.as_millis() as u64),
        "core loop timing"
    );
    notify::ready(&core.status_line());
    info!(startup_ms = started.elapsed().as_millis() as u64, "ready");

    let mut metrics_tick = tokio::time::interval(core.config.metrics.interval);
    metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                core.tick();
                // A timer that came due while the loop was busy elsewhere
                // is caught here, a tick later at most.
                let decisions = core.engine.tick(now_ms());
                core.handle(decisions);
            }
            Some(command) = from_api.recv() => core.command(command).await,
            Some(command) = commands.recv() => match command {
                Command::Reload { reply } => {
                    let outcome = core.reload().await;
                    let _ = reply.send(outcome);
                }
                other => core.command(other).await,
            },
            Some(event) = unit_events.recv() => {
                core.on_unit_changed(event);
                if bus_status.is_none() {
                    bus_status = core.supervisor.as_ref().map(|s| s.status());
                }
            }
            _ = metrics_tick.tick() => core.read_accounting(),
            Some(finished) = actions.recv() => core.on_action_finished(finished),
            Some(event) = process_events.recv() => core.on_process_event(event),
            Some(result) = probe_results.recv() => core.on_probe_result(result),
            _ = sleep_until_ms(core.engine.next_wakeup(now_ms())) => {
                let decisions = core.engine.tick(now_ms());
                core.handle(decisions);
            }
            Some((unit, figures)) = accounting.recv() => core.snapshot.send_modify(|s| {
                s.accounting.insert(unit, figures);
            }),
            Some(status) = next_bus_status(&mut bus_status) => core.on_bus_status(status),
        }
    }

    notify::stopping();
    // Process targets stop their processes (stop signal, grace, SIGKILL).
    core.tasks.close();
    let grace = core
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
    if tokio::time::timeout(grace, core.tasks.wait())
        .await
        .is_err()
    {
        warn!("process targets did not all stop within {grace:?}");
    }
    if let Some(store) = &core.store {
        let boot_id = core.boot_id.clone();
        let (done, wait) = oneshot::channel();
        store.write("record the clean stop", move |s| {
            let result = s.mark_shutdown(&boot_id, SystemTime::now());
            let _ = done.send(());
            result
        });
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "the API server ended with an error"),
        Ok(Err(e)) => warn!(error = %e, "the API server task failed"),
        Err(_) => warn!("the API server did not finish within {SHUTDOWN_GRACE:?}"),
    }
    info!("stopped");
    Ok(())
}

/// The next status of the supervisor's connection; never resolves without a supervisor.
async fn next_bus_status(status: &mut Option<watch::Receiver<BusStatus>>) -> Option<BusStatus> {
    if let Some(rx) = status
        && rx.changed().await.is_ok()
    {
        return Some(rx.borrow_and_update().clone());
    }
    std::future::pending().await
}

/// The core loop's own state.
struct Core {
    sources: Sources,
    config: Config,
    generation: u64,
    log: Option<LogHandle>,
    snapshot: watch::Sender<Snapshot>,
    supervisor: Option<Supervisor>,
    unit_events: mpsc::Sender<UnitChanged>,
    accounting: mpsc::Sender<(String, UnitAccounting)>,
    shutdown: CancellationToken,
    engine: Engine,
    actions: mpsc::Sender<ActionFinished>,
    /// Each unit's last known state, for health after an action.
    units: BTreeMap<String, UnitState>,
    store: Option<StoreThread>,
    /// Process targets, by name.
    processes: BTreeMap<String, ProcessHandle>,
    /// Tasks that must finish before the daemon exits (process targets stopping).
    tasks: TaskTracker,
    /// Each probe's hysteresis and last outcome, by (target, probe).
    probes: BTreeMap<(String, String), ProbeView>,
    probe_results: mpsc::Sender<ProbeResult>,
    /// Cancelled to stop the probes (at a reload, before they start again).
    probe_stop: CancellationToken,
    /// Each process target's last known state, with its spawn number.
    process_states: BTreeMap<String, (u64, ProcessState)>,
    process_events: mpsc::Sender<ProcessEvent>,
    /// Safe mode: no more automatic reboots.
    safe_mode: Option<SafeMode>,
    boot_id: String,
}

/// An action of a ladder finished (sent by the task that ran it).
struct ActionFinished {
    target: String,
    action: &'static str,
    step: usize,
    attempt: u32,
    performed: Performed,
    took: Duration,
    /// Observe mode: decided, not performed.
    observed: bool,
}

fn now_ms() -> Ms {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as Ms)
        .unwrap_or(0)
}

impl Core {
    /// Starts the supervisor once the configuration names a unit.
    fn start_supervisor_if_needed(&mut self) {
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

    fn on_unit_changed(&mut self, event: UnitChanged) {
        let state = &event.state;
        let target_name = self
            .config
            .targets_of_unit(&state.unit)
            .map(|t| t.name.clone())
            .next();
        match event.failure() {
            Some(why) => warn!(
                object_systemd_unit = %state.unit,
                target_name,
                active_state = %state.active_state,
                sub_state = %state.sub_state,
                result = %state.result,
                n_restarts = state.n_restarts,
                "unit {} failed: {why}",
                state.unit
            ),
            None => info!(
                object_systemd_unit = %state.unit,
                target_name,
                active_state = %state.active_state,
                sub_state = %state.sub_state,
                main_pid = state.main_pid,
                "unit {} is {}",
                state.unit,
                state.summary()
            ),
        }
        let restarted_by_systemd = event
            .previous
            .as_ref()
            .is_some_and(|p| state.n_restarts > p.n_restarts);
        let targets: Vec<String> = self
            .config
            .targets_of_unit(&state.unit)
            .map(|t| t.name.clone())
            .collect();
        let state = event.state;
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
        let now = now_ms();
        for target in &targets {
            if restarted_by_systemd {
                let decisions = self.engine.systemd_restarted(target, now);
                self.handle(decisions);
            }
            let health = self.target_health(target);
            let decisions = self.engine.health(target, health, now);
            self.handle(decisions);
        }
        self.snapshot.send_modify(|s| {
            s.units.insert(state.unit.clone(), state);
        });
    }

    /// Logs each decision and starts the actions.
    fn handle(&mut self, decisions: Vec<(String, Decision)>) {
        // Observers (and the store) see the ladders' new state before the
        // log tells of it.
        self.publish_ladders();
        for (name, decision) in decisions {
            let Some(target) = self.config.target(&name).cloned() else {
                continue;
            };
            let unit = target.unit().map(str::to_owned);
            let incident = self
                .engine
                .state(&name)
                .and_then(|s| s.incident.as_ref())
                .map(|i| i.id.clone());
            log_decision(&target, unit.as_deref(), incident.as_deref(), &decision);
            let (kind, result) = decision_kind(&decision);
            let counted = result.unwrap_or(kind);
            self.snapshot
                .send_modify(|s| s.counters.decision(&target.name, counted));
            self.record_event(
                kind,
                &target,
                incident.as_deref(),
                decision_step(&decision),
                result,
                decision_message(&target, &decision),
            );
            if let Decision::Act {
                step,
                attempt,
                action,
                reason,
            } = decision
            {
                self.start_action(&target, step, attempt, action, reason);
            }
        }
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
                store.write("save a ladder's state", move |s| {
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
        let name = action.as_str();
        let incident = self
            .engine
            .state(&target.name)
            .and_then(|s| s.incident.as_ref())
            .map(|i| i.id.clone())
            .unwrap_or_default();
        self.record_event(
            "action-started",
            target,
            Some(&incident),
            Some((step, attempt)),
            None,
            format!(
                "{name} of {} (step {}, attempt {attempt}): {reason}",
                target.name,
                step + 1
            ),
        );
        if target.observe {
            info!(
                target_name = %target.name,
                object_systemd_unit = target.unit(),
                step = step + 1,
                attempt,
                action = name,
                observe = true,
                "observe mode: would {name} {} (step {}, attempt {attempt}); doing nothing",
                target.name,
                step + 1
            );
            let _ = self.actions.try_send(ActionFinished {
                target: target.name.clone(),
                action: name,
                step,
                attempt,
                performed: Performed {
                    ok: true,
                    detail: "observe mode: not performed".into(),
                    safe_mode: None,
                    process_spawn: None,
                    output: None,
                },
                took: Duration::ZERO,
                observed: true,
            });
            return;
        }
        let ctx = self.action_context(&target.name);
        let attempt_info = Attempt {
            step,
            attempt,
            reason,
            incident,
        };
        let unit_state = target.unit().and_then(|u| self.units.get(u)).cloned();
        let tx = self.actions.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let performed =
                perform(&ctx, &target, &action, &attempt_info, unit_state.as_ref()).await;
            let _ = tx
                .send(ActionFinished {
                    target: target.name.clone(),
                    action: name,
                    step,
                    attempt,
                    performed,
                    took: started.elapsed(),
                    observed: false,
                })
                .await;
        });
    }

    /// Carries out a command from the API (and SIGHUP's reload).
    async fn command(&mut self, command: Command) {
        match command {
            Command::Reload { reply } => {
                let outcome = self.reload().await;
                let _ = reply.send(outcome);
            }
            Command::Operate {
                target,
                operation,
                reply,
            } => self.operate(&target, operation, reply),
        }
    }

    fn operate(
        &mut self,
        name: &str,
        operation: Operation,
        reply: oneshot::Sender<Result<OperationDone, OperationError>>,
    ) {
        let Some(target) = self.config.target(name).cloned() else {
            let _ = reply.send(Err(OperationError::UnknownTarget(name.to_owned())));
            return;
        };
        let (action, step) = match operation {
            Operation::Reset => {
                info!(target_name = %target.name, operator = true, "operator reset of {}'s ladder", target.name);
                self.record_event(
                    "operator",
                    &target,
                    None,
                    None,
                    Some("reset"),
                    format!("operator reset of {}'s ladder", target.name),
                );
                let decisions = self.engine.reset(name, now_ms());
                self.handle(decisions);
                let _ = reply.send(Ok(OperationDone {
                    ok: true,
                    detail: format!("{}'s ladder starts over", target.name),
                    took: Duration::ZERO,
                }));
                return;
            }
            Operation::Restart => {
                if target.unit().is_none() {
                    let _ = reply.send(Err(OperationError::NotApplicable(format!(
                        "target \"{}\" has no unit to restart",
                        target.name
                    ))));
                    return;
                }
                (config::Action::Restart, None)
            }
            Operation::RunStep(n) => match n.checked_sub(1).and_then(|i| target.ladder.get(i)) {
                Some(step) => (step.action.clone(), Some(n - 1)),
                None => {
                    let _ = reply.send(Err(OperationError::NoSuchStep {
                        target: target.name.clone(),
                        steps: target.ladder.len(),
                        step: n,
                    }));
                    return;
                }
            },
        };
        let ctx = self.action_context(&target.name);
        let incident = self
            .engine
            .state(name)
            .and_then(|s| s.incident.as_ref())
            .map(|i| i.id.clone())
            .unwrap_or_default();
        let attempt = Attempt {
            step: step.unwrap_or(0),
            attempt: 1,
            reason: "asked for by an operator".into(),
            incident,
        };
        let unit_state = target.unit().and_then(|u| self.units.get(u)).cloned();
        let store = self.store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let performed = perform(&ctx, &target, &action, &attempt, unit_state.as_ref()).await;
            let took = started.elapsed();
            let what = action.as_str();
            if performed.ok {
                info!(target_name = %target.name, object_systemd_unit = target.unit(), action = what, operator = true, result = "ok", took_ms = took.as_millis() as u64, "operator {what} of {}: {}", target.name, performed.detail);
            } else {
                warn!(target_name = %target.name, object_systemd_unit = target.unit(), action = what, operator = true, result = "failed", took_ms = took.as_millis() as u64, "operator {what} of {} failed: {}", target.name, performed.detail);
            }
            if let Some(store) = store {
                let mut event = NewEvent::new(
                    SystemTime::now(),
                    "operator",
                    format!("operator {what} of {}: {}", target.name, performed.detail),
                );
                event.target = Some(target.name.clone());
                event.unit = target.unit().map(str::to_owned);
                event.step = step.map(|s| s as u32);
                event.result = Some(if performed.ok { "ok" } else { "failed" }.into());
                store.write("append to the event log", move |s| {
                    s.append_event(&event).map(|_| ())
                });
            }
            let _ = reply.send(Ok(OperationDone {
                ok: performed.ok,
                detail: performed.detail,
                took,
            }));
        });
    }

    /// What an action on `target` needs besides the target itself.
    fn action_context(&self, target: &str) -> ActionContext {
        let facts = self
            .probes
            .iter()
            .filter(|((t, _), _)| t == target)
            .flat_map(|(_, view)| view.outcome.facts.clone())
            .collect();
        ActionContext {
            facts,
            supervisor: self.supervisor.clone(),
            store: self.store.clone(),
            reboot: self.config.reboot.clone(),
            host_root: self.config.daemon.host_root.clone(),
            safe_mode: self.safe_mode.as_ref().map(|m| m.reason.clone()),
            dashboard_url: None,
            processes: self.processes.clone(),
        }
    }

    /// Appends to the persisted event log.
    fn record_event(
        &self,
        kind: &'static str,
        target: &config::Target,
        incident: Option<&str>,
        step: Option<(usize, u32)>,
        result: Option<&str>,
        message: String,
    ) {
        self.record_event_with(
            kind,
            target,
            incident,
            step,
            result,
            message,
            serde_json::json!({}),
        );
    }

    /// [`Core::record_event`] with structured detail.
    #[allow(clippy::too_many_arguments)]
    fn record_event_with(
        &self,
        kind: &'static str,
        target: &config::Target,
        incident: Option<&str>,
        step: Option<(usize, u32)>,
        result: Option<&str>,
        message: String,
        fields: serde_json::Value,
    ) {
        let Some(store) = &self.store else { return };
        let mut event = NewEvent::new(SystemTime::now(), kind, message);
        event.fields = fields;
        event.target = Some(target.name.clone());
        event.unit = target.unit().map(str::to_owned);
        event.incident = incident.map(str::to_owned);
        event.step = step.map(|(s, _)| s as u32);
        event.attempt = step.map(|(_, a)| a);
        event.result = result.map(str::to_owned);
        store.write("append to the event log", move |s| {
            s.append_event(&event).map(|_| ())
        });
    }

    /// Enters safe mode: no more automatic reboots, persisted.
    fn enter_safe_mode(&mut self, reason: String) {
        if self.safe_mode.is_some() {
            return;
        }
        let mode = SafeMode {
            since: now_ms(),
            reason: reason.clone(),
        };
        // Durable before anyone is told: safe mode must survive a crash.
        if let Some(store) = &self.store {
            let value = serde_json::to_value(&mode).unwrap_or_default();
            if let Err(e) = store.write_now(Duration::from_secs(5), move |s| {
                s.put_state(SAFE_MODE_KEY, &value)
            }) {
                warn!(error = %e, "cannot record safe mode; it holds until the watchdog restarts");
            }
        }
        error!(
            reason = %reason,
            "entering safe mode: {reason}; no more automatic reboots, probing, recovery and alerts go on"
        );
        self.safe_mode = Some(mode.clone());
        self.snapshot.send_modify(|s| s.safe_mode = Some(mode));
        notify::status(&self.status_line());
    }

    fn on_action_finished(&mut self, finished: ActionFinished) {
        let Some(target) = self.config.target(&finished.target).cloned() else {
            return;
        };
        let unit = target.unit();
        let took_ms = finished.took.as_millis() as u64;
        if finished.performed.ok {
            info!(
                target_name = %target.name,
                object_systemd_unit = unit,
                step = finished.step + 1,
                attempt = finished.attempt,
                action = finished.action,
                result = "ok",
                took_ms,
                "{} of {}: {}",
                finished.action,
                target.name,
                finished.performed.detail
            );
        } else {
            warn!(
                target_name = %target.name,
                object_systemd_unit = unit,
                step = finished.step + 1,
                attempt = finished.attempt,
                action = finished.action,
                result = "failed",
                took_ms,
                "{} of {} failed: {}",
                finished.action,
                target.name,
                finished.performed.detail
            );
        }
        let incident = self
            .engine
            .state(&target.name)
            .and_then(|s| s.incident.as_ref())
            .map(|i| i.id.clone());
        self.record_event_with(
            "action-finished",
            &target,
            incident.as_deref(),
            Some((finished.step, finished.attempt)),
            Some(if finished.performed.ok {
                "ok"
            } else {
                "failed"
            }),
            format!(
                "{} of {}: {}",
                finished.action, target.name, finished.performed.detail
            ),
            serde_json::json!({
                "tookMs": finished.took.as_millis() as u64,
                "output": finished.performed.output,
            }),
        );
        let result = match (finished.observed, finished.performed.ok) {
            (true, _) => "observed",
            (false, true) => "ok",
            (false, false) => "failed",
        };
        self.snapshot
            .send_modify(|s| s.counters.action(&target.name, finished.action, result));
        if let Some(reason) = finished.performed.safe_mode.clone() {
            self.enter_safe_mode(reason);
        }
        let now = now_ms();
        let decisions = self
            .engine
            .action_finished(&target.name, finished.performed.ok, now);
        self.handle(decisions);
        // The health known so far predates the action: observe it again.
        let current = match (
            unit.and_then(|u| self.units.get(u)),
            self.process_states.get(&target.name),
        ) {
            (Some(_), _) => Some(self.target_health(&target.name)),
            // A process's state from before the restart may still be the
            // latest here (the new one's is on its way): only news of the
            // new process counts.
            (None, Some((spawn, _))) if Some(*spawn) >= finished.performed.process_spawn => {
                Some(self.target_health(&target.name))
            }
            _ => None,
        };
        if let Some(health) = current {
            let decisions = self.engine.health(&target.name, health, now);
            self.handle(decisions);
        }
    }

    /// Starts the task of every process target that has none; stops those
    /// of removed targets and restarts those whose command changed.
    fn start_processes(&mut self) {
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

    fn on_process_event(&mut self, event: ProcessEvent) {
        self.process_states
            .insert(event.target.clone(), (event.spawn, event.state.clone()));
        let health = self.target_health(&event.target);
        let decisions = self.engine.health(&event.target, health, now_ms());
        self.handle(decisions);
        self.snapshot.send_modify(|s| {
            s.processes.insert(event.target, event.state);
        });
    }

    /// A target's health from everything known of it: its unit's or its
    /// process's state, and its probes after hysteresis. For a unit or a
    /// process only `liveness` probes count (a failing dependency must not
    /// restart it); a target that is only probed is what its probes say.
    fn target_health(&self, name: &str) -> Health {
        let Some(target) = self.config.target(name) else {
            return Health::Unknown;
        };
        let base = match &target.kind {
            config::TargetKind::Unit { unit } => {
                Some(self.units.get(unit).map(unit_health).unwrap_or_default())
            }
            config::TargetKind::Process(_) | config::TargetKind::Adopted(_) => Some(
                self.process_states
                    .get(name)
                    .map(|(_, s)| process_health(name, s))
                    .unwrap_or_default(),
            ),
            config::TargetKind::Probed => None,
        };
        if let Some(h @ Health::Failing { .. }) = &base {
            return h.clone();
        }
        let counted: Vec<&config::Probe> = target
            .probes
            .iter()
            .filter(|p| crate::probe::runs(&p.check))
            .filter(|p| base.is_none() || p.role == config::ProbeRole::Liveness)
            .collect();
        let mut all_known = true;
        for p in &counted {
            match self.probes.get(&(name.to_owned(), p.name.clone())) {
                Some(view) if view.health == ProbeHealth::Failing => {
                    return Health::Failing {
                        reason: format!("probe {} is failing: {}", p.name, view.outcome.output),
                        systemd_restarting: false,
                    };
                }
                Some(view) if view.health == ProbeHealth::Passing => {}
                _ => all_known = false,
            }
        }
        match base {
            Some(h) if !all_known && h == Health::Healthy => Health::Unknown,
            Some(h) => h,
            None if counted.is_empty() || !all_known => Health::Unknown,
            None => Health::Healthy,
        }
    }

    /// Starts the probes of every target (again, after a reload).
    fn start_probes(&mut self) {
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
        self.probes.retain(|(t, p), _| kept(t, p));
        self.snapshot.send_modify(|s| {
            s.probes
                .retain(|key, _| key.split_once(':').is_some_and(|(t, p)| kept(t, p)));
        });
    }

    fn on_probe_result(&mut self, result: ProbeResult) {
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
        let key = (name, probe_name);
        let view = match self.probes.entry(key.clone()) {
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
        self.snapshot.send_modify(|s| {
            s.probes.insert(format!("{}:{}", key.0, key.1), public);
            s.counters.probe_lag.observe(lag);
        });
        let (name, probe_name) = (&key.0, &key.1);
        let outcome = &self.probes[&key].outcome;
        let output = &outcome.output;
        if let Some(health) = changed {
            let unit = self.config.target(name).and_then(|t| t.unit());
            match health {
                ProbeHealth::Failing => warn!(
                    target_name = %name,
                    object_systemd_unit = unit,
                    probe = %probe_name,
                    "probe {name}/{probe_name} is failing: {output}"
                ),
                _ => info!(
                    target_name = %name,
                    object_systemd_unit = unit,
                    probe = %probe_name,
                    "probe {name}/{probe_name} is passing: {output}"
                ),
            }
        } else {
            debug!(
                target_name = %name,
                probe = %probe_name,
                status = outcome.status.as_str(),
                lag_ms = lag.as_millis() as u64,
                "{output}"
            );
        }
        // Every result is news to the engine: after an action it waits for
        // a fresh observation, even one that does not change the probe's health.
        let health = self.target_health(&key.0);
        let decisions = self.engine.health(&key.0, health, now_ms());
        self.handle(decisions);
    }

    /// Reads resource use of every unit target off the loop; the figures
    /// come back on the accounting channel.
    fn read_accounting(&self) {
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

    fn on_bus_status(&mut self, status: BusStatus) {
        self.snapshot.send_modify(|s| s.supervisor = Some(status));
        notify::status(&self.status_line());
    }

    fn tick(&mut self) {
        notify::watchdog_ping();
        self.snapshot.send_modify(|s| s.last_tick = Instant::now());
    }

    fn status_line(&self) -> String {
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

    async fn reload(&mut self) -> ReloadOutcome {
        let sources = self.sources.clone();
        let loaded = match tokio::task::spawn_blocking(move || config::load(&sources)).await {
            Ok(l) => l,
            Err(e) => {
                error!(error = %e, "reload failed: the loader panicked; running configuration kept");
                return ReloadOutcome::Refused {
                    problems: vec![format!("internal error: {e}")],
                };
            }
        };
        for d in &loaded.diagnostics {
            log_diagnostic(d);
        }
        let outcome = match &loaded.config {
            None => {
                let problems: Vec<String> = loaded
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == Level::Error)
                    .map(ToString::to_string)
                    .collect();
                // Observers see the refusal before the log says so.
                self.snapshot.send_modify(|s| {
                    s.rejected_reload = Some(RejectedReload {
                        at: SystemTime::now(),
                        errors: problems.len(),
                        problems: problems.iter().take(5).cloned().collect(),
                    })
                });
                error!(
                    errors = problems.len(),
                    generation = self.generation,
                    "reload refused: the configuration has {} error(s); running configuration kept",
                    problems.len()
                );
                ReloadOutcome::Refused { problems }
            }
            Some(new) => {
                self.apply(new.clone(), &loaded);
                ReloadOutcome::Applied {
                    generation: self.generation,
                    targets: self.config.targets.len(),
                }
            }
        };
        notify::status(&self.status_line());
        outcome
    }

    fn apply(&mut self, new: Config, loaded: &Loaded) {
        if new.api.listen != self.config.api.listen {
            warn!(
                old = %self.config.api.listen,
                new = %new.api.listen,
                "the API listen address changes only at restart"
            );
        }
        if new.daemon.state_dir != self.config.daemon.state_dir {
            warn!("the state directory changes only at restart");
        }
        if let Some(log) = &self.log
            && new.log.level != self.config.log.level
        {
            log.set_level(new.log.level);
        }
        let old_names: Vec<&str> = self
            .config
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let new_names: Vec<&str> = new.targets.iter().map(|t| t.name.as_str()).collect();
        let added: Vec<&str> = new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .copied()
            .collect();
        let removed: Vec<&str> = old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .copied()
            .collect();
        let changed: Vec<&str> = new
            .targets
            .iter()
            .filter(|t| self.config.target(&t.name).is_some_and(|old| old != *t))
            .map(|t| t.name.as_str())
            .collect();
        self.generation += 1;
        let warnings = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Level::Warning)
            .count();
        let view = ConfigView::new(&new, self.generation, warnings, config_source(loaded));
        let identity = identity_view(&new);
        // Observers see the new configuration before the log says it applied.
        self.snapshot.send_modify(|s| {
            s.config = view;
            s.identity = identity;
            s.rejected_reload = None;
        });
        info!(
            generation = self.generation,
            targets = new.targets.len(),
            added = ?added,
            removed = ?removed,
            changed = ?changed,
            "reload applied"
        );
        for t in new
            .targets
            .iter()
            .filter(|t| added.contains(&t.name.as_str()))
        {
            announce_target(t);
        }
        let units = new.watched_units();
        self.engine.reconfigure(&new);
        // A changed process target starts again on its new policy.
        for name in &changed {
            if let Some(handle) = self.processes.remove(*name) {
                handle.stop();
            }
        }
        self.config = new;
        self.start_processes();
        self.start_probes();
        match &self.supervisor {
            Some(supervisor) => {
                let supervisor = supervisor.clone();
                self.snapshot.send_modify(|s| {
                    s.units.retain(|u, _| units.contains(u));
                    s.accounting.retain(|u, _| units.contains(u));
                });
                tokio::spawn(async move { supervisor.watch(units).await });
            }
            None => self.start_supervisor_if_needed(),
        }
    }
}

fn announce_targets(config: &Config) {
    for t in &config.targets {
        announce_target(t);
    }
}

fn announce_target(t: &config::Target) {
    info!(
        target_name = %t.name,
        object_systemd_unit = t.unit(),
        kind = t.kind.as_str(),
        probes = t.probes.len(),
        steps = t.ladder.len(),
        observe = t.observe,
        "watching target {}",
        t.name
    );
}

fn log_diagnostic(d: &config::Diagnostic) {
    let file = d.file.display().to_string();
    match d.severity {
        Level::Error => error!(file = %file, line = d.line, col = d.col, "{d}"),
        Level::Warning => warn!(file = %file, line = d.line, col = d.col, "{d}"),
    }
}

fn config_source(loaded: &Loaded) -> String {
    loaded
        .files
        .first()
        .map(|f| f.path.display().to_string())
        .unwrap_or_default()
}

fn identity_view(config: &Config) -> IdentityView {
    let hardware_id = config.identity.hardware_id.clone().or_else(|| {
        let file = config.identity.hardware_id_file.as_ref()?;
        match std::fs::read_to_string(file) {
            Ok(text) => Some(text.trim().to_owned()).filter(|s| !s.is_empty()),
            Err(e) => {
                warn!(file = %file.display(), error = %e, "cannot read the hardware id");
                None
            }
        }
    });
    IdentityView {
        name: config.identity.name.clone(),
        hardware_id,
        site: config.identity.site.clone(),
    }
}

/// Creates the state directory, or falls back to a per-user one when it
/// cannot be written (running without root on a development machine).
fn prepare_state_dir(wanted: &Path) -> anyhow::Result<PathBuf> {
    if writable_dir(wanted) {
        return Ok(wanted.to_owned());
    }
    let fallback = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|base| base.join("rvm-watchdog"))
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("rvm-watchdog-{}", nix::unistd::getuid()))
        });
    if writable_dir(&fallback) {
        warn!(
            wanted = %wanted.display(),
            using = %fallback.display(),
            "state directory is not writable; using a per-user one"
        );
        return Ok(fallback);
    }
    anyhow::bail!(
        "cannot write the state directory {} nor the fallback {}",
        wanted.display(),
        fallback.display()
    )
}

fn writable_dir(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Sleeps until a wall-clock time in milliseconds; forever when there is none.
async fn sleep_until_ms(at: Option<Ms>) {
    match at {
        Some(at) => {
            let wait = at.saturating_sub(now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

/// One journald record per decision, with the ladder's fields.
fn log_decision(
    target: &config::Target,
    unit: Option<&str>,
    incident: Option<&str>,
    decision: &Decision,
) {
    let name = target.name.as_str();
    let action_of = |step: usize| {
        target
            .ladder
            .get(step)
            .map(|s| s.action.as_str())
            .unwrap_or("-")
    };
    match decision {
        Decision::Act {
            step,
            attempt,
            action,
            reason,
        } => warn!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            attempt,
            action = action.as_str(),
            reason = %reason,
            "recovering {name}: {} (step {}, attempt {attempt}) because {reason}",
            action.as_str(),
            step + 1
        ),
        Decision::Scheduled {
            step,
            attempt,
            delay,
        } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            attempt,
            action = action_of(*step),
            delay_ms = delay.as_millis() as u64,
            "{name}: {} (step {}, attempt {attempt}) in {}",
            action_of(*step),
            step + 1,
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        ),
        Decision::SystemdRestartCounted { step, attempt } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            attempt,
            "systemd restarted {name} itself; counted as attempt {attempt} of step {}",
            step + 1
        ),
        Decision::Held { by } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            held_by = %by,
            "holding {name}'s recovery: it depends on {by}, which is being healed first"
        ),
        Decision::Released => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            "{name}'s recovery resumes: its dependencies are healthy"
        ),
        Decision::Escalated { from, to } => warn!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = to + 1,
            "{name}: step {} ({}) used up its attempts; escalating to step {} ({})",
            from + 1,
            action_of(*from),
            to + 1,
            action_of(*to)
        ),
        Decision::Recovered { step } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            "{name} recovered after step {} ({})",
            step + 1,
            action_of(*step)
        ),
        Decision::LadderReset => info!(
            target_name = name,
            object_systemd_unit = unit,
            "{name} has been healthy for {}; its ladder starts over",
            humantime::format_duration(target.reset_after)
        ),
        Decision::GaveUp { reason } => error!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            reason = %reason,
            "gave up on {name}: {reason}; probing goes on, no more actions until an operator resets it"
        ),
        Decision::IncidentOpened { id, reason } => warn!(
            target_name = name,
            object_systemd_unit = unit,
            incident = %id,
            reason = %reason,
            "{name} is failing: {reason}"
        ),
        Decision::IncidentClosed { id, lasted } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident = %id,
            lasted_ms = lasted.as_millis() as u64,
            "{name} is healthy again after {}",
            humantime::format_duration(Duration::from_secs(lasted.as_secs()))
        ),
    }
}

/// Store key of a target's ladder state (followed by the target's name).
const LADDER_KEY: &str = "ladder/";
/// Store key of safe mode.
const SAFE_MODE_KEY: &str = "safe-mode";

/// What the store said at start.
struct Boot {
    store: Option<StoreThread>,
    boot_id: String,
    ladders: BTreeMap<String, LadderState>,
    safe_mode: Option<SafeMode>,
    previous: Option<PreviousBoot>,
}

/// Opens the state store, records this boot, reports how the previous one
/// ended, detects a boot loop and loads the saved ladders. A store that
/// cannot be opened is reported and the daemon runs without it (and makes
/// no automatic reboot: their budget must survive reboots).
fn open_store(state_dir: &Path, config: &Config) -> Boot {
    let boot_id = crate::store::current_boot_id(&config.daemon.host_root);
    let mut boot = Boot {
        store: None,
        boot_id: boot_id.clone(),
        ladders: BTreeMap::new(),
        safe_mode: None,
        previous: None,
    };
    let store = match Store::open_or_recover(state_dir) {
        Ok(s) => s,
        Err(e) => {
            error!(
                error = %e,
                "cannot open the state store; running without it: ladders start over at every restart and no automatic reboot is made"
            );
            return boot;
        }
    };
    let now = SystemTime::now();
    match store.record_boot(&boot_id, now) {
        Ok(record) => {
            if let Some(previous) = &record.previous {
                match &previous.ended {
                    BootEnd::WatchdogReboot { target, reason, .. } => warn!(
                        previous_boot = %previous.boot_id,
                        target_name = target.as_deref(),
                        reason = %reason,
                        "the previous boot ended with a reboot by the watchdog: {reason}"
                    ),
                    BootEnd::CleanShutdown { .. } => info!(
                        previous_boot = %previous.boot_id,
                        "the previous boot ended with a clean shutdown"
                    ),
                    BootEnd::Unexpected => warn!(
                        previous_boot = %previous.boot_id,
                        "the previous boot ended unexpectedly (power loss, crash, or a reboot the watchdog did not see)"
                    ),
                }
            }
            boot.previous = record.previous;
        }
        Err(e) => warn!(error = %e, "cannot record this boot"),
    }
    let saved: Option<SafeMode> = store
        .get_state(SAFE_MODE_KEY)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_value(v).ok());
    // Safe mode ends once the reboot budget's window has passed.
    let window = config.reboot.budget.window.as_millis() as Ms;
    boot.safe_mode = match saved {
        Some(m) if now_ms() < m.since + window => {
            warn!(reason = %m.reason, "still in safe mode: no automatic reboots");
            Some(m)
        }
        Some(_) => {
            info!("safe mode ended: the reboot budget's window has passed");
            let _ = store.delete_state(SAFE_MODE_KEY);
            None
        }
        None => None,
    };
    let loop_window = config.reboot.boot_loop.window;
    let loop_since = now
        .checked_sub(loop_window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if boot.safe_mode.is_none()
        && let Ok(boots) = store.boots_since(loop_since)
        && boots >= config.reboot.boot_loop.count as usize
    {
        let reason = format!(
            "boot loop: {boots} boots in the last {} ([reboot] boot-loop {})",
            humantime::format_duration(loop_window),
            config.reboot.boot_loop
        );
        error!(reason = %reason, "entering safe mode: {reason}; no automatic reboots");
        let mode = SafeMode {
            since: now_ms(),
            reason,
        };
        let _ = store.put_state(
            SAFE_MODE_KEY,
            &serde_json::to_value(&mode).unwrap_or_default(),
        );
        boot.safe_mode = Some(mode);
    }
    for t in &config.targets {
        if let Ok(Some(v)) = store.get_state(&format!("{LADDER_KEY}{}", t.name))
            && let Ok(state) = serde_json::from_value::<LadderState>(v)
        {
            boot.ladders.insert(t.name.clone(), state);
        }
    }
    boot.store = Some(StoreThread::spawn(store));
    boot
}

fn decision_kind(d: &Decision) -> (&'static str, Option<&'static str>) {
    match d {
        Decision::Act { .. } => ("decision", Some("act")),
        Decision::Scheduled { .. } => ("decision", Some("scheduled")),
        Decision::SystemdRestartCounted { .. } => ("decision", Some("systemd-restart-counted")),
        Decision::Held { .. } => ("decision", Some("held")),
        Decision::Released => ("decision", Some("released")),
        Decision::Escalated { .. } => ("decision", Some("escalated")),
        Decision::Recovered { .. } => ("recovered", None),
        Decision::LadderReset => ("ladder-reset", None),
        Decision::GaveUp { .. } => ("gave-up", None),
        Decision::IncidentOpened { .. } => ("incident-opened", None),
        Decision::IncidentClosed { .. } => ("incident-closed", None),
    }
}

fn decision_step(d: &Decision) -> Option<(usize, u32)> {
    match d {
        Decision::Act { step, attempt, .. }
        | Decision::Scheduled { step, attempt, .. }
        | Decision::SystemdRestartCounted { step, attempt } => Some((*step, *attempt)),
        Decision::Recovered { step } => Some((*step, 0)),
        Decision::Escalated { to, .. } => Some((*to, 0)),
        _ => None,
    }
}

fn decision_message(target: &config::Target, d: &Decision) -> String {
    let name = &target.name;
    let human =
        |d: &Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    match d {
        Decision::Act { action, reason, .. } => format!("{} {name}: {reason}", action.as_str()),
        Decision::Scheduled { delay, .. } => format!(
            "next attempt in {}",
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        ),
        Decision::SystemdRestartCounted { attempt, .. } => {
            format!("systemd restarted {name}; counted as attempt {attempt}")
        }
        Decision::Held { by } => format!("held: {by} is healed first"),
        Decision::Released => "released: dependencies healthy".into(),
        Decision::Escalated { from, to } => {
            format!("step {} used up; escalating to step {}", from + 1, to + 1)
        }
        Decision::Recovered { step } => format!("recovered after step {}", step + 1),
        Decision::LadderReset => "ladder starts over".into(),
        Decision::GaveUp { reason } => format!("gave up: {reason}"),
        Decision::IncidentOpened { reason, .. } => format!("failing: {reason}"),
        Decision::IncidentClosed { lasted, .. } => format!("healthy again after {}", human(lasted)),
    }
}

/// A probe as the core loop keeps it.
struct ProbeView {
    hysteresis: Hysteresis,
    health: ProbeHealth,
    outcome: crate::probe::Outcome,
    at: SystemTime,
}
