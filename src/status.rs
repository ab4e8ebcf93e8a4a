//! What observers (the HTTP API, the dashboard) see of the daemon: a
//! [`Snapshot`] published by the core loop on a `watch` channel. Observers
//! never hold state of their own and never block the loop.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use std::collections::BTreeMap;

use crate::config::{Config, Target};
use crate::recovery::LadderState;
use crate::store::PreviousBoot;
use crate::supervisor::{BusStatus, UnitAccounting, UnitState};

/// The daemon as observers see it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Who this machine is.
    pub identity: IdentityView,
    /// When the daemon started.
    pub started_at: SystemTime,
    /// The configuration in force.
    pub config: ConfigView,
    /// The last reload that was refused, if it is more recent than the last success.
    pub rejected_reload: Option<RejectedReload>,
    /// When the core loop last went round (monotonic).
    pub last_tick: Instant,
    /// How often the core loop goes round when idle.
    pub tick_every: std::time::Duration,
    /// Where the state lives.
    pub state_dir: String,
    /// Where log lines go.
    pub log_destination: &'static str,
    /// The systemd connection, when units are supervised.
    pub supervisor: Option<BusStatus>,
    /// The last known state of every watched unit.
    pub units: BTreeMap<String, UnitState>,
    /// Resource use of unit targets, read every `[metrics] interval`.
    pub accounting: BTreeMap<String, UnitAccounting>,
    /// Each target's recovery ladder.
    pub ladders: BTreeMap<String, LadderState>,
    /// Safe mode, when entered.
    pub safe_mode: Option<SafeMode>,
    /// How the previous boot ended, when known.
    pub previous_boot: Option<PreviousBoot>,
    /// Each process target's state.
    pub processes: BTreeMap<String, crate::process::ProcessState>,
    /// Each probe's last outcome and health, by `target:probe`.
    pub probes: BTreeMap<String, ProbeView>,
    /// Each target's last action (its ladder's or an operator's), by target.
    pub last_actions: BTreeMap<String, LastAction>,
    /// When the watchdog rebooted the machine, within the reboot budget's
    /// window at start, and since.
    pub reboots: Vec<SystemTime>,
}

/// The last action carried out on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastAction {
    /// The action, e.g. `restart`.
    pub action: &'static str,
    /// `ladder` or `operator`.
    pub by: &'static str,
    /// `ok`, `failed` or `observed`.
    pub result: &'static str,
    /// What was done, or why it failed.
    pub detail: String,
    /// When it finished, RFC 3339.
    pub at: String,
}

/// A probe as observers see it.
#[derive(Debug, Clone)]
pub struct ProbeView {
    /// After hysteresis.
    pub health: crate::probe::ProbeHealth,
    /// The last run.
    pub outcome: crate::probe::Outcome,
    /// When it ran.
    pub at: SystemTime,
}

/// Safe mode: the reboot budget is spent or the machine boot-loops; the
/// watchdog keeps probing, recovering and alerting, but reboots no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SafeMode {
    /// Entered at, ms since the epoch.
    pub since: u64,
    /// Why.
    pub reason: String,
}

/// The machine's identity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView {
    /// Human name.
    pub name: String,
    /// Hardware id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_id: Option<String>,
    /// Site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

impl IdentityView {
    /// The identity a configuration gives: `[identity]`, the hardware id
    /// read from `hardware-id-file` when it is not given inline.
    pub fn of(config: &Config) -> IdentityView {
        let hardware_id = config.identity.hardware_id.clone().or_else(|| {
            let file = config.identity.hardware_id_file.as_ref()?;
            match std::fs::read_to_string(file) {
                Ok(text) => Some(text.trim().to_owned()).filter(|s| !s.is_empty()),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "cannot read the hardware id");
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
}

/// The configuration in force, for display.
#[derive(Debug, Clone)]
pub struct ConfigView {
    /// Counts up with every applied load.
    pub generation: u64,
    /// When it was applied.
    pub loaded_at: SystemTime,
    /// The daemon's file.
    pub source: String,
    /// Where policies came from.
    pub policies: String,
    /// Targets.
    pub targets: Vec<TargetView>,
    /// Warnings found when it was loaded.
    pub warnings: usize,
    /// `[reboot] budget`.
    pub reboot_budget: crate::config::value::Budget,
    /// What the dashboard shows.
    pub dashboard: DashboardView,
    /// Policies shipped or left with `enabled = false`.
    pub disabled: Vec<DisabledView>,
}

/// A disabled target, and what to fix before enabling it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisabledView {
    /// `[target] name`.
    pub name: String,
    /// Its policy file.
    pub file: String,
    /// What `check` would refuse once it is enabled.
    pub to_enable: Vec<String>,
}

/// The dashboard's site view: `[api] dashboard`, `[dashboard]` and the
/// KPIs it may chart.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardView {
    /// `[api] dashboard`: whether `/` is served.
    pub enabled: bool,
    /// Tiles, in order.
    pub tiles: Vec<&'static str>,
    /// Charts, in order.
    pub charts: Vec<&'static str>,
    /// Targets listed, in order; `None`: all, by name.
    pub targets: Option<Vec<String>>,
    /// The `[[metrics.kpi]]` series, for the `kpis` charts.
    pub kpis: Vec<KpiView>,
}

/// A KPI the dashboard may chart.
#[derive(Debug, Clone, Serialize)]
pub struct KpiView {
    /// The series.
    pub name: String,
    /// Its `help`.
    pub help: String,
}

impl DashboardView {
    /// The view a configuration sets.
    pub fn new(config: &Config) -> Self {
        Self {
            enabled: config.api.dashboard,
            tiles: config.dashboard.tiles.clone(),
            charts: config.dashboard.charts.clone(),
            targets: config.dashboard.targets.clone(),
            kpis: config
                .metrics
                .kpis
                .iter()
                .map(|k| KpiView {
                    name: k.name.clone(),
                    help: k.help.clone(),
                })
                .collect(),
        }
    }
}

/// One target, for display.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetView {
    /// Name.
    pub name: String,
    /// `unit`, `process`, `adopted` or `probed`.
    pub kind: &'static str,
    /// The unit, for unit targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Probe names.
    pub probes: Vec<String>,
    /// Ladder step actions, in order.
    pub ladder: Vec<&'static str>,
    /// Targets it depends on.
    pub depends_on: Vec<String>,
    /// Observe mode.
    pub observe: bool,
    /// `[alert] severity`: a failing critical target fails `/health`.
    pub severity: &'static str,
}

impl From<&Target> for TargetView {
    fn from(t: &Target) -> Self {
        Self {
            name: t.name.clone(),
            kind: t.kind.as_str(),
            unit: t.unit().map(str::to_owned),
            probes: t.probes.iter().map(|p| p.name.clone()).collect(),
            ladder: t.ladder.iter().map(|s| s.action.as_str()).collect(),
            depends_on: t.depends_on.clone(),
            observe: t.observe,
            severity: t.alert.severity.as_str(),
        }
    }
}

/// A reload that was refused: the running configuration stayed.
#[derive(Debug, Clone)]
pub struct RejectedReload {
    /// When.
    pub at: SystemTime,
    /// How many errors.
    pub errors: usize,
    /// The first few problems, rendered.
    pub problems: Vec<String>,
}

impl ConfigView {
    /// The view of a freshly applied configuration.
    pub fn new(config: &Config, generation: u64, warnings: usize, source: String) -> Self {
        Self {
            generation,
            loaded_at: SystemTime::now(),
            source,
            policies: config
                .daemon
                .policies_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("{}/policies", crate::config::EMBEDDED_PREFIX)),
            targets: config.targets.iter().map(TargetView::from).collect(),
            warnings,
            reboot_budget: config.reboot.budget,
            dashboard: DashboardView::new(config),
            disabled: config
                .disabled
                .iter()
                .map(|d| DisabledView {
                    name: d.name.clone(),
                    file: d.source.display().to_string(),
                    to_enable: d.to_enable.clone(),
                })
                .collect(),
        }
    }
}

/// RFC 3339 UTC time with seconds, as the health format wants.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
