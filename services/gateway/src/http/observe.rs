//! What every answer goes through: a trace span continuing the caller's W3C trace
//! context, request metrics, and the security headers of an API.
//!
//! Metrics (Prometheus, on the admin port):
//! - `palaver_gateway_http_requests_total{method, route, status}`
//! - `palaver_gateway_http_request_duration_seconds{method, route}` (histogram)
//! - `palaver_gateway_rate_limited_total{limit}`, counted where a limit refuses.
//!
//! `route` is the route's pattern (`/v1/cms/members/{external_id}`), never the raw
//! path, so the label's values stay few.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use opentelemetry::trace::TraceContextExt as _;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The route label of a request nothing is routed to.
const UNMATCHED: &str = "unmatched";

fn route(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned()
}

/// The `http.server` span of a request, child of the trace the caller sent in
/// `traceparent`, if any.
pub fn span(request: &Request) -> Span {
    let route = route(request);
    let span = tracing::info_span!(
        "http.server",
        otel.name = format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %route,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    let parent = palaver_kit::telemetry::extract_headers(request.headers());
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// Records the answer's status on the request's span, and logs it at debug level.
pub fn on_response(response: &Response, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(parent: span, status, latency_ms = latency.as_secs_f64() * 1e3, "answered");
}

/// Counts requests and times them, by method, route and status.
pub async fn metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = route(&request);
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "palaver_gateway_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(
        "palaver_gateway_http_request_duration_seconds",
        "method" => method,
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// `router` with the headers every answer carries unless its handler set its own: no
/// MIME sniffing, no referrer, no framing and no active content (these are API answers,
/// not pages), and no caching of answers that may hold secrets.
pub fn with_security_headers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let header =
        |name, value| SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value));
    router
        .layer(header(X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(REFERRER_POLICY, "no-referrer"))
        .layer(header(
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(header(CACHE_CONTROL, "no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_continues_the_callers_trace() {
        palaver_kit::telemetry::init_for_tests();
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let request = Request::builder()
            .uri("/v1/me")
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .body(axum::body::Body::empty())
            .unwrap();
        let traced = span(&request);
        let context = traced.context();
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            trace_id
        );

        let untraced = Request::builder()
            .uri("/v1/me")
            .body(axum::body::Body::empty())
            .unwrap();
        let fresh = span(&untraced).context().span().span_context().trace_id();
        assert_ne!(
            fresh.to_string(),
            trace_id,
            "without a traceparent, a new trace"
        );
    }
}
