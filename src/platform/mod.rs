//! The MyRVM platform's side: the five endpoints the earlier platform
//! generation's maintenance page polls, in the shapes it reads
//! (../shared/domain/MYRVM.md), served on a listener of their own
//! (`[platform] legacy-endpoints`, `legacy-listen`).
//!
//! A task of its own owns what they say: every [`REFRESH`] it gathers the
//! [`documents::Facts`] from the core loop's snapshot, the open alerts and
//! the recorder's latest values, and renders the five answers; every
//! [`SUMMARY_EVERY`] it asks the history for the daily, monthly and yearly
//! figures. A request is answered from what was rendered last: it never
//! waits on a probe, a query or a lock held by anyone else, well inside the
//! platform's 5 s timeout. The answers are read-only, carry no secret, and
//! say `Access-Control-Allow-Origin: *`, as the platform's pages expect.

pub mod documents;
mod facts;
pub mod push;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::alert::task::OpenByTarget;
use crate::config::Config;
use crate::metrics::recorder::{Latest, Request};
use crate::status::Snapshot;

pub use facts::{Host, Machine, machine, read_host, summary};

/// How often the documents are rendered again.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How often the history is summed up again.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(300);

/// How often the recent alerts are read again from the alert engine.
pub const ALERTS_EVERY: Duration = Duration::from_secs(10);

/// What the task reads.
pub struct Start {
    /// The configuration (identity, `[platform]`, `[daemon] host-root`).
    pub config: Config,
    /// The core loop's snapshot.
    pub snapshot: watch::Receiver<Snapshot>,
    /// The open alerts, by target.
    pub alerts: watch::Receiver<Arc<OpenByTarget>>,
    /// The alert engine, for the recent alerts the page lists.
    pub alert_requests: mpsc::Sender<crate::alert::task::Request>,
    /// The recorder's latest values.
    pub latest: watch::Receiver<Arc<Latest>>,
    /// The recorder, for the history's figures.
    pub metrics: mpsc::Sender<Request>,
    /// Ends the task and the listener.
    pub stop: CancellationToken,
}

/// The five answers as rendered last.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub health: Bytes,
    pub status: Bytes,
    pub hardware: Bytes,
    pub monitoring_status: Bytes,
    pub monitoring_summary: Bytes,
}

impl Rendered {
    fn of(f: &documents::Facts) -> Rendered {
        let bytes = |v: serde_json::Value| Bytes::from(v.to_string());
        Rendered {
            health: bytes(documents::health(f)),
            status: bytes(documents::status(f)),
            hardware: bytes(documents::hardware(f)),
            monitoring_status: bytes(documents::monitoring_status(f)),
            monitoring_summary: bytes(documents::monitoring_summary(f)),
        }
    }
}

/// The routes, answered from `rendered`.
pub fn router(rendered: watch::Receiver<Arc<Rendered>>) -> Router {
    fn answer(body: &Bytes) -> Response {
        let mut response = (StatusCode::OK, body.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
    type R = State<watch::Receiver<Arc<Rendered>>>;
    Router::new()
        .route(
            "/api/health",
            axum::routing::get(|State(r): R| async move { answer(&r.borrow().health) }),
        )
        .route(
            "/api/status",
            axum::routing::get(|State(r): R| async move { answer(&r.borrow().status) }),
        )
        .route(
            "/api/hardware",
            axum::routing::get(|State(r): R| async move { answer(&r.borrow().hardware) }),
        )
        .route(
            "/api/monitoring/status",
            axum::routing::get(|State(r): R| async move { answer(&r.borrow().monitoring_status) }),
        )
        .route(
            "/api/monitoring/summary",
            axum::routing::get(|State(r): R| async move { answer(&r.borrow().monitoring_summary) }),
        )
        .with_state(rendered)
}

/// Binds `[platform] legacy-listen` and serves the endpoints, when
/// `[platform] legacy-endpoints` is on. A listener that cannot be bound
/// (another service holds the port) is logged and the rest of the watchdog
/// goes on without it.
pub async fn start(start: Start) {
    let Some(platform) = start.config.platform.clone().filter(|p| p.legacy_endpoints) else {
        return;
    };
    let listener = match tokio::net::TcpListener::bind(platform.legacy_listen).await {
        Ok(l) => l,
        Err(e) => {
            warn!(
                address = %platform.legacy_listen,
                error = %e,
                "cannot listen on {} for the platform's endpoints: {e} (set [platform] legacy-listen); they are not served",
                platform.legacy_listen
            );
            return;
        }
    };
    let listen = listener.local_addr().ok();
    let stop = start.stop.clone();
    let rendered = spawn(start).await;
    info!(
        address = %listen.map(|a| a.to_string()).unwrap_or_default(),
        "serving the platform's endpoints (/api/health, /api/status, /api/hardware, /api/monitoring/*)"
    );
    tokio::spawn(crate::api::serve(listener, router(rendered), stop));
}

/// Starts the task that renders the answers; returns them, rendered once.
pub async fn spawn(start: Start) -> watch::Receiver<Arc<Rendered>> {
    let root = start.config.daemon.host_root.clone();
    let figures = start
        .config
        .platform
        .as_ref()
        .map(|p| p.figures.clone())
        .unwrap_or_default();
    let host = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || read_host(&root))
            .await
            .unwrap_or_default()
    };
    let mut task = Task {
        start,
        host,
        summary: documents::Summary::default(),
        recent: Vec::new(),
    };
    task.recent = facts::recent_alerts(&task.start.alert_requests).await;
    let (tx, rx) = watch::channel(Arc::new(Rendered::of(&task.facts())));
    tokio::spawn(async move {
        let mut refresh = tokio::time::interval(REFRESH);
        let mut summarise = tokio::time::interval(SUMMARY_EVERY);
        let mut hardware = tokio::time::interval(Duration::from_secs(600));
        hardware.tick().await;
        let mut alerts = tokio::time::interval(ALERTS_EVERY);
        alerts.tick().await;
        loop {
            tokio::select! {
                _ = task.start.stop.cancelled() => break,
                _ = summarise.tick() => {
                    let now = crate::metrics::collect::now_ms();
                    task.summary = summary(&task.start.metrics, &figures, now).await;
                }
                _ = hardware.tick() => {
                    let root = root.clone();
                    if let Ok(host) = tokio::task::spawn_blocking(move || read_host(&root)).await {
                        task.host = host;
                    }
                }
                _ = alerts.tick() => {
                    task.recent = facts::recent_alerts(&task.start.alert_requests).await;
                }
                _ = refresh.tick() => {}
            }
            let _ = tx.send(Arc::new(Rendered::of(&task.facts())));
        }
    });
    rx
}

/// The task's state.
struct Task {
    start: Start,
    host: Host,
    summary: documents::Summary,
    /// The alert engine's recent alerts: when, and a line.
    recent: Vec<(String, String)>,
}

impl Task {
    fn facts(&self) -> documents::Facts {
        let alerts = self.start.alerts.borrow().clone();
        let latest = self.start.latest.borrow().clone();
        let snapshot = self.start.snapshot.borrow();
        let mut f = facts::gather(&snapshot, &alerts, &latest, &self.host, &self.summary);
        f.alerts = self.recent.clone();
        f
    }
}

#[cfg(test)]
mod tests;
