//! The one error type every handler answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::command::OperationError;

/// Every error the API answers with: a status and a JSON body
/// `{"error": kind, "message": …}`. Internal details are logged, not sent.
#[derive(Debug)]
pub enum ApiError {
    /// No or a wrong bearer token.
    Unauthorized,
    /// Refused whatever the token: another site, another name, a token
    /// file that cannot be used.
    Forbidden(String),
    /// The request itself is wrong (a bad parameter).
    BadRequest(String),
    /// No such target or step.
    NotFound(String),
    /// The request cannot apply to this target.
    Conflict(String),
    /// The daemon is stopping.
    Unavailable,
    /// The state store did not open: nothing is kept to read.
    NoStore,
    /// The state store failed to answer (busy, or an error it names).
    Store(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, kind, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required: the one in [api] token-file, or in api.token in the state directory when none is set".to_owned(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad-request", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not-found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "not-applicable", m),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "the watchdog is stopping".to_owned(),
            ),
            ApiError::NoStore => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no-store",
                "the state store did not open, so no event log is kept; the journal has every event (journalctl -u rvm-watchdog)".to_owned(),
            ),
            ApiError::Store(m) => (StatusCode::SERVICE_UNAVAILABLE, "store-busy", m),
        };
        (
            code,
            axum::Json(json!({ "error": kind, "message": message })),
        )
            .into_response()
    }
}

impl From<OperationError> for ApiError {
    fn from(e: OperationError) -> Self {
        match e {
            OperationError::UnknownTarget(_) | OperationError::NoSuchStep { .. } => {
                ApiError::NotFound(e.to_string())
            }
            OperationError::NotApplicable(m) => ApiError::Conflict(m),
            OperationError::Stopping => ApiError::Unavailable,
        }
    }
}
