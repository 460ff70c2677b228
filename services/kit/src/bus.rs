//! The event bus: how services tell each other that something happened (DESIGN.md,
//! "Events on NATS").
//!
//! [`EventBus`] has two implementations behind one trait: [`NatsBus`] (core NATS for
//! fire-and-forget events, JetStream for durable ones) in a cluster, and [`LocalBus`]
//! (in process) in the embedded default. Callers name subjects without the bus prefix
//! (`app1.presence.m1`); the bus roots them under its prefix (`palaver.app1.presence.m1`)
//! and hands [`Event`]s back without it. Every publish carries the W3C trace context of
//! the current span in a `traceparent` header; [`Event::parent_context`] restores it.
//!
//! Durable events go to `<app>.conv.<id>.msg|state` and `<app>.member.<id>.inbox|permission`,
//! which the JetStream stream stores; both buses refuse durable publishes elsewhere. A
//! durable publish carries a message id (`Nats-Msg-Id`): JetStream drops a repeated id
//! within its duplicate window, and every [`Subscription`] drops repeats it has seen
//! recently, since core NATS subscribers see each publish, repeated or not.
//!
//! Besides subscriptions, which see events as they are published, the stored events
//! are read by [durable consumers](durable) that several processes share, and a
//! [journal](journal) keeps records per key for a while (the gateway's webhook
//! attempts). On NATS both are JetStream; the in-process bus keeps them in memory, so
//! they last as long as the process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::connection::State;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use opentelemetry::propagation::{Extractor, Injector};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::mpsc;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub mod durable;
pub mod journal;

pub use durable::{Delivery, DurableConsumer, Settlement};
pub use journal::{Journal, JournalPage};

/// The prefix every subject is rooted under unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "palaver";

/// How long JetStream stores events unless configured otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Subjects (after the prefix) that durable events may use: the stream's subjects.
/// Exact shapes rather than `>`, so that core-only events beside them (typing on
/// `<app>.conv.<id>.typing`) are not stored.
const DURABLE_SUBJECTS: [&str; 4] = [
    "*.conv.*.msg",
    "*.conv.*.state",
    "*.member.*.inbox",
    "*.member.*.permission",
];

/// How long a repeated message id is recognised, by JetStream and by subscriptions.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// At most this many recent message ids are remembered per subscription.
const MAX_REMEMBERED_IDS: usize = 10_000;

/// Events a [`LocalBus`] subscriber may have waiting before new ones are dropped for it.
const LOCAL_CAPACITY: usize = 1024;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(2);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    #[error("invalid bus prefix {0:?}: use one token of letters, digits, '-' or '_'")]
    InvalidPrefix(String),
    #[error(
        "{0:?} is not a durable subject (durable events go to <app>.conv.<id>.msg|state or <app>.member.<id>.inbox|permission)"
    )]
    NotDurable(String),
    #[error("invalid consumer or journal name {0:?}: use one token of letters, digits, '-' or '_'")]
    InvalidName(String),
    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot create or update the JetStream stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot publish to {subject}")]
    Publish {
        subject: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot subscribe to {subject}")]
    Subscribe {
        subject: String,
        #[source]
        source: BoxError,
    },
    #[error("the durable consumer {consumer} cannot {action}")]
    Consumer {
        consumer: String,
        action: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("the journal {journal} of {key} cannot be read or written")]
    Journal {
        journal: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("the event bus is not ready: {0}")]
    NotReady(String),
}

/// A new event id: `ev_` and 24 random letters and digits, also the `Nats-Msg-Id` of
/// its durable publish.
pub fn new_event_id() -> String {
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .map(|b| (b as char).to_ascii_lowercase())
        .take(24)
        .collect();
    format!("ev_{body}")
}

/// The subject prefix every NATS service of a deployment shares: `PALAVER_BUS_PREFIX`,
/// default [`DEFAULT_PREFIX`].
pub fn prefix_from_env(env: &crate::config::Env) -> Result<String, crate::config::ConfigError> {
    let prefix = env
        .raw("PALAVER_BUS_PREFIX")
        .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    check_prefix(&prefix).map_err(|e| crate::config::ConfigError {
        var: "PALAVER_BUS_PREFIX".to_owned(),
        message: e.to_string(),
    })?;
    Ok(prefix)
}

/// Creates a JetStream stream or updates its settings. Replicas starting together race
/// to create it: the loser's create fails (the subjects overlap the winner's stream), so
/// it tries again a few times, and then finds the stream and updates it.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: stream::Config,
) -> Result<(), jetstream::context::CreateStreamError> {
    let mut attempt = 0;
    loop {
        match jetstream.create_or_update_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt < 3 => {
                attempt += 1;
                tracing::debug!(%error, attempt, stream = %config.name, "stream setup raced; trying again");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Publishes and subscribes to events. Subjects are given without the bus prefix.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes a fire-and-forget event (presence changes, typing): delivered to whoever
    /// subscribes now, not stored.
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;

    /// Publishes a durable event and waits until it is stored. Publishing the same
    /// `msg_id` again within the duplicate window (2 minutes) delivers it only once.
    async fn publish_durable(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError>;

    /// Subscribes to a subject, which may use the NATS wildcards `*` (one token) and `>`
    /// (one or more trailing tokens). Sees both kinds of publish from the moment this
    /// returns.
    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError>;

    /// Whether the bus can publish and deliver now (for `/readyz`).
    async fn ready(&self) -> Result<(), BusError>;

    /// Opens the durable consumer `name` (one token of letters, digits, '-' or '_') of
    /// every durable event, creating it the first time with the events published from
    /// then on. Consumers opened with the same name, in any process on the same bus,
    /// share it: each event goes to one of them and comes back until it is settled. A
    /// delivery left unsettled for `ack_wait` (its process died) is delivered again.
    async fn durable_consumer(
        &self,
        name: &str,
        ack_wait: Duration,
    ) -> Result<Box<dyn DurableConsumer>, BusError>;

    /// How long durable events are kept: a durable consumer must settle each within it.
    fn retention(&self) -> Duration;

    /// The journal `name` (one token of letters, digits, '-' or '_'), keeping each
    /// record for `max_age`.
    async fn journal(&self, name: &str, max_age: Duration) -> Result<Arc<dyn Journal>, BusError>;
}

/// One event as a subscriber receives it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The subject without the bus prefix, e.g. `app1.conv.c1.msg`.
    pub subject: String,
    pub payload: Bytes,
    /// The message id of a durable publish.
    pub msg_id: Option<String>,
    /// The headers as published (`traceparent`, `Nats-Msg-Id`, …).
    pub headers: HeaderMap,
}

impl Event {
    /// The trace context of the span that published this event, to parent the
    /// handling span on (`span.set_parent(event.parent_context())`).
    pub fn parent_context(&self) -> opentelemetry::Context {
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(&self.headers))
        })
    }
}

/// A stream of the events on a subscribed subject; ends when the bus closes.
/// Dropping it unsubscribes.
pub struct Subscription {
    events: BoxStream<'static, Event>,
    seen: RecentIds,
}

impl Subscription {
    fn new(events: BoxStream<'static, Event>) -> Self {
        Subscription {
            events,
            seen: RecentIds::default(),
        }
    }
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            let Some(event) = std::task::ready!(self.events.poll_next_unpin(cx)) else {
                return Poll::Ready(None);
            };
            match &event.msg_id {
                Some(id) if !self.seen.first_time(id) => continue,
                _ => return Poll::Ready(Some(event)),
            }
        }
    }
}

/// The message ids seen within the duplicate window, oldest first.
#[derive(Default)]
struct RecentIds {
    order: VecDeque<(Instant, String)>,
    ids: HashSet<String>,
}

impl RecentIds {
    /// Remembers `id`; false when it was seen within the window.
    fn first_time(&mut self, id: &str) -> bool {
        let now = Instant::now();
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < DUPLICATE_WINDOW && self.order.len() < MAX_REMEMBERED_IDS {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back((now, id.to_owned()));
        true
    }
}

/// Whether `subject` matches `pattern`, where the pattern's `*` token matches any one
/// token and a final `>` matches one or more tokens (NATS semantics).
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// Checks a subject given by a caller: dot-separated non-empty tokens without
/// whitespace; with `wildcards`, a token may be `*`, and the last one `>`.
fn check_subject(subject: &str, wildcards: bool) -> Result<(), BusError> {
    let last = subject.split('.').count() - 1;
    let valid = subject
        .split('.')
        .enumerate()
        .all(|(i, token)| match token {
            "*" => wildcards,
            ">" => wildcards && i == last,
            _ => {
                !token.is_empty()
                    && !token.contains(|c: char| c == '*' || c == '>' || c.is_whitespace())
            }
        });
    if valid {
        Ok(())
    } else {
        Err(BusError::InvalidSubject(subject.to_owned()))
    }
}

fn check_durable_subject(subject: &str) -> Result<(), BusError> {
    check_subject(subject, false)?;
    if DURABLE_SUBJECTS
        .iter()
        .any(|pattern| subject_matches(pattern, subject))
    {
        Ok(())
    } else {
        Err(BusError::NotDurable(subject.to_owned()))
    }
}

fn check_name(name: &str) -> Result<(), BusError> {
    check_prefix(name).map_err(|_| BusError::InvalidName(name.to_owned()))
}

fn check_prefix(prefix: &str) -> Result<(), BusError> {
    if !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(BusError::InvalidPrefix(prefix.to_owned()))
    }
}

/// Headers carrying the trace context of the current span.
fn trace_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers))
    });
    headers
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// The bus on NATS: core NATS for fire-and-forget events and all subscriptions,
/// JetStream (one stream per prefix) for durable events.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
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
        check_prefix(prefix)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| BusError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let jetstream = jetstream::new(client.clone());
        let stream_name = format!("{}_EVENTS", prefix.to_uppercase());
        let config = stream::Config {
            name: stream_name.clone(),
            subjects: DURABLE_SUBJECTS
                .iter()
                .map(|s| format!("{prefix}.{s}"))
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
            prefix: prefix.to_owned(),
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
        &self.prefix
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject, false)?;
        self.client
            .publish_with_headers(
                format!("{}.{subject}", self.prefix),
                trace_headers(),
                payload,
            )
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
            .publish_with_headers(format!("{}.{subject}", self.prefix), headers, payload)
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
            .subscribe(format!("{}.{subject}", self.prefix))
            .await
            .map_err(|e| error(e.into()))?;
        // The server has the subscription once it answers the flush's ping.
        self.client.flush().await.map_err(|e| error(e.into()))?;
        let skip = self.prefix.len() + 1;
        let events = subscriber.map(move |message| {
            let headers = message.headers.unwrap_or_default();
            Event {
                subject: message
                    .subject
                    .as_str()
                    .get(skip..)
                    .unwrap_or_default()
                    .to_owned(),
                payload: message.payload,
                msg_id: headers
                    .get(NATS_MESSAGE_ID)
                    .map(|id| id.as_str().to_owned()),
                headers,
            }
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
            &self.prefix,
            name,
            max_age,
        )))
    }
}

/// The bus in process, for the embedded default: every subscriber has a bounded queue,
/// and a subscriber that falls behind loses events rather than slowing publishers.
/// Clones share the same bus.
#[derive(Debug, Clone)]
pub struct LocalBus {
    subscribers: Arc<Mutex<Vec<LocalSubscriber>>>,
    /// Durable consumers and journals by `<prefix>.<name>`.
    consumers: Arc<Mutex<HashMap<String, Arc<durable::LocalQueue>>>>,
    journals: Arc<Mutex<HashMap<String, Arc<journal::LocalJournal>>>>,
    prefix: String,
}

#[derive(Debug)]
struct LocalSubscriber {
    /// The subscribed subject, with the prefix.
    pattern: String,
    prefix_len: usize,
    sender: mpsc::Sender<Event>,
    lagging: bool,
}

impl LocalBus {
    /// A new, empty bus under [`DEFAULT_PREFIX`].
    pub fn new() -> Self {
        LocalBus {
            subscribers: Arc::default(),
            consumers: Arc::default(),
            journals: Arc::default(),
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// The same bus seen under another prefix: its subjects are apart from this one's.
    pub fn with_prefix(&self, prefix: &str) -> Result<LocalBus, BusError> {
        check_prefix(prefix)?;
        Ok(LocalBus {
            subscribers: self.subscribers.clone(),
            consumers: self.consumers.clone(),
            journals: self.journals.clone(),
            prefix: prefix.to_owned(),
        })
    }

    fn deliver(&self, subject: &str, payload: Bytes, mut headers: HeaderMap, msg_id: Option<&str>) {
        if let Some(id) = msg_id {
            headers.insert(NATS_MESSAGE_ID, id);
        }
        let subject = format!("{}.{subject}", self.prefix);
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscribers.retain_mut(|subscriber| {
            if subscriber.sender.is_closed() {
                return false;
            }
            if !subject_matches(&subscriber.pattern, &subject) {
                return true;
            }
            let event = Event {
                subject: subject[subscriber.prefix_len + 1..].to_owned(),
                payload: payload.clone(),
                msg_id: msg_id.map(str::to_owned),
                headers: headers.clone(),
            };
            match subscriber.sender.try_send(event) {
                Ok(()) => subscriber.lagging = false,
                Err(_) => {
                    metrics::counter!("palaver_bus_events_dropped_total").increment(1);
                    if !std::mem::replace(&mut subscriber.lagging, true) {
                        tracing::warn!(
                            subscription = %subscriber.pattern,
                            "a slow subscriber fell {LOCAL_CAPACITY} events behind; dropping events for it"
                        );
                    }
                }
            }
            true
        });
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus::new()
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject, false)?;
        self.deliver(subject, payload, trace_headers(), None);
        Ok(())
    }

    async fn publish_durable(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        check_durable_subject(subject)?;
        let mut headers = trace_headers();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        let event = Event {
            subject: subject.to_owned(),
            payload: payload.clone(),
            msg_id: Some(msg_id.to_owned()),
            headers: headers.clone(),
        };
        let mine = format!("{}.", self.prefix);
        let queues: Vec<Arc<durable::LocalQueue>> = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(name, _)| name.starts_with(&mine))
            .map(|(_, queue)| queue.clone())
            .collect();
        for queue in queues {
            queue.push(event.clone());
        }
        self.deliver(subject, payload, headers, Some(msg_id));
        Ok(())
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        check_subject(subject, true)?;
        let (sender, receiver) = mpsc::channel(LOCAL_CAPACITY);
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LocalSubscriber {
                pattern: format!("{}.{subject}", self.prefix),
                prefix_len: self.prefix.len(),
                sender,
                lagging: false,
            });
        Ok(Subscription::new(
            tokio_stream::wrappers::ReceiverStream::new(receiver).boxed(),
        ))
    }

    async fn ready(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn durable_consumer(
        &self,
        name: &str,
        _ack_wait: Duration,
    ) -> Result<Box<dyn DurableConsumer>, BusError> {
        check_name(name)?;
        let queue = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(format!("{}.{name}", self.prefix))
            .or_default()
            .clone();
        Ok(Box::new(durable::LocalConsumer { queue }))
    }

    /// Durable events stay in memory until they are settled.
    fn retention(&self) -> Duration {
        Duration::MAX
    }

    async fn journal(&self, name: &str, max_age: Duration) -> Result<Arc<dyn Journal>, BusError> {
        check_name(name)?;
        let journal = self
            .journals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(format!("{}.{name}", self.prefix))
            .or_insert_with(|| Arc::new(journal::LocalJournal::new(max_age)))
            .clone();
        Ok(journal)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use opentelemetry::trace::{TraceContextExt, TracerProvider};
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        let cases = [
            ("a.b.c", "a.b.c", true),
            ("a.b.c", "a.b", false),
            ("a.b", "a.b.c", false),
            ("a.*.c", "a.x.c", true),
            ("a.*.c", "a.x.y.c", false),
            ("a.*", "a", false),
            ("*.*", "a.b", true),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c.d", true),
            ("a.>", "a", false),
            (">", "a", true),
            ("a.*.>", "a.b", false),
            ("a.*.>", "a.b.c", true),
            ("a.b", "a.bc", false),
        ];
        for (pattern, subject, expected) in cases {
            assert_eq!(
                subject_matches(pattern, subject),
                expected,
                "{pattern} ~ {subject}"
            );
        }
    }

    #[test]
    fn subjects_are_checked() {
        for valid in ["a", "a.b.c", "app-1.conv.c_1.msg"] {
            assert!(check_subject(valid, false).is_ok(), "{valid}");
        }
        for invalid in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a*.b"] {
            assert!(
                matches!(
                    check_subject(invalid, false),
                    Err(BusError::InvalidSubject(_))
                ),
                "{invalid}"
            );
        }
        for pattern in ["a.*", "*.b.>", ">"] {
            assert!(check_subject(pattern, true).is_ok(), "{pattern}");
        }
        for invalid in ["a.>.b", "a.b>", "a.**"] {
            assert!(check_subject(invalid, true).is_err(), "{invalid}");
        }
        assert!(check_durable_subject("app1.conv.c1.msg").is_ok());
        assert!(check_durable_subject("app1.conv.c1.state").is_ok());
        assert!(check_durable_subject("app1.member.m1.inbox").is_ok());
        assert!(check_durable_subject("app1.member.m1.permission").is_ok());
        for core_only in [
            "app1.presence.m1",
            "app1.conv.c1.typing",
            "app1.member.m1.x",
        ] {
            assert!(
                matches!(
                    check_durable_subject(core_only),
                    Err(BusError::NotDurable(_))
                ),
                "{core_only}"
            );
        }
        assert!(check_prefix("t1-a_b").is_ok());
        assert!(
            check_prefix("a.b").is_err()
                && check_prefix("").is_err()
                && check_prefix("a*").is_err()
        );
    }

    #[test]
    fn recent_ids_forget_the_oldest_beyond_the_limit() {
        let mut seen = RecentIds::default();
        assert!(seen.first_time("x"));
        assert!(!seen.first_time("x"));
        for i in 0..MAX_REMEMBERED_IDS {
            assert!(seen.first_time(&i.to_string()));
        }
        assert!(seen.first_time("x"), "x was the oldest and is forgotten");
        assert_eq!(seen.ids.len(), seen.order.len());
    }

    /// Makes buses for the contract tests; buses with different prefixes share one
    /// backend (one NATS server, one in-process bus).
    trait Backend {
        fn bus(&self, prefix: &str) -> impl Future<Output = Arc<dyn EventBus>>;

        /// Removes what the buses left on the backend.
        fn clean_up(self) -> impl Future<Output = ()>;
    }

    async fn next(subscription: &mut Subscription) -> Event {
        tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("an event within 10 s")
            .expect("the subscription is open")
    }

    fn text(event: &Event) -> &str {
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

        #[tokio::test]
        async fn a_slow_subscriber_loses_events_without_blocking_publishers() {
            let bus = LocalBus::new();
            let mut slow = bus.subscribe("app1.presence.m1").await.unwrap();
            for i in 0..LOCAL_CAPACITY + 10 {
                bus.publish("app1.presence.m1", Bytes::from(i.to_string()))
                    .await
                    .unwrap();
            }
            for i in 0..LOCAL_CAPACITY {
                assert_eq!(text(&next(&mut slow).await), i.to_string());
            }
            bus.publish("app1.presence.m1", Bytes::from("after"))
                .await
                .unwrap();
            assert_eq!(
                text(&next(&mut slow).await),
                "after",
                "the overflow was dropped"
            );
        }

        #[tokio::test]
        async fn dropping_a_subscription_unsubscribes() {
            let bus = LocalBus::new();
            drop(bus.subscribe("app1.>").await.unwrap());
            bus.publish("app1.presence.m1", Bytes::new()).await.unwrap();
            assert!(bus.subscribers.lock().unwrap().is_empty());
        }
    }

    #[cfg(feature = "testing")]
    mod nats {
        use super::*;
        use crate::testing;

        const TEST_MAX_AGE: Duration = Duration::from_secs(600);

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

        /// Connects under `prefix` with a stream that keeps events for ten minutes only.
        async fn connect(prefix: &str) -> NatsBus {
            NatsBus::connect_with(&testing::nats_url().await, prefix, TEST_MAX_AGE)
                .await
                .unwrap()
        }

        contract_tests!(Nats::new());

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
}
