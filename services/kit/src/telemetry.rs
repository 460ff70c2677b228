//! Telemetry: JSON logs that carry the trace id, OpenTelemetry traces exported with OTLP,
//! and W3C trace context carried across process boundaries.
//!
//! [`init`] installs the process-wide subscriber once: the OpenTelemetry layer, and the
//! JSON log lines of `json_log`. Trace context crosses gRPC through
//! [`GrpcServerTraceLayer`] and [`GrpcClientTraceLayer`] (`grpc_layers`), HTTP through
//! [`inject_headers`] and [`extract_headers`], NATS messages through the bus, a kept
//! `traceparent` through [`current_traceparent`] and [`extract_traceparent`], and any other
//! carrier through [`inject`] and [`extract`] (`propagation`).
//!
//! Spans at `INFO` and above are always traced, whatever `RUST_LOG` says: the log filter
//! only chooses which events are written, so turning logs down never breaks a trace.

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{
    EnvFilter, FilterExt as _, LevelFilter, dynamic_filter_fn, filter_fn,
};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

mod grpc_layers;
mod json_log;
mod propagation;

pub use grpc_layers::{
    GrpcClientTrace, GrpcClientTraceLayer, GrpcServerTrace, GrpcServerTraceLayer,
};
use json_log::json_log_layer;
pub use propagation::{
    current_trace_id, current_traceparent, extract, extract_headers, extract_traceparent, inject,
    inject_headers,
};
pub(crate) use propagation::{extract_nats_headers, inject_nats_headers};

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

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tracing::Instrument as _;
    use tracing::subscriber::with_default;

    use super::*;

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
            .with(json_log_layer(EnvFilter::new("info"), std::io::sink));
        with_default(subscriber, || {
            for _ in 0..3 {
                // What `sqlx` asks through `log` before logging a query it then skips.
                tracing::dispatcher::get_default(|d| d.enabled(&DEBUG_RECORD));
                let span = tracing::info_span!("test.after_check");
                assert!(span.in_scope(current_trace_id).is_some());
            }
        });
    }
}
