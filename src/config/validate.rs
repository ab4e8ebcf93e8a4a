//! Building the domain model from the raw files, collecting every problem.
//!
//! Each function takes what one file said and returns the validated value
//! with defaults filled in, pushing a [`Diagnostic`] for each problem it
//! finds instead of stopping at the first. Cross-file checks (duplicate
//! targets, unknown or cyclic dependencies, undefined channels and chains)
//! run once every file has been read, in [`cross_check`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::diag::{Anchor, Diagnostic, KeyPath, Severity as Level, SourceFile};
use super::diag::{key_shown, plain, quoted};
use super::model::*;
use super::raw::*;
use super::value::{Checked, FromScalar, HumanDuration, check_name, did_you_mean, format_duration};

/// Default listen address of the API: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9184";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rvm-watchdog";
/// Default policies directory.
pub const DEFAULT_POLICIES_DIR: &str = "/etc/rvm-watchdog/policies";
/// Default hook search path: site hooks first, then shipped ones.
pub const DEFAULT_HOOKS_DIRS: [&str; 2] =
    ["/etc/rvm-watchdog/hooks", "/usr/share/rvm-watchdog/hooks"];

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

/// Collects diagnostics for one file.
pub struct Checker<'a> {
    src: &'a SourceFile,
    out: &'a mut Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    /// A checker writing into `out`.
    pub fn new(src: &'a SourceFile, out: &'a mut Vec<Diagnostic>) -> Self {
        Self { src, out }
    }

    /// Reports an error at a key's value.
    pub fn error(&mut self, path: &KeyPath, message: impl Into<String>) {
        let d = self
            .src
            .at(path, Anchor::Value, Level::Error, message.into());
        self.out.push(d);
    }

    /// Reports an error at a key's name.
    pub fn error_at_key(&mut self, path: &KeyPath, message: impl Into<String>) {
        let d = self.src.at(path, Anchor::Key, Level::Error, message.into());
        self.out.push(d);
    }

    /// Reports a warning at a key's value.
    pub fn warn(&mut self, path: &KeyPath, message: impl Into<String>) {
        let d = self
            .src
            .at(path, Anchor::Value, Level::Warning, message.into());
        self.out.push(d);
    }

    /// Reports a missing key, pointing at the table that should hold it.
    fn missing(&mut self, table: &KeyPath, key: &str, hint: &str) {
        let where_ = if table.0.is_empty() {
            "the file".to_owned()
        } else {
            format!("`{table}`")
        };
        let d = self.src.at(
            table,
            Anchor::Key,
            Level::Error,
            format!("missing `{key}` in {where_}{hint}"),
        );
        // A table that is absent altogether is reported at the top of the file.
        let d = if d.line == 0 {
            Diagnostic {
                line: 1,
                col: 1,
                ..d
            }
        } else {
            d
        };
        self.out.push(d);
    }

    /// A value that was parsed when the file was read: its error, if any, is reported here.
    fn checked<T: Clone + FromScalar>(
        &mut self,
        path: &KeyPath,
        value: &Option<Checked<T>>,
    ) -> Option<T> {
        match value {
            None => None,
            Some(Checked(Ok(v))) => Some(v.clone()),
            Some(Checked(Err(message))) => {
                // A number is named as the file writes it, not as it was read.
                let message = match self.src.written(path) {
                    Some(w)
                        if w.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c))
                            || w == "inf"
                            || w == "nan" =>
                    {
                        T::from_number(w).err().unwrap_or_else(|| message.clone())
                    }
                    _ => message.clone(),
                };
                self.error(path, message);
                None
            }
        }
    }

    /// The value at `path` as the file writes it, for messages; `fallback`
    /// when the file does not hold it there.
    fn written(&self, path: &KeyPath, fallback: impl fmt::Display) -> String {
        match self.src.written(path) {
            Some(w) => plain(w).to_string(),
            None => fallback.to_string(),
        }
    }

    /// The name of the key at the end of `path`, for messages.
    fn key_name(path: &KeyPath) -> String {
        key_shown(path.last_key().unwrap_or("?")).to_string()
    }

    /// A duration within `[min, max]`, or the default.
    fn duration(
        &mut self,
        path: &KeyPath,
        value: &Option<HumanDuration>,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(d) = self.checked(path, value) else {
            return default;
        };
        if d < min || d > max {
            self.error(
                path,
                format!(
                    "`{}` = {} is out of range; expected {} to {}",
                    Self::key_name(path),
                    self.written(path, fmt_duration(d)),
                    fmt_duration(min),
                    fmt_duration(max)
                ),
            );
            return default;
        }
        d
    }

    /// A whole number within `[min, max]`, or the default.
    fn count(
        &mut self,
        path: &KeyPath,
        value: Option<u32>,
        default: u32,
        min: u32,
        max: u32,
    ) -> u32 {
        let Some(v) = value else { return default };
        if v < min || v > max {
            self.error(
                path,
                format!(
                    "`{}` = {} is out of range; expected {min} to {max}",
                    Self::key_name(path),
                    self.written(path, v)
                ),
            );
            return default;
        }
        v
    }

    /// A number within `[min, max]`, or the default.
    fn number(
        &mut self,
        path: &KeyPath,
        value: Option<f64>,
        default: f64,
        min: f64,
        max: f64,
    ) -> f64 {
        let Some(v) = value else { return default };
        if !(min..=max).contains(&v) {
            self.error(
                path,
                format!(
                    "`{}` = {} is out of range; expected {min} to {max}",
                    Self::key_name(path),
                    self.written(path, v)
                ),
            );
            return default;
        }
        v
    }

    /// A plain name (targets, probes, channels, chains).
    fn name(&mut self, path: &KeyPath, name: &str) -> bool {
        match check_name(name) {
            Ok(()) => true,
            Err(why) => {
                self.error(path, why);
                false
            }
        }
    }

    /// One of a fixed set of words.
    fn choice<'c>(&mut self, path: &KeyPath, value: &str, choices: &[&'c str]) -> Option<&'c str> {
        if let Some(c) = choices.iter().find(|c| **c == value) {
            return Some(c);
        }
        let key = Self::key_name(path);
        let shown = quoted(value);
        let mut message = format!(
            "unknown {key} {shown}; expected one of {}",
            quote_list(choices)
        );
        if let Some(s) = did_you_mean(value, choices.iter().copied()) {
            message = format!("unknown {key} {shown}; did you mean \"{s}\"?");
        }
        self.error(path, message);
        None
    }

    /// An absolute path.
    fn abs_path(&mut self, path: &KeyPath, value: &str) -> PathBuf {
        if !value.starts_with('/') {
            self.error(
                path,
                format!("path {} must be absolute (start with '/')", quoted(value)),
            );
        }
        PathBuf::from(value)
    }

    /// A file holding a secret: regular, owned by root (or the watchdog's
    /// user), neither readable nor writable by group or others.
    fn secret_file(&mut self, path: &KeyPath, value: &str) -> PathBuf {
        let file = self.abs_path(path, value);
        if let Err(why) = crate::trust::secret_file(&file) {
            self.error(path, why);
        }
        file
    }

    /// A URL with an http or https scheme and a host.
    fn url(&mut self, path: &KeyPath, value: &str) -> bool {
        let ok = ["http://", "https://"].iter().any(|scheme| {
            value
                .strip_prefix(scheme)
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        });
        if !ok {
            self.error(
                path,
                format!(
                    "invalid URL {}; expected http:// or https:// followed by a host",
                    quoted(value)
                ),
            );
        }
        ok
    }

    /// A `host:port` address.
    fn host_port(&mut self, path: &KeyPath, value: &str) -> bool {
        let ok = value.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            self.error(
                path,
                format!(
                    "invalid address {}; expected HOST:PORT, like \"127.0.0.1:8001\"",
                    quoted(value)
                ),
            );
        }
        ok
    }

    /// A systemd unit name with its type suffix.
    fn unit_name(&mut self, path: &KeyPath, value: &str) -> bool {
        const SUFFIXES: [&str; 11] = [
            ".service",
            ".socket",
            ".target",
            ".timer",
            ".mount",
            ".path",
            ".device",
            ".swap",
            ".slice",
            ".scope",
            ".automount",
        ];
        if value.contains('/') || value.chars().any(char::is_whitespace) || value.is_empty() {
            self.error(path, format!("invalid unit name {}", quoted(value)));
            return false;
        }
        if !SUFFIXES
            .iter()
            .any(|s| value.ends_with(s) && value.len() > s.len())
        {
            self.error(
                path,
                format!(
                    "unit name {} lacks a type suffix; did you mean {}?",
                    quoted(value),
                    quoted(&format!("{value}.service"))
                ),
            );
            return false;
        }
        true
    }

    /// A signal name such as `SIGTERM` or `TERM`.
    fn signal(&mut self, path: &KeyPath, value: Option<&str>, default: Signal) -> Signal {
        let Some(text) = value else { return default };
        let name = if text.starts_with("SIG") {
            text.to_owned()
        } else {
            format!("SIG{text}")
        };
        match Signal::from_str(&name) {
            Ok(s) => s,
            Err(_) => {
                self.error(
                    path,
                    format!(
                        "unknown signal {}; expected a name like \"SIGTERM\" or \"SIGKILL\"",
                        quoted(text)
                    ),
                );
                default
            }
        }
    }

    /// Keys present in a table that do not apply to its kind. Keys that
    /// are not `known` at all were already reported as unknown.
    fn inapplicable(&mut self, table: &KeyPath, known: &[&str], allowed: &[&str], what: &str) {
        for key in self.src.keys_at(table) {
            if known.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
                self.error_at_key(
                    &table.key(&key),
                    format!("`{}` does not apply to {what}", key_shown(&key)),
                );
            }
        }
    }
}

/// A duration in quotes, as a file writes it.
fn fmt_duration(d: Duration) -> String {
    format!("\"{}\"", format_duration(d))
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// watchdog.toml
// ---------------------------------------------------------------------------

/// Validates `watchdog.toml`. `targets` stays empty; the policies fill it.
pub fn config(src: &SourceFile, raw: RawConfig, out: &mut Vec<Diagnostic>) -> Config {
    let mut c = Checker::new(src, out);
    let root = KeyPath::root();

    let d = root.key("daemon");
    let bus = match raw.daemon.bus.as_deref() {
        None => Bus::System,
        Some(b) => match c.choice(&d.key("bus"), b, &["system", "user"]) {
            Some("user") => Bus::User,
            _ => Bus::System,
        },
    };
    let state_dir = raw
        .daemon
        .state_dir
        .as_deref()
        .map(|s| c.abs_path(&d.key("state-dir"), s))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let policies_dir = Some(
        raw.daemon
            .policies_dir
            .as_deref()
            .map(|s| c.abs_path(&d.key("policies-dir"), s))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICIES_DIR)),
    );
    let hooks_dirs: Vec<PathBuf> = match &raw.daemon.hooks_dirs {
        Some(dirs) => dirs
            .iter()
            .enumerate()
            .map(|(i, s)| c.abs_path(&d.key("hooks-dirs").index(i), s))
            .collect(),
        None => DEFAULT_HOOKS_DIRS.iter().map(PathBuf::from).collect(),
    };
    // Hooks run as root: nobody else may change what a hooks directory holds.
    for (i, dir) in hooks_dirs.iter().enumerate() {
        if dir.is_dir()
            && let Err(why) = crate::trust::trusted_dir(dir)
        {
            let at = match &raw.daemon.hooks_dirs {
                Some(_) => d.key("hooks-dirs").index(i),
                None => d.clone(),
            };
            c.error(&at, format!("hooks directory {}: {why}", dir.display()));
        }
    }
    let host_root = raw
        .daemon
        .host_root
        .as_deref()
        .map(|s| c.abs_path(&d.key("host-root"), s))
        .unwrap_or_else(|| PathBuf::from("/"));
    let daemon = Daemon {
        state_dir,
        policies_dir,
        hooks_dirs,
        bus,
        observe: raw.daemon.observe.unwrap_or(false),
        host_root,
    };

    let l = root.key("log");
    let level = match raw.log.level.as_deref() {
        None => tracing::Level::INFO,
        Some(v) => match c.choice(
            &l.key("level"),
            v,
            &["error", "warn", "info", "debug", "trace"],
        ) {
            Some(v) => tracing::Level::from_str(v).unwrap_or(tracing::Level::INFO),
            None => tracing::Level::INFO,
        },
    };
    let output = match raw.log.output.as_deref() {
        None => LogOutput::Auto,
        Some(v) => match c.choice(&l.key("output"), v, &["auto", "journald", "stderr"]) {
            Some("journald") => LogOutput::Journald,
            Some("stderr") => LogOutput::Stderr,
            _ => LogOutput::Auto,
        },
    };
    let log = Log { level, output };

    let a = root.key("api");
    let listen_text = raw.api.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            c.error(
                &a.key("listen"),
                format!("invalid listen address {}; expected IP:PORT, like \"127.0.0.1:9184\" or \"0.0.0.0:9184\"", quoted(listen_text)),
            );
            DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses")
        }
    };
    let token_file = raw
        .api
        .token_file
        .as_deref()
        .map(|t| c.secret_file(&a.key("token-file"), t));
    let mut allowed_hosts = Vec::new();
    for (i, h) in raw.api.allowed_hosts.iter().flatten().enumerate() {
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-');
        if ok {
            allowed_hosts.push(h.to_ascii_lowercase());
        } else {
            c.error(
                &a.key("allowed-hosts").index(i),
                format!("\"{}\" is not a host name; write the name alone, e.g. \"rvm-017.vpn.example\" (no port, no scheme)", h.escape_debug()),
            );
        }
    }
    let api = Api {
        listen,
        token_file,
        dashboard: raw.api.dashboard.unwrap_or(true),
        protect_reads: raw.api.protect_reads.unwrap_or(false),
        public_health: raw.api.public_health.unwrap_or(false),
        allowed_hosts,
    };

    let i = root.key("identity");
    let identity = Identity {
        name: raw.identity.name.clone().unwrap_or_else(host_name),
        hardware_id: raw.identity.hardware_id.clone(),
        hardware_id_file: raw
            .identity
            .hardware_id_file
            .as_deref()
            .map(|f| c.abs_path(&i.key("hardware-id-file"), f)),
        site: raw.identity.site.clone(),
    };

    let platform = raw.platform.as_ref().and_then(|p| {
        let pp = root.key("platform");
        let base = match &p.base_url {
            Some(u) => {
                c.url(&pp.key("base-url"), u);
                u.trim_end_matches('/').to_owned()
            }
            None => {
                c.missing(&pp, "base-url", ", like \"https://myrvm.example/api/v1\"");
                return None;
            }
        };
        let push = p.monitoring_url.as_deref().map(|u| {
            c.url(&pp.key("monitoring-url"), u);
            Push {
                url: u.to_owned(),
                every: c.duration(
                    &pp.key("monitoring-every"),
                    &p.monitoring_every,
                    30 * SECOND,
                    SECOND,
                    HOUR,
                ),
                backlog: c.count(&pp.key("monitoring-backlog"), p.monitoring_backlog, 120, 1, 100_000)
                    as usize,
            }
        });
        Some(Platform {
            base_url: base,
            api_key_file: p
                .api_key_file
                .as_deref()
                .map(|f| c.secret_file(&pp.key("api-key-file"), f)),
            timeout: c.duration(
                &pp.key("timeout"),
                &p.timeout,
                5 * SECOND,
                Duration::from_millis(100),
                MINUTE,
            ),
            legacy_endpoints: p.legacy_endpoints.unwrap_or(false),
            legacy_listen: {
                let text = p.legacy_listen.as_deref().unwrap_or(DEFAULT_LEGACY_LISTEN);
                text.parse::<SocketAddr>().unwrap_or_else(|_| {
                    c.error(
                        &pp.key("legacy-listen"),
                        format!("invalid listen address {}; expected IP:PORT, like \"0.0.0.0:5000\"", quoted(text)),
                    );
                    DEFAULT_LEGACY_LISTEN.parse().expect("the default parses")
                })
            },
            push,
            figures: {
                let mut series = |key: &str, value: &Option<String>| {
                    let name = value.as_deref()?;
                    if !crate::metrics::text::valid_name(name) {
                        c.error(
                            &pp.key(key),
                            format!("{} is not a metric name: letters, digits, `_` and `:`, not starting with a digit (labels are not named here: every series of the name is summed)", quoted(name)),
                        );
                        return None;
                    }
                    Some(name.to_owned())
                };
                Figures {
                    detections: series("detections-series", &p.detections_series),
                    processing_time_ms: series("processing-time-series", &p.processing_time_series),
                    success_rate: series("success-rate-series", &p.success_rate_series),
                    errors: series("errors-series", &p.errors_series),
                    requests: series("requests-series", &p.requests_series),
                }
            },
        })
    });

    let m = root.key("metrics");
    let metrics = Metrics {
        interval: c.duration(
            &m.key("interval"),
            &raw.metrics.interval,
            10 * SECOND,
            SECOND,
            HOUR,
        ),
        raw_retention: c.duration(
            &m.key("raw-retention"),
            &raw.metrics.raw_retention,
            HOUR,
            5 * MINUTE,
            6 * HOUR,
        ),
        minute_retention: c.duration(
            &m.key("minute-retention"),
            &raw.metrics.minute_retention,
            7 * DAY,
            DAY,
            30 * DAY,
        ),
        hour_retention: c.duration(
            &m.key("hour-retention"),
            &raw.metrics.hour_retention,
            90 * DAY,
            7 * DAY,
            400 * DAY,
        ),
        max_disk_mib: match raw.metrics.max_disk_mib {
            Some(v) if !(8..=65536).contains(&v) => {
                c.error(
                    &m.key("max-disk-mib"),
                    format!(
                        "`max-disk-mib` = {} is out of range; expected 8 to 65536",
                        c.written(&m.key("max-disk-mib"), v)
                    ),
                );
                256
            }
            Some(v) => v,
            None => 256,
        },
        scrapes: scrapes(&mut c, &m, &raw.metrics.scrape),
        kpis: kpis(&mut c, &m, &raw.metrics.kpi),
    };

    let r = root.key("reboot");
    let budget = check_budget(&mut c, &r.key("budget"), &raw.reboot.budget).unwrap_or(Budget {
        count: 2,
        window: DAY,
    });
    let boot_loop =
        check_budget(&mut c, &r.key("boot-loop"), &raw.reboot.boot_loop).unwrap_or(Budget {
            count: 3,
            window: 30 * MINUTE,
        });
    if let Some(cmd) = &raw.reboot.command {
        check_command(&mut c, &r.key("command"), cmd);
    }
    let reboot = Reboot {
        budget,
        min_uptime: c.duration(
            &r.key("min-uptime"),
            &raw.reboot.min_uptime,
            15 * MINUTE,
            Duration::ZERO,
            DAY,
        ),
        boot_loop,
        command: raw.reboot.command.clone(),
    };

    let al = root.key("alerts");
    let alerts = Alerts {
        default_escalation: raw.alerts.default_escalation.clone(),
        notify_resolved: raw.alerts.notify_resolved.unwrap_or(true),
        outbox_max: match raw.alerts.outbox_max {
            Some(v) if !(10..=1_000_000).contains(&v) => {
                c.error(
                    &al.key("outbox-max"),
                    format!(
                        "`outbox-max` = {} is out of range; expected 10 to 1000000",
                        c.written(&al.key("outbox-max"), v)
                    ),
                );
                10_000
            }
            Some(v) => v,
            None => 10_000,
        },
        outbox_max_age: c.duration(
            &al.key("outbox-max-age"),
            &raw.alerts.outbox_max_age,
            7 * DAY,
            HOUR,
            90 * DAY,
        ),
        group_wait: c.duration(
            &al.key("group-wait"),
            &raw.alerts.group_wait,
            Duration::from_secs(10),
            Duration::ZERO,
            10 * MINUTE,
        ),
        flap_count: c.count(
            &al.key("flap-count"),
            raw.alerts.flap_count.map(|v| v.min(u64::from(u32::MAX)) as u32),
            4,
            2,
            100,
        ) as usize,
        flap_window: c.duration(
            &al.key("flap-window"),
            &raw.alerts.flap_window,
            10 * MINUTE,
            MINUTE,
            DAY,
        ),
        keep_resolved: c.duration(
            &al.key("keep-resolved"),
            &raw.alerts.keep_resolved,
            DAY,
            HOUR,
            30 * DAY,
        ),
        release_grace: c.duration(
            &al.key("release-grace"),
            &raw.alerts.release_grace,
            MINUTE,
            Duration::ZERO,
            HOUR,
        ),
        time_zone: raw.alerts.time_zone.clone().filter(|tz| {
            match jiff::tz::TimeZone::get(tz) {
                Ok(_) => true,
                Err(_) => {
                    c.error(
                        &al.key("time-zone"),
                        format!(
                            "unknown time zone {}; expected an IANA name like \"Asia/Jakarta\" or \"UTC\"",
                            quoted(tz)
                        ),
                    );
                    false
                }
            }
        }),
        routes: Vec::new(),
    };

    let mut channels = BTreeMap::new();
    for (name, ch) in &raw.channels {
        let path = root.key("channels").key(name);
        if !c.name(&path, name) {
            continue;
        }
        if let Some(channel) = channel(&mut c, &path, name, ch) {
            channels.insert(name.clone(), channel);
        }
        if let Some(f) = &ch.fallback {
            let at = path.key("fallback");
            if f == name {
                c.error(
                    &at,
                    format!("channel {} cannot be its own fallback", quoted(name)),
                );
            } else if !raw.channels.contains_key(f) {
                let mut msg = format!("channel {} is not defined", quoted(f));
                if let Some(s) = did_you_mean(f, raw.channels.keys().map(String::as_str)) {
                    msg.push_str(&format!("; did you mean \"{s}\"?"));
                } else {
                    msg.push_str(&format!(
                        "; define it as [{}]",
                        KeyPath::root().key("channels").key(f)
                    ));
                }
                c.error(&at, msg);
            }
        }
    }

    let mut escalations = BTreeMap::new();
    for (name, esc) in &raw.escalation {
        let path = root.key("escalation").key(name);
        if !c.name(&path, name) {
            continue;
        }
        let mut levels = Vec::new();
        if esc.levels.is_empty() {
            c.missing(
                &path,
                "levels",
                ", like levels = [{ after = \"0s\", channels = [\"ops-webhook\"] }]",
            );
        }
        let mut last_after = Duration::ZERO;
        for (idx, level) in esc.levels.iter().enumerate() {
            let lp = path.key("levels").index(idx);
            let after = match &level.after {
                Some(_) => c.duration(
                    &lp.key("after"),
                    &level.after,
                    Duration::ZERO,
                    Duration::ZERO,
                    7 * DAY,
                ),
                None => {
                    c.missing(&lp, "after", "");
                    Duration::ZERO
                }
            };
            if after < last_after {
                c.error(
                    &lp.key("after"),
                    format!(
                        "level {} comes after {}, earlier than the level before it ({}); list levels in order",
                        idx + 1,
                        fmt_duration(after),
                        fmt_duration(last_after)
                    ),
                );
            }
            last_after = last_after.max(after);
            if level.channels.is_empty() {
                c.missing(&lp, "channels", "");
            }
            for (ci, ch) in level.channels.iter().enumerate() {
                if !raw.channels.contains_key(ch) {
                    let mut msg = format!("channel {} is not defined", quoted(ch));
                    if let Some(s) = did_you_mean(ch, raw.channels.keys().map(String::as_str)) {
                        msg.push_str(&format!("; did you mean \"{s}\"?"));
                    } else {
                        msg.push_str(&format!(
                            "; define it as [{}]",
                            KeyPath::root().key("channels").key(ch)
                        ));
                    }
                    c.error(&lp.key("channels").index(ci), msg);
                }
            }
            levels.push(EscalationLevel {
                after,
                channels: level.channels.clone(),
            });
        }
        let repeat = esc
            .repeat
            .as_ref()
            .map(|_| c.duration(&path.key("repeat"), &esc.repeat, HOUR, MINUTE, 7 * DAY));
        escalations.insert(
            name.clone(),
            Escalation {
                name: name.clone(),
                levels,
                repeat,
            },
        );
    }

    if let Some(e) = &alerts.default_escalation {
        check_escalation_ref(&mut c, &al.key("default-escalation"), e, &escalations);
    }
    let mut alerts = alerts;
    for (idx, r) in raw.alerts.route.iter().enumerate() {
        let rp = al.key("route").index(idx);
        let Some(escalation) = &r.escalation else {
            c.missing(&rp, "escalation", ", the chain these alerts climb");
            continue;
        };
        check_escalation_ref(&mut c, &rp.key("escalation"), escalation, &escalations);
        if let Some(during) = &r.during
            && let Err(why) = crate::alert::silence::Weekly::parse(during)
        {
            c.error(
                &rp.key("during"),
                format!("`during` {why}; expected e.g. \"mon-fri 18:00-08:00\""),
            );
            continue;
        }
        alerts.routes.push(AlertRoute {
            target: r.target.clone(),
            name: r.name.clone(),
            severity: c.checked(&rp.key("severity"), &r.severity),
            during: r.during.clone(),
            escalation: escalation.clone(),
        });
    }

    let mut rules = Vec::new();
    let mut rule_names = BTreeSet::new();
    for (idx, r) in raw.rule.iter().enumerate() {
        let path = root.key("rule").index(idx);
        let Some(name) = &r.name else {
            c.missing(&path, "name", "");
            continue;
        };
        if !c.name(&path.key("name"), name) {
            continue;
        }
        if !rule_names.insert(name.clone()) {
            c.error(
                &path.key("name"),
                format!("rule {} is defined twice", quoted(name)),
            );
        }
        let Some(series) = &r.series else {
            c.missing(
                &path,
                "series",
                ", like series = \"rvm_host_disk_used_ratio{mount=\\\"/\\\"}\"",
            );
            continue;
        };
        let condition = match (r.above, r.below, &r.predict) {
            (Some(a), None, None) => RuleCondition::Above(a),
            (None, Some(b), None) => RuleCondition::Below(b),
            (None, None, Some(p)) => {
                let pp = path.key("predict");
                let within = match &p.within {
                    Some(_) => c.duration(&pp.key("within"), &p.within, HOUR, MINUTE, 30 * DAY),
                    None => {
                        c.missing(&pp, "within", "");
                        HOUR
                    }
                };
                let over = c.duration(&pp.key("over"), &p.over, HOUR, 5 * MINUTE, 7 * DAY);
                match (p.above, p.below) {
                    (Some(a), None) => RuleCondition::PredictAbove {
                        within,
                        bound: a,
                        over,
                    },
                    (None, Some(b)) => RuleCondition::PredictBelow {
                        within,
                        bound: b,
                        over,
                    },
                    _ => {
                        c.error(&pp, "`predict` needs exactly one of `above` or `below`");
                        continue;
                    }
                }
            }
            _ => {
                c.error_at_key(
                    &path.key("name"),
                    format!(
                        "rule {} needs exactly one of `above`, `below` or `predict`",
                        quoted(name)
                    ),
                );
                continue;
            }
        };
        if let Some(e) = &r.escalation {
            check_escalation_ref(&mut c, &path.key("escalation"), e, &escalations);
        }
        if let Err(why) = crate::metrics::kpi::Selector::parse(series) {
            c.error(&path.key("series"), why);
        }
        let clear = match (&condition, r.clear) {
            (_, None) => None,
            (RuleCondition::Above(bound), Some(v)) if v > *bound => {
                c.error(
                    &path.key("clear"),
                    format!("`clear` = {v} is above the bound {bound}; a rule on `above` clears at or below it"),
                );
                None
            }
            (RuleCondition::Below(bound), Some(v)) if v < *bound => {
                c.error(
                    &path.key("clear"),
                    format!("`clear` = {v} is below the bound {bound}; a rule on `below` clears at or above it"),
                );
                None
            }
            (RuleCondition::Above(_) | RuleCondition::Below(_), Some(v)) => Some(v),
            (_, Some(_)) => {
                c.error(
                    &path.key("clear"),
                    "`clear` goes with `above` or `below`, not with `predict`",
                );
                None
            }
        };
        rules.push(Rule {
            clear,
            name: name.clone(),
            series: series.clone(),
            condition,
            hold_for: c.duration(
                &path.key("for"),
                &r.r#for,
                Duration::ZERO,
                Duration::ZERO,
                DAY,
            ),
            severity: c
                .checked(&path.key("severity"), &r.severity)
                .unwrap_or_default(),
            escalation: r
                .escalation
                .clone()
                .or_else(|| alerts.default_escalation.clone()),
        });
    }

    let dashboard = dashboard(&mut c, &raw.dashboard);

    Config {
        daemon,
        log,
        api,
        identity,
        platform,
        metrics,
        reboot,
        alerts,
        channels,
        escalations,
        rules,
        dashboard,
        targets: Vec::new(),
        disabled: Vec::new(),
    }
}

/// `[dashboard]`: tiles and charts by their names, each once; targets are
/// checked against the policies in [`dashboard_targets`].
fn dashboard(c: &mut Checker<'_>, raw: &RawDashboard) -> Dashboard {
    let d = KeyPath::root().key("dashboard");
    let mut pick = |key: &str, list: &Option<Vec<String>>, all: &'static [&'static str]| {
        let Some(list) = list else {
            return all.to_vec();
        };
        let mut chosen: Vec<&'static str> = Vec::new();
        for (i, name) in list.iter().enumerate() {
            let at = d.key(key).index(i);
            match all.iter().find(|a| **a == name) {
                Some(a) if chosen.contains(a) => {
                    c.warn(
                        &at,
                        format!(
                            "{} is listed twice; it is shown once, at its first place",
                            quoted(name)
                        ),
                    );
                }
                Some(a) => chosen.push(a),
                None => {
                    let mut msg = format!(
                        "no dashboard {} named {}",
                        &key[..key.len() - 1],
                        quoted(name)
                    );
                    match did_you_mean(name, all.iter().copied()) {
                        Some(s) => msg.push_str(&format!("; did you mean \"{s}\"?")),
                        None => msg.push_str(&format!("; expected one of {}", quote_list(all))),
                    }
                    c.error(&at, msg);
                }
            }
        }
        chosen
    };
    let tiles = pick("tiles", &raw.tiles, DASHBOARD_TILES);
    let charts = pick("charts", &raw.charts, DASHBOARD_CHARTS);
    Dashboard {
        tiles,
        charts,
        targets: raw.targets.clone(),
    }
}

/// `[dashboard] targets` against the targets the policies define: a name
/// no policy defines is shown nowhere, and said so.
pub fn dashboard_targets(
    src: &SourceFile,
    config: &Config,
    declared: &[Declared<'_>],
    out: &mut Vec<Diagnostic>,
) {
    let Some(list) = &config.dashboard.targets else {
        return;
    };
    for (i, name) in list.iter().enumerate() {
        if declared.iter().any(|d| &d.name == name) {
            continue;
        }
        let path = KeyPath::root().key("dashboard").key("targets").index(i);
        let mut msg = format!(
            "target {} is not defined, so the dashboard cannot list it",
            quoted(name)
        );
        if let Some(s) = did_you_mean(name, declared.iter().map(|d| d.name.as_str())) {
            msg.push_str(&format!("; did you mean {}?", quoted(s)));
        }
        out.push(src.at(&path, Anchor::Value, Level::Warning, msg));
    }
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "rvm".to_owned())
}

fn check_budget(
    c: &mut Checker<'_>,
    path: &KeyPath,
    budget: &Option<Checked<Budget>>,
) -> Option<Budget> {
    let b = c.checked(path, budget)?;
    if b.count == 0 || b.count > 100 {
        c.error(
            path,
            format!(
                "budget {}: count {} is out of range; expected 1 to 100",
                c.written(path, format!("\"{b}\"")),
                b.count
            ),
        );
        return None;
    }
    if b.window < MINUTE || b.window > 30 * DAY {
        c.error(
            path,
            format!(
                "budget {}: window is out of range; expected \"1m\" to \"30d\"",
                c.written(path, format!("\"{b}\""))
            ),
        );
        return None;
    }
    Some(b)
}

fn check_command(c: &mut Checker<'_>, path: &KeyPath, command: &[String]) {
    match command.first() {
        None => c.error(
            path,
            "command is empty; expected [\"/path/to/program\", \"arg\", ...]",
        ),
        Some(p) if !p.starts_with('/') => c.error(
            &path.index(0),
            format!(
                "program {} must be an absolute path (no shell, no PATH search)",
                quoted(p)
            ),
        ),
        Some(_) => {}
    }
}

fn check_escalation_ref(
    c: &mut Checker<'_>,
    path: &KeyPath,
    name: &str,
    escalations: &BTreeMap<String, Escalation>,
) {
    if !escalations.contains_key(name) {
        let mut msg = format!("escalation chain {} is not defined", quoted(name));
        match did_you_mean(name, escalations.keys().map(String::as_str)) {
            Some(s) => msg.push_str(&format!("; did you mean \"{s}\"?")),
            None if escalations.is_empty() => {
                msg.push_str("; no chains are defined in watchdog.toml")
            }
            None => msg.push_str(&format!(
                "; defined chains: {}",
                quote_list(&escalations.keys().map(String::as_str).collect::<Vec<_>>())
            )),
        }
        c.error(path, msg);
    }
}

fn channel(c: &mut Checker<'_>, path: &KeyPath, name: &str, ch: &RawChannel) -> Option<Channel> {
    let Some(kind) = &ch.kind else {
        c.missing(
            path,
            "kind",
            ": one of \"webhook\", \"email\", \"sms\", \"alertmanager\"",
        );
        return None;
    };
    let kind = c.choice(
        &path.key("kind"),
        kind,
        &["webhook", "email", "sms", "alertmanager"],
    )?;
    const COMMON: [&str; 4] = ["kind", "min-severity", "timeout", "fallback"];
    let specific: &[&str] = match kind {
        "webhook" => &["url", "secret-file"],
        "email" => &[
            "smtp",
            "tls",
            "ca-file",
            "username",
            "password-file",
            "from",
            "to",
        ],
        "sms" => &[
            "url",
            "username",
            "password-file",
            "from",
            "to",
            "style",
            "template",
            "content-type",
        ],
        _ => &["url", "resend-every", "external-url"],
    };
    let allowed: Vec<&str> = COMMON.iter().chain(specific).copied().collect();
    let article = if kind.starts_with(['a', 'e']) {
        "an"
    } else {
        "a"
    };
    c.inapplicable(
        path,
        fields_of::<RawChannel>(),
        &allowed,
        &format!("{article} {kind} channel"),
    );
    let url = |c: &mut Checker<'_>| match &ch.url {
        Some(u) => {
            c.url(&path.key("url"), u);
            Some(u.clone())
        }
        None => {
            c.missing(path, "url", "");
            None
        }
    };
    let secret = |c: &mut Checker<'_>, key: &str, v: &Option<String>| {
        v.as_deref().map(|f| c.secret_file(&path.key(key), f))
    };
    let kind = match kind {
        "webhook" => ChannelKind::Webhook {
            url: url(c)?,
            secret_file: secret(c, "secret-file", &ch.secret_file),
        },
        "alertmanager" => {
            let url = url(c)?;
            let external_url = ch.external_url.clone();
            if let Some(u) = &external_url {
                c.url(&path.key("external-url"), u);
            }
            ChannelKind::Alertmanager {
                url,
                resend_every: c.duration(
                    &path.key("resend-every"),
                    &ch.resend_every,
                    MINUTE,
                    10 * SECOND,
                    HOUR,
                ),
                external_url,
            }
        }
        "email" => {
            let smtp = match &ch.smtp {
                Some(s) => {
                    c.host_port(&path.key("smtp"), s);
                    s.clone()
                }
                None => {
                    c.missing(path, "smtp", ", like smtp = \"mail.example:587\"");
                    return None;
                }
            };
            let tls = match ch.tls.as_deref() {
                None => SmtpTls::StartTls,
                Some(t) => match c.choice(&path.key("tls"), t, &["starttls", "tls", "none"]) {
                    Some("tls") => SmtpTls::Tls,
                    Some("none") => SmtpTls::None,
                    _ => SmtpTls::StartTls,
                },
            };
            let Some(from) = ch.from.clone() else {
                c.missing(path, "from", ", the sender address");
                return None;
            };
            let to = recipients(c, path, &ch.to, |a| a.contains('@'), "an email address")?;
            ChannelKind::Email {
                smtp,
                tls,
                username: ch.username.clone(),
                password_file: secret(c, "password-file", &ch.password_file),
                from,
                to,
                ca_file: ch.ca_file.as_deref().map(|f| {
                    let key = path.key("ca-file");
                    if tls == SmtpTls::None {
                        c.error_at_key(
                            &key,
                            "`ca-file` has no use with tls = \"none\"; use \"starttls\" or \"tls\"",
                        );
                    }
                    let file = c.abs_path(&key, f);
                    match std::fs::read_to_string(&file) {
                        Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
                        Ok(_) => c.error(
                            &key,
                            format!(
                                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                                file.display()
                            ),
                        ),
                        Err(e) => c.error(&key, format!("cannot read {}: {e}", file.display())),
                    }
                    file
                }),
            }
        }
        _ => {
            let url = url(c)?;
            let to = recipients(
                c,
                path,
                &ch.to,
                |n| n.starts_with('+') && n.len() > 4 && n[1..].chars().all(|d| d.is_ascii_digit()),
                "a phone number in E.164 form, like \"+6281234567890\"",
            )?;
            let style = sms_style(c, path, ch);
            ChannelKind::Sms {
                url,
                username: ch.username.clone(),
                password_file: secret(c, "password-file", &ch.password_file),
                from: ch.from.clone(),
                to,
                style,
            }
        }
    };
    Some(Channel {
        name: name.to_owned(),
        kind,
        min_severity: c
            .checked(&path.key("min-severity"), &ch.min_severity)
            .unwrap_or(Severity::Info),
        timeout: c.duration(
            &path.key("timeout"),
            &ch.timeout,
            10 * SECOND,
            SECOND,
            5 * MINUTE,
        ),
        fallback: ch.fallback.clone(),
    })
}

/// An SMS channel's `style`, `template` and `content-type`: a template
/// only with style `template`, naming only placeholders that have a value.
fn sms_style(c: &mut Checker<'_>, path: &KeyPath, ch: &RawChannel) -> SmsStyle {
    let style = match ch.style.as_deref() {
        None => "twilio",
        Some(s) => c
            .choice(&path.key("style"), s, &["twilio", "template"])
            .unwrap_or("twilio"),
    };
    if style == "twilio" {
        for (key, v) in [
            ("template", &ch.template),
            ("content-type", &ch.content_type),
        ] {
            if v.is_some() {
                c.error_at_key(
                    &path.key(key),
                    format!(
                        "`{key}` applies only with style = \"template\"; a \"twilio\" channel sends a form with To, From and Body"
                    ),
                );
            }
        }
        return SmsStyle::Twilio;
    }
    let Some(body) = ch.template.clone() else {
        c.missing(
            path,
            "template",
            ", the request body, like template = '{\"number\": \"{to}\", \"text\": \"{message}\"}'",
        );
        return SmsStyle::Twilio;
    };
    for p in crate::delivery::sms::placeholders(&body) {
        let unset = match p.as_str() {
            "username" => ch.username.is_none().then_some("username"),
            "password" => ch.password_file.is_none().then_some("password-file"),
            "from" => ch.from.is_none().then_some("from"),
            _ => None,
        };
        if !crate::delivery::sms::PLACEHOLDERS.contains(&p.as_str()) {
            let mut msg = format!(
                "unknown placeholder {} in `template`",
                quoted(&format!("{{{p}}}"))
            );
            match did_you_mean(&p, crate::delivery::sms::PLACEHOLDERS.iter().copied()) {
                Some(s) => msg.push_str(&format!("; did you mean \"{{{s}}}\"?")),
                None => msg.push_str(
                    "; a template may use {to}, {from}, {message}, {username}, {password}",
                ),
            }
            c.error(&path.key("template"), msg);
        } else if let Some(key) = unset {
            c.error(
                &path.key("template"),
                format!("`template` uses {{{p}}} but the channel has no `{key}`"),
            );
        }
    }
    if !body.contains("{message}") {
        c.error(
            &path.key("template"),
            "`template` has no {message}: the gateway would get no text",
        );
    }
    let content_type = ch
        .content_type
        .clone()
        .unwrap_or_else(|| "application/json".to_owned());
    SmsStyle::Template { body, content_type }
}

fn recipients(
    c: &mut Checker<'_>,
    path: &KeyPath,
    to: &Option<Vec<String>>,
    valid: impl Fn(&str) -> bool,
    what: &str,
) -> Option<Vec<String>> {
    let Some(to) = to else {
        c.missing(path, "to", ", the recipients");
        return None;
    };
    if to.is_empty() {
        c.error(
            &path.key("to"),
            "`to` is empty; list at least one recipient",
        );
    }
    for (i, r) in to.iter().enumerate() {
        if !valid(r) {
            c.error(
                &path.key("to").index(i),
                format!("recipient {} is not {what}", quoted(r)),
            );
        }
    }
    Some(to.clone())
}

/// `[[metrics.scrape]]`: each a named endpoint, names unique.
fn scrapes(c: &mut Checker<'_>, m: &KeyPath, raw: &[RawScrape]) -> Vec<Scrape> {
    let mut out: Vec<Scrape> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let path = m.key("scrape").index(i);
        let name = match &s.name {
            Some(n) => {
                if let Err(why) = check_name(n) {
                    c.error(&path.key("name"), why);
                }
                if out.iter().any(|o| &o.name == n) {
                    c.error(
                        &path.key("name"),
                        format!("scrape \"{n}\" is named twice; give each a distinct `name`"),
                    );
                }
                n.clone()
            }
            None => {
                c.missing(&path, "name", ", the `source` label of what it scrapes");
                continue;
            }
        };
        let Some(url) = &s.url else {
            c.missing(
                &path,
                "url",
                ", like url = \"http://127.0.0.1:8000/metrics\"",
            );
            continue;
        };
        c.url(&path.key("url"), url);
        let interval = c.duration(
            &path.key("interval"),
            &s.interval,
            10 * SECOND,
            SECOND,
            HOUR,
        );
        let timeout = c.duration(
            &path.key("timeout"),
            &s.timeout,
            (5 * SECOND).min(interval),
            Duration::from_millis(100),
            MINUTE,
        );
        if timeout > interval {
            c.error(
                &path.key("timeout"),
                "`timeout` is longer than `interval`; a scrape would still run when the next is due",
            );
        }
        out.push(Scrape {
            name,
            url: url.clone(),
            interval,
            timeout,
        });
    }
    out
}

/// `[[metrics.kpi]]`: each a formula over selectors, names unique and not
/// the watchdog's own.
fn kpis(c: &mut Checker<'_>, m: &KeyPath, raw: &[RawKpi]) -> Vec<Kpi> {
    use crate::metrics::kpi::{Formula, Selector};
    let mut out: Vec<Kpi> = Vec::new();
    for (i, k) in raw.iter().enumerate() {
        let path = m.key("kpi").index(i);
        let Some(name) = &k.name else {
            c.missing(
                &path,
                "name",
                ", the series it becomes, like name = \"rvm_kpi_deposits_per_hour\"",
            );
            continue;
        };
        let name_ok = Selector::parse(name).is_ok_and(|s| s.labels.is_empty() && &s.name == name);
        if !name_ok {
            c.error(
                &path.key("name"),
                format!(
                    "{} is not a metric name (letters, digits and '_', not starting with a digit)",
                    quoted(name)
                ),
            );
        } else if let Some(p) = crate::metrics::ingest::RESERVED
            .iter()
            .find(|p| name.starts_with(*p))
        {
            c.error(&path.key("name"), format!("names starting with {p} are the watchdog's own; use rvm_kpi_ or the service's prefix"));
        }
        if out.iter().any(|o| &o.name == name) {
            c.error(
                &path.key("name"),
                format!("KPI {} is defined twice", quoted(name)),
            );
        }
        let selector = |c: &mut Checker<'_>, key: &str| -> Option<Selector> {
            let text = match key {
                "of" => &k.of,
                "numerator" => &k.numerator,
                _ => &k.denominator,
            };
            let Some(text) = text else {
                c.missing(
                    &path,
                    key,
                    ", a series like \"rvm_detections_total{result=\\\"ok\\\"}\"",
                );
                return None;
            };
            match Selector::parse(text) {
                Ok(s) => Some(s),
                Err(why) => {
                    c.error(&path.key(key), why);
                    None
                }
            }
        };
        let Some(kind) = &k.kind else {
            c.missing(
                &path,
                "kind",
                ": \"rate\", \"ratio\", \"mean\" or \"quantile\"",
            );
            continue;
        };
        let formula = match c.choice(
            &path.key("kind"),
            kind,
            &["rate", "ratio", "mean", "quantile"],
        ) {
            Some("rate") => selector(c, "of").map(|of| Formula::Rate {
                of,
                per_seconds: c
                    .duration(&path.key("per"), &k.per, SECOND, SECOND, DAY)
                    .as_secs_f64(),
            }),
            Some("ratio") => match (selector(c, "numerator"), selector(c, "denominator")) {
                (Some(numerator), Some(denominator)) => Some(Formula::Ratio {
                    numerator,
                    denominator,
                }),
                _ => None,
            },
            Some("mean") => selector(c, "of").map(|of| Formula::Mean { of }),
            Some(_) => {
                let q = match k.q {
                    Some(q) if (0.0..=1.0).contains(&q) => q,
                    Some(q) => {
                        c.error(
                            &path.key("q"),
                            format!("`q` = {q} is out of range; expected 0 to 1, like 0.95"),
                        );
                        0.5
                    }
                    None => {
                        c.missing(&path, "q", ", the quantile, like q = 0.95");
                        0.5
                    }
                };
                selector(c, "of").map(|of| Formula::Quantile { of, q })
            }
            None => None,
        };
        let keys: &[&str] = match kind.as_str() {
            "rate" => &["of", "per"],
            "ratio" => &["numerator", "denominator"],
            "mean" => &["of"],
            "quantile" => &["of", "q"],
            _ => &["of", "numerator", "denominator", "q", "per"],
        };
        c.inapplicable(
            &path,
            &["of", "numerator", "denominator", "q", "per"],
            keys,
            &format!("a {kind} KPI"),
        );
        let window = c.duration(&path.key("window"), &k.window, HOUR, MINUTE, 7 * DAY);
        if let Some(formula) = formula {
            out.push(Kpi {
                name: name.clone(),
                help: k.help.clone().unwrap_or_else(|| format!("KPI {name}.")),
                formula,
                window,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------
// policies
// ---------------------------------------------------------------------------

/// Probe kinds and the keys each accepts beyond the common ones.
const PROBE_KINDS: [(&str, &[&str]); 13] = [
    (
        "http",
        &[
            "url",
            "method",
            "expect-status",
            "body-contains",
            "json-pointer",
            "json-equals",
            "follow-redirects",
        ],
    ),
    ("tcp", &["address"]),
    ("exec", &["command"]),
    ("file-age", &["file", "max-age"]),
    ("unit", &["unit"]),
    ("disk", &["mount", "warn-above", "fail-above"]),
    ("memory", &["warn-above", "fail-above"]),
    ("temperature", &["zone", "warn-above", "fail-above"]),
    ("gpu", &["warn-above", "fail-above"]),
    (
        "camera",
        &[
            "device",
            "frame-heartbeat",
            "max-frame-age",
            "identical-frames",
            "kernel-errors",
        ],
    ),
    (
        "network",
        &["interface", "default-route", "resolve", "address", "url"],
    ),
    ("myrvm", &["path", "follow-redirects"]),
    ("process", &["stuck-for"]),
];
const PROBE_COMMON: [&str; 7] = [
    "name",
    "kind",
    "role",
    "interval",
    "timeout",
    "fail-after",
    "pass-after",
];

const ACTIONS: [(&str, &[&str]); 5] = [
    ("restart", &[]),
    ("restart-units", &["units"]),
    ("hook", &["hook", "args", "timeout"]),
    ("kill", &["signal"]),
    ("reboot", &["budget"]),
];
const STEP_COMMON: [&str; 5] = ["action", "attempts", "backoff", "healthy-for", "cooldown"];

/// Placeholders a hook's `args` may use.
pub const HOOK_PLACEHOLDERS: [&str; 5] = ["target", "unit", "device", "usb-port", "incident"];

/// Validates one policy file. `None` when it has no usable target, or the
/// target is disabled (`enabled = false`, reported as `Ok(None)`).
pub fn policy(
    src: &SourceFile,
    raw: RawPolicy,
    config: &Config,
    out: &mut Vec<Diagnostic>,
) -> Option<Target> {
    let mut c = Checker::new(src, out);
    let root = KeyPath::root();
    let tp = root.key("target");
    let Some(t) = &raw.target else {
        c.missing(
            &root,
            "[target]",
            ": every policy file describes one target",
        );
        return None;
    };
    let name = match &t.name {
        Some(n) => {
            c.name(&tp.key("name"), n);
            n.clone()
        }
        None => {
            c.missing(&tp, "name", "");
            return None;
        }
    };

    let kind = target_kind(&mut c, &tp, t);

    for (i, dep) in t.depends_on.iter().enumerate() {
        if dep == &name {
            c.error(
                &tp.key("depends-on").index(i),
                format!("target {} depends on itself", quoted(&name)),
            );
        }
    }

    let observe = t.observe.unwrap_or(config.daemon.observe);
    let startup_grace = c.duration(
        &tp.key("startup-grace"),
        &t.startup_grace,
        Duration::ZERO,
        Duration::ZERO,
        HOUR,
    );
    let reset_after = c.duration(
        &tp.key("reset-after"),
        &t.reset_after,
        10 * MINUTE,
        10 * SECOND,
        7 * DAY,
    );

    let mut probes: Vec<Probe> = Vec::new();
    let mut probe_names: HashMap<String, usize> = HashMap::new();
    for (i, rp) in raw.probe.iter().enumerate() {
        let path = root.key("probe").index(i);
        if let Some(p) = probe(&mut c, &path, rp, &kind, config) {
            if let Some(first) = probe_names.get(&p.name) {
                c.error(
                    &path.key(if rp.name.is_some() { "name" } else { "kind" }),
                    format!(
                        "probe {} is defined twice in this target (first as probe {}); give each a distinct `name`",
                        quoted(&p.name),
                        first + 1
                    ),
                );
            } else {
                probe_names.insert(p.name.clone(), probes.len());
            }
            probes.push(p);
        }
    }

    let mut ladder = Vec::new();
    for (i, rs) in raw.recovery.iter().enumerate() {
        let path = root.key("recovery").index(i);
        if let Some(s) = step(&mut c, &path, rs, &kind, &probes, config) {
            ladder.push(s);
        }
    }

    let ap = root.key("alert");
    if let Some(e) = &raw.alert.escalation {
        check_escalation_ref(&mut c, &ap.key("escalation"), e, &config.escalations);
    }
    let alert = AlertPolicy {
        severity: c
            .checked(&ap.key("severity"), &raw.alert.severity)
            .unwrap_or_default(),
        escalation: raw
            .alert
            .escalation
            .clone()
            .or_else(|| config.alerts.default_escalation.clone()),
        delay: c.duration(
            &ap.key("delay"),
            &raw.alert.delay,
            Duration::ZERO,
            Duration::ZERO,
            DAY,
        ),
        notify_resolved: raw
            .alert
            .notify_resolved
            .unwrap_or(config.alerts.notify_resolved),
    };

    if t.enabled == Some(false) {
        return None;
    }
    Some(Target {
        name,
        description: t.description.clone(),
        kind: kind?,
        depends_on: t.depends_on.clone(),
        startup_grace,
        reset_after,
        observe,
        probes,
        ladder,
        alert,
        source: src.path().to_owned(),
    })
}

fn target_kind(c: &mut Checker<'_>, tp: &KeyPath, t: &RawTarget) -> Option<TargetKind> {
    let given: Vec<&str> = [
        t.unit.as_ref().map(|_| "unit"),
        t.process.as_ref().map(|_| "process"),
        t.adopt.as_ref().map(|_| "adopt"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        c.error_at_key(
            &tp.key(given[1]),
            format!(
                "a target is one thing: `{}` and `{}` cannot both be set",
                given[0], given[1]
            ),
        );
        return None;
    }
    if let Some(unit) = &t.unit {
        return c
            .unit_name(&tp.key("unit"), unit)
            .then(|| TargetKind::Unit { unit: unit.clone() });
    }
    if let Some(p) = &t.process {
        let pp = tp.key("process");
        if p.command.is_empty() {
            c.missing(
                &pp,
                "command",
                ", like command = [\"/usr/bin/helper\", \"--port\", \"8001\"]",
            );
            return None;
        }
        check_command(c, &pp.key("command"), &p.command);
        for key in p.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                c.error_at_key(
                    &pp.key("env").key(key),
                    format!("invalid environment variable name {}", quoted(key)),
                );
            }
        }
        return Some(TargetKind::Process(ProcessSpec {
            command: p.command.clone(),
            env: p.env.clone(),
            working_dir: p
                .working_dir
                .as_deref()
                .map(|w| c.abs_path(&pp.key("working-dir"), w))
                .unwrap_or_else(|| PathBuf::from("/")),
            user: p.user.clone(),
            group: p.group.clone(),
            stop_signal: c.signal(
                &pp.key("stop-signal"),
                p.stop_signal.as_deref(),
                Signal::SIGTERM,
            ),
            stop_timeout: c.duration(
                &pp.key("stop-timeout"),
                &p.stop_timeout,
                10 * SECOND,
                Duration::ZERO,
                10 * MINUTE,
            ),
        }));
    }
    if let Some(a) = &t.adopt {
        let ap = tp.key("adopt");
        let by = match (&a.pidfile, &a.r#match) {
            (Some(p), None) => AdoptBy::Pidfile(c.abs_path(&ap.key("pidfile"), p)),
            (None, Some(m)) if !m.is_empty() => AdoptBy::Match(m.clone()),
            (None, Some(_)) => {
                c.error(&ap.key("match"), "`match` is empty");
                return None;
            }
            (Some(_), Some(_)) => {
                c.error_at_key(
                    &ap.key("match"),
                    "set one of `pidfile` or `match`, not both",
                );
                return None;
            }
            (None, None) => {
                c.missing(&ap, "pidfile` or `match", "");
                return None;
            }
        };
        return Some(TargetKind::Adopted(AdoptSpec {
            by,
            may_signal: a.may_signal.unwrap_or(false),
        }));
    }
    Some(TargetKind::Probed)
}

fn thresholds(
    c: &mut Checker<'_>,
    path: &KeyPath,
    p: &RawProbe,
    max: f64,
    default: (Option<f64>, Option<f64>),
) -> Thresholds {
    let warn = p
        .warn_above
        .map(|v| c.number(&path.key("warn-above"), Some(v), v, 0.0, max));
    let fail = p
        .fail_above
        .map(|v| c.number(&path.key("fail-above"), Some(v), v, 0.0, max));
    let (warn, fail) = if warn.is_none() && fail.is_none() {
        default
    } else {
        (warn, fail)
    };
    if let (Some(w), Some(f)) = (warn, fail)
        && w >= f
    {
        c.error(
            &path.key("warn-above"),
            format!("`warn-above` = {w} must be below `fail-above` = {f}"),
        );
    }
    Thresholds {
        warn_above: warn,
        fail_above: fail,
    }
}

fn probe(
    c: &mut Checker<'_>,
    path: &KeyPath,
    p: &RawProbe,
    target: &Option<TargetKind>,
    config: &Config,
) -> Option<Probe> {
    let Some(kind) = &p.kind else {
        c.missing(
            path,
            "kind",
            &format!(": one of {}", quote_list(&PROBE_KINDS.map(|(k, _)| k))),
        );
        return None;
    };
    let kinds = PROBE_KINDS.map(|(k, _)| k);
    let kind = c.choice(&path.key("kind"), kind, &kinds)?;
    let specific = PROBE_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| *s)
        .unwrap_or(&[]);
    let allowed: Vec<&str> = PROBE_COMMON.iter().chain(specific).copied().collect();
    c.inapplicable(
        path,
        fields_of::<RawProbe>(),
        &allowed,
        &format!("a {kind} probe"),
    );

    let name = p.name.clone().unwrap_or_else(|| kind.to_owned());
    if p.name.is_some() {
        c.name(&path.key("name"), &name);
    }
    let role = match p.role.as_deref() {
        None => ProbeRole::Liveness,
        Some(r) => match c.choice(&path.key("role"), r, &["liveness", "dependency"]) {
            Some("dependency") => ProbeRole::Dependency,
            _ => ProbeRole::Liveness,
        },
    };
    let interval = c.duration(
        &path.key("interval"),
        &p.interval,
        10 * SECOND,
        Duration::from_millis(100),
        DAY,
    );
    let timeout = c.duration(
        &path.key("timeout"),
        &p.timeout,
        (5 * SECOND).min(interval),
        Duration::from_millis(10),
        HOUR,
    );
    if timeout > interval {
        c.error(
            &path.key("timeout"),
            format!(
                "`timeout` = {} is longer than `interval` = {}; a check would still run when the next is due",
                c.written(&path.key("timeout"), fmt_duration(timeout)),
                c.written(&path.key("interval"), fmt_duration(interval))
            ),
        );
    }
    let fail_after = c.count(&path.key("fail-after"), p.fail_after, 3, 1, 100);
    let pass_after = c.count(&path.key("pass-after"), p.pass_after, 2, 1, 100);

    let redirects = match &p.follow_redirects {
        Some(v) => match c.choice(&path.key("follow-redirects"), v, &["none", "same-origin"]) {
            Some("same-origin") => Redirects::SameOrigin,
            _ => Redirects::None,
        },
        None => Redirects::None,
    };
    let need = |c: &mut Checker<'_>, key: &str, v: &Option<String>, hint: &str| -> Option<String> {
        if v.is_none() {
            c.missing(path, key, hint);
        }
        v.clone()
    };
    let check = match kind {
        "http" => {
            let url = need(c, "url", &p.url, "")?;
            c.url(&path.key("url"), &url);
            let method = p.method.clone().unwrap_or_else(|| "GET".into());
            c.choice(&path.key("method"), &method, &["GET", "HEAD"]);
            for (i, s) in p.expect_status.iter().flatten().enumerate() {
                if !(100..=599).contains(s) {
                    c.error(
                        &path.key("expect-status").index(i),
                        format!(
                            "HTTP status {} is out of range; expected 100 to 599",
                            c.written(&path.key("expect-status").index(i), s)
                        ),
                    );
                }
            }
            let json = match (&p.json_pointer, &p.json_equals) {
                (Some(ptr), Some(v)) => {
                    if !ptr.is_empty() && !ptr.starts_with('/') {
                        c.error(
                            &path.key("json-pointer"),
                            format!(
                                "JSON pointer {} must start with '/', like \"/status\"",
                                quoted(ptr)
                            ),
                        );
                    }
                    Some((ptr.clone(), v.clone()))
                }
                (None, None) => None,
                (Some(_), None) => {
                    c.missing(path, "json-equals", ", the value `json-pointer` must have");
                    None
                }
                (None, Some(_)) => {
                    c.missing(path, "json-pointer", ", where `json-equals` looks");
                    None
                }
            };
            Check::Http {
                url,
                method,
                expect_status: p.expect_status.clone().unwrap_or_default(),
                body_contains: p.body_contains.clone(),
                json,
                redirects,
            }
        }
        "tcp" => {
            let address = need(
                c,
                "address",
                &p.address,
                ", like address = \"127.0.0.1:8001\"",
            )?;
            c.host_port(&path.key("address"), &address);
            Check::Tcp { address }
        }
        "exec" => {
            let Some(command) = &p.command else {
                c.missing(
                    path,
                    "command",
                    ", like command = [\"/usr/lib/nagios/plugins/check_load\", \"-w\", \"5\"]",
                );
                return None;
            };
            check_command(c, &path.key("command"), command);
            Check::Exec {
                command: command.clone(),
            }
        }
        "file-age" => {
            let file = need(c, "file", &p.file, "")?;
            if p.max_age.is_none() {
                c.missing(path, "max-age", ", like max-age = \"1m\"");
                return None;
            };
            Check::FileAge {
                file: c.abs_path(&path.key("file"), &file),
                max_age: c.duration(&path.key("max-age"), &p.max_age, MINUTE, SECOND, 30 * DAY),
            }
        }
        "unit" => {
            let unit = match (&p.unit, target) {
                (Some(u), _) => {
                    c.unit_name(&path.key("unit"), u);
                    u.clone()
                }
                (None, Some(TargetKind::Unit { unit })) => unit.clone(),
                (None, _) => {
                    c.missing(path, "unit", " (the target is not a unit)");
                    return None;
                }
            };
            Check::Unit { unit }
        }
        "disk" => Check::Disk {
            mount: p
                .mount
                .as_deref()
                .map(|m| c.abs_path(&path.key("mount"), m))
                .unwrap_or_else(|| PathBuf::from("/")),
            thresholds: thresholds(c, path, p, 100.0, (Some(85.0), Some(95.0))),
        },
        "memory" => Check::Memory {
            thresholds: thresholds(c, path, p, 100.0, (Some(90.0), Some(97.0))),
        },
        "temperature" => Check::Temperature {
            zone: p.zone.clone(),
            thresholds: thresholds(c, path, p, 150.0, (Some(85.0), Some(95.0))),
        },
        "gpu" => Check::Gpu {
            thresholds: thresholds(c, path, p, 150.0, (Some(85.0), Some(95.0))),
        },
        "camera" => {
            let device = need(
                c,
                "device",
                &p.device,
                ", like device = \"/dev/v4l/by-id/usb-...-video-index0\"",
            )?;
            if device
                .strip_prefix("/dev/video")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                c.warn(
                    &path.key("device"),
                    format!("device {} renumbers when the camera re-enumerates; use its name under /dev/v4l/by-id/ or /dev/v4l/by-path/", quoted(&device)),
                );
            }
            if Path::new(&device)
                .parent()
                .is_some_and(|d| d.to_string_lossy().contains('*'))
            {
                c.error(
                    &path.key("device"),
                    format!("device {}: only the file name may hold `*` (the directory is read as written)", quoted(&device)),
                );
            }
            Check::Camera {
                device: c.abs_path(&path.key("device"), &device),
                frame_heartbeat: p
                    .frame_heartbeat
                    .as_deref()
                    .map(|f| c.abs_path(&path.key("frame-heartbeat"), f)),
                max_frame_age: c.duration(
                    &path.key("max-frame-age"),
                    &p.max_frame_age,
                    10 * SECOND,
                    Duration::from_millis(100),
                    HOUR,
                ),
                identical_frames: c.count(
                    &path.key("identical-frames"),
                    p.identical_frames,
                    5,
                    2,
                    10_000,
                ),
                kernel_errors: p.kernel_errors.unwrap_or(true),
            }
        }
        "network" => {
            if let Some(a) = &p.address {
                c.host_port(&path.key("address"), a);
            }
            if let Some(u) = &p.url {
                c.url(&path.key("url"), u);
            }
            Check::Network {
                interface: p.interface.clone(),
                default_route: p.default_route.unwrap_or(true),
                resolve: p.resolve.clone(),
                address: p.address.clone(),
                url: p.url.clone(),
            }
        }
        "myrvm" => {
            let rp = need(
                c,
                "path",
                &p.path,
                ", a read-only endpoint under [platform] base-url",
            )?;
            if !rp.starts_with('/') {
                c.error(
                    &path.key("path"),
                    format!("path {} must start with '/'", quoted(&rp)),
                );
            }
            let lower = rp.to_ascii_lowercase();
            if ["heartbeat", "handshake", "deposit", "sync-offline"]
                .iter()
                .any(|w| lower.contains(w))
            {
                c.error(
                    &path.key("path"),
                    format!("path {} is an edge endpoint that changes state on the platform (calling it would consume the edge client's commands); use a read-only endpoint", quoted(&rp)),
                );
            }
            if config.platform.is_none() {
                c.error_at_key(
                    &path.key("kind"),
                    "a myrvm probe needs [platform] base-url in watchdog.toml",
                );
            }
            Check::Myrvm {
                path: rp,
                redirects,
            }
        }
        _ => {
            if !matches!(
                target,
                Some(TargetKind::Process(_) | TargetKind::Adopted(_))
            ) {
                c.error(
                    &path.key("kind"),
                    "a process probe needs a process target ([target.process] or [target.adopt])",
                );
            }
            Check::Process {
                stuck_for: c.duration(
                    &path.key("stuck-for"),
                    &p.stuck_for,
                    30 * SECOND,
                    SECOND,
                    HOUR,
                ),
            }
        }
    };
    Some(Probe {
        name,
        role,
        interval,
        timeout,
        fail_after,
        pass_after,
        check,
    })
}

fn step(
    c: &mut Checker<'_>,
    path: &KeyPath,
    s: &RawStep,
    target: &Option<TargetKind>,
    probes: &[Probe],
    config: &Config,
) -> Option<Step> {
    let names = ACTIONS.map(|(a, _)| a);
    let Some(action) = &s.action else {
        c.missing(path, "action", &format!(": one of {}", quote_list(&names)));
        return None;
    };
    let action = c.choice(&path.key("action"), action, &names)?;
    let specific = ACTIONS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, k)| *k)
        .unwrap_or(&[]);
    let allowed: Vec<&str> = STEP_COMMON.iter().chain(specific).copied().collect();
    c.inapplicable(
        path,
        fields_of::<RawStep>(),
        &allowed,
        &format!("a {action} step"),
    );

    let action = match action {
        "restart" => {
            if matches!(target, Some(TargetKind::Probed)) {
                c.error(
                    &path.key("action"),
                    "`restart` needs a target with a `unit` or a `[target.process]`",
                );
            }
            if let Some(TargetKind::Adopted(_)) = target {
                c.error(
                    &path.key("action"),
                    "the watchdog did not start an adopted process and cannot restart it; use `kill` (with `may-signal = true`) so that its owner restarts it, or `restart-units` for the unit that owns it",
                );
            }
            Action::Restart
        }
        "restart-units" => {
            let Some(units) = &s.units else {
                c.missing(path, "units", ", like units = [\"nvargus-daemon.service\"]");
                return None;
            };
            if units.is_empty() {
                c.error(&path.key("units"), "`units` is empty");
            }
            for (i, u) in units.iter().enumerate() {
                c.unit_name(&path.key("units").index(i), u);
            }
            Action::RestartUnits(units.clone())
        }
        "hook" => {
            let Some(name) = &s.hook else {
                c.missing(path, "hook", ", the file name of a hook");
                return None;
            };
            // No file name is that long; the search would only echo it back.
            const NAME_MAX: usize = 255;
            let found = if name.len() > NAME_MAX {
                c.error(
                    &path.key("hook"),
                    format!(
                        "hook {} is not a file name: longer than {NAME_MAX} bytes",
                        quoted(name)
                    ),
                );
                Ok(PathBuf::from(name))
            } else {
                crate::hook::resolve(name, &config.daemon.hooks_dirs)
            };
            let hook_path = match found {
                Ok(p) => p,
                Err(e) => {
                    c.error(&path.key("hook"), e.to_string());
                    PathBuf::from(name)
                }
            };
            let args = s.args.clone().unwrap_or_default();
            for (i, a) in args.iter().enumerate() {
                check_placeholders(c, &path.key("args").index(i), a, target, probes);
            }
            Action::Hook {
                name: name.clone(),
                path: hook_path,
                args,
                timeout: c.duration(&path.key("timeout"), &s.timeout, 30 * SECOND, SECOND, HOUR),
            }
        }
        "kill" => {
            if matches!(target, Some(TargetKind::Probed)) {
                c.error(
                    &path.key("action"),
                    "`kill` needs a target with a process or unit",
                );
            }
            if let Some(TargetKind::Adopted(a)) = target
                && !a.may_signal
            {
                c.error(
                    &path.key("action"),
                    "`kill` of an adopted process needs `may-signal = true` in [target.adopt]",
                );
            }
            Action::Kill(c.signal(&path.key("signal"), s.signal.as_deref(), Signal::SIGKILL))
        }
        _ => {
            let budget = check_budget(c, &path.key("budget"), &s.budget);
            Action::Reboot { budget }
        }
    };
    let default_attempts = if matches!(action, Action::Reboot { .. }) {
        1
    } else {
        3
    };
    let attempts = c.count(&path.key("attempts"), s.attempts, default_attempts, 1, 100);
    let bp = path.key("backoff");
    let b = s.backoff.clone().unwrap_or_default();
    let initial = c.duration(&bp.key("initial"), &b.initial, SECOND, Duration::ZERO, HOUR);
    let max = c.duration(
        &bp.key("max"),
        &b.max,
        (5 * MINUTE).max(initial),
        Duration::ZERO,
        DAY,
    );
    if max < initial {
        c.error(
            &bp.key("max"),
            format!(
                "backoff `max` = {} is below `initial` = {}",
                c.written(&bp.key("max"), fmt_duration(max)),
                c.written(&bp.key("initial"), fmt_duration(initial))
            ),
        );
    }
    let backoff = Backoff {
        initial,
        factor: c.number(&bp.key("factor"), b.factor, 2.0, 1.0, 10.0),
        max,
        jitter: c.number(&bp.key("jitter"), b.jitter, 0.1, 0.0, 1.0),
    };
    Some(Step {
        action,
        attempts,
        backoff,
        healthy_for: c.duration(
            &path.key("healthy-for"),
            &s.healthy_for,
            30 * SECOND,
            Duration::ZERO,
            DAY,
        ),
        cooldown: c.duration(
            &path.key("cooldown"),
            &s.cooldown,
            Duration::ZERO,
            Duration::ZERO,
            DAY,
        ),
    })
}

fn check_placeholders(
    c: &mut Checker<'_>,
    path: &KeyPath,
    arg: &str,
    target: &Option<TargetKind>,
    probes: &[Probe],
) {
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            c.error(
                path,
                format!("argument {} has an unclosed '{{'", quoted(arg)),
            );
            return;
        };
        let name = &rest[open + 1..open + close];
        if !HOOK_PLACEHOLDERS.contains(&name) {
            c.error(
                path,
                format!(
                    "unknown placeholder {{{}}} in {}; expected one of {}",
                    plain(name),
                    quoted(arg),
                    HOOK_PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ),
            );
        } else if name == "unit" && !matches!(target, Some(TargetKind::Unit { .. })) {
            c.error(
                path,
                format!("{{unit}} in {} needs a target with a `unit`", quoted(arg)),
            );
        } else if name == "device" || name == "usb-port" {
            let cameras = probes
                .iter()
                .filter(|p| matches!(p.check, Check::Camera { .. }))
                .count();
            if cameras == 0 {
                c.error(
                    path,
                    format!(
                        "{{{name}}} in {} needs a camera probe in this target",
                        quoted(arg)
                    ),
                );
            } else if cameras > 1 {
                c.error(
                    path,
                    format!(
                        "{{{name}}} in {} is ambiguous: this target has {cameras} camera probes",
                        quoted(arg)
                    ),
                );
            }
        }
        rest = &rest[open + close + 1..];
    }
}

/// A target name as declared in a policy file, whether or not the rest of
/// the file was valid: cross-file checks use these so that one bad file does
/// not make its dependents look wrong too.
pub struct Declared<'a> {
    /// The name.
    pub name: String,
    /// `enabled` as written (default true).
    pub enabled: bool,
    /// The file.
    pub src: &'a SourceFile,
}

/// Checks that span files: duplicate targets, dependencies, cycles.
/// `unreadable` lists policy files that could not be parsed at all: a
/// dependency on an unknown name may be defined in one of them.
pub fn cross_check(
    targets: &[(Target, &SourceFile)],
    declared: &[Declared<'_>],
    unreadable: &[&Path],
    out: &mut Vec<Diagnostic>,
) {
    let name_path = KeyPath::root().key("target").key("name");
    let mut first_seen: HashMap<&str, &Declared<'_>> = HashMap::new();
    for d in declared {
        if let Some(first) = first_seen.get(d.name.as_str()) {
            out.push(d.src.at(
                &name_path,
                Anchor::Value,
                Level::Error,
                format!(
                    "target {} is already defined in {}",
                    quoted(&d.name),
                    first.src.path().display()
                ),
            ));
        } else {
            first_seen.insert(&d.name, d);
        }
    }
    for (t, src) in targets {
        for (i, dep) in t.depends_on.iter().enumerate() {
            if dep == &t.name {
                continue;
            }
            let path = KeyPath::root().key("target").key("depends-on").index(i);
            match first_seen.get(dep.as_str()) {
                Some(d) if !d.enabled => out.push(src.at(
                    &path,
                    Anchor::Value,
                    Level::Warning,
                    format!(
                        "target {} depends on {}, which is disabled in {}; the dependency is ignored",
                        quoted(&t.name),
                        quoted(dep),
                        d.src.path().display()
                    ),
                )),
                Some(_) => {}
                None => {
                    let mut msg = format!(
                        "target {} depends on {}, which is not defined",
                        quoted(&t.name),
                        quoted(dep)
                    );
                    if let Some(s) = did_you_mean(dep, declared.iter().map(|d| d.name.as_str())) {
                        msg.push_str(&format!("; did you mean {}?", quoted(s)));
                    } else if !unreadable.is_empty() {
                        msg.push_str(&format!(
                            " (unless in {}, which could not be read)",
                            unreadable.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                        ));
                    }
                    out.push(src.at(&path, Anchor::Value, Level::Error, msg));
                }
            }
        }
    }
    report_cycles(targets, out);
}

/// Dependency cycles: each group of targets that depend on each other in
/// a circle is reported once, at its first member, with one cycle through it.
fn report_cycles(targets: &[(Target, &SourceFile)], out: &mut Vec<Diagnostic>) {
    // Targets by name (a name defined twice is one node: that is reported apart).
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (t, _) in targets {
        let next = ids.len();
        ids.entry(t.name.as_str()).or_insert(next);
    }
    let mut names = vec![""; ids.len()];
    for (name, &id) in &ids {
        names[id] = name;
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
    for (t, _) in targets {
        let from = ids[t.name.as_str()];
        for dep in &t.depends_on {
            if let Some(&to) = ids.get(dep.as_str())
                && to != from
                && !edges[from].contains(&to)
            {
                edges[from].push(to);
            }
        }
    }
    let component = strongly_connected(&edges);
    let mut size = vec![0usize; ids.len()];
    for &c in &component {
        size[c] += 1;
    }
    let mut reported = vec![false; ids.len()];
    for (t, src) in targets {
        let start = ids[t.name.as_str()];
        let c = component[start];
        if size[c] < 2 || reported[c] {
            continue;
        }
        reported[c] = true;
        let cycle = cycle_through(start, &edges, &component);
        out.push(src.at(
            &KeyPath::root().key("target").key("depends-on"),
            Anchor::Value,
            Level::Error,
            format!(
                "dependency cycle: {}",
                cycle
                    .iter()
                    .chain(std::iter::once(&start))
                    .map(|&i| plain(names[i]).to_string())
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
        ));
    }
}

/// The strongly connected component of each node (Tarjan's algorithm,
/// without recursion so that a long chain of dependencies cannot exhaust
/// the stack).
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut component = vec![UNSEEN; n];
    let mut next_index = 0;
    let mut components = 0;
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, edge)) = calls.last() {
            if let Some(&w) = edges[v].get(edge) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = components;
                    if w == v {
                        break;
                    }
                }
                components += 1;
            }
        }
    }
    component
}

/// A shortest cycle from `start` back to it, within its component: the
/// members in order, starting at `start`.
fn cycle_through(start: usize, edges: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &edges[v] {
            if w == start {
                let mut cycle = vec![v];
                while let Some(&p) = parent.get(cycle.last().unwrap_or(&start)) {
                    cycle.push(p);
                }
                if *cycle.last().unwrap_or(&start) != start {
                    cycle.push(start);
                }
                cycle.reverse();
                return cycle;
            }
            if component[w] == component[start] && w != start && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}
