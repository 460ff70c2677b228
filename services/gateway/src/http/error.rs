//! Every error the gateway answers is an RFC 9457 problem document
//! (`application/problem+json`) with a stable `code`: kit's codes, whether the error
//! came from the gateway or back from another service over gRPC, plus two HTTP-only
//! ones kit's table does not have yet (`method_not_allowed`, `unsupported_media_type`).
//!
//! 5xx answers are opaque: the cause is logged, the client learns only that it failed.
//! A 429 carries `Retry-After`; a 401 carries `WWW-Authenticate`.

use axum::extract::OriginalUri;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, StatusCode};
use palaver_kit::error::{FieldViolation, Problem};
use palaver_kit::{Error, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::rate_limit::RateLimited;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response: status, stable code and what the client may be told.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    violations: Vec<FieldViolation>,
    retry_after: Option<u64>,
}

/// Handlers answer this.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            status: error.code.http_status(),
            code: error.code.as_str(),
            title: error.code.title(),
            detail: error.message,
            violations: error.violations,
            retry_after: None,
        }
    }
}

impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> Self {
        let seconds = limited.retry_after_seconds();
        ApiError {
            retry_after: Some(seconds),
            ..Error::new(
                ErrorCode::RateLimited,
                format!("too many requests; try again in {seconds} s"),
            )
            .into()
        }
    }
}

impl ApiError {
    /// A body whose `Content-Type` the endpoint does not read.
    pub fn unsupported_media_type(expected: &str) -> Self {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            title: "The content type is not supported",
            detail: format!("send the body as {expected}"),
            violations: Vec::new(),
            retry_after: None,
        }
    }

    /// The stable code, as the body's `code` member carries it.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// What the client is told.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem document, its detail made opaque for 5xx (and the real one logged).
    pub fn problem(&self) -> Problem {
        let detail = if self.status.is_server_error() {
            tracing::warn!(code = self.code, detail = %self.detail, "answering with a server error");
            match self.status {
                StatusCode::SERVICE_UNAVAILABLE => "the service is unavailable; try again later",
                _ => "internal error",
            }
            .to_owned()
        } else {
            self.detail.clone()
        };
        Problem {
            kind: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            detail,
            code: self.code,
            errors: self.violations.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, [(CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"palaver\""),
            );
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
    let error = ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        title: "The method is not allowed here",
        detail: format!("{method} is not allowed on {}", uri.path()),
        violations: Vec::new(),
        retry_after: None,
    };
    error.into_response()
}
