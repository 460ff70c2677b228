//! Trace context in and out of carriers: W3C `traceparent` headers on HTTP requests,
//! gRPC metadata and NATS messages, and a `traceparent` stored for work done later (an
//! outbox event published after its request ended).

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, global};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// HTTP (and gRPC) headers as a carrier to write into.
pub(super) struct HeaderInjector<'a>(pub(super) &'a mut HeaderMap);

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

/// HTTP (and gRPC) headers as a carrier to read.
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

/// Writes `context` into a carrier.
pub(super) fn inject_context(context: &Context, injector: &mut dyn Injector) {
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

/// NATS headers as a carrier to write into.
struct NatsHeaderInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsHeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

/// NATS headers as a carrier to read.
struct NatsHeaderExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Writes the current span's trace context into the headers of a NATS message.
pub(crate) fn inject_nats_headers(headers: &mut async_nats::HeaderMap) {
    inject(&mut NatsHeaderInjector(headers));
}

/// Reads the trace context that the headers of a NATS message carry.
pub(crate) fn extract_nats_headers(headers: &async_nats::HeaderMap) -> Context {
    extract(&NatsHeaderExtractor(headers))
}

/// The W3C `traceparent` of the current span, to keep with work that is done later;
/// `None` outside a traced span.
pub fn current_traceparent() -> Option<String> {
    let mut carrier = HashMap::new();
    inject(&mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Reads the trace context a kept `traceparent` names (see [`current_traceparent`]).
pub fn extract_traceparent(traceparent: &str) -> Context {
    extract(&HashMap::from([(
        TRACEPARENT.to_owned(),
        traceparent.to_owned(),
    )]))
}

/// The W3C header that carries the trace context.
const TRACEPARENT: &str = "traceparent";

/// The trace id of the current span, as 32 hex digits; `None` outside a traced span.
pub fn current_trace_id() -> Option<String> {
    let context = Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::init_for_tests;

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
    fn a_kept_traceparent_names_the_trace_it_was_taken_in() {
        init_for_tests();
        assert_eq!(current_traceparent(), None, "no trace outside a span");
        let span = tracing::info_span!("test.kept");
        let _entered = span.enter();
        let trace_id = current_trace_id().expect("a traced span has a trace id");
        let traceparent = current_traceparent().expect("a traced span has a traceparent");
        assert!(traceparent.contains(&trace_id), "{traceparent}");
        let extracted = extract_traceparent(&traceparent);
        assert_eq!(
            extracted.span().span_context().trace_id().to_string(),
            trace_id
        );
        assert!(
            !extract_traceparent("not a traceparent")
                .span()
                .span_context()
                .is_valid()
        );
    }
}
