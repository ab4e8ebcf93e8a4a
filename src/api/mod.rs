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
pub mod dashboard;
pub mod diagnostics;
mod error;
mod events;
mod series;
pub mod serve;
mod stream;
mod targets;
pub mod views;

use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
    /// The latest `/health` rendered, reused until anything in it changes.
    pub health: HealthCache,
    /// The platform's monitoring push, when `[platform] monitoring-url` is set.
    pub push: Option<watch::Receiver<crate::platform::push::PushStatus>>,
}

/// How long a rendered `/health` is reused at most, when nothing in the
/// snapshot or the open alerts changed meanwhile (only the core loop's age
/// and the check times move): well under the `max-age=1` it is sent with.
const HEALTH_REUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The latest `/health` rendered and what it was rendered from.
#[derive(Clone, Default)]
pub struct HealthCache(std::sync::Arc<std::sync::Mutex<Option<RenderedHealth>>>);

struct RenderedHealth {
    at: Instant,
    /// Receivers that saw the values rendered: `has_changed` says whether
    /// those are still the latest.
    snapshot: watch::Receiver<Snapshot>,
    alerts: watch::Receiver<std::sync::Arc<crate::alert::task::OpenByTarget>>,
    code: StatusCode,
    body: axum::body::Bytes,
}

impl RenderedHealth {
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < HEALTH_REUSE
            && !self.snapshot.has_changed().unwrap_or(true)
            && !self.alerts.has_changed().unwrap_or(true)
    }
}

/// Declares every route once: the router is built from this list, and
/// [`ROUTES`] names them for `openapi.json`'s test and the token test.
macro_rules! routes {
    ($( $method:ident $path:literal => $handler:expr ),* $(,)?) => {
        /// Every route as (method, path), in the router's words.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn add_routes(router: Router<ApiState>) -> Router<ApiState> {
            router$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

routes! {
    get "/" => dashboard::page,
    get "/assets/{file}" => dashboard::asset,
    get "/api/v1/dashboard" => dashboard::view,
    get "/livez" => livez,
    get "/readyz" => targets::ready,
    get "/health" => health,
    get "/api/v1/health" => health_document,
    get "/metrics" => metrics,
    get "/api/v1/targets" => targets::list,
    get "/api/v1/targets/{name}" => targets::one,
    get "/api/v1/events" => events::list,
    get "/api/v1/stream" => stream::follow,
    post "/api/v1/ingest" => series::push,
    get "/api/v1/query" => series::query,
    get "/api/v1/series" => series::list,
    post "/api/v1/targets/{name}/restart" => control::restart,
    post "/api/v1/targets/{name}/reset" => control::reset,
    post "/api/v1/targets/{name}/steps/{step}" => control::run_step,
    post "/api/v1/targets/{name}/pause" => control::pause,
    post "/api/v1/targets/{name}/resume" => control::resume,
    post "/api/v1/reload" => control::reload,
    get "/api/v1/alerts" => alerts::list,
    get "/api/v1/alerts/{fingerprint}" => alerts::one,
    post "/api/v1/alerts/{fingerprint}/ack" => alerts::ack,
    post "/api/v1/alerts/{fingerprint}/unack" => alerts::unack,
    get "/api/v1/silences" => alerts::silences,
    post "/api/v1/silences" => alerts::silence,
    delete "/api/v1/silences/{id}" => alerts::expire,
    get "/api/v1/maintenance" => alerts::windows,
    post "/api/v1/maintenance" => alerts::maintain,
    delete "/api/v1/maintenance/{id}" => alerts::end_window,
    get "/api/v1/notifications" => alerts::notifications,
    get "/api/v1/incidents" => alerts::incidents,
    get "/api/v1/incidents/{id}" => alerts::incident,
    get "/api/v1/health-metrics" => health_metrics,
    get "/api/v1/diagnostics" => diagnostics::list,
    get "/api/v1/diagnostics/{name}" => diagnostics::one,
    get "/api/v1/openapi.json" => openapi,
}

/// `GET /api/v1/health-metrics`: the figures the edge client puts in its
/// heartbeat's `health_metrics`, from the collectors' latest values.
async fn health_metrics(State(state): State<ApiState>) -> Response {
    let latest = state.metrics.latest.borrow().clone();
    let body = crate::platform::documents::health_metrics(&crate::platform::machine(&latest));
    axum::Json(body).into_response()
}

/// The dashboard's address for links in hooks and messages, when it is
/// served: the listener's, with this machine's name for an unspecified
/// address (`0.0.0.0` is not a place a link can go).
pub fn dashboard_url(config: &crate::config::Config) -> Option<String> {
    if !config.api.dashboard {
        return None;
    }
    let listen = config.api.listen;
    let host = if listen.ip().is_unspecified() {
        config.identity.name.clone()
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    Some(format!("http://{host}:{}/", listen.port()))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The API's OpenAPI 3.1 document, served at `/api/v1/openapi.json`; a
/// test keeps it in step with [`ROUTES`].
pub const OPENAPI: &str = include_str!("openapi.json");

/// The largest request body taken (a push of series is the largest);
/// a request that announces more is answered 413 before it is read.
pub const MAX_BODY: usize = 1024 * 1024;

/// All routes, behind the [`access`] guard; a path or method no route
/// takes, and a body too large, get the one error shape.
pub fn router(state: ApiState) -> Router {
    add_routes(Router::new())
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            access::guard,
        ))
        .with_state(state)
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
    let mut response = match wants_gzip(&headers).then(|| gzip(body.as_bytes(), false)) {
        Some(Some(bytes)) => gzipped_response(bytes),
        _ => body.into_response(),
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Whether a request's `Accept-Encoding` takes gzip.
fn wants_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip)
}

/// `bytes` gzipped, fast or as small as it gets; `None` if that failed.
fn gzip(bytes: &[u8], smallest: bool) -> Option<Vec<u8>> {
    let level = if smallest {
        flate2::Compression::best()
    } else {
        flate2::Compression::fast()
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    std::io::Write::write_all(&mut encoder, bytes).ok()?;
    encoder.finish().ok()
}

/// A gzipped body, its `Content-Encoding` said.
fn gzipped_response(bytes: impl IntoResponse) -> Response {
    let mut r = bytes.into_response();
    r.headers_mut()
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    r
}

/// Whether an `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut bits = part.split(';').map(str::trim);
        let coding = bits.next().unwrap_or("");
        let refused = bits.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// What `/health` reads: cloned per request, so kept small.
#[derive(Clone)]
struct HealthState {
    snapshot: watch::Receiver<Snapshot>,
    alerts: watch::Receiver<std::sync::Arc<crate::alert::task::OpenByTarget>>,
    push: Option<watch::Receiver<crate::platform::push::PushStatus>>,
    cache: HealthCache,
}

impl axum::extract::FromRef<ApiState> for HealthState {
    fn from_ref(s: &ApiState) -> Self {
        HealthState {
            snapshot: s.snapshot.clone(),
            alerts: s.alerts.open.clone(),
            push: s.push.clone(),
            cache: s.health.clone(),
        }
    }
}

async fn health(State(state): State<HealthState>) -> Response {
    let now = Instant::now();
    let mut cache = state.cache.0.lock().unwrap_or_else(|e| e.into_inner());
    let rendered = match cache.as_ref() {
        Some(r) if r.fresh(now) => r,
        _ => {
            let (mut snapshot, mut alerts) = (state.snapshot, state.alerts);
            let open = alerts.borrow_and_update().clone();
            let (code, body) = {
                let s = snapshot.borrow_and_update();
                let push = state.push.as_ref().map(|p| p.borrow().clone());
                let report =
                    HealthReport::new(&s, &open, now, SystemTime::now()).with_push(push.as_ref());
                let code = if report.status == Status::Fail {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                (code, render_health(&report))
            };
            cache.insert(RenderedHealth {
                at: now,
                snapshot,
                alerts,
                code,
                body: body.into(),
            })
        }
    };
    health_bytes(rendered.code, rendered.body.clone())
}

/// `GET /api/v1/health`: the `/health` document answered 200 whatever its
/// status (the dashboard reads it: a browser logs every 503 as an error).
async fn health_document(state: State<HealthState>) -> Response {
    let mut response = health(state).await;
    *response.status_mut() = StatusCode::OK;
    response
}

/// Sends a request to a task (the recorder, the alert engine) and waits
/// for its answer; a task that is gone means the daemon is stopping.
pub(crate) async fn ask<R, T>(
    tasks: &mpsc::Sender<R>,
    request: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> R,
) -> Result<T, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let asked = async {
        tasks
            .send(request(reply))
            .await
            .map_err(|_| ApiError::Unavailable)?;
        answer.await.map_err(|_| ApiError::Unavailable)
    };
    tokio::time::timeout(ASK_TIMEOUT, asked)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Busy(format!(
                "the daemon's task did not answer within {}s; try again",
                ASK_TIMEOUT.as_secs()
            )))
        })
}

/// How long a read waits for the task that holds what it reads.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn render_health(body: &impl Serialize) -> String {
    serde_json::to_string(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render a health document");
        r#"{"status":"fail","output":"the health document cannot be rendered"}"#.to_owned()
    })
}

fn health_response(code: StatusCode, body: &impl Serialize) -> Response {
    health_bytes(code, render_health(body).into())
}

fn health_bytes(code: StatusCode, body: axum::body::Bytes) -> Response {
    let mut response = (code, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
    response
}

#[cfg(test)]
mod tests;
