//! The daemon: load the configuration, serve the API, run the core loop,
//! reload on SIGHUP, stop on SIGTERM.
//!
//! The **core loop** (`core`) owns the configuration in force and every
//! piece of the daemon's state; it applies one input at a time (a unit
//! changed, a probe reported, an action finished, a command) and emits
//! what it learnt as [`crate::event::Event`]s. It publishes a
//! [`Snapshot`](crate::status::Snapshot) for observers, and it is what pings systemd's watchdog
//! (`WATCHDOG=1`): a wedged loop stops pinging and systemd restarts the
//! daemon. Operator commands and reloads are in `control`; what happens
//! once at start is in `boot`.

mod boot;
mod control;
mod core;
pub mod sd_notify;

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::command::Command;
use crate::config::{self, Loaded, Sources};
use crate::logging::{self, LogHandle};
use crate::recovery::Ms;
use crate::supervisor::BusStatus;

use self::core::Core;

/// How long the API gets to finish requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
/// `shutdown` is cancelled. `commands` carries requests besides the API's
/// (SIGHUP's reloads; a test's commands).
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
    let state_dir = boot::prepare_state_dir(&config.daemon.state_dir)?;
    let boot = boot::open_store(&state_dir, &config);

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

    let tick_every = sd_notify::watchdog_interval()
        .map(|w| (w / 3).min(Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    let source = boot::config_source(&loaded);
    let warnings = loaded
        .diagnostics
        .iter()
        .filter(|d| crate::config::counts_for_health(d))
        .count();
    let snapshot = boot::first_snapshot(
        &config,
        &boot,
        warnings,
        source.clone(),
        tick_every,
        &state_dir,
        log.as_ref().map(|l| l.destination),
    );
    let (snapshot_tx, snapshot_rx) = watch::channel(snapshot);

    let mut api = boot::start_api(listener, &config, &state_dir, snapshot_rx, &boot, &shutdown)?;

    for d in &loaded.diagnostics {
        boot::log_diagnostic(d);
    }
    info!(
        listen = %listen,
        state_dir = %state_dir.display(),
        config = %source,
        targets = config.targets.len(),
        "rvm-watchdog {} started",
        env!("CARGO_PKG_VERSION")
    );
    for t in &config.targets {
        boot::announce_target(t);
    }

    let published = core::Published {
        snapshot: snapshot_tx,
        access: api.access,
        followers: api.followers,
    };
    let (mut core, mut inputs) =
        Core::new(sources, config, log, published, api.events, boot, &shutdown);
    let mut bus_status = core.bus_status();
    debug!(
        tick_every_ms = tick_every.as_millis() as u64,
        systemd_watchdog_ms = sd_notify::watchdog_interval().map(|w| w.as_millis() as u64),
        "core loop timing"
    );
    sd_notify::ready(&core.status_line());
    info!(startup_ms = started.elapsed().as_millis() as u64, "ready");

    let mut metrics_tick = tokio::time::interval(core.metrics_interval());
    metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => core.tick(now_ms()),
            Some(command) = api.commands.recv() => core.command(command).await,
            Some(command) = commands.recv() => core.command(command).await,
            Some(event) = inputs.units.recv() => {
                core.on_unit_changed(event);
                if bus_status.is_none() {
                    bus_status = core.bus_status();
                }
            }
            _ = metrics_tick.tick() => core.read_accounting(),
            Some(report) = inputs.reports.recv() => core.on_action_report(report),
            Some(event) = inputs.processes.recv() => core.on_process_event(event),
            Some(result) = inputs.probes.recv() => core.on_probe_result(result),
            Some(loaded) = inputs.loaded.recv() => core.on_loaded(loaded),
            _ = sleep_until_ms(core.next_wakeup(now_ms())) => core.wake(now_ms()),
            Some((unit, figures)) = inputs.accounting.recv() => core.on_accounting(unit, figures),
            Some(status) = next_bus_status(&mut bus_status) => core.on_bus_status(status),
        }
        core.settle();
    }

    sd_notify::stopping();
    core.stop().await;
    match tokio::time::timeout(SHUTDOWN_GRACE, api.server).await {
        Ok(Ok(())) => {}
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

/// Wall-clock time in milliseconds since the epoch: the engine's clock.
fn now_ms() -> Ms {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as Ms)
        .unwrap_or(0)
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
