//! What the daemon does once at start: the state directory, the state
//! store (this boot recorded, how the previous one ended, a boot loop, the
//! saved ladders), and the machine's identity.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::{error, info, warn};

use super::now_ms;
use crate::config::{self, Config, Level, Loaded};
use crate::recovery::{LadderState, Ms};
use crate::status::{ConfigView, IdentityView, SafeMode, Snapshot};
use crate::store::{PreviousBoot, Store, StoreThread};

/// Store key of a target's ladder state (followed by the target's name).
pub(super) const LADDER_KEY: &str = "ladder/";
/// Store key of safe mode.
pub(super) const SAFE_MODE_KEY: &str = "safe-mode";

/// What the store said at start.
pub(super) struct Boot {
    pub store: Option<StoreThread>,
    pub boot_id: String,
    pub ladders: BTreeMap<String, LadderState>,
    pub safe_mode: Option<SafeMode>,
    /// Safe mode was entered now, at start (a boot loop).
    pub entered_safe_mode: bool,
    pub previous: Option<PreviousBoot>,
    /// The watchdog's reboots within the reboot budget's window.
    pub reboots: Vec<SystemTime>,
}

/// Opens the state store, records this boot, learns how the previous one
/// ended, detects a boot loop and loads the saved ladders. A store that
/// cannot be opened is reported and the daemon runs without it (and makes
/// no automatic reboot: their budget must survive reboots).
pub(super) fn open_store(state_dir: &Path, config: &Config) -> Boot {
    let boot_id = crate::store::current_boot_id(&config.daemon.host_root);
    let mut boot = Boot {
        store: None,
        boot_id: boot_id.clone(),
        ladders: BTreeMap::new(),
        safe_mode: None,
        entered_safe_mode: false,
        previous: None,
        reboots: Vec::new(),
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
        Ok(record) => boot.previous = record.previous,
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
        let mode = SafeMode {
            since: now_ms(),
            reason: format!(
                "boot loop: {boots} boots in the last {} ([reboot] boot-loop {})",
                humantime::format_duration(loop_window),
                config.reboot.boot_loop
            ),
        };
        let _ = store.put_state(
            SAFE_MODE_KEY,
            &serde_json::to_value(&mode).unwrap_or_default(),
        );
        boot.safe_mode = Some(mode);
        boot.entered_safe_mode = true;
    }
    for t in &config.targets {
        if let Ok(Some(v)) = store.get_state(&format!("{LADDER_KEY}{}", t.name))
            && let Ok(state) = serde_json::from_value::<LadderState>(v)
        {
            boot.ladders.insert(t.name.clone(), state);
        }
    }
    let budget_since = now
        .checked_sub(config.reboot.budget.window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    match store.reboots_since(budget_since) {
        Ok(list) => boot.reboots = list.into_iter().map(|r| r.at).collect(),
        Err(e) => warn!(error = %e, "cannot read the reboot records for /health"),
    }
    boot.store = Some(StoreThread::spawn(store));
    boot
}

/// The snapshot the daemon starts from, before the core loop's first round.
pub(super) fn first_snapshot(
    config: &Config,
    boot: &Boot,
    warnings: usize,
    source: String,
    tick_every: std::time::Duration,
    state_dir: &Path,
    log_destination: Option<&'static str>,
) -> Snapshot {
    Snapshot {
        identity: identity_view(config),
        started_at: SystemTime::now(),
        config: ConfigView::new(config, 1, warnings, source),
        rejected_reload: None,
        last_tick: std::time::Instant::now(),
        tick_every,
        state_dir: state_dir.display().to_string(),
        log_destination: log_destination.unwrap_or("stderr"),
        supervisor: None,
        units: Default::default(),
        accounting: Default::default(),
        ladders: Default::default(),
        safe_mode: boot.safe_mode.clone(),
        previous_boot: boot.previous.clone(),
        processes: Default::default(),
        probes: Default::default(),
        last_actions: Default::default(),
        reboots: boot.reboots.clone(),
    }
}

/// Creates the state directory, or falls back to a per-user one when it
/// cannot be written (running without root on a development machine).
pub(super) fn prepare_state_dir(wanted: &Path) -> anyhow::Result<PathBuf> {
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

pub(super) fn identity_view(config: &Config) -> IdentityView {
    IdentityView::of(config)
}

pub(super) fn config_source(loaded: &Loaded) -> String {
    loaded
        .files
        .first()
        .map(|f| f.path.display().to_string())
        .unwrap_or_default()
}

pub(super) fn announce_target(t: &config::Target) {
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

pub(super) fn log_diagnostic(d: &config::Diagnostic) {
    let file = d.file.display().to_string();
    match d.severity {
        Level::Error => error!(file = %file, line = d.line, col = d.col, "{d}"),
        Level::Warning => warn!(file = %file, line = d.line, col = d.col, "{d}"),
    }
}

/// The API's guard for the configuration (making the token if none is
/// configured), said in the journal.
pub(super) fn guard_api(
    config: &Config,
    state_dir: &Path,
) -> anyhow::Result<(
    tokio::sync::watch::Sender<crate::api::Access>,
    tokio::sync::watch::Receiver<crate::api::Access>,
)> {
    let access = crate::api::Access::for_config(&config.api, state_dir)
        .map_err(|why| anyhow::anyhow!("cannot guard the API: {why}"))?;
    announce_token(&access);
    Ok(tokio::sync::watch::channel(access))
}

/// The tasks beside the core loop that a reload must reach.
pub(super) struct Followers {
    /// The metrics recorder's requests.
    pub metrics: tokio::sync::mpsc::Sender<crate::metrics::recorder::Request>,
    /// The alert engine.
    pub alerts: crate::alert::task::Handle,
}

/// The API, the recorder and the alert engine, once started: what the core
/// loop keeps of them.
pub(super) struct StartedApi {
    /// Commands from the API's handlers.
    pub commands: tokio::sync::mpsc::Receiver<crate::command::Command>,
    /// The server's task.
    pub server: tokio::task::JoinHandle<()>,
    /// The API's guard, replaced at a reload.
    pub access: tokio::sync::watch::Sender<crate::api::Access>,
    /// The tasks a reload reaches.
    pub followers: Followers,
    /// Where events are emitted (the alert engine already follows it).
    pub events: crate::event::Events,
}

/// How many events the alert engine's channel holds (more wait in the
/// emitter's backlog).
const ALERT_QUEUE: usize = 1024;

/// Makes the event path, guards the API, starts the metrics recorder and
/// the alert engine, and serves the API on `listener`.
pub(super) fn start_api(
    listener: tokio::net::TcpListener,
    config: &Config,
    state_dir: &Path,
    snapshot: tokio::sync::watch::Receiver<crate::status::Snapshot>,
    boot: &Boot,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<StartedApi> {
    let mut events = crate::event::Events::new(boot.store.clone());
    let (access_tx, access) = guard_api(config, state_dir)?;
    let metrics = start_metrics(config, state_dir, snapshot.clone(), shutdown);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    if let Some(store) = &boot.store {
        let http = crate::probe::Context::new(config.daemon.host_root.clone()).http;
        crate::delivery::task::spawn(crate::delivery::task::Start {
            store: store.clone(),
            notifiers: crate::delivery::task::notifiers(config, &http),
            fallbacks: crate::delivery::task::fallbacks(config),
            identity: identity_view(config),
            wake: wake.clone(),
            metrics: metrics.requests.clone(),
            stop: shutdown.clone(),
        });
    }
    let alerts = crate::alert::task::spawn(crate::alert::task::Start {
        delivery: Some(wake),
        config: config.clone(),
        store: boot.store.clone(),
        events: events.subscribe_lossless("alerts", ALERT_QUEUE),
        latest: metrics.latest.clone(),
        metrics: metrics.requests.clone(),
        safe_mode: boot.safe_mode.is_some(),
        failing: boot
            .ladders
            .iter()
            .filter(|(_, l)| l.incident.is_some())
            .map(|(t, _)| t.clone())
            .collect(),
        stop: shutdown.clone(),
    });
    tokio::spawn(crate::platform::start(crate::platform::Start {
        config: config.clone(),
        snapshot: snapshot.clone(),
        alerts: alerts.open.clone(),
        alert_requests: alerts.requests.clone(),
        latest: metrics.latest.clone(),
        metrics: metrics.requests.clone(),
        stop: shutdown.clone(),
    }));
    let (commands_tx, commands) = tokio::sync::mpsc::channel(16);
    let requests = metrics.requests.clone();
    let push = config.platform.as_ref().and_then(|p| {
        crate::platform::push::spawn(
            p,
            p.figures.clone(),
            metrics.latest.clone(),
            crate::probe::Context::new(config.daemon.host_root.clone()).http,
            shutdown.clone(),
        )
    });
    let app = crate::api::router(crate::api::ApiState {
        snapshot,
        counters: events.counters(),
        commands: commands_tx,
        access,
        metrics,
        alerts: alerts.clone(),
        store: boot.store.clone(),
        health: Default::default(),
        push,
    });
    let server = tokio::spawn(crate::api::serve(listener, app, shutdown.clone()));
    Ok(StartedApi {
        commands,
        server,
        access: access_tx,
        followers: Followers {
            metrics: requests,
            alerts,
        },
        events,
    })
}

/// Starts the metrics recorder: collectors, history, scrapes, KPIs.
fn start_metrics(
    config: &Config,
    state_dir: &Path,
    snapshot: tokio::sync::watch::Receiver<crate::status::Snapshot>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> crate::metrics::recorder::Handle {
    let http = crate::probe::Context::new(config.daemon.host_root.clone()).http;
    crate::metrics::recorder::spawn(
        &config.metrics,
        &config.daemon.host_root,
        state_dir,
        snapshot,
        http,
        shutdown.clone(),
    )
}

/// Says in the journal which token file guards the API.
pub(super) fn announce_token(access: &crate::api::Access) {
    if access.generated {
        info!(
            token_file = %access.token_file.display(),
            "no [api] token-file: calls that change something need the token in {} (the local CLI reads it there)",
            access.token_file.display()
        );
    } else {
        info!(token_file = %access.token_file.display(), "calls that change something need the token of [api] token-file");
    }
}
