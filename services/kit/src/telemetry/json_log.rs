//! Structured logs: one JSON object per line, carrying the trace and span ids of the
//! OpenTelemetry span each event happened in.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OtelData;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::info_spans;
use crate::error::error_chain;

/// Writes what `filter` lets through, and every span at `INFO` and above, to `writer` as
/// [`JsonFormat`] lines.
pub(super) fn json_log_layer<S, W>(
    filter: EnvFilter,
    writer: W,
) -> impl tracing_subscriber::Layer<S>
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
        self.0
            .insert(field.name().into(), error_chain(value).into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Events bridged from the `log` crate repeat their metadata as fields.
        if !field.name().starts_with("log.") {
            self.0
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::telemetry::{current_trace_id, otel_layer};

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
}
