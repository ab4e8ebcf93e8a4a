//! `GET /api/v1/stream`: Server-Sent Events of the event path, live.
//!
//! A client first gets a `stream` message saying whether it resumed (and
//! how many messages of current state or missed events follow), then the
//! events that still hold (each target's health, open incidents,
//! failing probes, safe mode, a lost bus), then every later event as it is
//! emitted. Each event's SSE `id` is `RUN-SEQ` (the daemon's start time and
//! the event's place in that run's stream); a client that reconnects with
//! `Last-Event-ID` gets every event it missed instead of the current state,
//! while the daemon still keeps them ([`crate::event::RECENT`]). A client
//! that falls too far behind is told (`lagged`) and its stream ends, so
//! that its reconnect resumes where it was.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as Message, KeepAlive, Sse};
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::events::EventView;
use super::{ApiError, ApiState};
use crate::command::Command;
use crate::event::Stamped;

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// This run of the daemon, as the first part of every event id.
fn run_of(state: &ApiState) -> u64 {
    state
        .snapshot
        .borrow()
        .started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The event a `Last-Event-ID` of this run names.
fn resume_point(headers: &HeaderMap, run: u64) -> Option<u64> {
    let id = headers.get("last-event-id")?.to_str().ok()?;
    let (r, seq) = id.trim().split_once('-')?;
    (r.parse::<u64>().ok()? == run)
        .then(|| seq.parse().ok())
        .flatten()
}

fn message(run: u64, e: &Stamped) -> Message {
    let data = serde_json::to_string(&EventView::live(e)).unwrap_or_else(|_| "{}".into());
    Message::default()
        .id(format!("{run}-{}", e.seq))
        .event(e.event.kind())
        .data(data)
}

pub(super) async fn follow(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let run = run_of(&state);
    let resumed = match resume_point(&headers, run) {
        Some(after) => {
            super::ask(&state.commands, |reply| Command::Resume { after, reply }).await?
        }
        None => None,
    };
    let (first, events, rx) = match resumed {
        Some((missed, rx)) => (
            json!({ "resumed": true, "run": run, "missed": missed.len() }),
            missed,
            rx,
        ),
        None => {
            let (current, rx) =
                super::ask(&state.commands, |reply| Command::Observe { reply }).await?;
            let why = if headers.contains_key("last-event-id") {
                "the events since Last-Event-ID are no longer kept (or belong to an earlier run); current state follows"
            } else {
                "current state follows, then every event as it happens"
            };
            (
                json!({ "resumed": false, "run": run, "current": current.len(), "output": why }),
                current,
                rx,
            )
        }
    };
    let hello = Message::default().event("stream").data(first.to_string());
    let head = stream::iter(
        std::iter::once(hello)
            .chain(events.iter().map(|e| message(run, e)))
            .collect::<Vec<_>>(),
    );
    let live = stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(e) => Some((message(run, &e), Some(rx))),
            Err(RecvError::Lagged(missed)) => {
                let note = Message::default().event("lagged").data(
                    json!({
                        "missed": missed,
                        "output": "this client fell behind; reconnect with Last-Event-ID to get what it missed",
                    })
                    .to_string(),
                );
                Some((note, None))
            }
            // The daemon is stopping.
            Err(RecvError::Closed) => None,
        }
    });
    let messages = head.chain(live).map(Ok::<_, Infallible>);
    Ok(Sse::new(messages).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
