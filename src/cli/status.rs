//! `rvm-watchdog status`: the machine at a glance, like `systemctl
//! status`: the daemon, systemd's connection, every target with its state
//! and since when, its last action and its open alerts, and failing probes.

use std::io::Write;

use serde_json::Value;

use super::{ApiArgs, reach, refusal, request_with, unreachable};

/// `status [--json]`: with `--json`, `/health` and the open alerts.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// How to reach the daemon.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Terminal colours, or none.
struct Paint(bool);

impl Paint {
    fn state(&self, state: &str, width: usize) -> String {
        let text = format!("{state:<width$}");
        if !self.0 {
            return text;
        }
        let code = match state {
            "healthy" | "pass" => "32",
            "failing" | "paused" | "warn" => "33",
            "gave-up" | "fail" => "31",
            _ => "0",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// A time as the table shows it: `14:41:30Z (4m ago)`, from RFC 3339.
fn since(text: Option<&str>) -> String {
    let Some(t) = text else {
        return "-".into();
    };
    let Ok(at) = humantime::parse_rfc3339_weak(t) else {
        return t.to_owned();
    };
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    super::alerts::when(Some(ms))
}

/// Prints the status. Ok(Some(true)) all well, Ok(Some(false)) something
/// is not, Ok(None) the daemon could not be asked (said why).
pub fn status(
    args: &StatusArgs,
    colour: bool,
    out: &mut impl Write,
) -> std::io::Result<Option<bool>> {
    let Some((addr, token)) = reach(&args.api, false, out)? else {
        return Ok(None);
    };
    let get = |path: &str| request_with(addr, "GET", path, token.as_deref(), None);
    let health = match get("/health") {
        Ok((code, body)) if code == 200 || code == 503 => {
            match serde_json::from_str::<Value>(&body) {
                Ok(v) => v,
                Err(e) => {
                    writeln!(
                        out,
                        "the watchdog at {addr} answered /health with no JSON: {e}"
                    )?;
                    return Ok(None);
                }
            }
        }
        Ok((code, body)) => {
            let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            writeln!(out, "{}", refusal(code, &value))?;
            return Ok(None);
        }
        Err(e) => {
            writeln!(out, "{}", unreachable(addr, &e))?;
            return Ok(None);
        }
    };
    let alerts = match get("/api/v1/alerts?state=open") {
        Ok((200, body)) => {
            serde_json::from_str::<Value>(&body).unwrap_or_default()["alerts"].clone()
        }
        _ => Value::Null,
    };
    let well = health["status"] == "pass";
    if args.api.json {
        let both = serde_json::json!({ "health": health, "alerts": alerts });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&both).unwrap_or_default()
        )?;
        return Ok(Some(well));
    }
    let paint = Paint(colour);
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("-").to_owned();
    let identity = &health["identity"];
    let mut who = text(identity, "name");
    if let Some(hw) = identity["hardwareId"].as_str() {
        who.push_str(&format!(" ({hw})"));
    }
    writeln!(
        out,
        "● rvm-watchdog {} on {who}: {}",
        text(&health, "releaseId"),
        paint.state(health["status"].as_str().unwrap_or("?"), 0)
    )?;
    writeln!(out, "  started {}", since(health["startedAt"].as_str()))?;
    let checks = &health["checks"];
    let first = |key: &str| checks[key].get(0).cloned().unwrap_or(Value::Null);
    for key in [
        "config:targets",
        "systemd:connection",
        "recovery:safe-mode",
        "recovery:reboot-budget",
    ] {
        let c = first(key);
        if c.is_object() {
            writeln!(
                out,
                "  {:<14} {}",
                key.split(':').nth(1).unwrap_or(key),
                text(&c, "output")
            )?;
        }
    }
    let open: Vec<Value> = alerts.as_array().cloned().unwrap_or_default();
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:<9} {:<28} {:<36} alerts",
        "TARGET", "STATE", "SINCE", "LAST ACTION"
    )?;
    let targets = health["targets"].as_array().cloned().unwrap_or_default();
    for t in &targets {
        let name = text(t, "name");
        let c = first(&format!("target:{name}"));
        let state = c["state"].as_str().unwrap_or("unknown");
        let action = match c["lastAction"].as_object() {
            Some(a) => format!(
                "{} {} ({}, {})",
                a.get("action").and_then(Value::as_str).unwrap_or("?"),
                a.get("result").and_then(Value::as_str).unwrap_or("?"),
                a.get("by").and_then(Value::as_str).unwrap_or("?"),
                a.get("at").and_then(Value::as_str).unwrap_or("?"),
            ),
            None => "-".into(),
        };
        let mine: Vec<String> = open
            .iter()
            .filter(|a| a["target"].as_str() == Some(name.as_str()))
            .map(|a| format!("{} {}", text(a, "name"), text(a, "state")))
            .collect();
        writeln!(
            out,
            "{:<20} {} {:<28} {:<36} {}",
            name,
            paint.state(state, 9),
            since(c["since"].as_str()),
            action,
            if mine.is_empty() {
                "-".into()
            } else {
                mine.join(", ")
            }
        )?;
        if state != "healthy" && state != "unknown" {
            writeln!(out, "{:<20} └ {}", "", text(&c, "output"))?;
        }
    }
    let failing: Vec<(&String, &Value)> = checks
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| {
                    !k.starts_with("target:")
                        && k.contains(':')
                        && ![
                            "config:targets",
                            "systemd:connection",
                            "recovery:safe-mode",
                            "recovery:reboot-budget",
                            "core-loop:age",
                        ]
                        .contains(&k.as_str())
                        && v[0]["status"] != "pass"
                })
                .collect()
        })
        .unwrap_or_default();
    if !failing.is_empty() {
        writeln!(out)?;
        writeln!(out, "probes not passing:")?;
        for (k, v) in failing {
            writeln!(
                out,
                "  {:<28} {} {}",
                k,
                paint.state(v[0]["status"].as_str().unwrap_or("?"), 4),
                text(&v[0], "output")
            )?;
        }
    }
    let other: Vec<&Value> = open.iter().filter(|a| a["target"].is_null()).collect();
    if !other.is_empty() {
        writeln!(out)?;
        writeln!(out, "alerts about the machine:")?;
        for a in other {
            writeln!(
                out,
                "  {} {} {}",
                text(a, "name"),
                text(a, "state"),
                text(a, "summary")
            )?;
        }
    }
    if alerts.is_null() {
        writeln!(out, "(open alerts could not be read)")?;
    }
    Ok(Some(well))
}
