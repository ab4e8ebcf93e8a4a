//! `GET /api/v1/events`: the event log, newest first, filtered and paged.
//! Read from the state store inside its open batch, so an event appended a
//! moment ago is listed although not yet committed.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::Params;
use super::series::{duration, time};
use super::{ApiError, ApiState};
use crate::store::{Event, EventQuery};

/// The most events one page gives.
pub const MAX_LIMIT: usize = 1000;

/// `GET /api/v1/events` parameters.
#[derive(Deserialize)]
pub(super) struct EventParams {
    target: Option<String>,
    kind: Option<String>,
    /// A duration back from now ("1h"), or a time.
    since: Option<String>,
    until: Option<String>,
    /// Only events older than this id: the next page.
    before: Option<i64>,
    limit: Option<usize>,
}

/// One event as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Its row in the event log (the list's paging key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Its place in this run's stream (the live stream's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub at: String,
    pub at_ms: u64,
    pub kind: String,
    pub target: Option<String>,
    pub unit: Option<String>,
    pub incident: Option<String>,
    pub step: Option<u32>,
    pub attempt: Option<u32>,
    pub result: Option<String>,
    pub message: String,
    pub fields: serde_json::Value,
}

impl EventView {
    /// A row of the event log.
    pub fn of(e: &Event) -> EventView {
        EventView {
            id: Some(e.id),
            ..EventView::new(e)
        }
    }

    /// An event of the live stream, shaped as its row will be.
    pub fn live(e: &crate::event::Stamped) -> EventView {
        EventView {
            seq: Some(e.seq),
            ..EventView::new(&crate::event::record::row(e))
        }
    }

    fn new(e: &crate::store::NewEvent) -> EventView {
        EventView {
            id: None,
            seq: None,
            at: crate::status::rfc3339(e.at),
            at_ms: ms(e.at),
            kind: e.kind.clone(),
            target: e.target.clone(),
            unit: e.unit.clone(),
            incident: e.incident.clone(),
            step: e.step,
            attempt: e.attempt,
            result: e.result.clone(),
            message: e.message.clone(),
            fields: e.fields.clone(),
        }
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// A time back from now ("1h") or a time ("2026-12-01T10:00:00Z", ms).
fn moment(name: &str, text: &str, now: u64) -> Result<u64, ApiError> {
    if text.parse::<u64>().is_err() && !text.contains('T') {
        return duration(name, text).map(|back| now.saturating_sub(back));
    }
    time(name, text)
}

/// `GET /api/v1/events?target=&kind=&since=&until=&before=&limit=`: newest
/// first; `next` is the `before` of the following page, `null` on the last.
pub(super) async fn list(
    State(state): State<ApiState>,
    Params(p): Params<EventParams>,
) -> Result<Response, ApiError> {
    if let Some(t) = &p.target
        && !state
            .snapshot
            .borrow()
            .config
            .targets
            .iter()
            .any(|c| c.name == *t)
    {
        return Err(crate::command::OperationError::UnknownTarget(t.clone()).into());
    }
    let now = ms(SystemTime::now());
    let since = p
        .since
        .as_deref()
        .map(|s| moment("since", s, now))
        .transpose()?;
    let until = p
        .until
        .as_deref()
        .map(|s| moment("until", s, now))
        .transpose()?;
    let limit = p.limit.unwrap_or(EventQuery::DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "`limit` = {limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let store = state.store.clone().ok_or(ApiError::NoStore)?;
    let query = EventQuery {
        target: p.target,
        kind: p.kind,
        since: since.map(at),
        until: until.map(at),
        before: p.before,
        // One more than asked tells whether a next page exists.
        limit: limit + 1,
    };
    let mut rows = store
        .query(move |s| s.events(&query))
        .await
        .map_err(|e| ApiError::Store(e.to_string()))?;
    let next = (rows.len() > limit).then(|| rows[limit - 1].id);
    rows.truncate(limit);
    let events: Vec<EventView> = rows.iter().map(EventView::of).collect();
    Ok(Json(json!({ "events": events, "next": next })).into_response())
}
