//! `GET /api/v1/targets` and `/api/v1/targets/{name}`: every target with
//! what is known of it, and one in detail (its probes, ladder, unit or
//! process, last action and latest incidents); `GET /readyz`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::error::Segments;
use super::views::{self, Status};
use super::{ApiError, ApiState};
use crate::alert::task::Request;
use crate::status::rfc3339;

/// Incidents one target's detail lists, newest first.
const LATEST_INCIDENTS: usize = 5;

pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let snapshot = state.snapshot.borrow();
    Json(views::targets(&snapshot)).into_response()
}

/// One probe of a target as its detail shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProbeReport<'a> {
    name: &'a str,
    /// After hysteresis: `passing`, `failing` or `unknown`.
    health: crate::probe::ProbeHealth,
    /// The last run: `pass`, `warn` or `fail`.
    status: crate::probe::Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_unit: Option<&'static str>,
    output: &'a str,
    took_ms: u64,
    at: String,
}

/// `GET /api/v1/targets/{name}`; a name that is not a configured target
/// gets 404.
pub(super) async fn one(
    State(state): State<ApiState>,
    Segments(name): Segments<String>,
) -> Result<Response, ApiError> {
    let mut detail = {
        let s = state.snapshot.borrow();
        let Some(report) = views::targets(&s)
            .into_iter()
            .find(|r| r.target.name == name)
        else {
            return Err(crate::command::OperationError::UnknownTarget(name).into());
        };
        let check = views::target_status(report.target, &s);
        let prefix = format!("{name}:");
        let probes: Vec<ProbeReport> = s
            .probes
            .iter()
            .filter_map(|(key, p)| {
                Some(ProbeReport {
                    name: key.strip_prefix(&prefix)?,
                    health: p.health,
                    status: p.outcome.status,
                    observed_value: p.outcome.observed_value,
                    observed_unit: p.outcome.observed_unit,
                    output: &p.outcome.output,
                    took_ms: p.outcome.took_ms,
                    at: rfc3339(p.at),
                })
            })
            .collect();
        let mut v = serde_json::to_value(&report).map_err(|e| ApiError::Store(e.to_string()))?;
        v["status"] = json!(check.0);
        v["state"] = json!(check.1);
        v["since"] = json!(check.2);
        v["output"] = json!(check.3);
        v["lastAction"] = json!(s.last_actions.get(&name));
        v["probes"] = json!(probes);
        v
    };
    // Incidents are the alert task's; without it, the rest still answers.
    let target = Some(name.clone());
    detail["incidents"] = match super::ask(&state.alerts.requests, |r| {
        Request::Incidents(target, LATEST_INCIDENTS, r)
    })
    .await
    {
        Ok(Ok(list)) => json!(list),
        Ok(Err(why)) => json!({ "unavailable": why }),
        Err(_) => json!({ "unavailable": "the alert engine is stopping" }),
    };
    Ok(Json(detail).into_response())
}

/// `GET /readyz`: ready once the configuration is loaded, the core loop
/// goes round and, with unit targets, systemd is connected.
pub(super) async fn ready(State(state): State<ApiState>) -> Response {
    let s = state.snapshot.borrow();
    let (age, stale) = views::loop_age(&s, Instant::now());
    let mut problems = Vec::new();
    if stale {
        problems.push(format!(
            "the core loop has not gone round for {:.1}s",
            age.as_secs_f64()
        ));
    }
    if let Some(bus) = &s.supervisor
        && !bus.connected
    {
        problems.push(format!(
            "not connected to systemd on the {} since {}",
            bus.bus,
            rfc3339(bus.since)
        ));
    }
    let (code, status, output) = if problems.is_empty() {
        (
            StatusCode::OK,
            Status::Pass,
            format!(
                "configuration generation {} loaded, {} target(s) supervised",
                s.config.generation,
                s.config.targets.len()
            ),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Status::Fail,
            problems.join("; "),
        )
    };
    super::health_response(code, &json!({ "status": status, "output": output }))
}
