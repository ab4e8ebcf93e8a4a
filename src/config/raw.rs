//! The files as written: serde structs that mirror `watchdog.toml` and the
//! policy files key for key. Nothing here is validated beyond types; the
//! domain model in [`super::model`] is built from these by
//! [`super::validate`]. Every field is documented where it is declared, and
//! the same words appear in `policies/README.md`.
//!
//! Keys are kebab-case. Unknown keys are errors (reported by
//! [`super::diag::SourceFile::deserialize`], all of them, with a suggestion).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::value::{Budget, Checked, HumanDuration, Severity};

// ---------------------------------------------------------------------------
// watchdog.toml
// ---------------------------------------------------------------------------

/// `/etc/rvm-watchdog/watchdog.toml`: the daemon itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawConfig {
    /// Where state lives and how the daemon talks to the machine.
    pub daemon: RawDaemon,
    /// Logging.
    pub log: RawLog,
    /// The HTTP API, health endpoint, metrics and dashboard.
    pub api: RawApi,
    /// Who this machine is, as reported on `/health` and in alerts.
    pub identity: RawIdentity,
    /// The MyRVM platform this machine reports to.
    pub platform: Option<RawPlatform>,
    /// Metrics collection and on-device history.
    pub metrics: RawMetrics,
    /// Limits on automatic reboots, for every target together.
    pub reboot: RawReboot,
    /// Alert defaults.
    pub alerts: RawAlerts,
    /// Notification channels by name: `[channels.ops-webhook]`.
    pub channels: BTreeMap<String, RawChannel>,
    /// Escalation chains by name: `[escalation.field-ops]`.
    pub escalation: BTreeMap<String, RawEscalation>,
    /// Alert rules on metric series: `[[rule]]`.
    pub rule: Vec<RawRule>,
    /// What the dashboard shows, and in what order.
    pub dashboard: RawDashboard,
}

/// `[dashboard]`: the site's default view of the dashboard at `/`; each
/// browser may change its own (kept in that browser).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawDashboard {
    /// Tiles shown, in this order. Default: all of them (`cpu`, `memory`,
    /// `disk`, `load`, `gpu`, `temperature`, `power`, `network`, `uptime`,
    /// `systemd`, `safe-mode`, `reboots`, `outbox`).
    pub tiles: Option<Vec<String>>,
    /// Charts shown, in this order. Default: all of them (`cpu`, `memory`,
    /// `load`, `disk`, `gpu`, `temperature`, `power`, `network`,
    /// `service-memory`, `service-cpu`, `kpis`: one chart per
    /// `[[metrics.kpi]]`, `watchdog`).
    pub charts: Option<Vec<String>>,
    /// Targets listed, in this order. Default: every target, by name.
    pub targets: Option<Vec<String>>,
}

/// `[daemon]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawDaemon {
    /// Directory for persisted state (event log, budgets, outbox, history).
    /// Default `/var/lib/rvm-watchdog`.
    pub state_dir: Option<String>,
    /// Directory of policy files, one target each. Default `/etc/rvm-watchdog/policies`.
    pub policies_dir: Option<String>,
    /// Directories searched for recovery hooks, first match wins. Default
    /// `["/etc/rvm-watchdog/hooks", "/usr/share/rvm-watchdog/hooks"]` (site hooks
    /// override shipped ones).
    pub hooks_dirs: Option<Vec<String>>,
    /// Which D-Bus to find systemd on: `"system"` (default) or `"user"`.
    pub bus: Option<String>,
    /// Observe mode for every target: decide and log, act on nothing. Default false.
    pub observe: Option<bool>,
    /// Root under which `/sys`, `/proc` and `/dev` are read (fixture trees in tests). Default `/`.
    pub host_root: Option<String>,
}

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawLog {
    /// Lowest level logged: `error`, `warn`, `info` (default), `debug`, `trace`.
    pub level: Option<String>,
    /// `auto` (journald when its socket exists, else stderr; default), `journald` or `stderr`.
    pub output: Option<String>,
}

/// `[api]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawApi {
    /// Address and port to listen on. Default `127.0.0.1:9184` (loopback only).
    pub listen: Option<String>,
    /// File holding the bearer token required by every call that changes
    /// something. Default: one the daemon makes in its state directory.
    pub token_file: Option<String>,
    /// Serve the live dashboard at `/`. Default true.
    pub dashboard: Option<bool>,
    /// Require the token for every read but `/livez` too. Default false:
    /// the platform and Prometheus poll without one.
    pub protect_reads: Option<bool>,
    /// With `protect-reads`, `/health` still answers without the token.
    /// Default false.
    pub public_health: Option<bool>,
    /// Names a changing call's `Host` may carry besides an IP address and
    /// `localhost`. Default none.
    pub allowed_hosts: Option<Vec<String>>,
}

/// `[identity]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawIdentity {
    /// Human name of the machine, e.g. `"RVM-017 Mall Kelapa Gading"`. Default: the host name.
    pub name: Option<String>,
    /// The machine's hardware id as registered on the platform.
    pub hardware_id: Option<String>,
    /// File to read the hardware id from (the edge client's), if `hardware-id` is not set.
    pub hardware_id_file: Option<String>,
    /// Where the machine stands, for people reading alerts.
    pub site: Option<String>,
}

/// `[platform]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawPlatform {
    /// The platform API base, e.g. `"https://myrvm.example/api/v1"`. Required.
    pub base_url: Option<String>,
    /// Root-only file holding the `X-RVM-API-KEY`. Never put the key itself in a file
    /// others can read.
    pub api_key_file: Option<String>,
    /// Per-request timeout. Default `"5s"`.
    pub timeout: Option<HumanDuration>,
    /// Also serve the earlier platform generation's endpoints (`/api/health`,
    /// `/api/status`, `/api/hardware`, `/api/monitoring/*`). Default false.
    pub legacy_endpoints: Option<bool>,
    /// Where those endpoints listen. Default `"0.0.0.0:5000"`, where the
    /// earlier platform polls.
    pub legacy_listen: Option<String>,
    /// The series counting detections (a counter), for the platform's figures.
    pub detections_series: Option<String>,
    /// The series of the processing time in milliseconds (a gauge or KPI).
    pub processing_time_series: Option<String>,
    /// The series of the detection success rate, 0 to 1 (a gauge or KPI).
    pub success_rate_series: Option<String>,
    /// The series counting errors (a counter).
    pub errors_series: Option<String>,
    /// The series counting API requests (a counter).
    pub requests_series: Option<String>,
    /// Push the machine's figures to the earlier platform here
    /// (`https://…/api/maintenance/{rvm_id}/monitoring`). Unset: no push.
    pub monitoring_url: Option<String>,
    /// How often. Default `"30s"`.
    pub monitoring_every: Option<HumanDuration>,
    /// Pushes kept while the platform cannot be reached. Default 120.
    pub monitoring_backlog: Option<u32>,
}

/// `[metrics]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawMetrics {
    /// How often system, Jetson and per-service metrics are sampled. Default `"10s"`.
    pub interval: Option<HumanDuration>,
    /// How long every sample is kept in RAM at full resolution. Default `"1h"`.
    pub raw_retention: Option<HumanDuration>,
    /// How long 1-minute rollups are kept on the device. Default `"7d"`.
    pub minute_retention: Option<HumanDuration>,
    /// How long 1-hour rollups are kept on the device. Default `"90d"`.
    pub hour_retention: Option<HumanDuration>,
    /// Upper bound for the history file in MiB. Default 256.
    pub max_disk_mib: Option<u64>,
    /// `[[metrics.scrape]]`: services' Prometheus endpoints to scrape.
    pub scrape: Vec<RawScrape>,
    /// `[[metrics.kpi]]`: figures computed from the series.
    pub kpi: Vec<RawKpi>,
}

/// `[[metrics.scrape]]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawScrape {
    /// Name, the `source` label of every series scraped. Required.
    pub name: Option<String>,
    /// The endpoint, e.g. `"http://127.0.0.1:8000/metrics"`. Required.
    pub url: Option<String>,
    /// Time between scrapes. Default `"10s"`.
    pub interval: Option<HumanDuration>,
    /// A scrape that takes longer fails. Default `"5s"`, at most the interval.
    pub timeout: Option<HumanDuration>,
}

/// `[[metrics.kpi]]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawKpi {
    /// The series it becomes, e.g. `"rvm_kpi_detection_success_ratio"`. Required.
    pub name: Option<String>,
    /// One line for people.
    pub help: Option<String>,
    /// `rate`, `ratio`, `mean` or `quantile`. Required.
    pub kind: Option<String>,
    /// rate, mean, quantile: the series, e.g. `"rvm_deposits_total{result=\"accepted\"}"`.
    pub of: Option<String>,
    /// ratio: the counter above the line.
    pub numerator: Option<String>,
    /// ratio: the counter below the line.
    pub denominator: Option<String>,
    /// quantile: between 0 and 1, e.g. 0.95.
    pub q: Option<f64>,
    /// rate: per how long, e.g. `"1h"` for "per hour". Default `"1s"`.
    pub per: Option<HumanDuration>,
    /// The window it is computed over. Default `"1h"`.
    pub window: Option<HumanDuration>,
}

/// `[reboot]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawReboot {
    /// Reboots allowed for all targets together, e.g. `"2/1d"`. Default `"2/1d"`.
    /// Past it the watchdog enters safe mode: no more reboots, alerts say why.
    pub budget: Option<Checked<Budget>>,
    /// No automatic reboot before the machine has been up this long. Default `"15m"`.
    pub min_uptime: Option<HumanDuration>,
    /// Boots within a window that count as a boot loop, e.g. `"3/30m"`: safe mode at start. Default `"3/30m"`.
    pub boot_loop: Option<Checked<Budget>>,
    /// Command that reboots, instead of systemd's `Reboot()`, e.g. `["/sbin/reboot"]`.
    pub command: Option<Vec<String>>,
}

/// `[alerts]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawAlerts {
    /// Escalation chain for targets whose policy names none.
    pub default_escalation: Option<String>,
    /// Send a notice when an incident resolves. Default true.
    pub notify_resolved: Option<bool>,
    /// Alerts waiting for delivery (offline) are kept up to this many. Default 10000.
    pub outbox_max: Option<u64>,
    /// Alerts older than this are dropped from the outbox. Default `"7d"`.
    pub outbox_max_age: Option<HumanDuration>,
    /// Messages wait this long for others to leave with them. Default `"10s"`.
    pub group_wait: Option<HumanDuration>,
    /// Raised this many times within `flap-window`, an alert flaps. Default 4.
    pub flap_count: Option<u64>,
    /// See `flap-count`; a flapping alert must stay steady this long. Default `"10m"`.
    pub flap_window: Option<HumanDuration>,
    /// Resolved alerts are listed this long. Default `"1d"`.
    pub keep_resolved: Option<HumanDuration>,
    /// A target still failing when its dependency recovers gets this long
    /// to heal before its alert goes out. Default `"1m"`.
    pub release_grace: Option<HumanDuration>,
    /// The time zone of routes' and maintenance windows' local times.
    /// Default: the machine's.
    pub time_zone: Option<String>,
    /// `[[alerts.route]]`: chains by severity, target, name and time of day.
    pub route: Vec<RawRoute>,
}

/// `[[alerts.route]]`: alerts that match, raised while it is in effect,
/// climb its chain instead of their own. The first that matches wins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawRoute {
    /// Alerts about this target (`*` matches any run of characters).
    pub target: Option<String>,
    /// Alerts of this name.
    pub name: Option<String>,
    /// Alerts of this severity.
    pub severity: Option<Checked<Severity>>,
    /// In effect at these local times, e.g. `mon-fri 18:00-08:00`. Default: always.
    pub during: Option<String>,
    /// The chain. Required.
    pub escalation: Option<String>,
}

/// `[channels.NAME]`: one way of telling people. The keys that apply depend on `kind`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawChannel {
    /// `webhook`, `email`, `sms` or `alertmanager`. Required.
    pub kind: Option<String>,
    /// webhook, sms, alertmanager: where to POST.
    pub url: Option<String>,
    /// webhook: file holding the HMAC-SHA256 secret that signs each body.
    pub secret_file: Option<String>,
    /// email: SMTP relay `host:port`.
    pub smtp: Option<String>,
    /// email: `starttls` (default), `tls` or `none`.
    pub tls: Option<String>,
    /// email: PEM file of the CA that signed the relay's certificate,
    /// trusted instead of the system's roots.
    pub ca_file: Option<String>,
    /// email, sms: account name.
    pub username: Option<String>,
    /// email, sms: file holding the password or API token.
    pub password_file: Option<String>,
    /// email: sender address; sms: sender number or id.
    pub from: Option<String>,
    /// email: recipient addresses; sms: phone numbers (E.164, `+62…`).
    pub to: Option<Vec<String>>,
    /// sms: `twilio` (default: a form with To, From, Body) or `template`.
    pub style: Option<String>,
    /// sms with style `template`: the request body, with `{to}`, `{from}`,
    /// `{message}`, `{username}`, `{password}`.
    pub template: Option<String>,
    /// sms with style `template`: the body's type. Default `application/json`.
    pub content_type: Option<String>,
    /// alertmanager: firing alerts are posted again this often. Default `"1m"`.
    pub resend_every: Option<HumanDuration>,
    /// alertmanager: the base of each alert's `generatorURL`. Default: the API's address.
    pub external_url: Option<String>,
    /// Only alerts at least this severe go to this channel. Default `info`.
    pub min_severity: Option<Checked<Severity>>,
    /// Per-delivery timeout. Default `"10s"`.
    pub timeout: Option<HumanDuration>,
    /// Another channel that gets a notification this one failed for good
    /// or could not deliver in three attempts.
    pub fallback: Option<String>,
}

/// `[escalation.NAME]`: who is told, and when, while an incident stays open and unacknowledged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawEscalation {
    /// Levels in order; each is reached `after` the incident opened.
    pub levels: Vec<RawEscalationLevel>,
    /// Repeat the last level this often until acknowledged. Default: never.
    pub repeat: Option<HumanDuration>,
}

/// One level of an escalation chain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawEscalationLevel {
    /// Time since the incident opened (not counting suppressed time). Required.
    pub after: Option<HumanDuration>,
    /// Channels told at this level. Required, at least one.
    pub channels: Vec<String>,
}

/// `[[rule]]`: an alert on a metric series.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawRule {
    /// Rule name. Required.
    pub name: Option<String>,
    /// Series selector, e.g. `rvm_host_disk_used_ratio{mount="/"}`. Required.
    pub series: Option<String>,
    /// Fire when the value is above this.
    pub above: Option<f64>,
    /// Fire when the value is below this.
    pub below: Option<f64>,
    /// ... for at least this long. Default `"0s"`.
    pub r#for: Option<HumanDuration>,
    /// Fire when a linear fit predicts crossing a bound within a horizon.
    pub predict: Option<RawPredict>,
    /// With `above` / `below`: the value must be back past this to clear. Default: the bound.
    pub clear: Option<f64>,
    /// Alert severity. Default `warning`.
    pub severity: Option<Checked<Severity>>,
    /// Escalation chain. Default: `[alerts] default-escalation`.
    pub escalation: Option<String>,
}

/// `predict = { within = "6h", above = 0.95 }`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawPredict {
    /// Horizon. Required.
    pub within: Option<HumanDuration>,
    /// Bound crossed upwards.
    pub above: Option<f64>,
    /// Bound crossed downwards.
    pub below: Option<f64>,
    /// The line is fitted to the values of this long. Default `"1h"`.
    pub over: Option<HumanDuration>,
}

// ---------------------------------------------------------------------------
// policies/*.toml
// ---------------------------------------------------------------------------

/// One policy file: one target, how to check it, how to heal it, whom to tell.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawPolicy {
    /// The target. Required.
    pub target: Option<RawTarget>,
    /// Probes: `[[probe]]`.
    pub probe: Vec<RawProbe>,
    /// The recovery ladder: `[[recovery]]`, tried in order.
    pub recovery: Vec<RawStep>,
    /// Alerting for this target.
    pub alert: RawAlert,
}

/// `[target]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawTarget {
    /// Unique name. Required.
    pub name: Option<String>,
    /// One line for people.
    pub description: Option<String>,
    /// The systemd unit this target is, e.g. `"myrvm-edge.service"`.
    pub unit: Option<String>,
    /// A plain process the watchdog runs itself, instead of a unit.
    pub process: Option<RawProcess>,
    /// A process started by someone else, watched (and signalled only if allowed).
    pub adopt: Option<RawAdopt>,
    /// Targets this one needs. When both fail, the deepest is healed first.
    pub depends_on: Vec<String>,
    /// After start or recovery, failures are not counted for this long. Default `"0s"`.
    pub startup_grace: Option<HumanDuration>,
    /// Healthy this long → the ladder starts over. Default `"10m"`.
    pub reset_after: Option<HumanDuration>,
    /// Decide and log, act on nothing. Default: `[daemon] observe`.
    pub observe: Option<bool>,
    /// Load this target at all. Default true.
    pub enabled: Option<bool>,
}

/// `[target.process]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawProcess {
    /// Program and arguments, no shell: `["/usr/bin/helper", "--port", "8001"]`. Required.
    pub command: Vec<String>,
    /// Environment variables added to a minimal, fixed environment.
    pub env: BTreeMap<String, String>,
    /// Working directory. Default `/`.
    pub working_dir: Option<String>,
    /// User to run as. Default root.
    pub user: Option<String>,
    /// Group to run as. Default the user's group.
    pub group: Option<String>,
    /// Signal that asks it to stop. Default `SIGTERM`.
    pub stop_signal: Option<String>,
    /// Time between the stop signal and SIGKILL to the whole group. Default `"10s"`.
    pub stop_timeout: Option<HumanDuration>,
}

/// `[target.adopt]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawAdopt {
    /// File holding the pid.
    pub pidfile: Option<String>,
    /// Or: text that must occur in the process's full command line
    /// (arguments joined by spaces; a plain substring, not a pattern).
    pub r#match: Option<String>,
    /// The watchdog may signal it. Default false (watch only).
    pub may_signal: Option<bool>,
}

/// `[[probe]]`: one check. `kind` decides which of the other keys apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawProbe {
    /// Name, unique within the target. Default: the kind.
    pub name: Option<String>,
    /// What to check. Required. See `policies/README.md` for each kind's keys.
    pub kind: Option<String>,
    /// `liveness` (default): a failure means this target is wedged and is
    /// recovered. `dependency`: a failure means something it needs is down:
    /// alert and degrade, do not restart it.
    pub role: Option<String>,
    /// Time between checks. Default `"10s"`.
    pub interval: Option<HumanDuration>,
    /// A check that takes longer fails. Default `"5s"`, at most the interval.
    pub timeout: Option<HumanDuration>,
    /// Consecutive failures before the probe counts as failing. Default 3.
    pub fail_after: Option<u32>,
    /// Consecutive passes before it counts as passing again. Default 2.
    pub pass_after: Option<u32>,

    // --- http, myrvm, network ---
    /// http: URL to request. network: URL for the HTTP round trip.
    pub url: Option<String>,
    /// http: `GET` (default) or `HEAD`.
    pub method: Option<String>,
    /// http: accepted status codes. Default 200–399.
    pub expect_status: Option<Vec<u16>>,
    /// http: the body must contain this text.
    pub body_contains: Option<String>,
    /// http: JSON pointer into the body, e.g. `"/status"` ...
    pub json_pointer: Option<String>,
    /// ... and the text its value must equal.
    pub json_equals: Option<String>,
    /// myrvm: path under `[platform] base-url` for a read-only GET. Never the edge heartbeat.
    pub path: Option<String>,
    /// http, myrvm, network: `"none"` (default) or `"same-origin"`.
    pub follow_redirects: Option<String>,

    // --- tcp, network ---
    /// tcp: `host:port` to connect to. network: TCP connect check.
    pub address: Option<String>,

    // --- network ---
    /// network: interface that must be up with carrier, e.g. `"eth0"`.
    pub interface: Option<String>,
    /// network: host name that must resolve.
    pub resolve: Option<String>,
    /// network: a default route must exist. Default true.
    pub default_route: Option<bool>,

    // --- exec ---
    /// exec: program and arguments (Nagios plugin convention: exit 0 ok, 1 warn, 2 fail).
    pub command: Option<Vec<String>>,

    // --- file-age ---
    /// file-age: the file whose modification time is checked.
    pub file: Option<String>,
    /// file-age: fail when older than this.
    pub max_age: Option<HumanDuration>,

    // --- unit ---
    /// unit: the unit whose state is checked. Default: the target's unit.
    pub unit: Option<String>,

    // --- disk ---
    /// disk: mount point. Default `/`.
    pub mount: Option<String>,

    // --- temperature ---
    /// temperature: thermal zone type, e.g. `"tj-thermal"`. Default: the hottest zone.
    pub zone: Option<String>,

    // --- camera ---
    /// camera: V4L2 device, preferably `/dev/v4l/by-id/...`.
    pub device: Option<String>,
    /// camera: frame heartbeat file written by the capture service.
    pub frame_heartbeat: Option<String>,
    /// camera: fail when the last frame is older than this. Default `"10s"`.
    pub max_frame_age: Option<HumanDuration>,
    /// camera: this many identical frame hashes in a row = frozen. Default 5.
    pub identical_frames: Option<u32>,
    /// camera: watch the kernel log for UVC/USB errors. Default true.
    pub kernel_errors: Option<bool>,

    // --- process ---
    /// process: stopped or in uninterruptible sleep longer than this = wedged. Default `"30s"`.
    pub stuck_for: Option<HumanDuration>,

    // --- thresholds: disk, memory (percent), temperature, gpu (°C) ---
    /// Warn when the value is above this. Setting either bound replaces
    /// both defaults (85/95 % disk, 90/97 % memory, 85/95 °C).
    pub warn_above: Option<f64>,
    /// Fail when the value is above this.
    pub fail_above: Option<f64>,
}

/// `[[recovery]]`: one step of the ladder. `action` decides which keys apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawStep {
    /// `restart`, `restart-units`, `hook`, `kill` or `reboot`. Required.
    pub action: Option<String>,
    /// Tries of this step before the next one. Default 3 (1 for reboot).
    pub attempts: Option<u32>,
    /// Delay before each try.
    pub backoff: Option<RawBackoff>,
    /// Healthy this long after the action = the action worked. Default `"30s"`.
    pub healthy_for: Option<HumanDuration>,
    /// Minimum time between two tries of this step. Default `"0s"`.
    pub cooldown: Option<HumanDuration>,
    /// hook: name of the hook file in a hooks directory.
    pub hook: Option<String>,
    /// hook: arguments, each passed as one argument (no shell);
    /// `{target}`, `{unit}`, `{device}`, `{incident}` are filled in.
    pub args: Option<Vec<String>>,
    /// hook: the hook is killed after this. Default `"30s"`.
    pub timeout: Option<HumanDuration>,
    /// restart-units: the other units to restart, e.g. `["nvargus-daemon.service"]`.
    pub units: Option<Vec<String>>,
    /// kill: signal to send. Default `SIGKILL`.
    pub signal: Option<String>,
    /// reboot: this target's own reboot budget, e.g. `"1/6h"` (the global `[reboot]` one applies too).
    pub budget: Option<Checked<Budget>>,
}

/// `backoff = { initial = "2s", factor = 2.0, max = "1m", jitter = 0.2 }`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawBackoff {
    /// Delay before the first try. Default `"1s"`.
    pub initial: Option<HumanDuration>,
    /// Each delay is the previous one times this. Default 2.0.
    pub factor: Option<f64>,
    /// Delays never exceed this. Default `"5m"`.
    pub max: Option<HumanDuration>,
    /// Random spread, as a fraction of the delay (0.2 = ±20 %). Default 0.1.
    pub jitter: Option<f64>,
}

/// `[alert]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RawAlert {
    /// Severity of this target's incidents. Default `warning`.
    pub severity: Option<Checked<Severity>>,
    /// Escalation chain. Default `[alerts] default-escalation`.
    pub escalation: Option<String>,
    /// Wait this long after the target turns failing before alerting; a
    /// failure that heals sooner is only logged. Default `"0s"`.
    pub delay: Option<HumanDuration>,
    /// Send a notice when it recovers. Default `[alerts] notify-resolved`.
    pub notify_resolved: Option<bool>,
}

/// The field names of a serde struct, as its derive declares them.
pub fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Deserializer, Visitor};
    struct Introspect<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Introspect<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("introspection"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("introspection"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}
