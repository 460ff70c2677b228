//! The one table of Palaver's error codes. Each code has a stable name (the `code`
//! member of problem+json bodies and WebSocket `error` frames), an HTTP status and a gRPC
//! code. Errors cross gRPC as a `Status` whose details carry the code (an `ErrorInfo`
//! with domain `palaver`) and any field violations, so the gateway turns them back into
//! the same code. Over HTTP an error is an RFC 9457 problem document
//! (`application/problem+json`), opaque for 5xx, with `WWW-Authenticate` on a 401.

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The domain of the `ErrorInfo` detail that carries a code over gRPC.
const DOMAIN: &str = "palaver";

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! error_codes {
    ($($variant:ident => $name:literal, $http:ident, $grpc:ident, $title:literal;)*) => {
        /// A stable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable name sent to clients.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The HTTP status of a problem+json response with this code.
            pub fn http_status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$http,)* }
            }

            /// The gRPC code of a `Status` with this code.
            pub fn grpc_code(self) -> Code {
                match self { $(ErrorCode::$variant => Code::$grpc,)* }
            }

            /// A short human-readable summary (the problem+json `title`).
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }

            /// The code with this stable name.
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name { $($name => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidArgument => "invalid_argument", BAD_REQUEST, InvalidArgument, "The request is invalid";
    Unauthenticated => "unauthenticated", UNAUTHORIZED, Unauthenticated, "Authentication is required";
    TokenExpired => "token_expired", UNAUTHORIZED, Unauthenticated, "The token has expired";
    InvalidAssertion => "invalid_assertion", UNAUTHORIZED, Unauthenticated, "The identity assertion is not valid";
    PermissionDenied => "permission_denied", FORBIDDEN, PermissionDenied, "Not allowed";
    OriginNotAllowed => "origin_not_allowed", FORBIDDEN, PermissionDenied, "The origin is not allowed for this app";
    VisitorBlocked => "visitor_blocked", FORBIDDEN, PermissionDenied, "The visitor is blocked";
    NotFound => "not_found", NOT_FOUND, NotFound, "Not found";
    EndpointClosed => "endpoint_closed", NOT_FOUND, NotFound, "The chat endpoint is not open";
    Conflict => "conflict", CONFLICT, AlreadyExists, "It already exists";
    InvalidGrant => "invalid_grant", BAD_REQUEST, FailedPrecondition, "The grant is invalid, expired or was used";
    ConsentUnavailable => "consent_unavailable", CONFLICT, FailedPrecondition, "The app cannot ask for consent";
    ConsentExpired => "consent_expired", GONE, FailedPrecondition, "The consent request has expired";
    FailedPrecondition => "failed_precondition", CONFLICT, FailedPrecondition, "The request cannot be carried out in the current state";
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED, Unimplemented, "The method is not allowed here";
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, InvalidArgument, "The content type is not supported";
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE, InvalidArgument, "The request is too large";
    RateLimited => "rate_limited", TOO_MANY_REQUESTS, ResourceExhausted, "Too many requests";
    SlowConsumer => "slow_consumer", TOO_MANY_REQUESTS, ResourceExhausted, "The client fell behind";
    Unavailable => "unavailable", SERVICE_UNAVAILABLE, Unavailable, "The service is unavailable";
    Internal => "internal", INTERNAL_SERVER_ERROR, Internal, "Internal error";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// An error with a stable code, safe to show to the client.
///
/// For `Internal` errors the message is opaque; the cause is logged where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub violations: Vec<FieldViolation>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    /// An invalid-argument error naming the offending field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        Error {
            code: ErrorCode::InvalidArgument,
            message: format!("{field}: {description}"),
            violations: vec![FieldViolation {
                field: field.to_owned(),
                description,
            }],
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::new(ErrorCode::NotFound, what)
    }

    /// Logs the cause chain and returns an opaque internal error.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let chain = error_chain(cause);
        tracing::error!(error = %chain, "internal error");
        Error::new(ErrorCode::Internal, "internal error")
    }

    /// The gRPC status carrying this error's code and field violations.
    pub fn into_status(self) -> tonic::Status {
        let mut details = ErrorDetails::with_error_info(
            self.code.as_str(),
            DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        );
        for violation in &self.violations {
            details.add_bad_request_violation(&violation.field, &violation.description);
        }
        tonic::Status::with_error_details(self.code.grpc_code(), self.message, details)
    }

    /// Reads a `Status` from another Palaver service back into an error. A status that
    /// carries no code (a transport failure, a foreign server) maps from its gRPC code.
    pub fn from_status(status: &tonic::Status) -> Self {
        let details = status.get_error_details();
        let code = details
            .error_info()
            .filter(|info| info.domain == DOMAIN)
            .and_then(|info| ErrorCode::from_name(&info.reason))
            .unwrap_or_else(|| code_for_grpc(status.code()));
        let violations = details
            .bad_request()
            .map(|br| {
                br.field_violations
                    .iter()
                    .map(|v| FieldViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = match code {
            ErrorCode::Internal => "internal error".to_owned(),
            ErrorCode::Unavailable if status.message().is_empty() => {
                "service unavailable".to_owned()
            }
            _ => status.message().to_owned(),
        };
        Error {
            code,
            message,
            violations,
        }
    }

    /// The RFC 9457 problem document for this error, its detail made opaque for 5xx
    /// (and the real one logged).
    pub fn problem(&self) -> Problem {
        let status = self.code.http_status();
        let detail = if status.is_server_error() {
            tracing::warn!(code = %self.code, detail = %self.message, "answering with a server error");
            match status {
                StatusCode::SERVICE_UNAVAILABLE => "the service is unavailable; try again later",
                _ => "internal error",
            }
            .to_owned()
        } else {
            self.message.clone()
        };
        Problem {
            kind: "about:blank",
            title: self.code.title(),
            status: status.as_u16(),
            detail,
            code: self.code.as_str(),
            errors: self.violations.clone(),
        }
    }
}

fn code_for_grpc(code: Code) -> ErrorCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
        Code::Unauthenticated => ErrorCode::Unauthenticated,
        Code::PermissionDenied => ErrorCode::PermissionDenied,
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists | Code::Aborted => ErrorCode::Conflict,
        Code::FailedPrecondition => ErrorCode::FailedPrecondition,
        Code::ResourceExhausted => ErrorCode::RateLimited,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// The whole cause chain of an error, `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        error.into_status()
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::from_status(&status)
    }
}

/// An RFC 9457 problem document with Palaver's stable `code` member.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldViolation>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, [(CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"palaver\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_trip_through_grpc() {
        for &code in ErrorCode::ALL {
            let status = Error::new(code, "why").into_status();
            assert_eq!(status.code(), code.grpc_code());
            let back = Error::from_status(&status);
            assert_eq!(back.code, code);
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
    }

    #[test]
    fn field_violations_survive_a_trip_through_grpc() {
        let status = Error::invalid("display_name", "must not be empty").into_status();
        let back = Error::from_status(&status);
        assert_eq!(back.code, ErrorCode::InvalidArgument);
        assert_eq!(
            back.violations,
            vec![FieldViolation {
                field: "display_name".into(),
                description: "must not be empty".into()
            }]
        );
    }

    #[test]
    fn a_status_without_details_maps_from_its_grpc_code() {
        let back = Error::from_status(&tonic::Status::unavailable("connection refused"));
        assert_eq!(back.code, ErrorCode::Unavailable);
        let back = Error::from_status(&tonic::Status::internal("secret stack trace"));
        assert_eq!(back.code, ErrorCode::Internal);
        assert_eq!(back.message, "internal error");
    }

    #[test]
    fn problem_json_carries_the_stable_code() {
        let problem = serde_json::to_value(Error::invalid("text", "too long").problem()).unwrap();
        assert_eq!(problem["code"], "invalid_argument");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["errors"][0]["field"], "text");
    }

    #[test]
    fn server_errors_are_opaque() {
        let problem = Error::new(ErrorCode::Unavailable, "identity at 10.0.0.7 refused").problem();
        assert_eq!(
            problem.detail,
            "the service is unavailable; try again later"
        );
        assert_eq!(problem.code, "unavailable");
        let problem = Error::new(ErrorCode::Internal, "the disk is full").problem();
        assert_eq!(problem.detail, "internal error");
        assert_eq!(problem.status, 500);
    }

    #[test]
    fn a_response_is_problem_json_and_a_401_names_its_scheme() {
        let response = Error::new(ErrorCode::Unauthenticated, "no token").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"palaver\""
        );
        let response = Error::not_found("no such app").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
    }
}
