//! The metrics routes: `POST /api/v1/ingest` (a service pushes samples),
//! `GET /api/v1/query` (a series over time, at the coarsest resolution
//! that serves the step) and `GET /api/v1/series` (what exists). Each asks
//! the recorder and waits for its answer; none reads the history itself.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::oneshot;

use super::error::Params;
use super::{ApiError, ApiState};
use crate::metrics::history::{Matcher, Query, Resolution};
use crate::metrics::ingest::{self, Format};
use crate::metrics::kpi::Selector;
use crate::metrics::recorder::Request;

/// A pushed body may be at most this large.
pub const MAX_BODY: usize = super::MAX_BODY;
/// A pushed body must arrive within this long.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

fn now_ms() -> u64 {
    crate::metrics::collect::now_ms()
}

async fn ask<T>(
    state: &ApiState,
    request: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Result<T, ApiError> {
    super::ask(&state.metrics.requests, request).await
}

/// `POST /api/v1/ingest`: Prometheus text or JSON, taken whole or not at all.
pub(super) async fn push(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(format) = Format::of_content_type(content_type) else {
        return Err(ApiError::UnsupportedMedia(
            "send text/plain (Prometheus' text format) or application/json".into(),
        ));
    };
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let too_large = e
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return Err(if too_large {
                ApiError::TooLarge(format!(
                    "the body is larger than the {} KiB the API takes",
                    MAX_BODY / 1024
                ))
            } else {
                ApiError::BadRequest("the body broke off".into())
            });
        }
        Err(_) => {
            return Err(ApiError::BadRequest(format!(
                "the body did not arrive within {}s",
                BODY_TIMEOUT.as_secs()
            )));
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(ApiError::BadRequest("the body is not UTF-8".into()));
    };
    let samples = match ingest::parse(format, text, now_ms()) {
        Ok(s) => s,
        Err(problems) => {
            return Err(ApiError::Invalid {
                message: format!("nothing was stored: {}", problems[0]),
                problems,
            });
        }
    };
    let sent = samples.len();
    let kept = ask(&state, |reply| Request::Ingest { samples, reply })
        .await?
        .map_err(ApiError::Conflict)?;
    Ok(axum::Json(json!({ "received": sent, "stored": kept })).into_response())
}

/// The query's parameters.
#[derive(Debug, Deserialize)]
pub(super) struct QueryParams {
    series: Option<String>,
    from: Option<String>,
    to: Option<String>,
    since: Option<String>,
    step: Option<String>,
}

/// A time: milliseconds since 1970, or RFC 3339.
pub(super) fn time(name: &str, text: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{name}` = {text:?}: expected milliseconds since 1970 or a time like 2026-12-01T10:00:00Z"
            ))
        })
}

pub(super) fn duration(name: &str, text: &str) -> Result<u64, ApiError> {
    humantime::parse_duration(text)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` = {text:?}: expected a duration like \"1h\" or \"30s\""
            ))
        })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PointView {
    at: u64,
    count: u32,
    min: f64,
    max: f64,
    mean: f64,
    last: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    increase: Option<f64>,
}

/// `GET /api/v1/query?series=…&since=1h|from=…&to=…&step=…`.
pub(super) async fn query(
    State(state): State<ApiState>,
    Params(p): Params<QueryParams>,
) -> Result<Response, ApiError> {
    let Some(series) = p.series else {
        return Err(ApiError::BadRequest(
            "`series` is required, like series=rvm_host_cpu_usage_ratio{cpu=\"total\"}".into(),
        ));
    };
    let selector = Selector::parse(&series).map_err(ApiError::BadRequest)?;
    let now = now_ms();
    let to = match &p.to {
        Some(t) => time("to", t)?,
        None => now,
    };
    let from = match (&p.from, &p.since) {
        (Some(f), _) => time("from", f)?,
        (None, Some(s)) => to.saturating_sub(duration("since", s)?),
        (None, None) => to.saturating_sub(3_600_000),
    };
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    let step = match &p.step {
        Some(s) => duration("step", s)?,
        None => 0,
    };
    let query = Query {
        selector: Matcher::new(
            &selector.name,
            selector
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .into(),
        from_ms: from,
        to_ms: to,
        step_ms: step,
    };
    let answer = ask(&state, |reply| Request::Query { query, reply })
        .await?
        .map_err(ApiError::Conflict)?;
    let series: Vec<serde_json::Value> = answer
        .series
        .iter()
        .map(|s| {
            let points: Vec<PointView> = s
                .points
                .iter()
                .map(|p| PointView {
                    at: p.at_ms,
                    count: p.count,
                    min: p.min,
                    max: p.max,
                    mean: p.mean,
                    last: p.last,
                    increase: p.increase,
                })
                .collect();
            json!({
                "series": s.key.to_string(),
                "name": s.key.name,
                "labels": s.key.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "kind": kind(s.kind),
                "points": points,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "from": from,
        "to": to,
        "resolution": resolution(answer.resolution),
        "stepMs": answer.step_ms,
        "series": series,
    }))
    .into_response())
}

fn kind(k: crate::metrics::Kind) -> &'static str {
    match k {
        crate::metrics::Kind::Gauge => "gauge",
        crate::metrics::Kind::Counter => "counter",
    }
}

fn resolution(r: Resolution) -> &'static str {
    match r {
        Resolution::Raw => "raw",
        Resolution::Minute => "1m",
        Resolution::Hour => "1h",
    }
}

/// `GET /api/v1/series`: every series the history holds.
pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let series = ask(&state, |reply| Request::Series { reply })
        .await?
        .map_err(ApiError::Conflict)?;
    let items: Vec<serde_json::Value> = series
        .iter()
        .map(|s| {
            json!({
                "series": s.key.to_string(),
                "name": s.key.name,
                "labels": s.key.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "kind": kind(s.kind),
                "resolutions": s.resolutions.iter().map(|r| resolution(*r)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "series": items })).into_response())
}
