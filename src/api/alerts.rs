//! The alert routes: alerts (list, one with its notifications, ack and
//! unack), silences, maintenance windows, the outbox and incident records.
//! Each asks the alert task and waits for its answer.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::oneshot;

use super::error::{Body, Params, Segments};
use super::{ApiError, ApiState};
use crate::alert::engine::Refused;
use crate::alert::silence::{Matcher, Schedule, Weekly};
use crate::alert::task::{Filter, Request};
use crate::alert::{AlertState, Ms, Severity};
use crate::store::OutboxRow;

/// The most rows a list gives.
const MAX_LIMIT: usize = 1000;

async fn ask<T>(
    state: &ApiState,
    request: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Result<T, ApiError> {
    super::ask(&state.alerts.requests, request).await
}

fn refused(e: Refused) -> ApiError {
    match e {
        Refused::NoAlert(_) | Refused::NoSuch(..) => ApiError::NotFound(e.to_string()),
        Refused::Resolved(_) | Refused::NotAcknowledged(_) => ApiError::Conflict(e.to_string()),
        Refused::Bad(m) => ApiError::BadRequest(m),
    }
}

fn now_ms() -> Ms {
    crate::metrics::collect::now_ms()
}

fn severity(text: &str) -> Result<Severity, ApiError> {
    match text {
        "info" => Ok(Severity::Info),
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        other => Err(ApiError::BadRequest(format!(
            "severity {other:?}: expected info, warning or critical"
        ))),
    }
}

/// `GET /api/v1/alerts` parameters.
#[derive(Deserialize)]
pub(super) struct ListParams {
    state: Option<String>,
    target: Option<String>,
    severity: Option<String>,
}

/// `GET /api/v1/alerts`: open alerts (or `?state=resolved`, `?state=all`),
/// newest first.
pub(super) async fn list(
    State(state): State<ApiState>,
    Params(p): Params<ListParams>,
) -> Result<Response, ApiError> {
    let mut filter = Filter {
        target: p.target,
        severity: p.severity.as_deref().map(severity).transpose()?,
        ..Filter::default()
    };
    match p.state.as_deref() {
        None | Some("open") => {}
        Some("all") => filter.all = true,
        Some("pending") => filter.state = Some(AlertState::Pending),
        Some("firing") => filter.state = Some(AlertState::Firing),
        Some("acknowledged") => filter.state = Some(AlertState::Acknowledged),
        Some("resolved") => filter.state = Some(AlertState::Resolved),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state {other:?}: expected open, all, pending, firing, acknowledged or resolved"
            )));
        }
    }
    let alerts = ask(&state, |r| Request::List(filter, r)).await?;
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

/// A notification as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationView {
    key: String,
    channel: String,
    created_at: i64,
    severity: String,
    state: String,
    attempts: i64,
    alerts: Vec<String>,
    notification: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<Vec<crate::store::Attempt>>,
}

fn view(row: OutboxRow) -> NotificationView {
    NotificationView {
        notification: serde_json::from_str(&row.body).unwrap_or_default(),
        key: row.key,
        channel: row.channel,
        created_at: row.created_ms,
        severity: row.severity,
        state: row.state,
        attempts: row.attempts,
        alerts: row.fingerprints,
        delivery: None,
    }
}

/// `GET /api/v1/alerts/{fingerprint}`: the alert and its notifications.
pub(super) async fn one(
    State(state): State<ApiState>,
    Segments(fp): Segments<String>,
) -> Result<Response, ApiError> {
    let key = fp.clone();
    match ask(&state, |r| Request::Get(key, r)).await? {
        Some((alert, log)) => Ok(Json(json!({
            "alert": alert,
            "notifications": log
                .into_iter()
                .map(|(row, attempts)| NotificationView {
                    delivery: Some(attempts),
                    ..view(row)
                })
                .collect::<Vec<_>>(),
        }))
        .into_response()),
        None => Err(ApiError::NotFound(format!("no alert {fp}"))),
    }
}

/// An acknowledgement's body.
#[derive(Deserialize, Default)]
pub(super) struct AckBody {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

fn who(by: Option<String>) -> Result<String, ApiError> {
    let by = by.unwrap_or_else(|| "operator".into());
    if by.trim().is_empty() || by.len() > 200 {
        return Err(ApiError::BadRequest(
            "`by` names who acts: 1 to 200 characters".into(),
        ));
    }
    Ok(by)
}

fn text(field: &str, value: Option<String>) -> Result<String, ApiError> {
    let value = value.unwrap_or_default();
    if value.len() > 2000 {
        return Err(ApiError::BadRequest(format!(
            "`{field}` is longer than 2000 characters"
        )));
    }
    Ok(value)
}

/// `POST /api/v1/alerts/{fingerprint}/ack` with `{"by", "comment"}`.
pub(super) async fn ack(
    State(state): State<ApiState>,
    Segments(fp): Segments<String>,
    body: Option<Body<AckBody>>,
) -> Result<Response, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let (by, comment) = (who(body.by)?, text("comment", body.comment)?);
    let alert = ask(&state, |r| Request::Ack(fp, by, comment, r))
        .await?
        .map_err(refused)?;
    Ok(Json(json!({ "alert": alert })).into_response())
}

/// `POST /api/v1/alerts/{fingerprint}/unack` with `{"by"}`.
pub(super) async fn unack(
    State(state): State<ApiState>,
    Segments(fp): Segments<String>,
    body: Option<Body<AckBody>>,
) -> Result<Response, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let by = who(body.by)?;
    let alert = ask(&state, |r| Request::Unack(fp, by, r))
        .await?
        .map_err(refused)?;
    Ok(Json(json!({ "alert": alert })).into_response())
}

/// What a silence or a maintenance window picks and for how long.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct MuteBody {
    target: Option<String>,
    name: Option<String>,
    severity: Option<String>,
    /// How long from now: `"2h"`.
    #[serde(rename = "for")]
    for_: Option<String>,
    /// Until (ms since the epoch).
    until: Option<Ms>,
    /// A maintenance window: every week, `"sun 02:00-03:00"`.
    every: Option<String>,
    reason: Option<String>,
    by: Option<String>,
}

impl MuteBody {
    fn matcher(&self) -> Result<Matcher, ApiError> {
        Ok(Matcher {
            target: self.target.clone().filter(|t| !t.is_empty()),
            name: self.name.clone().filter(|t| !t.is_empty()),
            severity: self.severity.as_deref().map(severity).transpose()?,
        })
    }

    fn until(&self, now: Ms) -> Result<Option<Ms>, ApiError> {
        match (&self.for_, self.until) {
            (Some(_), Some(_)) => Err(ApiError::BadRequest(
                "give `for` or `until`, not both".into(),
            )),
            (Some(f), None) => {
                let d: Duration = humantime::parse_duration(f).map_err(|e| {
                    ApiError::BadRequest(format!("`for` {f:?}: {e}; expected e.g. \"2h\""))
                })?;
                if d > Duration::from_secs(90 * 86_400) {
                    return Err(ApiError::BadRequest("`for` is longer than 90 days".into()));
                }
                Ok(Some(now + d.as_millis() as Ms))
            }
            (None, Some(u)) => Ok(Some(u)),
            (None, None) => Ok(None),
        }
    }
}

/// `GET /api/v1/silences`.
pub(super) async fn silences(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let list = ask(&state, Request::Silences).await?;
    Ok(Json(json!({ "silences": list })).into_response())
}

/// `POST /api/v1/silences`: `{"target", "name", "severity", "for" | "until", "reason", "by"}`.
pub(super) async fn silence(
    State(state): State<ApiState>,
    Body(body): Body<MuteBody>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    if body.every.is_some() {
        return Err(ApiError::BadRequest(
            "`every` is for maintenance windows (POST /api/v1/maintenance)".into(),
        ));
    }
    let until = body.until(now)?.ok_or_else(|| {
        ApiError::BadRequest("a silence needs `for` (e.g. \"2h\") or `until`".into())
    })?;
    let matcher = body.matcher()?;
    let (reason, by) = (text("reason", body.reason)?, who(body.by)?);
    let s = ask(&state, |r| Request::Silence(matcher, until, reason, by, r))
        .await?
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(json!({ "silence": s }))).into_response())
}

/// `DELETE /api/v1/silences/{id}`: ends it now.
pub(super) async fn expire(
    State(state): State<ApiState>,
    Segments(id): Segments<String>,
) -> Result<Response, ApiError> {
    ask(&state, |r| Request::Expire(id, r))
        .await?
        .map_err(refused)?;
    Ok(Json(json!({ "expired": true })).into_response())
}

/// `GET /api/v1/maintenance`.
pub(super) async fn windows(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let list = ask(&state, Request::Windows).await?;
    let list: Vec<serde_json::Value> = list
        .into_iter()
        .map(|(m, active)| json!({ "window": m, "inEffect": active }))
        .collect();
    Ok(Json(json!({ "maintenance": list })).into_response())
}

/// `POST /api/v1/maintenance`: now (`for` / `until`, or open until ended)
/// or weekly (`every`).
pub(super) async fn maintain(
    State(state): State<ApiState>,
    Body(body): Body<MuteBody>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let schedule = match &body.every {
        Some(every) => {
            if body.for_.is_some() || body.until.is_some() {
                return Err(ApiError::BadRequest(
                    "a weekly window (`every`) takes no `for` or `until`".into(),
                ));
            }
            Weekly::parse(every).map_err(|e| {
                ApiError::BadRequest(format!("`every` {e}; expected e.g. \"sun 02:00-03:00\""))
            })?;
            Schedule::Weekly {
                every: every.clone(),
            }
        }
        None => Schedule::Once {
            from: now,
            until: body.until(now)?,
        },
    };
    let matcher = body.matcher()?;
    let (reason, by) = (text("reason", body.reason)?, who(body.by)?);
    let m = ask(&state, |r| {
        Request::Maintain(schedule, matcher, reason, by, r)
    })
    .await?
    .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(json!({ "window": m }))).into_response())
}

/// `DELETE /api/v1/maintenance/{id}`: ends it now.
pub(super) async fn end_window(
    State(state): State<ApiState>,
    Segments(id): Segments<String>,
) -> Result<Response, ApiError> {
    ask(&state, |r| Request::EndWindow(id, r))
        .await?
        .map_err(refused)?;
    Ok(Json(json!({ "ended": true })).into_response())
}

/// `?channel=&limit=` or `?target=&limit=`.
#[derive(Deserialize)]
pub(super) struct PageParams {
    channel: Option<String>,
    target: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/notifications`: the outbox, newest first.
pub(super) async fn notifications(
    State(state): State<ApiState>,
    Params(p): Params<PageParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let rows = ask(&state, |r| Request::Outbox(p.channel, limit, r))
        .await?
        .map_err(ApiError::BadRequest)?;
    Ok(
        Json(json!({ "notifications": rows.into_iter().map(view).collect::<Vec<_>>() }))
            .into_response(),
    )
}

/// `GET /api/v1/incidents`: incident records, newest first.
pub(super) async fn incidents(
    State(state): State<ApiState>,
    Params(p): Params<PageParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let list = ask(&state, |r| Request::Incidents(p.target, limit, r))
        .await?
        .map_err(ApiError::BadRequest)?;
    Ok(Json(json!({ "incidents": list })).into_response())
}

/// `GET /api/v1/incidents/{id}`.
pub(super) async fn incident(
    State(state): State<ApiState>,
    Segments(id): Segments<String>,
) -> Result<Response, ApiError> {
    let key = id.clone();
    match ask(&state, |r| Request::Incident(key, r))
        .await?
        .map_err(ApiError::BadRequest)?
    {
        Some(r) => Ok(Json(json!({ "incident": r })).into_response()),
        None => Err(ApiError::NotFound(format!("no incident {id}"))),
    }
}
