//! `rvm-watchdog events`: the event log from the running daemon, newest
//! first, a line an event.

use std::io::Write;

use serde_json::Value;

use super::alerts::{api, when};
use super::{ApiArgs, encode};

/// `events [--target T] [--kind K] [--since 1h] [--limit N] [--json]`
#[derive(Debug, Clone, clap::Args)]
pub struct EventArgs {
    /// Only this target's.
    #[arg(long)]
    pub target: Option<String>,
    /// Only this kind ("incident-opened", "decision", "action-finished", …).
    #[arg(long)]
    pub kind: Option<String>,
    /// How far back ("1h", "30m"), or a time (2026-12-01T10:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print the API's JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Prints the events; false when the daemon could not answer (said why).
pub fn events(args: &EventArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let mut path = format!("/api/v1/events?limit={}", args.limit);
    for (name, value) in [
        ("target", &args.target),
        ("kind", &args.kind),
        ("since", &args.since),
    ] {
        if let Some(v) = value {
            path.push_str(&format!("&{name}={}", encode(v)));
        }
    }
    let Some(v) = api(&args.api, "GET", &path, None, out)? else {
        return Ok(false);
    };
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )?;
        return Ok(true);
    }
    let list = v["events"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        writeln!(out, "no events")?;
    }
    for e in &list {
        writeln!(out, "{}", line(e))?;
    }
    if v["next"].is_i64() && list.len() == args.limit {
        writeln!(out, "(older events: raise --limit or narrow --since)")?;
    }
    Ok(true)
}

/// `2026-12-02 03:19:14Z (4m ago)  unit-failed  camera  the unit failed`
fn line(e: &Value) -> String {
    let text = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
    let mut line = format!(
        "{}  {:<14} {:<12} {}",
        when(e["atMs"].as_u64()),
        text("kind"),
        text("target"),
        text("message")
    );
    if let Some(result) = e["result"].as_str() {
        line.push_str(&format!(" [{result}]"));
    }
    line
}
