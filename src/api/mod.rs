//! The HTTP API: `/livez` for liveness and `/health` for the platform, in
//! the health-check draft's `application/health+json` (`status` pass, warn
//! or fail; a `checks` map with `observedValue`, `observedUnit`, `time`,
//! `output`); `/metrics` for Prometheus; `/api/v1/*` to read targets and to
//! command the core loop (`control`). Handlers read the core loop's
//! [`Snapshot`] through typed [`views`] and never block it. Every request
//! passes the [`access`] guard first; [`serve()`] bounds connections.

pub mod access;
mod alerts;
mod control;
mod error;
mod events;
mod series;
pub mod serve;
pub mod views;

use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use access::Access;
pub use error::ApiError;
pub use serve::serve;

use crate::command::Command;
use crate::event::Counters;
use crate::status::Snapshot;
use views::{HealthReport, Status};

/// The health format's media type.
pub const HEALTH_JSON: &str = "application/health+json";

/// What handlers read.
#[derive(Clone)]
pub struct ApiState {
    /// The core loop's latest snapshot.
    pub snapshot: watch::Receiver<Snapshot>,
    /// The core loop's counters.
    pub counters: watch::Receiver<Counters>,
    /// Commands to the core loop.
    pub commands: mpsc::Sender<Command>,
    /// Who may call what (the token, `protect-reads`); replaced at a reload.
    pub access: watch::Receiver<Access>,
    /// The metrics recorder: pushes, queries, the latest values.
    pub metrics: crate::metrics::recorder::Handle,
    pub alerts: crate::alert::task::Handle,
    /// The state store, for the event log; `None` when it did not open.
    pub store: Option<crate::store::StoreThread>,
}

/// All routes, behind the [`access`] guard.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/ingest", post(series::push))
        .route("/api/v1/query", get(series::query))
        .route("/api/v1/series", get(series::list))
        .route("/api/v1/targets/{name}/restart", post(control::restart))
        .route("/api/v1/targets/{name}/reset", post(control::reset))
        .route(
            "/api/v1/targets/{name}/steps/{step}",
            post(control::run_step),
        )
        .route("/api/v1/targets/{name}/pause", post(control::pause))
        .route("/api/v1/targets/{name}/resume", post(control::resume))
        .route("/api/v1/reload", post(control::reload))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{fingerprint}", get(alerts::one))
        .route("/api/v1/alerts/{fingerprint}/ack", post(alerts::ack))
        .route("/api/v1/alerts/{fingerprint}/unack", post(alerts::unack))
        .route(
            "/api/v1/silences",
            get(alerts::silences).post(alerts::silence),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(alerts::expire),
        )
        .route(
            "/api/v1/maintenance",
            get(alerts::windows).post(alerts::maintain),
        )
        .route(
            "/api/v1/maintenance/{id}",
            axum::routing::delete(alerts::end_window),
        )
        .route("/api/v1/notifications", get(alerts::notifications))
        .route("/api/v1/incidents", get(alerts::incidents))
        .route("/api/v1/incidents/{id}", get(alerts::incident))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .with_state(state)
}

async fn targets(State(state): State<ApiState>) -> Response {
    let snapshot = state.snapshot.borrow();
    axum::Json(views::targets(&snapshot)).into_response()
}

/// The liveness answer: whether the core loop goes round.
#[derive(Serialize)]
struct Liveness {
    status: Status,
    output: String,
}

async fn livez(State(state): State<ApiState>) -> Response {
    let (age, stale) = views::loop_age(&state.snapshot.borrow(), Instant::now());
    let (code, status) = if stale {
        (StatusCode::SERVICE_UNAVAILABLE, Status::Fail)
    } else {
        (StatusCode::OK, Status::Pass)
    };
    let body = Liveness {
        status,
        output: format!("core loop went round {:.1}s ago", age.as_secs_f64()),
    };
    health_response(code, &body)
}

/// `/metrics`: OpenMetrics for a reader that asks for it (Prometheus
/// does), Prometheus' older text format otherwise.
async fn metrics(State(state): State<ApiState>, headers: axum::http::HeaderMap) -> Response {
    use crate::metrics::exposition::{OPENMETRICS, TEXT, to_text_format};
    let latest = state.metrics.latest.borrow().clone();
    let text = crate::metrics::render(&state.snapshot.borrow(), &state.counters.borrow(), &latest);
    let open = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let (body, media) = if open {
        (text, OPENMETRICS)
    } else {
        (to_text_format(&text), TEXT)
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

async fn health(State(state): State<ApiState>) -> Response {
    let snapshot = state.snapshot.borrow();
    let report = HealthReport::new(&snapshot, Instant::now(), SystemTime::now());
    let code = if report.status == Status::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    health_response(code, &report)
}

/// Sends a request to a task (the recorder, the alert engine) and waits
/// for its answer; a task that is gone means the daemon is stopping.
pub(crate) async fn ask<R, T>(
    tasks: &mpsc::Sender<R>,
    request: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> R,
) -> Result<T, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    tasks
        .send(request(reply))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    answer.await.map_err(|_| ApiError::Unavailable)
}

fn health_response(code: StatusCode, body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render a health document");
        r#"{"status":"fail","output":"the health document cannot be rendered"}"#.to_owned()
    });
    let mut response = (code, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
    response
}

#[cfg(test)]
mod tests;
