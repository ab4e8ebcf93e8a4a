//! The alert commands: `alerts`, `alert`, `ack`, `unack`, `silence`,
//! `silences`, `unsilence`, `maintenance`, `incidents`, `notifications`.
//! Each asks the running daemon's API and prints its answer for people.

use std::io::Write;

use serde_json::{Value, json};

use super::{ApiArgs, encode, reach, request_with};

/// `alerts [--state S] [--target T] [--severity S]`
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// `open` (pending, firing, acknowledged), `all`, `pending`, `firing`,
    /// `acknowledged` or `resolved`.
    #[arg(long, default_value = "open")]
    pub state: String,
    /// Only alerts about this target.
    #[arg(long)]
    pub target: Option<String>,
    /// Only alerts of this severity.
    #[arg(long)]
    pub severity: Option<String>,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `alert FINGERPRINT`, `unack FINGERPRINT`
#[derive(Debug, Clone, clap::Args)]
pub struct OneArgs {
    /// The alert's fingerprint (from `rvm-watchdog alerts`).
    pub fingerprint: String,
    /// Who acts [default: the user running this].
    #[arg(long)]
    pub by: Option<String>,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `ack FINGERPRINT [--comment TEXT]`
#[derive(Debug, Clone, clap::Args)]
pub struct AckArgs {
    /// The alert's fingerprint (from `rvm-watchdog alerts`).
    pub fingerprint: String,
    /// What you are doing about it, for the others.
    #[arg(long, short)]
    pub comment: Option<String>,
    /// Who acknowledges [default: the user running this].
    #[arg(long)]
    pub by: Option<String>,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// What a silence or a maintenance window picks.
#[derive(Debug, Clone, clap::Args)]
pub struct Picks {
    /// Alerts about this target (`*` matches any run of characters).
    #[arg(long)]
    pub target: Option<String>,
    /// Alerts of this name (`target-failing`, a rule's name…).
    #[arg(long)]
    pub name: Option<String>,
    /// Alerts of this severity.
    #[arg(long)]
    pub severity: Option<String>,
    /// Why, for the others.
    #[arg(long, short)]
    pub reason: Option<String>,
    /// Who [default: the user running this].
    #[arg(long)]
    pub by: Option<String>,
}

impl Picks {
    fn body(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("target", &self.target),
            ("name", &self.name),
            ("severity", &self.severity),
            ("reason", &self.reason),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        m.insert("by".into(), json!(who(&self.by)));
        m
    }
}

/// `silence --for 2h [--target T] …`
#[derive(Debug, Clone, clap::Args)]
pub struct SilenceArgs {
    /// How long, e.g. `30m`, `2h`.
    #[arg(long = "for", value_name = "DURATION")]
    pub length: String,
    /// What it picks.
    #[command(flatten)]
    pub picks: Picks,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `unsilence ID`, `maintenance off ID`
#[derive(Debug, Clone, clap::Args)]
pub struct IdArgs {
    /// Its id (from `rvm-watchdog silences` or `maintenance list`).
    pub id: String,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `maintenance on|off|list`
#[derive(Debug, Clone, clap::Args)]
pub struct MaintenanceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: MaintenanceAction,
}

/// What `maintenance` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MaintenanceAction {
    /// Begin a window now (until `off`, or `--for`), or add a weekly one (`--every`).
    On(OnArgs),
    /// End a window now (a weekly one is removed).
    Off(IdArgs),
    /// List the windows and whether each is in effect.
    List(ApiArgs),
}

/// `maintenance on [--for 1h | --every "sun 02:00-03:00"] …`
#[derive(Debug, Clone, clap::Args)]
pub struct OnArgs {
    /// How long [default: until `maintenance off`].
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "every")]
    pub length: Option<String>,
    /// Every week at these local times, e.g. `sun 02:00-03:00`, `mon-fri 22:00-06:00`.
    #[arg(long)]
    pub every: Option<String>,
    /// What it picks [default: every alert].
    #[command(flatten)]
    pub picks: Picks,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `incidents [ID] [--target T] [--limit N]`
#[derive(Debug, Clone, clap::Args)]
pub struct IncidentArgs {
    /// One incident, told in full.
    pub id: Option<String>,
    /// Only this target's.
    #[arg(long)]
    pub target: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `notifications [--channel C] [--limit N]`
#[derive(Debug, Clone, clap::Args)]
pub struct NotificationArgs {
    /// Only this channel's.
    #[arg(long)]
    pub channel: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Who acts: `--by`, else the user running the command.
fn who(by: &Option<String>) -> String {
    by.clone()
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".into())
}

/// What [`api`] got.
pub(super) enum Got {
    /// The daemon answered as asked; print it as JSON (`--json`) or not.
    Answer(Value, bool),
    /// It did not; why was printed.
    Failed,
}

/// The answer of a [`Got`] to work with; a function's `return Ok(true)`
/// once printed as JSON for `--json`, `return Ok(false)` when the call failed.
macro_rules! answer {
    ($got:expr, $out:expr) => {
        match $got {
            Got::Answer(v, false) => v,
            Got::Answer(v, true) => {
                writeln!(
                    $out,
                    "{}",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                )?;
                return Ok(true);
            }
            Got::Failed => return Ok(false),
        }
    };
}
pub(super) use answer;

/// Calls the API; prints why on failure. `need_token` for changes.
pub(super) fn api(
    args: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
    out: &mut impl Write,
) -> std::io::Result<Got> {
    let need_token = method != "GET";
    let Some((addr, token)) = reach(args, need_token, out)? else {
        return Ok(Got::Failed);
    };
    match request_with(addr, method, path, token.as_deref(), body.as_ref()) {
        Ok((code, text)) => {
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if (200..300).contains(&code) {
                Ok(Got::Answer(value, args.json))
            } else {
                writeln!(out, "{}", super::refusal(code, &value))?;
                Ok(Got::Failed)
            }
        }
        Err(e) => {
            writeln!(out, "{}", super::unreachable(addr, &e))?;
            Ok(Got::Failed)
        }
    }
}

/// A time as people read it: `2026-12-02 03:19:14Z (4m ago)`.
pub(super) fn when(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let ago = std::time::SystemTime::now()
        .duration_since(at)
        .map(|d| {
            format!(
                " ({} ago)",
                humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
            )
        })
        .unwrap_or_default();
    format!("{}{ago}", humantime::format_rfc3339_seconds(at))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

/// `rvm-watchdog alerts`.
pub fn list(args: &ListArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let mut path = format!("/api/v1/alerts?state={}", encode(&args.state));
    if let Some(t) = &args.target {
        path.push_str(&format!("&target={}", encode(t)));
    }
    if let Some(sev) = &args.severity {
        path.push_str(&format!("&severity={}", encode(sev)));
    }
    let v = answer!(api(&args.api, "GET", &path, None, out)?, out);
    let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        writeln!(out, "no {} alerts", args.state)?;
        return Ok(true);
    }
    writeln!(
        out,
        "{:<16}  {:<12}  {:<8}  {:<16}  {:<16}  summary",
        "fingerprint", "state", "severity", "name", "target"
    )?;
    for a in &alerts {
        let mut state = s(a, "state").to_owned();
        if a["flapping"].as_bool() == Some(true) {
            state.push_str(" (flapping)");
        }
        let mut summary = s(a, "summary").to_owned();
        if let Some(by) = a["suppressedBy"].as_str() {
            summary.push_str(&format!(" [suppressed by {by}]"));
        }
        if let Some(ack) = a["ack"].as_object() {
            summary.push_str(&format!(
                " [acknowledged by {}: {}]",
                ack["by"].as_str().unwrap_or("?"),
                ack["comment"].as_str().unwrap_or("")
            ));
        }
        writeln!(
            out,
            "{:<16}  {:<12}  {:<8}  {:<16}  {:<16}  {summary}",
            s(a, "fingerprint"),
            state,
            s(a, "severity"),
            s(a, "name"),
            a["target"].as_str().unwrap_or("-"),
        )?;
    }
    Ok(true)
}

/// `rvm-watchdog alert FINGERPRINT`.
pub fn one(args: &OneArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let path = format!("/api/v1/alerts/{}", encode(&args.fingerprint));
    let v = answer!(api(&args.api, "GET", &path, None, out)?, out);
    let a = &v["alert"];
    writeln!(
        out,
        "{} {} ({})",
        s(a, "name"),
        a["target"].as_str().unwrap_or(""),
        s(a, "severity")
    )?;
    writeln!(out, "  {}", s(a, "summary"))?;
    writeln!(out, "  state:      {}", s(a, "state"))?;
    writeln!(out, "  since:      {}", when(a["startedAt"].as_u64()))?;
    if a["resolvedAt"].is_u64() {
        writeln!(out, "  resolved:   {}", when(a["resolvedAt"].as_u64()))?;
    }
    if let Some(by) = a["suppressedBy"].as_str() {
        writeln!(out, "  suppressed: by {by}, its root cause")?;
    }
    if let Some(ack) = a["ack"].as_object() {
        writeln!(
            out,
            "  acknowledged by {} {}: {}",
            ack["by"].as_str().unwrap_or("?"),
            when(ack["at"].as_u64()),
            ack["comment"].as_str().unwrap_or("")
        )?;
    }
    if let Some(chain) = a["escalation"].as_str() {
        let level = a["level"]
            .as_u64()
            .map_or("none yet".to_owned(), |l| (l + 1).to_string());
        writeln!(out, "  escalation: {chain}, level {level}")?;
    }
    writeln!(
        out,
        "  reported:   {} time(s)",
        a["occurrences"].as_u64().unwrap_or(0)
    )?;
    let log = v["notifications"].as_array().cloned().unwrap_or_default();
    writeln!(out, "notifications ({}):", log.len())?;
    for n in log.iter().rev() {
        let why: Vec<&str> = n["notification"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["fingerprint"].as_str() == a["fingerprint"].as_str())
            .filter_map(|i| i["why"]["kind"].as_str())
            .collect();
        writeln!(
            out,
            "  {}  {:<14} {:<10} {}",
            when(n["createdAt"].as_u64()),
            s(n, "channel"),
            why.join(","),
            s(n, "state")
        )?;
    }
    Ok(true)
}

/// `rvm-watchdog ack`.
pub fn ack(args: &AckArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let path = format!("/api/v1/alerts/{}/ack", encode(&args.fingerprint));
    let body = json!({ "by": who(&args.by), "comment": args.comment.clone().unwrap_or_default() });
    let v = answer!(api(&args.api, "POST", &path, Some(body), out)?, out);
    writeln!(
        out,
        "acknowledged {} ({} {})",
        s(&v["alert"], "fingerprint"),
        s(&v["alert"], "name"),
        v["alert"]["target"].as_str().unwrap_or("")
    )?;
    Ok(true)
}

/// `rvm-watchdog unack`.
pub fn unack(args: &OneArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let path = format!("/api/v1/alerts/{}/unack", encode(&args.fingerprint));
    let body = json!({ "by": who(&args.by) });
    let v = answer!(api(&args.api, "POST", &path, Some(body), out)?, out);
    writeln!(
        out,
        "{} is {} again",
        s(&v["alert"], "fingerprint"),
        s(&v["alert"], "state")
    )?;
    Ok(true)
}

/// `rvm-watchdog silence`.
pub fn silence(args: &SilenceArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let mut body = args.picks.body();
    body.insert("for".into(), json!(args.length));
    let v = answer!(
        api(
            &args.api,
            "POST",
            "/api/v1/silences",
            Some(Value::Object(body)),
            out,
        )?,
        out
    );
    let sil = &v["silence"];
    writeln!(
        out,
        "silence {} until {}",
        s(sil, "id"),
        when(sil["endsAt"].as_u64())
    )?;
    Ok(true)
}

fn matcher(m: &Value) -> String {
    let parts: Vec<String> = ["target", "name", "severity"]
        .iter()
        .filter_map(|k| m[*k].as_str().map(|v| format!("{k}={v}")))
        .collect();
    if parts.is_empty() {
        "everything".into()
    } else {
        parts.join(" ")
    }
}

/// `rvm-watchdog silences`.
pub fn silences(args: &ApiArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let v = answer!(api(args, "GET", "/api/v1/silences", None, out)?, out);
    let list = v["silences"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        writeln!(out, "no silences")?;
    }
    for sil in &list {
        writeln!(
            out,
            "{}  {}  until {}  by {}: {}",
            s(sil, "id"),
            matcher(&sil["matcher"]),
            when(sil["endsAt"].as_u64()),
            s(sil, "by"),
            s(sil, "reason")
        )?;
    }
    Ok(true)
}

/// `rvm-watchdog unsilence`.
pub fn unsilence(args: &IdArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let path = format!("/api/v1/silences/{}", encode(&args.id));
    answer!(api(&args.api, "DELETE", &path, None, out)?, out);
    writeln!(out, "silence {} ended", args.id)?;
    Ok(true)
}

/// `rvm-watchdog maintenance`.
pub fn maintenance(args: &MaintenanceArgs, out: &mut impl Write) -> std::io::Result<bool> {
    match &args.action {
        MaintenanceAction::On(on) => {
            let mut body = on.picks.body();
            if let Some(l) = &on.length {
                body.insert("for".into(), json!(l));
            }
            if let Some(e) = &on.every {
                body.insert("every".into(), json!(e));
            }
            let v = answer!(
                api(
                    &on.api,
                    "POST",
                    "/api/v1/maintenance",
                    Some(Value::Object(body)),
                    out,
                )?,
                out
            );
            let w = &v["window"];
            let sched = &w["schedule"];
            let when_ = match sched["kind"].as_str() {
                Some("weekly") => format!("every {}", s(sched, "every")),
                _ => match sched["until"].as_u64() {
                    Some(u) => format!("now until {}", when(Some(u))),
                    None => "now, until `rvm-watchdog maintenance off`".into(),
                },
            };
            writeln!(
                out,
                "maintenance {} ({}): {when_}",
                s(w, "id"),
                matcher(&w["matcher"])
            )?;
            Ok(true)
        }
        MaintenanceAction::Off(id) => {
            let path = format!("/api/v1/maintenance/{}", encode(&id.id));
            answer!(api(&id.api, "DELETE", &path, None, out)?, out);
            writeln!(out, "maintenance {} ended", id.id)?;
            Ok(true)
        }
        MaintenanceAction::List(a) => {
            let v = answer!(api(a, "GET", "/api/v1/maintenance", None, out)?, out);
            let list = v["maintenance"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                writeln!(out, "no maintenance windows")?;
            }
            for m in &list {
                let w = &m["window"];
                let sched = &w["schedule"];
                let when_ = match sched["kind"].as_str() {
                    Some("weekly") => format!("every {}", s(sched, "every")),
                    _ => format!(
                        "from {} until {}",
                        when(sched["from"].as_u64()),
                        sched["until"]
                            .as_u64()
                            .map_or("it is ended".into(), |u| when(Some(u)))
                    ),
                };
                let state = if m["inEffect"].as_bool() == Some(true) {
                    "IN EFFECT"
                } else {
                    "not in effect"
                };
                writeln!(
                    out,
                    "{}  {state}  {}  {when_}  by {}: {}",
                    s(w, "id"),
                    matcher(&w["matcher"]),
                    s(w, "by"),
                    s(w, "reason")
                )?;
            }
            Ok(true)
        }
    }
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |ms| {
        humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
    })
}

/// `rvm-watchdog incidents [ID]`.
pub fn incidents(args: &IncidentArgs, out: &mut impl Write) -> std::io::Result<bool> {
    if let Some(id) = &args.id {
        let path = format!("/api/v1/incidents/{}", encode(id));
        let v = answer!(api(&args.api, "GET", &path, None, out)?, out);
        return story(&v["incident"], out).map(|_| true);
    }
    let mut path = format!("/api/v1/incidents?limit={}", args.limit);
    if let Some(t) = &args.target {
        path.push_str(&format!("&target={}", encode(t)));
    }
    let v = answer!(api(&args.api, "GET", &path, None, out)?, out);
    let list = v["incidents"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        writeln!(out, "no incidents")?;
    }
    for i in &list {
        let state = if i["closedAt"].is_u64() {
            "closed"
        } else {
            "OPEN"
        };
        writeln!(
            out,
            "{}  {state}  {}  opened {}  recovered in {}  {}",
            s(i, "id"),
            s(i, "target"),
            when(i["openedAt"].as_u64()),
            secs(i["timeToRecoverMs"].as_u64()),
            i["outcome"].as_str().unwrap_or(s(i, "reason"))
        )?;
    }
    Ok(true)
}

/// One incident, from the first sign to the end.
fn story(i: &Value, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "incident {} on {}", s(i, "id"), s(i, "target"))?;
    writeln!(out, "  reason:           {}", s(i, "reason"))?;
    if let Some(root) = i["rootCause"].as_str() {
        writeln!(out, "  root cause:       {root} (a failing dependency)")?;
    }
    writeln!(out, "  first sign:       {}", when(i["beganAt"].as_u64()))?;
    writeln!(out, "  opened:           {}", when(i["openedAt"].as_u64()))?;
    writeln!(out, "  closed:           {}", when(i["closedAt"].as_u64()))?;
    writeln!(
        out,
        "  time to detect:   {}",
        secs(i["timeToDetectMs"].as_u64())
    )?;
    writeln!(
        out,
        "  time to recover:  {}",
        secs(i["timeToRecoverMs"].as_u64())
    )?;
    if let Some(o) = i["outcome"].as_str() {
        writeln!(out, "  outcome:          {o}")?;
    }
    let mut lines: Vec<(u64, String)> = Vec::new();
    for p in i["probes"].as_array().into_iter().flatten() {
        lines.push((
            p["at"].as_u64().unwrap_or(0),
            format!("probe {} failed: {}", s(p, "probe"), s(p, "output")),
        ));
    }
    for a in i["actions"].as_array().into_iter().flatten() {
        lines.push((
            a["at"].as_u64().unwrap_or(0),
            format!(
                "step {} attempt {}: {} {} ({})",
                a["step"],
                a["attempt"],
                s(a, "action"),
                s(a, "result"),
                s(a, "detail")
            ),
        ));
    }
    for n in i["notifications"].as_array().into_iter().flatten() {
        lines.push((
            n["at"].as_u64().unwrap_or(0),
            format!(
                "told {}: {} {}",
                s(n, "channel"),
                s(n, "alert"),
                s(n, "why")
            ),
        ));
    }
    lines.sort_by_key(|(at, _)| *at);
    writeln!(out, "  timeline:")?;
    for (at, line) in lines {
        writeln!(out, "    {}  {line}", when(Some(at)))?;
    }
    Ok(())
}

/// `rvm-watchdog notifications`.
pub fn notifications(args: &NotificationArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let mut path = format!("/api/v1/notifications?limit={}", args.limit);
    if let Some(c) = &args.channel {
        path.push_str(&format!("&channel={}", encode(c)));
    }
    let v = answer!(api(&args.api, "GET", &path, None, out)?, out);
    let list = v["notifications"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        writeln!(out, "no notifications")?;
    }
    for n in &list {
        let items: Vec<String> = n["notification"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                format!(
                    "{} {} ({})",
                    s(i, "name"),
                    i["target"].as_str().unwrap_or("-"),
                    i["why"]["kind"].as_str().unwrap_or("?")
                )
            })
            .collect();
        writeln!(
            out,
            "{}  {:<14} {:<8} {:<7} {}",
            when(n["createdAt"].as_u64()),
            s(n, "channel"),
            s(n, "severity"),
            s(n, "state"),
            items.join(", ")
        )?;
    }
    Ok(true)
}
