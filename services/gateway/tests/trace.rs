//! One trace from a visitor's `message.send` to the operator's socket (DESIGN.md,
//! "Observability"): the services of the API tests run in this process and export their
//! spans with OTLP to a collector the test runs; the test finds every hop under the
//! trace of the visitor's frame.
//!
//! `telemetry::init_with_endpoint` installs the process's one subscriber and tracer
//! provider before anything is spawned, so this test has a binary of its own.

#[path = "api/helpers.rs"]
#[allow(dead_code)] // The API tests use the rest of the helpers.
mod helpers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use palaver_kit::bus::{ConversationKind, Subject};
use serde_json::json;

use helpers::{SITE, Ws};

/// An OTLP trace collector keeping every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let received = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves on port 0; answers the collector and its endpoint.
    async fn start() -> (Collector, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (collector, endpoint)
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(value) => Some(value.as_str()),
            _ => None,
        })
}

/// A span's name, trace id, id and parent id, for a failure's message.
fn describe(span: &Span) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!(
        "{} trace={} span={} parent={}",
        span.name,
        hex(&span.trace_id),
        hex(&span.span_id),
        hex(&span.parent_span_id)
    )
}

/// The hops of one message's trace, once all of them (and every span between them
/// and the root) have arrived.
struct Hops<'a> {
    receive: &'a Span,
    grpc_server: &'a Span,
    publish: &'a Span,
    deliver: &'a Span,
}

/// The trace of the `message.send` frame, when every hop is in `spans` and each one
/// descends from the frame's span through spans that are all there.
fn hops<'a>(spans: &'a [Span], subject: &str) -> Option<Hops<'a>> {
    let receive = spans.iter().find(|s| s.name == "ws message.send")?;
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == receive.trace_id)
        .collect();
    let find = |matches: &dyn Fn(&Span) -> bool| trace.iter().copied().find(|s| matches(s));
    let hops = Hops {
        receive,
        grpc_server: find(&|s| {
            s.name.ends_with("/SendMessage") && s.kind == SpanKind::Server as i32
        })?,
        publish: find(&|s| {
            s.name == format!("publish {subject}") && s.kind == SpanKind::Producer as i32
        })?,
        deliver: find(&|s| {
            s.name == format!("deliver {subject}")
                && s.kind == SpanKind::Consumer as i32
                && attribute(s, "ws.receiver") == Some("operator")
        })?,
    };
    let by_id: HashMap<&[u8], &Span> = trace.iter().map(|s| (&s.span_id[..], *s)).collect();
    let descends = |span: &Span| {
        let mut current = span;
        while !current.parent_span_id.is_empty() {
            match by_id.get(&current.parent_span_id[..]) {
                Some(parent) => current = parent,
                None => return false,
            }
        }
        current.span_id == receive.span_id
    };
    [hops.grpc_server, hops.publish, hops.deliver]
        .into_iter()
        .all(descends)
        .then_some(hops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_is_one_trace_from_the_visitors_socket_to_the_operators() {
    let (collector, otlp) = Collector::start().await;
    let telemetry = palaver_kit::telemetry::init_with_endpoint("palaver-test", &otlp).unwrap();
    assert!(telemetry.is_active(), "this binary's first init exports");

    let t = helpers::spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let mut operator = t.ws(None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    let token = t.visitor_token(&app, &endpoint, "Ada").await;
    let mut visitor = Ws::connect(&t.base, Some(SITE)).await;
    visitor.hello(&token).await;
    visitor
        .send(json!({"type": "conversation.open", "endpoint": endpoint}))
        .await;
    let opened = visitor.until("conversation", |_| true).await;
    let id = opened["id"].as_str().unwrap().to_owned();
    operator.until("conversation", |f| f["id"] == id).await;

    visitor
        .send(json!({"type": "message.send", "conversation": id, "client_id": "v1", "text": "Hello?"}))
        .await;
    visitor
        .until("message.ack", |f| f["client_id"] == "v1")
        .await;
    let heard = operator.until("message", |f| f["client_id"] == "v1").await;
    assert_eq!(heard["text"], "Hello?");

    let subject = Subject::conversation(&app.app_id, &id, ConversationKind::Msg).to_string();
    let spans = palaver_kit::testing::eventually("a complete trace of the message", || async {
        telemetry.force_flush().unwrap();
        let spans = collector.spans();
        match hops(&spans, &subject) {
            Some(_) => Ok(spans),
            None => {
                let seen: Vec<String> = spans.iter().map(describe).collect();
                Err(format!("spans:\n{}", seen.join("\n")))
            }
        }
    })
    .await;
    let hops = hops(&spans, &subject).unwrap();
    assert_eq!(hops.receive.kind, SpanKind::Server as i32);
    assert_eq!(attribute(hops.receive, "ws.frame"), Some("message.send"));
    assert_eq!(
        attribute(hops.grpc_server, "rpc.method"),
        Some("SendMessage")
    );
    assert_eq!(
        attribute(hops.publish, "messaging.destination.name"),
        Some(subject.as_str())
    );
    for hop in [hops.grpc_server, hops.publish, hops.deliver] {
        assert_eq!(hop.trace_id, hops.receive.trace_id, "{}", hop.name);
    }
}
