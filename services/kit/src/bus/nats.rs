//! The bus on NATS: core NATS for fire-and-forget events and every subscription,
//! JetStream (one stream per prefix) for durable events, durable consumers and journals.

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::StreamExt;

use super::dedup::{DUPLICATE_WINDOW, Subscription};
use super::subject::{self, Prefix, check_durable_subject, check_name, check_subject};
use super::{
    BoxError, BusError, DEFAULT_MAX_AGE, DurableConsumer, Event, EventBus, Journal, durable,
    ensure_stream, journal, trace_headers,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The bus on NATS: core NATS for fire-and-forget events and all subscriptions,
/// JetStream (one stream per prefix) for durable events.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: Prefix,
    stream_name: String,
    max_age: Duration,
}

impl NatsBus {
    /// Connects to NATS at `url` with subjects under `prefix` and makes sure the event
    /// stream exists, storing events for [`DEFAULT_MAX_AGE`]. Fails rather than waiting
    /// when NATS is unreachable.
    pub async fn connect(url: &str, prefix: &str) -> Result<NatsBus, BusError> {
        NatsBus::connect_with(url, prefix, DEFAULT_MAX_AGE).await
    }

    /// Like [`NatsBus::connect`], with the stream keeping events for `max_age`.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        max_age: Duration,
    ) -> Result<NatsBus, BusError> {
        let prefix = Prefix::new(prefix)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| BusError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let jetstream = jetstream::new(client.clone());
        let stream_name = format!("{}_EVENTS", prefix.as_str().to_uppercase());
        let config = stream::Config {
            name: stream_name.clone(),
            subjects: subject::durable_patterns()
                .iter()
                .map(|pattern| prefix.root(pattern))
                .collect(),
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW.min(max_age),
            max_age,
            ..Default::default()
        };
        ensure_stream(&jetstream, config)
            .await
            .map_err(|source| BusError::Stream {
                stream: stream_name.clone(),
                source: source.into(),
            })?;
        Ok(NatsBus {
            client,
            jetstream,
            prefix,
            stream_name,
            max_age,
        })
    }

    /// The NATS client, for key-value buckets and other direct use.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context, for consumers on [`NatsBus::stream_name`].
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// The name of the stream storing durable events, e.g. `PALAVER_EVENTS`.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// The prefix subjects are rooted under on the wire.
    pub fn prefix(&self) -> &str {
        self.prefix.as_str()
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject, false)?;
        self.client
            .publish_with_headers(self.prefix.root(subject), trace_headers(), payload)
            .await
            .map_err(|source| BusError::Publish {
                subject: subject.to_owned(),
                source: source.into(),
            })
    }

    async fn publish_durable(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        check_durable_subject(subject)?;
        let error = |source: BoxError| BusError::Publish {
            subject: subject.to_owned(),
            source,
        };
        let mut headers = trace_headers();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        self.jetstream
            .publish_with_headers(self.prefix.root(subject), headers, payload)
            .await
            .map_err(|e| error(e.into()))?
            .await
            .map_err(|e| error(e.into()))?;
        Ok(())
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        check_subject(subject, true)?;
        let error = |source: BoxError| BusError::Subscribe {
            subject: subject.to_owned(),
            source,
        };
        let subscriber = self
            .client
            .subscribe(self.prefix.root(subject))
            .await
            .map_err(|e| error(e.into()))?;
        // The server has the subscription once it answers the flush's ping.
        self.client.flush().await.map_err(|e| error(e.into()))?;
        let prefix = self.prefix.clone();
        let events = subscriber.map(move |message| {
            Event::received(
                &prefix,
                &message.subject,
                message.payload,
                message.headers.unwrap_or_default(),
            )
        });
        Ok(Subscription::new(events.boxed()))
    }

    async fn ready(&self) -> Result<(), BusError> {
        let state = self.client.connection_state();
        if state != State::Connected {
            return Err(BusError::NotReady(format!("NATS connection {state}")));
        }
        match tokio::time::timeout(READY_TIMEOUT, self.jetstream.get_stream(&self.stream_name))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(BusError::NotReady(format!(
                "stream {}: {error}",
                self.stream_name
            ))),
            Err(_) => Err(BusError::NotReady(format!(
                "JetStream did not answer within {READY_TIMEOUT:?}"
            ))),
        }
    }

    async fn durable_consumer(
        &self,
        name: &str,
        ack_wait: Duration,
    ) -> Result<Box<dyn DurableConsumer>, BusError> {
        check_name(name)?;
        let consumer = durable::NatsConsumer::open(
            &self.client,
            &self.jetstream,
            &self.stream_name,
            &self.prefix,
            name,
            ack_wait,
        )
        .await?;
        Ok(Box::new(consumer))
    }

    fn retention(&self) -> Duration {
        self.max_age
    }

    async fn journal(&self, name: &str, max_age: Duration) -> Result<Arc<dyn Journal>, BusError> {
        check_name(name)?;
        Ok(Arc::new(journal::NatsJournal::new(
            self.jetstream.clone(),
            self.prefix.as_str(),
            name,
            max_age,
        )))
    }
}

/// Buses on the test NATS server, for this module's tests and the contract tests.
#[cfg(feature = "testing")]
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::testing;

    pub(in crate::bus) const TEST_MAX_AGE: Duration = Duration::from_secs(600);

    /// Connects under `prefix` with a stream that keeps events for ten minutes only.
    pub(in crate::bus) async fn connect(prefix: &str) -> NatsBus {
        NatsBus::connect_with(&testing::nats_url().await, prefix, TEST_MAX_AGE)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_stream_stores_durable_events_once() {
        let bus = connect(&testing::unique_prefix()).await;
        bus.publish_durable("app1.conv.c1.msg", "m-1", Bytes::from("first"))
            .await
            .unwrap();
        bus.publish_durable("app1.conv.c1.msg", "m-1", Bytes::from("again"))
            .await
            .unwrap();
        bus.publish_durable("app1.member.m1.inbox", "m-2", Bytes::from("second"))
            .await
            .unwrap();
        bus.publish("app1.presence.m1", Bytes::from("not stored"))
            .await
            .unwrap();
        let mut stream = bus.jetstream().get_stream(bus.stream_name()).await.unwrap();
        let info = stream.info().await.unwrap();
        assert_eq!(info.state.messages, 2);
        assert_eq!(info.config.duplicate_window, DUPLICATE_WINDOW);
        assert_eq!(info.config.max_age, TEST_MAX_AGE);
        bus.jetstream()
            .delete_stream(bus.stream_name())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn connecting_to_nothing_fails_at_once() {
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            NatsBus::connect("nats://127.0.0.1:1", &testing::unique_prefix()),
        )
        .await
        .expect("connect gives up instead of hanging");
        assert!(
            matches!(result, Err(BusError::Connect { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn not_ready_once_nats_is_gone() {
        let upstream = testing::nats_url().await;
        let upstream = upstream.trim_start_matches("nats://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("nats://{}", listener.local_addr().unwrap());
        // A proxy in front of NATS, so the test can take "NATS" away.
        let proxy = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let upstream = upstream.clone();
                connections.spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    tokio::io::copy_bidirectional(&mut client, &mut server)
                        .await
                        .ok();
                });
            }
        });

        let bus = connect(&testing::unique_prefix()).await;
        let via_proxy = NatsBus::connect(&proxy_url, bus.prefix()).await.unwrap();
        via_proxy.ready().await.unwrap();
        proxy.abort();
        let _ = proxy.await;
        let result = tokio::time::timeout(Duration::from_secs(10), via_proxy.ready())
            .await
            .expect("ready() answers instead of hanging");
        assert!(matches!(result, Err(BusError::NotReady(_))), "{result:?}");
        bus.jetstream()
            .delete_stream(bus.stream_name())
            .await
            .unwrap();
    }
}
