//! The HTTP API: `/livez` for liveness and `/health` for the platform, in
//! the health-check draft's `application/health+json` (`status` pass, warn
//! or fail; a `checks` map with `observedValue`, `observedUnit`, `time`,
//! `output`). It reads the core loop's [`Snapshot`] and never blocks it.

use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::daemon::{Command, Operation, OperationError, ReloadOutcome};

use crate::status::{Snapshot, rfc3339};

/// The health format's media type.
pub const HEALTH_JSON: &str = "application/health+json";

/// What handlers read.
#[derive(Clone)]
pub struct ApiState {
    /// The core loop's latest snapshot.
    pub snapshot: watch::Receiver<Snapshot>,
    /// Commands to the core loop.
    pub commands: mpsc::Sender<Command>,
    /// `[api] token-file`: changing calls need its token as a bearer token.
    pub token_file: Option<PathBuf>,
    /// Without a token file, changing calls are allowed only when the API
    /// listens on loopback (anyone who can reach it is on the machine).
    pub open_without_token: bool,
}

/// All routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/{name}/restart", post(restart))
        .route("/api/v1/targets/{name}/reset", post(reset))
        .route("/api/v1/targets/{name}/steps/{step}", post(run_step))
        .route("/api/v1/reload", post(reload))
        .with_state(state)
}

/// Every error the API answers with: a status and a JSON body
/// `{"error": kind, "message": …}`. Internal details are logged, not sent.
#[derive(Debug)]
pub enum ApiError {
    /// No or a wrong bearer token.
    Unauthorized,
    /// Changing calls are closed (no token file, API beyond loopback).
    Forbidden(String),
    /// No such target or step.
    NotFound(String),
    /// The request cannot apply to this target.
    Conflict(String),
    /// The daemon is stopping.
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, kind, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token from [api] token-file is required".to_owned(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not-found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "not-applicable", m),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "the watchdog is stopping".to_owned(),
            ),
        };
        (
            code,
            axum::Json(json!({ "error": kind, "message": message })),
        )
            .into_response()
    }
}

impl From<OperationError> for ApiError {
    fn from(e: OperationError) -> Self {
        match e {
            OperationError::UnknownTarget(_) | OperationError::NoSuchStep { .. } => {
                ApiError::NotFound(e.to_string())
            }
            OperationError::NotApplicable(m) => ApiError::Conflict(m),
            OperationError::Stopping => ApiError::Unavailable,
        }
    }
}

/// Checks the bearer token of a changing call. The token file is read on
/// each call, so a rotated token applies at once.
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(file) = &state.token_file else {
        return if state.open_without_token {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "changing calls need [api] token-file when the API listens beyond loopback".into(),
            ))
        };
    };
    let expected = match std::fs::read_to_string(file) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        Ok(_) | Err(_) => {
            tracing::error!(file = %file.display(), "cannot read the API token file; refusing changing calls");
            return Err(ApiError::Forbidden(
                "the API token cannot be read; see the watchdog's log".into(),
            ));
        }
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Compare in constant time: the token guards restarts and reboots.
    match given {
        Some(g)
            if g.len() == expected.len()
                && g.bytes()
                    .zip(expected.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0 =>
        {
            Ok(())
        }
        _ => Err(ApiError::Unauthorized),
    }
}

async fn operate(
    state: &ApiState,
    target: String,
    operation: Operation,
) -> Result<Response, ApiError> {
    let (reply, answer) = oneshot::channel();
    state
        .commands
        .send(Command::Operate {
            target,
            operation,
            reply,
        })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let done = answer.await.map_err(|_| ApiError::Unavailable)??;
    let code = if done.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((
        code,
        axum::Json(json!({
            "ok": done.ok,
            "detail": done.detail,
            "tookMs": done.took.as_millis() as u64,
        })),
    )
        .into_response())
}

async fn restart(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    operate(&state, name, Operation::Restart).await
}

async fn reset(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    operate(&state, name, Operation::Reset).await
}

async fn run_step(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((name, step)): Path<(String, usize)>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    operate(&state, name, Operation::RunStep(step)).await
}

async fn reload(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let (reply, answer) = oneshot::channel();
    state
        .commands
        .send(Command::Reload { reply })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let outcome = answer.await.map_err(|_| ApiError::Unavailable)?;
    Ok(match outcome {
        ReloadOutcome::Applied {
            generation,
            targets,
        } => (
            StatusCode::OK,
            axum::Json(json!({ "applied": true, "generation": generation, "targets": targets })),
        )
            .into_response(),
        ReloadOutcome::Refused { problems } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "applied": false, "problems": problems })),
        )
            .into_response(),
    })
}

async fn targets(State(state): State<ApiState>) -> Response {
    let snapshot = state.snapshot.borrow().clone();
    let (body, _) = health_body(&snapshot, Instant::now(), SystemTime::now());
    axum::Json(body["targets"].clone()).into_response()
}

/// The core loop counts as wedged when it has not gone round for this many ticks.
const STALE_TICKS: u32 = 5;

fn loop_age(s: &Snapshot, now: Instant) -> (Duration, bool) {
    let age = now.saturating_duration_since(s.last_tick);
    (age, age > s.tick_every * STALE_TICKS)
}

async fn livez(State(state): State<ApiState>) -> Response {
    let snapshot = state.snapshot.borrow().clone();
    let (age, stale) = loop_age(&snapshot, Instant::now());
    let (code, status) = if stale {
        (StatusCode::SERVICE_UNAVAILABLE, "fail")
    } else {
        (StatusCode::OK, "pass")
    };
    let body = json!({
        "status": status,
        "output": format!("core loop went round {:.1}s ago", age.as_secs_f64()),
    });
    health_response(code, body)
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let text = crate::metrics::render(&state.snapshot.borrow());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn health(State(state): State<ApiState>) -> Response {
    let snapshot = state.snapshot.borrow().clone();
    let (body, code) = health_body(&snapshot, Instant::now(), SystemTime::now());
    health_response(code, body)
}

fn health_response(code: StatusCode, body: Value) -> Response {
    let mut response = (code, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
    response
}

/// The `/health` document and its status code (503 when failing).
pub fn health_body(s: &Snapshot, now: Instant, wall: SystemTime) -> (Value, StatusCode) {
    let (age, stale) = loop_age(s, now);
    let time = rfc3339(wall);
    let config_status = if s.rejected_reload.is_some() || s.config.warnings > 0 {
        "warn"
    } else {
        "pass"
    };
    let mut config_output = format!(
        "generation {} from {} and {}, applied {}",
        s.config.generation,
        s.config.source,
        s.config.policies,
        rfc3339(s.config.loaded_at)
    );
    if s.config.warnings > 0 {
        config_output.push_str(&format!("; {} warning(s) at load", s.config.warnings));
    }
    if let Some(r) = &s.rejected_reload {
        config_output.push_str(&format!(
            "; reload at {} refused with {} error(s), running configuration kept: {}",
            rfc3339(r.at),
            r.errors,
            r.problems.join("; ")
        ));
    }
    let loop_status = if stale { "fail" } else { "pass" };
    let mut checks = serde_json::Map::new();
    checks.insert(
        "config:targets".into(),
        json!([{
            "componentType": "component",
            "status": config_status,
            "observedValue": s.config.targets.len(),
            "observedUnit": "targets",
            "time": time,
            "output": config_output,
        }]),
    );
    checks.insert(
        "core-loop:age".into(),
        json!([{
            "componentType": "component",
            "status": loop_status,
            "observedValue": (age.as_secs_f64() * 1000.0).round() / 1000.0,
            "observedUnit": "s",
            "time": time,
        }]),
    );
    let mut statuses = vec![config_status, loop_status];
    if let Some(bus) = &s.supervisor {
        // Not connected: the daemon is up but cannot see or heal units.
        let status = if bus.connected { "pass" } else { "warn" };
        statuses.push(status);
        let mut output = if bus.connected {
            format!(
                "connected to systemd on the {} since {}",
                bus.bus,
                rfc3339(bus.since)
            )
        } else {
            format!(
                "not connected to systemd on the {} since {}; retrying",
                bus.bus,
                rfc3339(bus.since)
            )
        };
        if let Some(e) = &bus.last_error {
            output.push_str(&format!("; last error: {e}"));
        }
        checks.insert(
            "systemd:connection".into(),
            json!([{
                "componentType": "system",
                "status": status,
                "observedValue": bus.connected,
                "time": time,
                "output": output,
                "reconnects": bus.reconnects,
            }]),
        );
    }
    for (name, probe) in &s.probes {
        let status = match (probe.health, probe.outcome.status) {
            (crate::probe::ProbeHealth::Failing, _) => "fail",
            (_, crate::probe::Status::Pass) => "pass",
            _ => "warn",
        };
        // A failing probe degrades the machine; the watchdog itself stays up.
        statuses.push(if status == "pass" { "pass" } else { "warn" });
        checks.insert(
            name.clone(),
            json!([{
                "componentType": "component",
                "status": status,
                "observedValue": probe.outcome.observed_value,
                "observedUnit": probe.outcome.observed_unit,
                "time": rfc3339(probe.at),
                "output": probe.outcome.output,
            }]),
        );
    }
    if let Some(mode) = &s.safe_mode {
        statuses.push("warn");
        checks.insert(
            "recovery:safe-mode".into(),
            json!([{
                "componentType": "component",
                "status": "warn",
                "observedValue": true,
                "time": time,
                "output": format!("safe mode: no automatic reboots; {}", mode.reason),
            }]),
        );
    }
    let status = ["fail", "warn"]
        .into_iter()
        .find(|worst| statuses.contains(worst))
        .unwrap_or("pass");
    let targets: Vec<Value> = s
        .config
        .targets
        .iter()
        .map(|t| {
            let mut value = serde_json::to_value(t).unwrap_or(Value::Null);
            if let (Some(unit), Some(map)) = (&t.unit, value.as_object_mut())
                && let Some(state) = s.units.get(unit)
            {
                map.insert(
                    "unitState".into(),
                    serde_json::to_value(state).unwrap_or(Value::Null),
                );
            }
            if let (Some(state), Some(map)) = (s.processes.get(&t.name), value.as_object_mut()) {
                map.insert(
                    "processState".into(),
                    serde_json::to_value(state).unwrap_or(Value::Null),
                );
            }
            if let (Some(ladder), Some(map)) = (s.ladders.get(&t.name), value.as_object_mut()) {
                map.insert(
                    "recovery".into(),
                    serde_json::to_value(ladder).unwrap_or(Value::Null),
                );
            }
            if let (Some(unit), Some(map)) = (&t.unit, value.as_object_mut())
                && let Some(accounting) = s.accounting.get(unit)
            {
                map.insert(
                    "accounting".into(),
                    serde_json::to_value(accounting).unwrap_or(Value::Null),
                );
            }
            value
        })
        .collect();
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION").split('.').next().unwrap_or("0"),
        "releaseId": env!("CARGO_PKG_VERSION"),
        "serviceId": s.identity.hardware_id.clone().unwrap_or_else(|| s.identity.name.clone()),
        "description": format!("rvm-watchdog on {}", s.identity.name),
        "identity": s.identity,
        "checks": checks,
        "targets": targets,
        "stateDir": s.state_dir,
        "log": s.log_destination,
        "startedAt": rfc3339(s.started_at),
        "previousBoot": s.previous_boot.as_ref().map(describe_boot),
    });
    let code = if status == "fail" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (body, code)
}

/// How the previous boot ended, for `/health`.
fn describe_boot(boot: &crate::store::PreviousBoot) -> Value {
    use crate::store::BootEnd;
    let (ended, detail) = match &boot.ended {
        BootEnd::WatchdogReboot { target, reason, at } => (
            "watchdog-reboot",
            json!({ "target": target, "reason": reason, "at": rfc3339(*at) }),
        ),
        BootEnd::CleanShutdown { at } => ("clean-shutdown", json!({ "at": rfc3339(*at) })),
        BootEnd::Unexpected => ("unexpected", Value::Null),
    };
    json!({
        "bootId": boot.boot_id,
        "startedAt": rfc3339(boot.started_at),
        "ended": ended,
        "detail": detail,
    })
}
