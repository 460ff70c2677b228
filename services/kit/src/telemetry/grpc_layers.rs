//! Tower layers that carry traces across gRPC calls: a `grpc.server` span continuing the
//! caller's trace around each call served, a `grpc.client` span whose context goes out
//! with each call made.

use futures::future::BoxFuture;
use opentelemetry::trace::TraceContextExt as _;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::propagation::{HeaderInjector, extract_headers, inject_context};

/// `("package.Service", "Method")` from a gRPC path `/package.Service/Method`.
fn rpc_names(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}

/// Records the outcome of a call on its span: the gRPC status when the response headers
/// carry it (errors do; a success's status comes later, in the trailers) and an error
/// status for failures.
async fn traced<F, B, E>(future: F, span: Span) -> Result<http::Response<B>, E>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    let result = future.instrument(span.clone()).await;
    match &result {
        Ok(response) => {
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
            if let Some(code) = code {
                span.record("rpc.grpc.status_code", code);
                if code != 0 {
                    span.record("otel.status_code", "ERROR");
                }
            }
        }
        Err(_) => {
            span.record("otel.status_code", "ERROR");
        }
    }
    result
}

/// A tower layer for tonic servers: each call runs in a `grpc.server` span whose parent
/// is the trace context the caller sent. Health checks are not traced.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcServerTraceLayer;

impl<S> Layer<S> for GrpcServerTraceLayer {
    type Service = GrpcServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerTrace { inner }
    }
}

/// The service of [`GrpcServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServerTrace<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServerTrace<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // Probes every few seconds would bury the real traces.
        if request.uri().path().starts_with("/grpc.health.v1.Health/") {
            return Box::pin(self.inner.call(request));
        }
        let (service, method) = rpc_names(request.uri().path());
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        );
        let parent = extract_headers(request.headers());
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(traced(future, span))
    }
}

/// A tower layer for gRPC clients: each call runs in a `grpc.client` span whose trace
/// context goes out in the request headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcClientTraceLayer;

impl<S> Layer<S> for GrpcClientTraceLayer {
    type Service = GrpcClientTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientTrace { inner }
    }
}

/// The service of [`GrpcClientTraceLayer`]; generated tonic clients accept it.
#[derive(Debug, Clone)]
pub struct GrpcClientTrace<S> {
    inner: S,
}

impl<S> GrpcClientTrace<S> {
    pub fn new(inner: S) -> Self {
        GrpcClientTrace { inner }
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClientTrace<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let (service, method) = rpc_names(request.uri().path());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = format!("{service}/{method}"),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        );
        inject_context(&span.context(), &mut HeaderInjector(request.headers_mut()));
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(traced(future, span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_split_the_path() {
        assert_eq!(
            rpc_names("/palaver.identity.v1.Identity/GetApp"),
            ("palaver.identity.v1.Identity", "GetApp")
        );
        assert_eq!(rpc_names("odd"), ("odd", ""));
    }
}
