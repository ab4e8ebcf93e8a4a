//! The command line: every subcommand lives here.
//!
//! Exit codes: 0 all well, 1 problems found (invalid configuration, a
//! failed start), 2 usage error (clap's own).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub mod alerts;
pub mod channel;
pub mod docs;
pub mod events;
pub mod sse;
pub mod status;

use crate::config::{self, Bus, Sources};

/// Supervisor and self-healing watchdog for reverse vending machines.
#[derive(Debug, Parser)]
#[command(name = "rvm-watchdog", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (in the foreground; systemd runs it as rvm-watchdog.service).
    Run(RunArgs),
    /// The machine at a glance: every target's state and since when, its
    /// last action and open alerts (exit code: 0 all pass, 1 not, or the
    /// daemon could not be asked).
    Status(status::StatusArgs),
    /// Validate watchdog.toml and every policy, printing each problem as file:line:col.
    Check(FileArgs),
    /// Print the version.
    Version,
    /// Print the shell completion script (bash, zsh, fish, …).
    Completions(docs::CompletionArgs),
    /// Print the man page, or write every page into a directory.
    Manpage(docs::ManpageArgs),
    /// Restart a target now, through the running daemon, and wait for the result.
    Restart(TargetArgs),
    /// Reset a target's recovery ladder: it starts over, and a target that gave up acts again.
    Reset(TargetArgs),
    /// Run one step of a target's ladder now (outside the ladder's count) and wait for the result.
    Step(StepArgs),
    /// Pause a target for maintenance: it is watched and shown, and nothing is done to it.
    Pause(PauseArgs),
    /// End a target's pause: its ladder acts again.
    Resume(TargetArgs),
    /// Make the running daemon re-read its configuration (all or nothing).
    Reload(ApiArgs),
    /// Run a target's probes once, now, and print their outcomes (exit code:
    /// 0 all pass, 1 a warning, 2 a failure, 3 no such target or probe).
    Probe(ProbeArgs),
    /// Print a series' history from the running daemon, as a table (and a
    /// sparkline on a terminal).
    Query(QueryArgs),
    /// List alerts: open ones by default.
    Alerts(alerts::ListArgs),
    /// Show one alert and every notification about it.
    Alert(alerts::OneArgs),
    /// Acknowledge an alert: it stops climbing its escalation chain.
    Ack(alerts::AckArgs),
    /// Take an acknowledgement back: the alert climbs again.
    Unack(alerts::OneArgs),
    /// Silence alerts for a while (by target, name, severity).
    Silence(alerts::SilenceArgs),
    /// List the silences.
    Silences(ApiArgs),
    /// End a silence now.
    Unsilence(alerts::IdArgs),
    /// Maintenance windows: alerts are muted while one is in effect.
    Maintenance(alerts::MaintenanceArgs),
    /// The story of incidents: root cause, probes, actions, notifications,
    /// time to detect and to recover.
    Incidents(alerts::IncidentArgs),
    /// The notifications decided, newest first (the outbox).
    Notifications(alerts::NotificationArgs),
    /// The event log, newest first: failures, decisions, actions, alerts.
    Events(events::EventArgs),
    /// Send a test notification over one channel of the configuration on
    /// disk and print the receiver's answer (exit code: 0 delivered, 1 not,
    /// 3 no such channel).
    TestChannel(channel::TestChannelArgs),
}

/// `query SERIES [--since 1h] [--step 1m]`
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// The series: a name, with label equalities if need be, like
    /// `rvm_host_cpu_usage_ratio{cpu="total"}`.
    pub series: String,
    /// How far back.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// The spacing of the points [default: the finest the range allows].
    #[arg(long)]
    pub step: Option<String>,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `probe TARGET[/PROBE]`
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// `TARGET` for all its probes, `TARGET/PROBE` for one.
    pub which: String,
    /// Also print what each probe read: its figures (a GPU's load, every
    /// thermal zone and rail) and facts (a camera's USB port).
    #[arg(long)]
    pub details: bool,
    /// Files to read.
    #[command(flatten)]
    pub files: FileArgs,
}

/// How to reach the running daemon's API.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Print the daemon's answer as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The daemon's configuration file, for `[api] listen` and `token-file`.
    #[arg(long, value_name = "FILE", env = "RVM_WATCHDOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// The API's address [default: `[api] listen`; 0.0.0.0 means this machine].
    #[arg(long, value_name = "ADDR:PORT")]
    pub api: Option<SocketAddr>,
    /// The daemon's state directory, where it keeps the token it made when
    /// no `token-file` is set [default: `[daemon] state-dir`].
    #[arg(long, value_name = "DIR", env = "RVM_WATCHDOG_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The file holding the API token [default: `[api] token-file`, else
    /// `api.token` in the state directory].
    #[arg(long, value_name = "FILE", env = "RVM_WATCHDOG_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// A command on one target.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The target's name.
    pub target: String,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `step TARGET N`
#[derive(Debug, Clone, clap::Args)]
pub struct StepArgs {
    /// The target's name.
    pub target: String,
    /// The step, counted from 1 as in `rvm-watchdog check` and the logs.
    pub step: usize,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `pause TARGET [--for 30m]`
#[derive(Debug, Clone, clap::Args)]
pub struct PauseArgs {
    /// The target's name.
    pub target: String,
    /// How long, e.g. `30m` or `2h` [default: until `resume`].
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_length)]
    pub length: Option<std::time::Duration>,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

impl PauseArgs {
    /// The API path of this pause.
    pub fn path(&self) -> String {
        match self.length {
            Some(d) => format!("/api/v1/targets/{}/pause?for={}s", self.target, d.as_secs()),
            None => format!("/api/v1/targets/{}/pause", self.target),
        }
    }
}

fn parse_length(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() > 0 => Ok(d),
        Ok(_) => Err("a pause lasts at least a second".into()),
        Err(e) => Err(format!("{e} (a duration like \"30m\" or \"2h\")")),
    }
}

/// Which files to read.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// The daemon's configuration file [default: /etc/rvm-watchdog/watchdog.toml if it
    /// exists, else the embedded default].
    #[arg(long, value_name = "FILE", env = "RVM_WATCHDOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of policy files [default: `[daemon] policies-dir`, else
    /// /etc/rvm-watchdog/policies if it exists, else the embedded host policy].
    #[arg(long, value_name = "DIR", env = "RVM_WATCHDOG_POLICIES")]
    pub policies: Option<PathBuf>,
}

/// Options of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Files to read.
    #[command(flatten)]
    pub files: FileArgs,
    /// Directory for persisted state [default: `[daemon] state-dir`].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address and port of the HTTP API [default: `[api] listen`, 127.0.0.1:9184].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Which D-Bus systemd is on [default: `[daemon] bus`, system].
    #[arg(long, value_enum)]
    pub bus: Option<BusArg>,
    /// Lowest level logged [default: `[log] level`, info].
    #[arg(long, value_enum)]
    pub log_level: Option<LevelArg>,
}

/// `--bus`
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BusArg {
    /// The system bus.
    System,
    /// The session bus (a user manager).
    User,
}

/// `--log-level`
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LevelArg {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    Info,
    /// Decisions in detail.
    Debug,
    /// Everything.
    Trace,
}

impl RunArgs {
    /// The sources this run reads, with its overrides.
    pub fn sources(&self) -> Sources {
        Sources {
            config_file: self.files.config.clone(),
            policies_dir: self.files.policies.clone(),
            state_dir: self.state_dir.clone(),
            listen: self.listen,
            bus: self.bus.map(|b| match b {
                BusArg::System => Bus::System,
                BusArg::User => Bus::User,
            }),
            log_level: self.log_level.map(|l| match l {
                LevelArg::Error => tracing::Level::ERROR,
                LevelArg::Warn => tracing::Level::WARN,
                LevelArg::Info => tracing::Level::INFO,
                LevelArg::Debug => tracing::Level::DEBUG,
                LevelArg::Trace => tracing::Level::TRACE,
            }),
        }
    }
}

impl FileArgs {
    /// The sources `check` reads.
    pub fn sources(&self) -> Sources {
        Sources {
            config_file: self.config.clone(),
            policies_dir: self.policies.clone(),
            ..Sources::default()
        }
    }
}

/// `rvm-watchdog check`: prints `Checking '<file>' SUCCESS|FAILED` for each
/// file, then every problem, then a summary. Returns true when there are no errors.
pub fn check(args: &FileArgs, out: &mut impl std::io::Write) -> std::io::Result<bool> {
    let loaded = config::load(&args.sources());
    for file in &loaded.files {
        let verdict = if file.ok { "SUCCESS" } else { "FAILED" };
        let shown: String = file.path.display().to_string().escape_debug().collect();
        writeln!(out, "Checking '{shown}' {verdict}")?;
    }
    for d in &loaded.diagnostics {
        writeln!(out, "{d}")?;
    }
    let errors = loaded.error_count();
    let warnings = loaded.diagnostics.len() - errors;
    match &loaded.config {
        Some(c) => writeln!(
            out,
            "configuration is valid: {} target{}, {warnings} warning{}",
            c.targets.len(),
            plural(c.targets.len()),
            plural(warnings)
        )?,
        None => writeln!(
            out,
            "configuration is invalid: {errors} error{}, {warnings} warning{}",
            plural(errors),
            plural(warnings)
        )?,
    }
    Ok(loaded.config.is_some())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Where the daemon listens and its token, from the arguments and the
/// daemon's file; `None` (said on `out`) when they cannot be found.
/// `need_token`: a token that cannot be read is an error, not a call
/// without one.
fn reach(
    args: &ApiArgs,
    need_token: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<Option<(SocketAddr, Option<String>)>> {
    let loaded = config::load(&Sources {
        config_file: args.config.clone(),
        ..Sources::default()
    });
    // The policies do not matter here; the daemon's file does.
    let api = loaded.config.as_ref().map(|c| c.api.clone());
    let mut addr = match (args.api, &api) {
        (Some(a), _) => a,
        (None, Some(api)) => api.listen,
        (None, None) => {
            writeln!(
                out,
                "cannot find the API address: the configuration has problems (run `rvm-watchdog check`); or pass --api"
            )?;
            return Ok(None);
        }
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let token_file = match (&args.token_file, &loaded.config) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(c)) => {
            let state_dir = args.state_dir.as_ref().unwrap_or(&c.daemon.state_dir);
            Some(crate::api::access::token_file_for(&c.api, state_dir))
        }
        (None, None) => None,
    };
    let token = match token_file.map(|f| crate::api::access::read_token(&f)) {
        Some(Ok(t)) => Some(t),
        Some(Err(why)) if need_token => {
            writeln!(out, "{why}")?;
            return Ok(None);
        }
        None if need_token => {
            writeln!(
                out,
                "cannot find the API token: the configuration has problems (run `rvm-watchdog check`); or pass --token-file"
            )?;
            return Ok(None);
        }
        _ => None,
    };
    Ok(Some((addr, token)))
}

/// Sends a changing call to the running daemon and prints its answer.
/// Returns true when the daemon reports success.
pub fn call(args: &ApiArgs, path: &str, out: &mut impl std::io::Write) -> std::io::Result<bool> {
    let Some((addr, token)) = reach(args, true, out)? else {
        return Ok(false);
    };
    match request(addr, "POST", path, token.as_deref()) {
        Ok((code, body)) => {
            let value: serde_json::Value =
                serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
            let text = match value.get("detail").and_then(|v| v.as_str()) {
                _ if args.json && code == 200 => {
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                }
                Some(detail) => detail.to_owned(),
                None if code == 200 => value.to_string(),
                None => refusal(code, &value),
            };
            writeln!(out, "{text}")?;
            Ok(code == 200)
        }
        Err(e) => {
            writeln!(out, "{}", unreachable(addr, &e))?;
            Ok(false)
        }
    }
}

/// Why the daemon refused a call, in its own words (the one error shape's
/// `message`), with what to do about a token it refused.
pub(crate) fn refusal(code: u16, value: &serde_json::Value) -> String {
    let message = value["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    if code == 401 {
        return format!(
            "the watchdog refused the token (401): {message}. The token file read is not the running daemon's: pass --token-file, or --config with the daemon's file (its [api] token-file), or --state-dir for the api.token it made"
        );
    }
    message
}

/// What to say when the daemon cannot be reached.
pub(crate) fn unreachable(addr: SocketAddr, e: &std::io::Error) -> String {
    format!(
        "cannot reach the watchdog at {addr} ({e}): is rvm-watchdog running? systemctl status rvm-watchdog"
    )
}

/// `rvm-watchdog query`: one series' points as a table, oldest first, and
/// a sparkline of the means when `sparkline`. Returns true when the daemon
/// answered.
pub fn query(
    args: &QueryArgs,
    sparkline: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<bool> {
    let Some((addr, token)) = reach(&args.api, false, out)? else {
        return Ok(false);
    };
    let mut path = format!(
        "/api/v1/query?series={}&since={}",
        encode(&args.series),
        encode(&args.since)
    );
    if let Some(step) = &args.step {
        path.push_str(&format!("&step={}", encode(step)));
    }
    let (code, body) = match request(addr, "GET", &path, token.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            writeln!(out, "{}", unreachable(addr, &e))?;
            return Ok(false);
        }
    };
    let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if code != 200 {
        writeln!(out, "{}", refusal(code, &value))?;
        return Ok(false);
    }
    if args.api.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )?;
        return Ok(true);
    }
    let series = value["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        writeln!(out, "no series {} in the last {}", args.series, args.since)?;
        return Ok(true);
    }
    for s in &series {
        let points = s["points"].as_array().cloned().unwrap_or_default();
        writeln!(
            out,
            "{}  ({}, {} resolution, {} points)",
            s["series"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
            value["resolution"].as_str().unwrap_or(""),
            points.len()
        )?;
        let means: Vec<f64> = points.iter().filter_map(|p| p["mean"].as_f64()).collect();
        if sparkline && !means.is_empty() {
            writeln!(out, "{}", spark(&means))?;
        }
        writeln!(
            out,
            "{:<24} {:>14} {:>14} {:>14} {:>14}",
            "time", "min", "mean", "max", "last"
        )?;
        for p in &points {
            let at = p["at"].as_u64().unwrap_or(0);
            let time = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(at),
            );
            let f = |k: &str| p[k].as_f64().map_or("-".to_owned(), |v| format!("{v:.4}"));
            writeln!(
                out,
                "{:<24} {:>14} {:>14} {:>14} {:>14}",
                time.to_string(),
                f("min"),
                f("mean"),
                f("max"),
                f("last")
            )?;
        }
    }
    Ok(true)
}

/// Values drawn as one line of block characters, lowest to highest.
pub fn spark(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    values
        .iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

/// A query parameter, percent-encoded.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal HTTP/1.1 request to the local API: (status, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    request_with(addr, method, path, token, None)
}

/// [`request`] with a JSON body.
fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&serde_json::Value>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
    // Actions may take a while (a systemd job, a hook).
    stream.set_read_timeout(Some(std::time::Duration::from_secs(600)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let kind = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{kind}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// `rvm-watchdog probe`: runs probes once and prints each outcome. Returns
/// the exit code: the worst outcome (0 pass, 1 warn, 2 fail), 3 when the
/// target or probe does not exist or the configuration is invalid.
pub fn probe(args: &ProbeArgs, out: &mut impl std::io::Write) -> std::io::Result<u8> {
    let loaded = config::load(&args.files.sources());
    let Some(config) = loaded.config else {
        for d in &loaded.diagnostics {
            writeln!(out, "{d}")?;
        }
        writeln!(
            out,
            "the configuration is invalid; run `rvm-watchdog check`"
        )?;
        return Ok(3);
    };
    let (target_name, probe_name) = match args.which.split_once('/') {
        Some((t, p)) => (t, Some(p)),
        None => (args.which.as_str(), None),
    };
    let Some(target) = config.target(target_name) else {
        writeln!(out, "no target named \"{target_name}\"")?;
        return Ok(3);
    };
    let probes: Vec<&crate::config::Probe> = target
        .probes
        .iter()
        .filter(|p| probe_name.is_none_or(|n| p.name == n))
        .collect();
    if probes.is_empty() {
        match probe_name {
            Some(n) => writeln!(out, "target \"{target_name}\" has no probe named \"{n}\"")?,
            None => writeln!(out, "target \"{target_name}\" has no probes")?,
        }
        return Ok(3);
    }
    let ctx = crate::probe::Context::for_config(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut worst = 0u8;
    for p in probes {
        if !crate::probe::runs(&p.check) {
            writeln!(
                out,
                "{target_name}/{}: judged by the running daemon, which watches the process ({} probe)",
                p.name,
                p.check.kind()
            )?;
            continue;
        }
        let outcome = runtime.block_on(crate::probe::run_once(p, &ctx));
        let code = match outcome.status {
            crate::probe::Status::Pass => 0,
            crate::probe::Status::Warn => 1,
            crate::probe::Status::Fail => 2,
        };
        worst = worst.max(code);
        let value = match (outcome.observed_value, outcome.observed_unit) {
            (Some(v), Some(u)) => format!(" [{v:.2} {u}]"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{target_name}/{}: {}{value} {} ({} ms)",
            p.name,
            outcome.status.as_str(),
            outcome.output,
            outcome.took_ms
        )?;
        if args.details {
            for (name, value) in &outcome.facts {
                writeln!(out, "    {name} = {value}")?;
            }
            for m in &outcome.measurements {
                match &m.label {
                    Some((key, label)) => {
                        writeln!(out, "    {}{{{key}={label}}} {}", m.name, m.value)?
                    }
                    None => writeln!(out, "    {} {}", m.name, m.value)?,
                }
            }
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sparkline_spans_the_values() {
        assert_eq!(super::spark(&[0.0, 1.0, 2.0, 7.0]), "▁▂▃█");
        assert_eq!(super::spark(&[5.0, 5.0]), "▄▄");
    }
}
