//! The HTTP server: HTTP/1.1 with a bound on connections and on how long a
//! client may take to send its request head, so that idle or slow
//! connections cannot starve `/livez` and `/health`.
//!
//! A connection past the bound is closed at once (counted, logged once per
//! burst) rather than left in the kernel's backlog; one that sends no
//! complete head within [`HEADER_TIMEOUT`], also between requests on a
//! kept-alive connection, is closed. No route reads a request body.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client that has not sent a whole request head by then is dropped.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head may be at most this large.
const MAX_HEAD: usize = 64 * 1024;
/// Connections served at once, at most; fewer when the file limit is low.
pub const MAX_CONNECTIONS: usize = 8192;
/// File descriptors kept for everything but connections.
const RESERVED_FDS: u64 = 256;
/// How long open connections get to finish at shutdown.
const GRACE: Duration = Duration::from_secs(5);

/// Raises the soft limit on open files to the hard one and returns how
/// many connections may be open at once under it.
pub fn connection_limit() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    };
    let room = soft.saturating_sub(RESERVED_FDS).max(16);
    usize::try_from(room)
        .unwrap_or(MAX_CONNECTIONS)
        .min(MAX_CONNECTIONS)
}

/// Serves `app` on `listener` until `stop`, then gives open connections
/// five seconds to finish.
pub async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let limit = connection_limit();
    let slots = Arc::new(Semaphore::new(limit));
    let connections = TaskTracker::new();
    let mut shed_in_burst = 0u64;
    tracing::debug!(max_connections = limit, "API connections bounded");
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "the API cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if shed_in_burst == 0 {
                tracing::warn!(
                    max_connections = limit,
                    "the API has {limit} connections open; closing new ones until some end"
                );
            }
            shed_in_burst += 1;
            drop(stream);
            continue;
        };
        if shed_in_burst > 0 && slots.available_permits() > limit / 2 {
            tracing::info!(closed = shed_in_burst, "the API accepts connections again");
            shed_in_burst = 0;
        }
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(GRACE, connection).await;
                }
            }
            drop(slot);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(GRACE, connections.wait()).await;
}
