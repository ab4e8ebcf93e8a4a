//! `rvm-watchdog events`: the event log from the running daemon, newest
//! first, a line an event.

use std::io::Write;

use serde_json::Value;

use super::alerts::{Got, answer, api, when};
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
    /// Then follow: print every new event as it happens (oldest first), until
    /// interrupted; reconnects, missing nothing, when the stream breaks.
    /// With `--json`, one JSON object a line.
    #[arg(long, short)]
    pub follow: bool,
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
    let v = match api(&args.api, "GET", &path, None, out)? {
        Got::Answer(v, _) if args.follow => v,
        got => answer!(got, out),
    };
    let list = v["events"].as_array().cloned().unwrap_or_default();
    if args.follow {
        // Like journalctl -f: the latest at the bottom, then what comes.
        for e in list.iter().rev() {
            writeln!(out, "{}", shown(args, e))?;
        }
        out.flush()?;
        return follow(args, out);
    }
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

/// How long to wait before reconnecting to a stream that broke.
const RECONNECT: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows `/api/v1/stream`, printing the events `args` picks as they come;
/// returns only when `out` cannot be written.
fn follow(args: &EventArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let Some((addr, token)) = super::reach(&args.api, false, out)? else {
        return Ok(false);
    };
    let mut last: Option<String> = None;
    let mut said_gone = false;
    loop {
        let mut stream = match super::sse::Stream::open(addr, token.as_deref(), last.as_deref()) {
            Ok(Ok(s)) => s,
            Ok(Err((code, body))) => {
                let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                writeln!(out, "{}", super::refusal(code, &value))?;
                return Ok(false);
            }
            Err(e) => {
                if !said_gone {
                    writeln!(out, "-- {}; waiting for it", super::unreachable(addr, &e))?;
                    out.flush()?;
                    said_gone = true;
                }
                std::thread::sleep(RECONNECT);
                continue;
            }
        };
        // The messages of current state that open a fresh stream were
        // printed by the listing (or are older than it): skip them.
        let mut skip = 0u64;
        while let Some((kind, id, data)) = stream.next_message() {
            let v: Value = serde_json::from_str(&data).unwrap_or_default();
            if kind == "stream" {
                if v["resumed"] == true {
                    if said_gone {
                        writeln!(
                            out,
                            "-- back; {} event(s) missed meanwhile follow",
                            v["missed"]
                        )?;
                    }
                } else {
                    skip = v["current"].as_u64().unwrap_or(0);
                    if last.is_some() {
                        writeln!(
                            out,
                            "-- the watchdog restarted (or the stream fell too far behind): events in between may be missing here; rvm-watchdog events lists them"
                        )?;
                    }
                }
                said_gone = false;
                out.flush()?;
                continue;
            }
            if kind == "lagged" {
                continue;
            }
            if id.is_some() {
                last = id;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let picked = args.target.as_deref().is_none_or(|t| v["target"] == t)
                && args.kind.as_deref().is_none_or(|k| v["kind"] == k);
            if picked {
                writeln!(out, "{}", shown(args, &v))?;
                out.flush()?;
            }
        }
        if !said_gone {
            writeln!(out, "-- the stream from {addr} ended; reconnecting")?;
            out.flush()?;
            said_gone = true;
        }
        std::thread::sleep(RECONNECT);
    }
}

/// An event as `--follow` prints it: a line, or with `--json` one JSON
/// object a line.
fn shown(args: &EventArgs, e: &Value) -> String {
    if args.api.json {
        e.to_string()
    } else {
        line(e)
    }
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
