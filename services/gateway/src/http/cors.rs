//! Which web pages may call which routes.
//!
//! Browser-facing routes (visitor sessions; presence and the widget next) answer only
//! the origins of the app a request names, in its body or through a chat endpoint, and
//! the gateway's own (the widget's frame page, `/widget/frame`, which only the app's
//! origins may frame). The handler checks the `Origin` with [`check_origin`] and marks
//! its answer, success or error, readable by that origin with [`allow`]. A preflight
//! carries no body, so it cannot name the app: [`browser`] answers it for any http(s)
//! origin with the methods and headers these routes take, and no credentials. The request
//! that follows is what is checked: from an origin the app does not allow, it is refused
//! with 403 `origin_not_allowed` before anything changes, and without CORS headers, so
//! the page cannot even read the refusal.
//!
//! Server-to-server routes (admin, CMS, member and operator APIs) take requests without
//! an `Origin` (CMS servers, the CLI) or from the gateway's own origin (the console and
//! consent pages it serves); [`server_to_server`] refuses every other origin with 403
//! `origin_not_allowed`. They answer no preflight, so browsers on other sites cannot
//! send them credentials.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use palaver_kit::{Error, ErrorCode};

use crate::domain::origins;
use crate::http::error::ApiError;
use crate::state::AppState;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The `Origin` of a request, when it has a readable one.
pub fn request_origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(ORIGIN).and_then(|v| v.to_str().ok())
}

/// The request's origin in canonical form when it is one of `allowed` or the gateway's
/// own (`own`: the widget's frame page, which only the app's origins may frame);
/// otherwise 403 `origin_not_allowed` (also when the request has no `Origin`).
pub fn check_origin(
    own: &str,
    origin: Option<&str>,
    allowed: &[String],
) -> Result<String, ApiError> {
    let refused = |why: &str| -> ApiError { Error::new(ErrorCode::OriginNotAllowed, why).into() };
    let origin = origin.ok_or_else(|| {
        refused("this API is for the app's web pages, and the request has no Origin")
    })?;
    match origins::canonical(origin) {
        Some(canonical) if canonical == own || origins::is_allowed(&canonical, allowed) => {
            Ok(canonical)
        }
        _ => Err(refused(&format!(
            "the origin {origin} is not one of the app's origins"
        ))),
    }
}

/// `response` made readable by the page at `origin` (one the app allows).
pub fn allow(origin: &str, mut response: Response) -> Response {
    if let Ok(origin) = HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
    response
}

/// Middleware of browser-facing routes: answers preflights and says that answers
/// depend on the `Origin`.
pub async fn browser(request: Request, next: Next) -> Response {
    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if is_preflight {
        preflight(request_origin(request.headers()))
    } else {
        next.run(request).await
    };
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("origin"));
    response
}

fn preflight(origin: Option<&str>) -> Response {
    let Some(origin) = origin.and_then(origins::canonical) else {
        return ApiError::from(Error::new(
            ErrorCode::OriginNotAllowed,
            "a preflight needs the http(s) Origin of a web page",
        ))
        .into_response();
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    if let Ok(origin) = HeaderValue::from_str(&origin) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    headers.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    headers.append(
        VARY,
        HeaderValue::from_static("access-control-request-method, access-control-request-headers"),
    );
    response
}

/// Middleware of server-to-server routes: no `Origin`, or the gateway's own.
pub async fn server_to_server(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(origin) = request_origin(request.headers()) else {
        return next.run(request).await;
    };
    if origins::canonical(origin).as_deref() == Some(state.public_origin()) {
        return next.run(request).await;
    }
    ApiError::from(Error::new(
        ErrorCode::OriginNotAllowed,
        format!(
            "this API is for servers and operator clients; web pages may call it only from {}",
            state.public_origin()
        ),
    ))
    .into_response()
}
