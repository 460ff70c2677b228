//! The contract every [`EventBus`] keeps: one suite of tests, run against the in-process
//! bus and against NATS (with the `testing` feature, on the test NATS server).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::StreamExt;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// Makes buses for the contract tests; buses with different prefixes share one
/// backend (one NATS server, one in-process bus).
trait Backend {
    fn bus(&self, prefix: &str) -> impl Future<Output = Arc<dyn EventBus>>;

    /// Removes what the buses left on the backend.
    fn clean_up(self) -> impl Future<Output = ()>;
}

pub(super) async fn next(subscription: &mut Subscription) -> Event {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an event within 10 s")
        .expect("the subscription is open")
}

pub(super) fn text(event: &Event) -> &str {
    std::str::from_utf8(&event.payload).unwrap()
}

async fn exact_subjects(backend: &impl Backend) {
    let bus = backend.bus("palaver").await;
    let mut subscription = bus.subscribe("app1.presence.m1").await.unwrap();
    bus.publish("app1.presence.m2", Bytes::from("other"))
        .await
        .unwrap();
    bus.publish("app1.presence.m1", Bytes::from("online"))
        .await
        .unwrap();
    let event = next(&mut subscription).await;
    assert_eq!(event.subject, "app1.presence.m1");
    assert_eq!(text(&event), "online");
    assert_eq!(event.msg_id, None);
}

async fn wildcards(backend: &impl Backend) {
    let bus = backend.bus("palaver").await;
    let mut one_token = bus.subscribe("app1.conv.*.msg").await.unwrap();
    let mut rest = bus.subscribe("app1.>").await.unwrap();
    bus.publish("app2.conv.c1.msg", Bytes::from("other app"))
        .await
        .unwrap();
    bus.publish("app1.conv.c1.state", Bytes::from("typing"))
        .await
        .unwrap();
    bus.publish("app1.conv.c1.msg.x", Bytes::from("too long"))
        .await
        .unwrap();
    bus.publish("app1.conv.c2.msg", Bytes::from("hello"))
        .await
        .unwrap();

    let event = next(&mut one_token).await;
    assert_eq!(
        (event.subject.as_str(), text(&event)),
        ("app1.conv.c2.msg", "hello")
    );
    let received: Vec<String> = [
        next(&mut rest).await,
        next(&mut rest).await,
        next(&mut rest).await,
    ]
    .iter()
    .map(|event| event.subject.clone())
    .collect();
    assert_eq!(
        received,
        [
            "app1.conv.c1.state",
            "app1.conv.c1.msg.x",
            "app1.conv.c2.msg"
        ]
    );
}

async fn prefixes_keep_buses_apart(backend: &impl Backend) {
    let a = backend.bus("palaver").await;
    let b = backend.bus("other").await;
    let mut on_a = a.subscribe(">").await.unwrap();
    let mut on_b = b.subscribe(">").await.unwrap();
    a.publish("app1.presence.m1", Bytes::from("from a"))
        .await
        .unwrap();
    // Once a's own subscriber has it, it has been routed to every subscriber.
    let event = next(&mut on_a).await;
    assert_eq!(
        (event.subject.as_str(), text(&event)),
        ("app1.presence.m1", "from a")
    );
    b.publish("app1.presence.m1", Bytes::from("from b"))
        .await
        .unwrap();
    let event = next(&mut on_b).await;
    assert_eq!(
        (event.subject.as_str(), text(&event)),
        ("app1.presence.m1", "from b")
    );
}

async fn durable_publishes_are_deduplicated(backend: &impl Backend) {
    let bus = backend.bus("palaver").await;
    let mut subscription = bus.subscribe("app1.conv.c1.msg").await.unwrap();
    bus.publish_durable("app1.conv.c1.msg", "m-1", Bytes::from("first"))
        .await
        .unwrap();
    bus.publish_durable("app1.conv.c1.msg", "m-1", Bytes::from("again"))
        .await
        .unwrap();
    bus.publish_durable("app1.conv.c1.msg", "m-2", Bytes::from("second"))
        .await
        .unwrap();
    let first = next(&mut subscription).await;
    assert_eq!(
        (text(&first), first.msg_id.as_deref()),
        ("first", Some("m-1"))
    );
    let second = next(&mut subscription).await;
    assert_eq!(
        (text(&second), second.msg_id.as_deref()),
        ("second", Some("m-2"))
    );

    let refused = bus
        .publish_durable("app1.presence.m1", "m-3", Bytes::new())
        .await;
    assert!(
        matches!(refused, Err(BusError::NotDurable(_))),
        "{refused:?}"
    );
}

async fn invalid_subjects_are_refused(backend: &impl Backend) {
    let bus = backend.bus("palaver").await;
    assert!(matches!(
        bus.publish("app1..m1", Bytes::new()).await,
        Err(BusError::InvalidSubject(_))
    ));
    assert!(matches!(
        bus.publish("app1.*", Bytes::new()).await,
        Err(BusError::InvalidSubject(_))
    ));
    assert!(matches!(
        bus.subscribe("app1.>.m1").await,
        Err(BusError::InvalidSubject(_))
    ));
}

async fn trace_context_crosses_the_bus(backend: &impl Backend) {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bus-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let bus = backend.bus("palaver").await;
    let mut subscription = bus.subscribe("app1.>").await.unwrap();
    let span = tracing::info_span!("send");
    let trace_id = span.context().span().span_context().trace_id();
    assert_ne!(trace_id, opentelemetry::trace::TraceId::INVALID);
    async {
        bus.publish("app1.presence.m1", Bytes::from("core"))
            .await
            .unwrap();
        bus.publish_durable("app1.conv.c1.msg", "m-1", Bytes::from("durable"))
            .await
            .unwrap();
    }
    .instrument(span)
    .await;
    for _ in 0..2 {
        let event = next(&mut subscription).await;
        assert_eq!(
            event.parent_context().span().span_context().trace_id(),
            trace_id,
            "{}",
            event.subject
        );
    }
}

async fn ready_when_up(backend: &impl Backend) {
    backend.bus("palaver").await.ready().await.unwrap();
}

async fn fetch_one(consumer: &mut Box<dyn DurableConsumer>) -> Delivery {
    let mut batch = consumer.fetch(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(batch.len(), 1, "one event within 10 s");
    batch.remove(0)
}

async fn durable_consumers_share_events_until_settled(backend: &impl Backend) {
    let one = backend.bus("palaver").await;
    let other = backend.bus("palaver").await;
    let ack_wait = Duration::from_secs(1);
    let mut first = one.durable_consumer("hooks", ack_wait).await.unwrap();
    let mut second = other.durable_consumer("hooks", ack_wait).await.unwrap();
    for (id, text) in [("e-1", "a"), ("e-1", "a again"), ("e-2", "b"), ("e-3", "c")] {
        one.publish_durable("app1.conv.c1.msg", id, Bytes::from(text))
            .await
            .unwrap();
    }

    let a = fetch_one(&mut first).await;
    let b = fetch_one(&mut second).await;
    assert_eq!((text(&a.event), a.attempt), ("a", 1));
    assert_eq!(a.event.subject, "app1.conv.c1.msg");
    assert_eq!(a.event.msg_id.as_deref(), Some("e-1"));
    assert_eq!((text(&b.event), b.attempt), ("b", 1));
    a.settle(Settlement::RetryAfter(Duration::from_millis(100)))
        .await
        .unwrap();
    b.settle(Settlement::GiveUp).await.unwrap();

    let c = fetch_one(&mut second).await;
    assert_eq!((text(&c.event), c.attempt), ("c", 1));
    // Dropped unsettled, as when its process stops: it comes back.
    drop(c);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let delivery = fetch_one(&mut first).await;
        seen.push((text(&delivery.event).to_owned(), delivery.attempt));
        delivery.settle(Settlement::Done).await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, [("a".to_owned(), 2), ("c".to_owned(), 2)]);
    assert!(
        first
            .fetch(10, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty(),
        "settled events do not come back"
    );
    assert_eq!(first.backlog().await.unwrap(), 0);
    assert!(matches!(
        one.durable_consumer("a.b", ack_wait).await,
        Err(BusError::InvalidName(_))
    ));
}

async fn a_fetch_that_returned_leaves_later_events_to_the_next(backend: &impl Backend) {
    let bus = backend.bus("palaver").await;
    let mut consumer = bus
        .durable_consumer("hooks", Duration::from_secs(30))
        .await
        .unwrap();
    bus.publish_durable("app1.conv.c1.msg", "e-1", Bytes::from("a"))
        .await
        .unwrap();
    let first = consumer.fetch(4, Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.len(), 1, "a fetch returns with what there is");
    for (id, text) in [("e-2", "b"), ("e-3", "c")] {
        bus.publish_durable("app1.conv.c1.msg", id, Bytes::from(text))
            .await
            .unwrap();
    }
    let mut later = Vec::new();
    while later.len() < 2 {
        let fetched = consumer.fetch(4, Duration::from_secs(10)).await.unwrap();
        assert!(!fetched.is_empty(), "the later events within 10 s");
        later.extend(fetched);
    }
    let seen: Vec<(&str, u64)> = first
        .iter()
        .chain(&later)
        .map(|delivery| (text(&delivery.event), delivery.attempt))
        .collect();
    assert_eq!(seen, [("a", 1), ("b", 1), ("c", 1)]);
    first
        .into_iter()
        .next()
        .unwrap()
        .settle(Settlement::Ignored)
        .await
        .unwrap();
    for delivery in later {
        delivery.settle(Settlement::Done).await.unwrap();
    }
    assert!(
        consumer
            .fetch(4, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty(),
        "ignored and done events do not come back"
    );
    assert_eq!(consumer.backlog().await.unwrap(), 0);
}

async fn journals_page_newest_first(backend: &impl Backend) {
    let bus = backend.bus("palaver").await;
    let journal = bus
        .journal("attempts", Duration::from_secs(600))
        .await
        .unwrap();
    for record in ["r1", "r2", "r3"] {
        journal.append("app1", Bytes::from(record)).await.unwrap();
    }
    journal.append("app2", Bytes::from("other")).await.unwrap();
    // Another handle of the same journal reads the same records.
    let again = backend
        .bus("palaver")
        .await
        .journal("attempts", Duration::from_secs(600))
        .await
        .unwrap();
    let newest = again.page("app1", None, 2).await.unwrap();
    assert_eq!(newest.records, [Bytes::from("r3"), Bytes::from("r2")]);
    let older = again.page("app1", newest.next, 2).await.unwrap();
    assert_eq!((older.records, older.next), (vec![Bytes::from("r1")], None));
    assert_eq!(
        again.page("app3", None, 2).await.unwrap(),
        JournalPage::default()
    );
}

macro_rules! contract_tests {
    ($backend:expr) => {
        #[tokio::test]
        async fn exact_subjects() {
            let backend = $backend;
            super::exact_subjects(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn wildcards() {
            let backend = $backend;
            super::wildcards(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn prefixes_keep_buses_apart() {
            let backend = $backend;
            super::prefixes_keep_buses_apart(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn durable_publishes_are_deduplicated() {
            let backend = $backend;
            super::durable_publishes_are_deduplicated(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn invalid_subjects_are_refused() {
            let backend = $backend;
            super::invalid_subjects_are_refused(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn trace_context_crosses_the_bus() {
            let backend = $backend;
            super::trace_context_crosses_the_bus(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn ready_when_up() {
            let backend = $backend;
            super::ready_when_up(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn durable_consumers_share_events_until_settled() {
            let backend = $backend;
            super::durable_consumers_share_events_until_settled(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn a_fetch_that_returned_leaves_later_events_to_the_next() {
            let backend = $backend;
            super::a_fetch_that_returned_leaves_later_events_to_the_next(&backend).await;
            backend.clean_up().await;
        }
        #[tokio::test]
        async fn journals_page_newest_first() {
            let backend = $backend;
            super::journals_page_newest_first(&backend).await;
            backend.clean_up().await;
        }
    };
}

struct Local(LocalBus);

impl Backend for Local {
    async fn bus(&self, prefix: &str) -> Arc<dyn EventBus> {
        Arc::new(self.0.with_prefix(prefix).unwrap())
    }

    async fn clean_up(self) {}
}

mod local {
    use super::*;

    contract_tests!(Local(LocalBus::new()));
}

#[cfg(feature = "testing")]
mod nats {
    use std::sync::Mutex;

    use super::*;
    use crate::bus::nats::tests::connect;
    use crate::testing;

    /// Buses on the test NATS server, under prefixes unique to this backend.
    struct Nats {
        id: String,
        buses: Mutex<Vec<NatsBus>>,
    }

    impl Nats {
        fn new() -> Self {
            Nats {
                id: testing::unique_prefix(),
                buses: Mutex::default(),
            }
        }
    }

    impl Backend for Nats {
        async fn bus(&self, prefix: &str) -> Arc<dyn EventBus> {
            let bus = connect(&format!("{}{prefix}", self.id)).await;
            self.buses.lock().unwrap().push(bus.clone());
            Arc::new(bus)
        }

        /// Deletes the streams of the buses' prefixes: events and journals.
        async fn clean_up(self) {
            let buses = self.buses.into_inner().unwrap();
            let Some(bus) = buses.first() else { return };
            let mine: Vec<String> = buses
                .iter()
                .map(|bus| format!("{}_", bus.prefix().to_uppercase()))
                .collect();
            let names: Vec<String> = bus
                .jetstream()
                .stream_names()
                .filter_map(|name| async move { name.ok() })
                .collect()
                .await;
            for name in names
                .iter()
                .filter(|n| mine.iter().any(|m| n.starts_with(m)))
            {
                bus.jetstream().delete_stream(name).await.unwrap();
            }
        }
    }

    contract_tests!(Nats::new());
}
