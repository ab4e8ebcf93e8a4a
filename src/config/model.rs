//! The validated configuration: what the rest of the daemon works from.
//!
//! Everything here has passed validation and has its defaults filled in, so
//! consumers never re-check a value or guess a default. Built from
//! [`super::raw`] by [`super::validate`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

pub use super::value::{Budget, Severity};

/// The whole configuration: the daemon's file plus every policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[daemon]`
    pub daemon: Daemon,
    /// `[log]`
    pub log: Log,
    /// `[api]`
    pub api: Api,
    /// `[identity]`
    pub identity: Identity,
    /// `[platform]`, when configured.
    pub platform: Option<Platform>,
    /// `[metrics]`
    pub metrics: Metrics,
    /// `[reboot]`
    pub reboot: Reboot,
    /// `[alerts]`
    pub alerts: Alerts,
    /// `[channels.*]` by name.
    pub channels: BTreeMap<String, Channel>,
    /// `[escalation.*]` by name.
    pub escalations: BTreeMap<String, Escalation>,
    /// `[[rule]]`
    pub rules: Vec<Rule>,
    /// `[dashboard]`
    pub dashboard: Dashboard,
    /// One per enabled policy file, sorted by name.
    pub targets: Vec<Target>,
    /// One per policy file with `enabled = false`, sorted by name.
    pub disabled: Vec<DisabledTarget>,
}

/// A policy file with `enabled = false`: checked, not supervised. Its
/// problems are warnings (they cannot break the targets that run) and are
/// kept here as what to fix before enabling it; `/health` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct DisabledTarget {
    /// `[target] name`.
    pub name: String,
    /// The policy file.
    pub source: std::path::PathBuf,
    /// What `check` would refuse once it is enabled, in its words.
    pub to_enable: Vec<String>,
}

impl Config {
    /// The target with this name.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// Every systemd unit the configuration names: unit targets, `unit`
    /// probes and `restart-units` steps. The supervisor watches these.
    pub fn watched_units(&self) -> std::collections::BTreeSet<String> {
        let mut units = std::collections::BTreeSet::new();
        for t in &self.targets {
            if let Some(u) = t.unit() {
                units.insert(u.to_owned());
            }
            for p in &t.probes {
                if let Check::Unit { unit } = &p.check {
                    units.insert(unit.clone());
                }
            }
            for s in &t.ladder {
                if let Action::RestartUnits(list) = &s.action {
                    units.extend(list.iter().cloned());
                }
            }
        }
        units
    }

    /// The targets whose own unit is `unit`.
    pub fn targets_of_unit<'a>(&'a self, unit: &'a str) -> impl Iterator<Item = &'a Target> + 'a {
        self.targets.iter().filter(move |t| t.unit() == Some(unit))
    }
}

/// Which D-Bus systemd is reached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// The system bus and the system manager (production).
    System,
    /// The session bus and a user manager (development, tests).
    User,
}

impl Bus {
    /// `"system"` or `"user"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bus::System => "system",
            Bus::User => "user",
        }
    }
}

/// `[daemon]`
#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    /// Persisted state.
    pub state_dir: PathBuf,
    /// Where the policies were read from (`None`: the embedded default).
    pub policies_dir: Option<PathBuf>,
    /// Hook search path, first match wins.
    pub hooks_dirs: Vec<PathBuf>,
    /// systemd's bus.
    pub bus: Bus,
    /// Observe mode for every target.
    pub observe: bool,
    /// Root for `/sys`, `/proc`, `/dev` reads.
    pub host_root: PathBuf,
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// journald when its socket answers, else stderr.
    Auto,
    /// journald only.
    Journald,
    /// Text on stderr.
    Stderr,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// Lowest level logged.
    pub level: tracing::Level,
    /// Destination.
    pub output: LogOutput,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token file; `None`: the generated one in the state directory.
    pub token_file: Option<PathBuf>,
    /// Serve the dashboard.
    pub dashboard: bool,
    /// Require the token for every read but `/livez`.
    pub protect_reads: bool,
    /// With `protect_reads`, `/health` stays open.
    pub public_health: bool,
    /// Names a changing call's `Host` may carry (lower case).
    pub allowed_hosts: Vec<String>,
}

/// `[identity]`
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Human name (default: host name).
    pub name: String,
    /// Hardware id, inline.
    pub hardware_id: Option<String>,
    /// Hardware id file.
    pub hardware_id_file: Option<PathBuf>,
    /// Site description.
    pub site: Option<String>,
}

/// `[platform]`
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    /// API base URL.
    pub base_url: String,
    /// File with the API key.
    pub api_key_file: Option<PathBuf>,
    /// Request timeout.
    pub timeout: Duration,
    /// Serve the earlier generation's endpoints.
    pub legacy_endpoints: bool,
    /// Where they listen.
    pub legacy_listen: std::net::SocketAddr,
    /// The application series the platform's figures come from.
    pub figures: Figures,
    /// The monitoring push, when `monitoring-url` is set.
    pub push: Option<Push>,
}

/// `[platform] monitoring-*`: the earlier platform's monitoring push.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// Where to POST.
    pub url: String,
    /// How often.
    pub every: Duration,
    /// Pushes kept while the platform cannot be reached.
    pub backlog: usize,
}

/// `[platform] *-series`: the application's series behind the platform's
/// figures. Each names a metric; its series (whatever their labels) are
/// summed. Unset: the figure is `null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Detections, a counter.
    pub detections: Option<String>,
    /// Processing time in milliseconds.
    pub processing_time_ms: Option<String>,
    /// Detection success rate, 0 to 1.
    pub success_rate: Option<String>,
    /// Errors, a counter.
    pub errors: Option<String>,
    /// API requests, a counter.
    pub requests: Option<String>,
}

/// Where the earlier platform polls a machine.
pub const DEFAULT_LEGACY_LISTEN: &str = "0.0.0.0:5000";

/// The dashboard's tiles, in their default order.
pub const DASHBOARD_TILES: &[&str] = &[
    "cpu",
    "memory",
    "disk",
    "load",
    "gpu",
    "temperature",
    "power",
    "network",
    "uptime",
    "systemd",
    "safe-mode",
    "reboots",
    "outbox",
];

/// The dashboard's charts, in their default order (`kpis`: one chart per
/// `[[metrics.kpi]]`).
pub const DASHBOARD_CHARTS: &[&str] = &[
    "cpu",
    "memory",
    "load",
    "disk",
    "gpu",
    "temperature",
    "power",
    "network",
    "service-memory",
    "service-cpu",
    "kpis",
    "watchdog",
];

/// `[dashboard]`: the site's default view.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Tiles, in order.
    pub tiles: Vec<&'static str>,
    /// Charts, in order.
    pub charts: Vec<&'static str>,
    /// Targets listed, in order; `None`: all, by name.
    pub targets: Option<Vec<String>>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self {
            tiles: DASHBOARD_TILES.to_vec(),
            charts: DASHBOARD_CHARTS.to_vec(),
            targets: None,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Sampling interval.
    pub interval: Duration,
    /// Full resolution kept in RAM for this long.
    pub raw_retention: Duration,
    /// 1-minute rollups kept this long.
    pub minute_retention: Duration,
    /// 1-hour rollups kept this long.
    pub hour_retention: Duration,
    /// History size bound, MiB.
    pub max_disk_mib: u64,
    /// Services' endpoints to scrape.
    pub scrapes: Vec<Scrape>,
    /// Figures computed from the series.
    pub kpis: Vec<Kpi>,
}

/// `[[metrics.scrape]]`
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// The `source` label.
    pub name: String,
    /// The endpoint.
    pub url: String,
    /// Between scrapes.
    pub interval: Duration,
    /// Per scrape.
    pub timeout: Duration,
}

/// `[[metrics.kpi]]`
#[derive(Debug, Clone, PartialEq)]
pub struct Kpi {
    /// The series it becomes.
    pub name: String,
    /// One line for people.
    pub help: String,
    /// How it is computed.
    pub formula: crate::metrics::kpi::Formula,
    /// Over how long.
    pub window: Duration,
}

/// `[reboot]`
#[derive(Debug, Clone, PartialEq)]
pub struct Reboot {
    /// Global budget.
    pub budget: Budget,
    /// Minimum uptime before an automatic reboot.
    pub min_uptime: Duration,
    /// Boots within a window that mean a boot loop.
    pub boot_loop: Budget,
    /// Reboot command instead of systemd.
    pub command: Option<Vec<String>>,
}

/// `[alerts]`
#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    /// Chain for targets without one.
    pub default_escalation: Option<String>,
    /// Tell people when incidents resolve.
    pub notify_resolved: bool,
    /// Outbox bound, entries.
    pub outbox_max: u64,
    /// Outbox bound, age.
    pub outbox_max_age: Duration,
    /// Messages wait this long for others to leave with them.
    pub group_wait: Duration,
    /// Raises within `flap_window` that make an alert flap.
    pub flap_count: usize,
    /// See `flap_count`.
    pub flap_window: Duration,
    /// Resolved alerts are listed this long.
    pub keep_resolved: Duration,
    /// A target still failing when its dependency recovers gets this long to heal.
    pub release_grace: Duration,
    /// Local time zone (IANA name); the machine's when `None`.
    pub time_zone: Option<String>,
    /// Routes, first match wins.
    pub routes: Vec<AlertRoute>,
}

/// `[[alerts.route]]`
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRoute {
    /// Target pattern.
    pub target: Option<String>,
    /// Alert name pattern.
    pub name: Option<String>,
    /// Severity.
    pub severity: Option<Severity>,
    /// Local times it is in effect (`mon-fri 18:00-08:00`); always when `None`.
    pub during: Option<String>,
    /// Chain.
    pub escalation: String,
}

/// How an email channel secures SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS.
    StartTls,
    /// TLS from the first byte.
    Tls,
    /// No TLS (a relay on the machine or a trusted link only).
    None,
}

/// `[channels.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Its name.
    pub name: String,
    /// Kind and kind-specific settings.
    pub kind: ChannelKind,
    /// Least severity sent.
    pub min_severity: Severity,
    /// Delivery timeout.
    pub timeout: Duration,
    /// The channel a notification goes to when this one keeps failing.
    pub fallback: Option<String>,
}

/// A channel's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    /// JSON POST, optionally HMAC-signed.
    Webhook {
        /// Endpoint.
        url: String,
        /// HMAC secret file.
        secret_file: Option<PathBuf>,
    },
    /// Mail through an SMTP relay.
    Email {
        /// `host:port`.
        smtp: String,
        /// TLS mode.
        tls: SmtpTls,
        /// Login.
        username: Option<String>,
        /// Password file.
        password_file: Option<PathBuf>,
        /// Sender.
        from: String,
        /// Recipients.
        to: Vec<String>,
        /// The CA that signed the relay's certificate, trusted instead of
        /// the system's roots.
        ca_file: Option<PathBuf>,
    },
    /// Text messages through an HTTP SMS gateway.
    Sms {
        /// Gateway endpoint.
        url: String,
        /// Account.
        username: Option<String>,
        /// Token file.
        password_file: Option<PathBuf>,
        /// Sender id.
        from: Option<String>,
        /// Phone numbers.
        to: Vec<String>,
        /// How each request is shaped.
        style: SmsStyle,
    },
    /// Prometheus Alertmanager's v2 API.
    Alertmanager {
        /// Base URL, e.g. `http://am:9093`.
        url: String,
        /// Firing alerts are posted again this often.
        resend_every: Duration,
        /// The `generatorURL` base; default: the API's listen address.
        external_url: Option<String>,
    },
}

/// How an SMS channel shapes its requests.
#[derive(Debug, Clone, PartialEq)]
pub enum SmsStyle {
    /// A form POST with `To`, `From` and `Body`.
    Twilio,
    /// A body of the channel's own.
    Template {
        /// With `{to}`, `{from}`, `{message}`, `{username}`, `{password}`.
        body: String,
        /// Sent as `Content-Type`; decides the escaping.
        content_type: String,
    },
}

impl ChannelKind {
    /// The kind's name as written in files.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Email { .. } => "email",
            ChannelKind::Sms { .. } => "sms",
            ChannelKind::Alertmanager { .. } => "alertmanager",
        }
    }
}

/// `[escalation.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// Its name.
    pub name: String,
    /// Levels, by non-decreasing `after`.
    pub levels: Vec<EscalationLevel>,
    /// Repeat interval of the last level.
    pub repeat: Option<Duration>,
}

/// One escalation level.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationLevel {
    /// Time since the incident opened.
    pub after: Duration,
    /// Channels told.
    pub channels: Vec<String>,
}

/// A metric rule's condition.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleCondition {
    /// Value above a bound.
    Above(f64),
    /// Value below a bound.
    Below(f64),
    /// Predicted to cross upwards within a horizon.
    PredictAbove {
        /// Horizon.
        within: Duration,
        /// Bound.
        bound: f64,
        /// Fitted over.
        over: Duration,
    },
    /// Predicted to cross downwards within a horizon.
    PredictBelow {
        /// Horizon.
        within: Duration,
        /// Bound.
        bound: f64,
        /// Fitted over.
        over: Duration,
    },
}

/// `[[rule]]`
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Series selector.
    pub series: String,
    /// When it fires.
    pub condition: RuleCondition,
    /// For how long the condition must hold.
    pub hold_for: Duration,
    /// Back past this, a raised alert clears (`above` / `below`).
    pub clear: Option<f64>,
    /// Severity.
    pub severity: Severity,
    /// Chain.
    pub escalation: Option<String>,
}

/// A target: something kept alive.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Unique name.
    pub name: String,
    /// For people.
    pub description: Option<String>,
    /// What it is.
    pub kind: TargetKind,
    /// Targets it needs.
    pub depends_on: Vec<String>,
    /// Failures ignored this long after start or recovery.
    pub startup_grace: Duration,
    /// Healthy this long resets the ladder.
    pub reset_after: Duration,
    /// Observe mode (already merged with the global setting).
    pub observe: bool,
    /// Its probes.
    pub probes: Vec<Probe>,
    /// Its recovery ladder.
    pub ladder: Vec<Step>,
    /// Alerting.
    pub alert: AlertPolicy,
    /// The policy file it came from.
    pub source: PathBuf,
}

impl Target {
    /// The systemd unit, for unit targets.
    pub fn unit(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Unit { unit } => Some(unit),
            _ => None,
        }
    }
}

/// What kind of thing a target is.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    /// A systemd unit.
    Unit {
        /// Full unit name.
        unit: String,
    },
    /// A process the watchdog runs.
    Process(ProcessSpec),
    /// A process someone else runs.
    Adopted(AdoptSpec),
    /// Only probes (a device, the network, the platform).
    Probed,
}

impl TargetKind {
    /// `unit`, `process`, `adopted` or `probed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetKind::Unit { .. } => "unit",
            TargetKind::Process(_) => "process",
            TargetKind::Adopted(_) => "adopted",
            TargetKind::Probed => "probed",
        }
    }
}

/// `[target.process]`
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Added environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub working_dir: PathBuf,
    /// User.
    pub user: Option<String>,
    /// Group.
    pub group: Option<String>,
    /// Stop signal.
    pub stop_signal: Signal,
    /// Grace before SIGKILL.
    pub stop_timeout: Duration,
}

/// How an adopted process is found.
#[derive(Debug, Clone, PartialEq)]
pub enum AdoptBy {
    /// pid file.
    Pidfile(PathBuf),
    /// command-line pattern.
    Match(String),
}

/// `[target.adopt]`
#[derive(Debug, Clone, PartialEq)]
pub struct AdoptSpec {
    /// How it is found.
    pub by: AdoptBy,
    /// May be signalled.
    pub may_signal: bool,
}

/// What a probe failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRole {
    /// The target itself is wedged: recover it.
    Liveness,
    /// Something it needs is down: alert and degrade, don't restart it.
    Dependency,
}

/// `[[probe]]`
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Name, unique within the target.
    pub name: String,
    /// Role.
    pub role: ProbeRole,
    /// Interval.
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
    /// Failures before failing.
    pub fail_after: u32,
    /// Passes before passing.
    pub pass_after: u32,
    /// What is checked.
    pub check: Check,
}

/// Warn and fail bounds on a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Warn above.
    pub warn_above: Option<f64>,
    /// Fail above.
    pub fail_above: Option<f64>,
}

/// `follow-redirects`: which redirects a request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redirects {
    /// None: a redirect is reported with its target (the default).
    #[default]
    None,
    /// To the same scheme, host and port only, at most five.
    SameOrigin,
}

/// What one probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// An HTTP(S) request.
    Http {
        /// URL.
        url: String,
        /// GET or HEAD.
        method: String,
        /// Accepted codes; empty = 200–399.
        expect_status: Vec<u16>,
        /// Body substring.
        body_contains: Option<String>,
        /// JSON pointer and expected value.
        json: Option<(String, String)>,
        /// Which redirects are followed.
        redirects: Redirects,
    },
    /// A TCP connect.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// A program (Nagios plugin convention).
    Exec {
        /// Program and arguments.
        command: Vec<String>,
    },
    /// A file's modification age.
    FileAge {
        /// File.
        file: PathBuf,
        /// Fail when older.
        max_age: Duration,
    },
    /// A systemd unit's state.
    Unit {
        /// Unit name.
        unit: String,
    },
    /// Disk use of a mount, percent.
    Disk {
        /// Mount point.
        mount: PathBuf,
        /// Bounds.
        thresholds: Thresholds,
    },
    /// Memory use, percent.
    Memory {
        /// Bounds.
        thresholds: Thresholds,
    },
    /// A thermal zone, °C.
    Temperature {
        /// Zone type; `None` = the hottest.
        zone: Option<String>,
        /// Bounds.
        thresholds: Thresholds,
    },
    /// The GPU: present, temperature, throttling.
    Gpu {
        /// Temperature bounds.
        thresholds: Thresholds,
    },
    /// A V4L2 camera and its frame heartbeat.
    Camera {
        /// Device node.
        device: PathBuf,
        /// Frame heartbeat file.
        frame_heartbeat: Option<PathBuf>,
        /// Max frame age.
        max_frame_age: Duration,
        /// Identical hashes = frozen.
        identical_frames: u32,
        /// Watch kernel errors.
        kernel_errors: bool,
    },
    /// The uplink, step by step.
    Network {
        /// Interface with carrier.
        interface: Option<String>,
        /// Default route required.
        default_route: bool,
        /// Name to resolve.
        resolve: Option<String>,
        /// TCP connect.
        address: Option<String>,
        /// HTTP round trip (any answer proves the path; redirects are not followed).
        url: Option<String>,
    },
    /// A read-only request to the MyRVM platform API.
    Myrvm {
        /// Path under the base URL.
        path: String,
        /// Which redirects are followed (the key goes only where the base URL is).
        redirects: Redirects,
    },
    /// A process target's own state (stopped, uninterruptible).
    Process {
        /// Limit.
        stuck_for: Duration,
    },
}

impl Check {
    /// The kind's name as written in files.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http { .. } => "http",
            Check::Tcp { .. } => "tcp",
            Check::Exec { .. } => "exec",
            Check::FileAge { .. } => "file-age",
            Check::Unit { .. } => "unit",
            Check::Disk { .. } => "disk",
            Check::Memory { .. } => "memory",
            Check::Temperature { .. } => "temperature",
            Check::Gpu { .. } => "gpu",
            Check::Camera { .. } => "camera",
            Check::Network { .. } => "network",
            Check::Myrvm { .. } => "myrvm",
            Check::Process { .. } => "process",
        }
    }
}

/// Exponential backoff with a cap and jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Growth factor.
    pub factor: f64,
    /// Cap.
    pub max: Duration,
    /// Fractional spread.
    pub jitter: f64,
}

/// One ladder step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What is done.
    pub action: Action,
    /// Tries before escalating.
    pub attempts: u32,
    /// Delays.
    pub backoff: Backoff,
    /// Success criterion.
    pub healthy_for: Duration,
    /// Minimum time between tries.
    pub cooldown: Duration,
}

/// A recovery action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Restart the target (its unit or process).
    Restart,
    /// Restart other units.
    RestartUnits(Vec<String>),
    /// Run a hook.
    Hook {
        /// Name as written.
        name: String,
        /// Resolved file.
        path: PathBuf,
        /// Arguments (templates).
        args: Vec<String>,
        /// Kill after.
        timeout: Duration,
    },
    /// Signal the target's main process.
    Kill(Signal),
    /// Reboot the machine.
    Reboot {
        /// This target's own budget.
        budget: Option<Budget>,
    },
}

impl Action {
    /// The action's name as written in files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::RestartUnits(_) => "restart-units",
            Action::Hook { .. } => "hook",
            Action::Kill(_) => "kill",
            Action::Reboot { .. } => "reboot",
        }
    }
}

/// `[alert]`
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPolicy {
    /// Severity.
    pub severity: Severity,
    /// Chain (already defaulted from `[alerts]`).
    pub escalation: Option<String>,
    /// Delay before alerting.
    pub delay: Duration,
    /// Resolved notices.
    pub notify_resolved: bool,
}
