//! The event bus: how services tell each other that something happened (DESIGN.md,
//! "Events on NATS").
//!
//! [`EventBus`] has two implementations behind one trait: [`NatsBus`] (core NATS for
//! fire-and-forget events, JetStream for durable ones) in a cluster, and [`LocalBus`]
//! (in process) in the embedded default. Callers name subjects without the bus prefix
//! (`app1.presence.m1`), built as a [`Subject`]; the bus roots them under its prefix
//! (`palaver.app1.presence.m1`) and hands [`Event`]s back without it, their subject read
//! back with `str::parse::<Subject>`. Every publish carries the W3C trace context of
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
//!
//! The modules: `subject` ([`Subject`], the rules subjects, patterns and names follow,
//! and the prefix), `nats` ([`NatsBus`]), `local` ([`LocalBus`]), `dedup`
//! ([`Subscription`] and the duplicate window), [`durable`] and [`journal`];
//! `contract_tests` is the one suite both buses pass.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use bytes::Bytes;

use crate::telemetry;

#[cfg(test)]
mod contract_tests;
mod dedup;
pub mod durable;
pub mod journal;
mod local;
mod nats;
mod subject;

pub use dedup::Subscription;
pub use durable::{Delivery, DurableConsumer, Settlement};
pub use journal::{Journal, JournalPage};
pub use local::LocalBus;
pub use nats::NatsBus;
pub use subject::{ConversationKind, MemberKind, Subject, SubjectError};
use subject::{Prefix, check_prefix};

/// The prefix every subject is rooted under unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "palaver";

/// How long JetStream stores events unless configured otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

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
    crate::random::new_id("ev_", 24)
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
    /// The subject without the bus prefix, e.g. `app1.conv.c1.msg`: route by it with
    /// `event.subject.parse::<Subject>()`.
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
        telemetry::extract_nats_headers(&self.headers)
    }

    /// An event as it came off the wire under `prefix`, its message id read from the
    /// headers.
    fn received(prefix: &Prefix, subject: &str, payload: Bytes, headers: HeaderMap) -> Event {
        Event {
            subject: prefix.strip(subject).to_owned(),
            payload,
            msg_id: headers
                .get(NATS_MESSAGE_ID)
                .map(|id| id.as_str().to_owned()),
            headers,
        }
    }
}

/// Headers carrying the trace context of the current span.
fn trace_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    telemetry::inject_nats_headers(&mut headers);
    headers
}
