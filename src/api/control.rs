//! Changing calls: an operator's command on a target, a reload. The
//! [`super::access`] guard has checked the token and the site; each
//! answers once the core loop is done.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::oneshot;

use super::error::{Params, Segments};
use super::{ApiError, ApiState};
use crate::command::{Command, Operation, ReloadOutcome};

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
    Segments(name): Segments<String>,
) -> Result<Response, ApiError> {
    operate(&state, name, Operation::Restart).await
}

pub(super) async fn reset(
    State(state): State<ApiState>,
    Segments(name): Segments<String>,
) -> Result<Response, ApiError> {
    operate(&state, name, Operation::Reset).await
}

pub(super) async fn run_step(
    State(state): State<ApiState>,
    Segments((name, step)): Segments<(String, usize)>,
) -> Result<Response, ApiError> {
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
    Segments(name): Segments<String>,
    Params(query): Params<PauseQuery>,
) -> Result<Response, ApiError> {
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
    Segments(name): Segments<String>,
) -> Result<Response, ApiError> {
    operate(&state, name, Operation::Resume).await
}

pub(super) async fn reload(State(state): State<ApiState>) -> Result<Response, ApiError> {
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
