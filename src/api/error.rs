//! The one error type every handler answers with.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::command::OperationError;

/// Every error the API answers with: a status and a JSON body
/// `{"error": {"code": kind, "message": …}}`. Internal details are logged,
/// not sent.
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
    /// A task of the daemon did not answer in time.
    Busy(String),
    /// A body that is not of a kind the route takes.
    UnsupportedMedia(String),
    /// A body larger than the route takes.
    TooLarge(String),
    /// A body the route could not use, with every problem found in it.
    Invalid {
        /// The first problem, in a sentence.
        message: String,
        /// Every problem.
        problems: Vec<String>,
    },
    /// No such route, or not with this method.
    NoRoute {
        /// 404 or 405.
        status: StatusCode,
        /// Which.
        message: String,
    },
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
            ApiError::Busy(m) => (StatusCode::SERVICE_UNAVAILABLE, "busy", m),
            ApiError::UnsupportedMedia(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                m,
            ),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", m),
            ApiError::Invalid { message, problems } => {
                let body = json!({ "error": {
                    "code": "bad-request", "message": message, "problems": problems,
                } });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            ApiError::NoRoute { status, message } => {
                let code = if status == StatusCode::METHOD_NOT_ALLOWED {
                    "method-not-allowed"
                } else {
                    "not-found"
                };
                (status, code, message)
            }
        };
        (
            code,
            axum::Json(json!({ "error": { "code": kind, "message": message } })),
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

impl ApiError {
    /// An extractor's refusal (a query, a path or a body that does not
    /// parse) in the one error shape.
    fn rejected(status: StatusCode, text: String) -> ApiError {
        match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMedia(text),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(text),
            _ => ApiError::BadRequest(text),
        }
    }
}

/// A JSON body; one that does not parse is answered in the one error shape.
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError::rejected(e.status(), e.body_text())),
        }
    }
}

impl<T, S> axum::extract::OptionalFromRequest<S> for Body<T>
where
    axum::Json<T>: axum::extract::OptionalFromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        match <axum::Json<T> as axum::extract::OptionalFromRequest<S>>::from_request(req, state)
            .await
        {
            Ok(v) => Ok(v.map(|axum::Json(v)| Body(v))),
            Err(e) => Err(ApiError::rejected(e.status(), e.body_text())),
        }
    }
}

/// Query parameters; ones that do not parse are answered in the one error
/// shape.
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(e) => Err(ApiError::rejected(e.status(), e.body_text())),
        }
    }
}

/// Path segments; ones that do not parse (a step that is not a number)
/// are answered in the one error shape.
pub struct Segments<T>(pub T);

impl<T, S> FromRequestParts<S> for Segments<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Segments(v)),
            Err(e) => Err(ApiError::rejected(e.status(), e.body_text())),
        }
    }
}

/// The answer to a path no route takes.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no {method} {} here; the API is listed in openapi.json",
            uri.path()
        ),
    }
}

/// The answer to a route called with a method it does not take.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("{} does not take {method}", uri.path()),
    }
}
