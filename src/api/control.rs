//! Changing calls: an operator's command on a target, a reload. Each needs
//! the bearer token of `[api] token-file` (or, without one, an API that
//! listens on loopback only) and answers once the core loop is done.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::oneshot;

use super::{ApiError, ApiState};
use crate::command::{Command, Operation, ReloadOutcome};

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

pub(super) async fn operate(
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

pub(super) async fn restart(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    operate(&state, name, Operation::Restart).await
}

pub(super) async fn reset(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    operate(&state, name, Operation::Reset).await
}

pub(super) async fn run_step(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((name, step)): Path<(String, usize)>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    operate(&state, name, Operation::RunStep(step)).await
}

/// `?for=30m`: how long a pause lasts (until resumed without it).
#[derive(Debug, serde::Deserialize)]
pub(super) struct PauseQuery {
    #[serde(rename = "for")]
    length: Option<String>,
}

pub(super) async fn pause(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<PauseQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let length = match query.length.as_deref() {
        None => None,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                return Err(ApiError::BadRequest(format!(
                    "pause for {text:?}: it must be longer than 0"
                )));
            }
            Err(e) => {
                return Err(ApiError::BadRequest(format!(
                    "pause for {text:?}: {e} (a duration like \"30m\" or \"2h\")"
                )));
            }
        },
    };
    operate(&state, name, Operation::Pause(length)).await
}

pub(super) async fn resume(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    operate(&state, name, Operation::Resume).await
}

pub(super) async fn reload(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
