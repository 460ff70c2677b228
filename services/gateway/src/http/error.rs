//! Every error the gateway answers is kit's RFC 9457 problem document
//! (`application/problem+json`) with a stable `code` from kit's table, whether the
//! error came from the gateway or back from another service over gRPC: opaque for 5xx,
//! with `WWW-Authenticate` on a 401. What the gateway adds is `Retry-After` on a 429,
//! and the problem's schema in the OpenAPI document.

use axum::extract::OriginalUri;
use axum::response::{IntoResponse, Response};
use http::header::RETRY_AFTER;
use http::{HeaderValue, Method, StatusCode};
use palaver_kit::error::Problem;
use palaver_kit::{Error, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::rate_limit::RateLimited;

/// An error response: kit's error, and when to try again after a rate limit.
#[derive(Debug, Clone)]
pub struct ApiError {
    error: Error,
    retry_after: Option<u64>,
}

/// Handlers answer this.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            error,
            retry_after: None,
        }
    }
}

impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> Self {
        let seconds = limited.retry_after_seconds();
        ApiError {
            error: Error::new(
                ErrorCode::RateLimited,
                format!("too many requests; try again in {seconds} s"),
            ),
            retry_after: Some(seconds),
        }
    }
}

impl ApiError {
    /// A body whose `Content-Type` the endpoint does not read.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("send the body as {expected}"),
        )
        .into()
    }

    /// The stable code, as the body's `code` member carries it.
    pub fn code(&self) -> &'static str {
        self.error.code.as_str()
    }

    /// What the client is told.
    pub fn detail(&self) -> &str {
        &self.error.message
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.error.code.http_status()
    }

    /// The problem document, its detail made opaque for 5xx (and the real one logged).
    pub fn problem(&self) -> Problem {
        self.error.problem()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An RFC 9457 problem document with Palaver's stable `code`.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemSchema {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    kind: String,
    /// A short summary of the kind of error.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong, for a person.
    detail: String,
    /// The stable code, for a program (`invalid_argument`, `unauthenticated`,
    /// `rate_limited`, …).
    code: String,
    /// The fields that failed validation, when there are any.
    #[schema(inline)]
    errors: Option<Vec<FieldViolationSchema>>,
}

/// A field that failed validation.
#[derive(Serialize, ToSchema)]
struct FieldViolationSchema {
    /// The field, as a path into the body (`limits.message_burst`, `origins[1]`).
    field: String,
    description: String,
}

/// The answer for a path nothing is routed to.
pub async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    Error::not_found(format!("no route for {method} {}", uri.path())).into()
}

/// The answer for a method a path does not take (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    Error::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
    .into_response()
}
