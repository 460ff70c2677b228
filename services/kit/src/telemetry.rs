//! Telemetry: JSON logs that carry the trace id, OpenTelemetry traces exported with OTLP,
//! and W3C trace context carried across process boundaries.
//!
//! [`init`] installs the process-wide subscriber once. Trace context crosses gRPC through
//! [`GrpcServerTraceLayer`] and [`GrpcClientTraceLayer`], HTTP through [`inject_headers`]
//! and [`extract_headers`], and any other carrier (NATS headers) through [`inject`] and
//! [`extract`].
//!
//! Spans at `INFO` and above are always traced, whatever `RUST_LOG` says: the log filter
//! only chooses which events are written, so turning logs down never breaks a trace.

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{Context, global};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tower::{Layer, Service};
use tracing::field::{Empty, Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Instrument, Level, Metadata, Span, Subscriber};
use tracing_opentelemetry::{OpenTelemetrySpanExt as _, OtelData};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{
    EnvFilter, FilterExt as _, LevelFilter, dynamic_filter_fn, filter_fn,
};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The instrumentation scope of Palaver's spans.
const TRACER_NAME: &str = "palaver";

/// Keeps the tracer provider of [`init`] alive; flushes and shuts it down when dropped.
///
/// Keep it until the process ends. A guard from a repeated [`init`] does nothing.
#[must_use = "dropping the guard shuts tracing down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// True when this guard owns the exporting provider (it was the first [`init`]).
    pub fn is_active(&self) -> bool {
        self.provider.is_some()
    }
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("active", &self.is_active())
            .finish()
    }
}

impl TelemetryGuard {
    /// Exports the spans that have ended so far, waiting until the collector took them
    /// (or refused them). Does nothing for an inactive guard.
    pub fn force_flush(&self) -> anyhow::Result<()> {
        let Some(provider) = &self.provider else {
            return Ok(());
        };
        on_the_side(|| provider.force_flush()).context("cannot flush traces")
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        if let Err(error) = on_the_side(|| provider.shutdown_with_timeout(Duration::from_secs(5))) {
            tracing::warn!(%error, "cannot flush traces");
        }
    }
}

/// Runs `work`, which waits for the batch exporter. The exporter sends through tonic on
/// this runtime: block a worker only where another one can drive the export.
fn on_the_side<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Installs the process-wide subscriber: JSON logs on stdout filtered by `RUST_LOG`
/// (default `info`), each line inside a span carrying `trace_id` and `span_id`; an
/// OpenTelemetry layer; and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, an OTLP (gRPC)
/// batch exporter with resource `service.name`. Sets the W3C TraceContext propagator.
///
/// Call it inside a Tokio runtime. Calling it again (or after [`init_for_tests`]) never
/// fails and returns a guard that does nothing.
pub fn init(service_name: &str) -> anyhow::Result<TelemetryGuard> {
    let exporting = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some_and(|v| !v.is_empty());
    install(service_name, exporting, None)
}

/// Like [`init`], always exporting to the OTLP (gRPC) collector at `endpoint`
/// (`http://host:port`), whatever the environment says.
pub fn init_with_endpoint(service_name: &str, endpoint: &str) -> anyhow::Result<TelemetryGuard> {
    install(service_name, true, Some(endpoint))
}

/// [`init`]'s work: exports when `exporting`, to `endpoint` or where the environment
/// says.
fn install(
    service_name: &str,
    exporting: bool,
    endpoint: Option<&str>,
) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    if tracing::dispatcher::has_been_set() {
        return Ok(TelemetryGuard { provider: None });
    }
    let log_filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG is not a valid log filter: {directives:?}"))?,
        _ => EnvFilter::new("info,opentelemetry=warn,opentelemetry_sdk=warn"),
    };
    let mut builder = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(service_name.to_owned())
            .build(),
    );
    if exporting {
        anyhow::ensure!(
            tokio::runtime::Handle::try_current().is_ok(),
            "telemetry::init must run inside a Tokio runtime to export traces"
        );
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(endpoint) = endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let exporter = exporter
            .build()
            .context("cannot build the OTLP span exporter (OTEL_EXPORTER_OTLP_ENDPOINT)")?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let installed = tracing_subscriber::registry()
        .with(otel_layer(&provider))
        .with(json_log_layer(log_filter, std::io::stdout))
        .try_init();
    if installed.is_err() {
        // Another thread installed a subscriber first; this provider has nothing to flush.
        let _ = provider.shutdown();
        return Ok(TelemetryGuard { provider: None });
    }
    global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard {
        provider: exporting.then_some(provider),
    })
}

/// For tests: installs, once per process, a subscriber that traces (so trace context
/// propagates) and writes readable logs through the test harness only when `TEST_LOG=1`
/// (filtered by `RUST_LOG`, default `info`). Never fails; a subscriber installed earlier
/// is left in place.
pub fn init_for_tests() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let logs = (std::env::var("TEST_LOG").as_deref() == Ok("1")).then(|| {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(filter.or(info_spans()))
        });
        let installed = tracing_subscriber::registry()
            .with(otel_layer(&provider))
            .with(logs)
            .try_init();
        if installed.is_ok() {
            global::set_tracer_provider(provider);
        }
    });
}

/// Spans at `INFO` and above, which every layer sees so traces survive a quiet `RUST_LOG`.
fn info_spans() -> tracing_subscriber::filter::FilterFn<impl Fn(&Metadata<'_>) -> bool> {
    filter_fn(|metadata| metadata.is_span() && *metadata.level() <= Level::INFO)
}

/// Traces `INFO` and above. Its filter is asked at every span rather than once per
/// callsite: a callsite cached as always enabled skips the per-span check, and its span
/// then takes whatever per-layer filter state an earlier unanswered check left on the
/// thread (a disabled `DEBUG` check from `sqlx`, say), losing the span from the trace.
fn otel_layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let info_and_above = dynamic_filter_fn(|metadata, _| *metadata.level() <= Level::INFO)
        .with_max_level_hint(LevelFilter::INFO)
        .with_callsite_filter(|metadata| {
            if *metadata.level() <= Level::INFO {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        });
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER_NAME))
        .with_filter(info_and_above)
}

fn json_log_layer<S, W>(filter: EnvFilter, writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(JsonFormat)
        .with_writer(writer)
        .with_filter(filter.or(info_spans()))
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`, the fields of the
/// enclosing spans and of the event, `span` (the innermost span's name), and `trace_id`
/// and `span_id` of the OpenTelemetry span the event happened in.
struct JsonFormat;

impl<S> FormatEvent<S, JsonFields> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut ids = None;
        let mut span_name = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields)
                {
                    // `otel.*` fields steer the exporter; they say nothing to a reader.
                    line.extend(
                        fields
                            .into_iter()
                            .filter(|(key, _)| !key.starts_with("otel.")),
                    );
                }
                if let Some(data) = extensions.get::<OtelData>()
                    && let (Some(trace_id), Some(span_id)) = (data.trace_id(), data.span_id())
                {
                    ids = Some((trace_id, span_id));
                }
                span_name = Some(span.name());
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        if let Some(name) = span_name {
            line.insert("span".into(), name.into());
        }
        if let Some((trace_id, span_id)) = ids {
            line.insert("trace_id".into(), trace_id.to_string().into());
            line.insert("span_id".into(), span_id.to_string().into());
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut chain = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().into(), chain.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Events bridged from the `log` crate repeat their metadata as fields.
        if !field.name().starts_with("log.") {
            self.0
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes the current span's trace context into any carrier (e.g. NATS headers).
pub fn inject(injector: &mut dyn Injector) {
    inject_context(&Span::current().context(), injector);
}

fn inject_context(context: &Context, injector: &mut dyn Injector) {
    global::get_text_map_propagator(|propagator| propagator.inject_context(context, injector));
}

/// Reads the trace context a carrier holds (an empty context when it holds none, never
/// the current one); set it as a span's parent with
/// [`OpenTelemetrySpanExt::set_parent`](tracing_opentelemetry::OpenTelemetrySpanExt::set_parent).
pub fn extract(extractor: &dyn Extractor) -> Context {
    global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), extractor)
    })
}

/// Writes the current span's trace context into HTTP (or gRPC) headers as `traceparent`.
pub fn inject_headers(headers: &mut HeaderMap) {
    inject(&mut HeaderInjector(headers));
}

/// Reads the trace context that HTTP (or gRPC) headers carry.
pub fn extract_headers(headers: &HeaderMap) -> Context {
    extract(&HeaderExtractor(headers))
}

/// The trace id of the current span, as 32 hex digits; `None` outside a traced span.
pub fn current_trace_id() -> Option<String> {
    let context = Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

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
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use tracing::subscriber::with_default;

    use super::*;

    #[test]
    fn context_goes_out_and_comes_back_through_headers() {
        init_for_tests();
        assert_eq!(current_trace_id(), None, "no trace outside a span");
        let span = tracing::info_span!("test.outer");
        let _entered = span.enter();
        let trace_id = current_trace_id().expect("a traced span has a trace id");
        let mut headers = HeaderMap::new();
        inject_headers(&mut headers);
        let traceparent = headers["traceparent"].to_str().unwrap();
        assert!(
            traceparent.contains(&trace_id),
            "{traceparent} carries {trace_id}"
        );

        let extracted = extract_headers(&headers);
        assert_eq!(
            extracted.span().span_context().trace_id().to_string(),
            trace_id
        );
        assert!(extracted.span().span_context().is_remote());
        let nothing = extract_headers(&HeaderMap::new());
        assert!(!nothing.span().span_context().is_valid());
    }

    #[test]
    fn a_repeated_init_does_nothing_and_does_not_fail() {
        init_for_tests();
        let first = init("palaver-test").unwrap();
        let second = init("palaver-test").unwrap();
        assert!(!first.is_active());
        assert!(!second.is_active());
    }

    /// Set in the child process of [`init_writes_json_logs_with_trace_ids_to_stdout`].
    const CHILD: &str = "PALAVER_TELEMETRY_TEST_CHILD";

    /// The child's part: `init` owns the whole process, so it runs in a process of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn init_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let guard = init("palaver-test").unwrap();
        assert!(guard.is_active(), "the first init exports");
        assert!(
            !init("palaver-test").unwrap().is_active(),
            "a second init does nothing"
        );
        let span = tracing::info_span!("test.child", step = "one");
        async {
            tracing::info!("hidden by RUST_LOG");
            tracing::warn!(trace_id_seen = current_trace_id().unwrap(), "in a span");
        }
        .instrument(span)
        .await;
        tracing::warn!("outside");
        drop(guard);
    }

    #[test]
    fn init_writes_json_logs_with_trace_ids_to_stdout() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "telemetry::tests::init_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("RUST_LOG", "warn")
            // Nothing listens there: exporting fails quietly and shutting down still ends.
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The harness prints its own words before the first line.
        let lines: Vec<Value> = stdout
            .lines()
            .filter_map(|line| {
                line.find('{')
                    .map(|start| serde_json::from_str::<Value>(&line[start..]).unwrap())
            })
            .filter(|line| line["target"] == "palaver_kit::telemetry::tests")
            .collect();
        let messages: Vec<&str> = lines
            .iter()
            .map(|line| line["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages, ["in a span", "outside"], "{stdout}");
        assert_eq!(lines[0]["trace_id"], lines[0]["trace_id_seen"]);
        assert_eq!(lines[0]["step"], "one");
        assert_eq!(lines[0]["level"], "WARN");
        assert!(lines[1].get("trace_id").is_none());
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn log_lines_are_json_with_the_trace_id_even_when_the_filter_hides_the_span() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(otel_layer(&provider))
            .with(json_log_layer(EnvFilter::new("warn"), buffer.clone()));
        let trace_id = with_default(subscriber, || {
            let span = tracing::info_span!(
                "test.request",
                otel.kind = "internal",
                member_id = 7,
                name = "ada"
            );
            let _entered = span.enter();
            tracing::info!("hidden by the filter");
            let error = std::io::Error::other("disk full");
            tracing::warn!(
                attempt = 2,
                error = &error as &dyn std::error::Error,
                "cannot write"
            );
            current_trace_id().unwrap()
        });

        let output = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 1, "{output}");
        let line: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["message"], "cannot write");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["error"], "disk full");
        assert_eq!(line["member_id"], 7);
        assert_eq!(line["name"], "ada");
        assert_eq!(line["span"], "test.request");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"].as_str().unwrap().len(), 16);
        assert!(line["timestamp"].is_string());
        let keys: HashSet<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(!keys.iter().any(|key| key.starts_with("otel.")), "{keys:?}");
    }

    /// A `DEBUG` log record as the `log` bridge sees one, which asks the subscriber
    /// directly, whatever the maximum level.
    struct LogCallsite;

    static LOG_CALLSITE: LogCallsite = LogCallsite;

    static DEBUG_RECORD: Metadata<'static> = Metadata::new(
        "log record",
        "sqlx::query",
        Level::DEBUG,
        None,
        None,
        None,
        tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&LOG_CALLSITE)),
        tracing::metadata::Kind::EVENT,
    );

    impl tracing::callsite::Callsite for LogCallsite {
        fn set_interest(&self, _: Interest) {}

        fn metadata(&self) -> &Metadata<'_> {
            &DEBUG_RECORD
        }
    }

    #[test]
    fn a_span_after_a_disabled_check_is_still_traced() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(otel_layer(&provider))
            .with(json_log_layer(EnvFilter::new("info"), Buffer::default()));
        with_default(subscriber, || {
            for _ in 0..3 {
                // What `sqlx` asks through `log` before logging a query it then skips.
                tracing::dispatcher::get_default(|d| d.enabled(&DEBUG_RECORD));
                let span = tracing::info_span!("test.after_check");
                assert!(span.in_scope(current_trace_id).is_some());
            }
        });
    }

    #[test]
    fn rpc_names_split_the_path() {
        assert_eq!(
            rpc_names("/palaver.identity.v1.Identity/GetApp"),
            ("palaver.identity.v1.Identity", "GetApp")
        );
        assert_eq!(rpc_names("odd"), ("odd", ""));
    }
}
