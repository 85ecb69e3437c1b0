//! The HTTP error type. Every failure leaves the service as a NestJS-shaped
//! body, `{"statusCode", "error", "message"}`, which the original clients
//! already parse. Detail of a 5xx goes to the log, never to the client.

use axum::{
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::{domain::ParseError, passwords::Busy, store::StoreError};

/// Result of an HTTP handler.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Every way an HTTP request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that breaks a rule; the text says which.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or one that is unknown, expired or revoked.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// An unknown resource, or one the caller may not see.
    #[error("{0}")]
    NotFound(String),
    /// A duplicate.
    #[error("{0}")]
    Conflict(&'static str),
    /// A body over the configured limit.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// Too many attempts; try again later.
    #[error("{0}")]
    TooManyRequests(&'static str),
    /// The instance is at a bound it keeps (see the README's limits):
    /// try again in a moment.
    #[error("{0}")]
    Busy(&'static str),
    /// A backend did not answer.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// A bug: logged in full, answered with a generic 500.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The NestJS error body for `status` with `message`.
pub fn error_body(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "statusCode": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    (status, Json(body)).into_response()
}

/// The JSON 404 of a path nothing answers, as NestJS words it.
pub async fn not_found(request: Request) -> Response {
    let message = format!("Cannot {} {}", request.method(), request.uri().path());
    error_body(StatusCode::NOT_FOUND, &message)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(cause = ?cause, "request failed"),
            Self::Unavailable(backend) => tracing::warn!(backend, "backend unavailable"),
            _ => {}
        }
        error_body(self.status(), &self.to_string())
    }
}

impl From<Busy> for ApiError {
    fn from(_: Busy) -> Self {
        Self::Busy("too many password checks at once; try again in a moment")
    }
}

impl From<ParseError> for ApiError {
    fn from(error: ParseError) -> Self {
        Self::BadRequest(error.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => Self::Conflict("already exists"),
            StoreError::Unavailable { backend, source } => {
                tracing::warn!(backend, cause = %source, "storage call failed");
                Self::Unavailable(backend)
            }
        }
    }
}
