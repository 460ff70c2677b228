//! Durable consumers of the stored events ([`EventBus::durable_consumer`](super::EventBus::durable_consumer)).
//!
//! Every process that opens the consumer of one name shares it, so each event is handed
//! to one of them. An event comes back until it is settled: done, retried after a delay
//! the consumer chooses, or given up. On NATS the consumer is a JetStream durable pull
//! consumer on the events stream (acknowledged, negatively acknowledged with a delay, or
//! terminated), so what a stopped process held is delivered again to another; the
//! in-process bus keeps the same promises for as long as the process lives.
//!
//! A NATS consumer pulls into one inbox for its whole life: a fetch asks for as many
//! events as its caller takes, and what that request brings after the fetch returned
//! waits in the inbox for the next fetch, so a steady flow costs one request per batch
//! rather than a subscription and two requests per event. Events waiting there when the
//! process stops come back to another after the acknowledgement wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind};
use async_nats::{StatusCode, Subject, Subscriber};
use async_trait::async_trait;
use futures::{FutureExt as _, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::dedup::RecentIds;
use super::subject::Prefix;
use super::{BoxError, BusError, Event};

/// At most this many events of a NATS consumer may be delivered and not yet settled,
/// those waiting for a retry included: high, so that one receiver that keeps failing
/// does not hold up the others.
const MAX_UNSETTLED: i64 = 100_000;

/// What became of a delivered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Handled: it is not delivered again.
    Done,
    /// Not for this consumer, nothing done: like `Done`, without waiting for the bus to
    /// confirm (should the acknowledgement be lost, it comes again and is ignored again).
    Ignored,
    /// Not handled yet: deliver it again after this long.
    RetryAfter(Duration),
    /// Not handled, and never to be delivered again.
    GiveUp,
}

/// A durable consumer, shared by every process that opened it under the same name.
#[async_trait]
pub trait DurableConsumer: Send {
    /// Up to `max` events that are due, waiting at most `wait` for the first: none
    /// when nothing came in time.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Events not settled yet: waiting to be delivered, delivered and unsettled, or
    /// waiting for a retry.
    async fn backlog(&mut self) -> Result<u64, BusError>;
}

/// An event handed to one consumer, to be settled with [`Delivery::settle`]. Dropped
/// unsettled, it is delivered again (at once in process; on NATS after the consumer's
/// acknowledgement wait).
pub struct Delivery {
    pub event: Event,
    /// 1 on the first delivery of the event, counting every delivery since.
    pub attempt: u64,
    settler: Box<dyn Settler>,
}

impl Delivery {
    /// Settles the event: see [`Settlement`].
    pub async fn settle(self, settlement: Settlement) -> Result<(), BusError> {
        self.settler.settle(settlement).await
    }
}

#[async_trait]
trait Settler: Send {
    async fn settle(self: Box<Self>, settlement: Settlement) -> Result<(), BusError>;
}

fn consumer_error(consumer: &str, action: &'static str, source: BoxError) -> BusError {
    BusError::Consumer {
        consumer: consumer.to_owned(),
        action,
        source,
    }
}

/// A JetStream durable pull consumer of the whole events stream.
pub(super) struct NatsConsumer {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    /// What the events' acknowledgements go through.
    context: jetstream::Context,
    /// Where the events this process pulls arrive.
    inbox: Subject,
    subscription: Subscriber,
    /// The open pull request: how many events it may still bring, until when.
    owed: usize,
    open_until: Instant,
    name: String,
    prefix: Prefix,
}

/// How long after its expiry a pull request whose end the server did not report (a
/// reconnect lost it) is taken as over.
const REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The shortest a pull request waits on the server, however little of the fetch's wait
/// is left (what it brings later waits in the inbox).
const SHORTEST_REQUEST: Duration = Duration::from_millis(10);

impl NatsConsumer {
    /// Opens the consumer `name` of `stream`, creating it to start with the events
    /// published from now on; a delivery unsettled for `ack_wait` is delivered again.
    pub(super) async fn open(
        client: &async_nats::Client,
        jetstream: &jetstream::Context,
        stream: &str,
        prefix: &Prefix,
        name: &str,
        ack_wait: Duration,
    ) -> Result<NatsConsumer, BusError> {
        let error = |source: BoxError| consumer_error(name, "open", source);
        let stream = jetstream
            .get_stream(stream)
            .await
            .map_err(|e| error(e.into()))?;
        // No filter subject: the servers this must run on (2.9) have no consumers with
        // several filters, and the stream holds nothing but events.
        let consumer = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    description: Some(format!("Palaver durable consumer {name}")),
                    deliver_policy: DeliverPolicy::New,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    max_ack_pending: MAX_UNSETTLED,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| error(e.into()))?;
        let inbox = Subject::from(client.new_inbox());
        let subscription = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| error(e.into()))?;
        Ok(NatsConsumer {
            consumer,
            context: jetstream.clone(),
            inbox,
            subscription,
            owed: 0,
            open_until: Instant::now(),
            name: name.to_owned(),
            prefix: prefix.clone(),
        })
    }

    /// Asks for up to `max` events, waiting at most `wait` for them.
    async fn request(&mut self, max: usize, wait: Duration) -> Result<(), BusError> {
        let batch = pull::BatchConfig {
            batch: max,
            expires: Some(wait),
            ..Default::default()
        };
        self.consumer
            .request_batch(batch, self.inbox.clone())
            .await
            .map_err(|e| consumer_error(&self.name, "fetch", e.into()))?;
        self.owed = max;
        self.open_until = Instant::now() + wait + REQUEST_GRACE;
        Ok(())
    }

    /// A fetch that failed after some events keeps them (the rest come again).
    fn broke_off(
        &self,
        deliveries: Vec<Delivery>,
        error: BusError,
    ) -> Result<Vec<Delivery>, BusError> {
        if deliveries.is_empty() {
            return Err(error);
        }
        tracing::warn!(%error, consumer = %self.name, "a fetch of events broke off");
        Ok(deliveries)
    }

    fn closed(&self) -> BusError {
        consumer_error(
            &self.name,
            "fetch",
            "the connection to NATS is closed".into(),
        )
    }

    /// Takes what arrived in the inbox: an event joins `deliveries`; a status (the
    /// request expired or was ended) closes the open request.
    fn arrived(
        &mut self,
        message: async_nats::Message,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), BusError> {
        match message.status {
            None | Some(StatusCode::OK) => {
                self.owed = self.owed.saturating_sub(1);
                let message = jetstream::Message {
                    message,
                    context: self.context.clone(),
                };
                deliveries.push(self.delivery(message)?);
            }
            Some(StatusCode::IDLE_HEARTBEAT) => {}
            Some(StatusCode::TIMEOUT | StatusCode::NOT_FOUND | StatusCode::REQUEST_TERMINATED)
                if message.description.as_deref() != Some("Consumer Deleted") =>
            {
                self.owed = 0;
            }
            Some(status) => {
                self.owed = 0;
                let what = message.description.unwrap_or_default();
                return Err(consumer_error(
                    &self.name,
                    "fetch",
                    format!("the server answered {status} {what}").into(),
                ));
            }
        }
        Ok(())
    }

    fn delivery(&self, message: jetstream::Message) -> Result<Delivery, BusError> {
        let attempt = message
            .info()
            .map_err(|e| consumer_error(&self.name, "read a delivery", e))?
            .delivered
            .max(1) as u64;
        let event = Event::received(
            &self.prefix,
            &message.subject,
            message.payload.clone(),
            message.headers.clone().unwrap_or_default(),
        );
        Ok(Delivery {
            event,
            attempt,
            settler: Box::new(NatsSettler {
                message,
                consumer: self.name.clone(),
            }),
        })
    }
}

#[async_trait]
impl DurableConsumer for NatsConsumer {
    /// What the inbox holds; when it holds nothing, a request for `max` (unless one is
    /// open) and the first event it brings within `wait`.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let deadline = Instant::now() + wait;
        let mut deliveries = Vec::new();
        loop {
            while deliveries.len() < max {
                let arrived = match self.subscription.next().now_or_never() {
                    Some(Some(message)) => self.arrived(message, &mut deliveries),
                    Some(None) => Err(self.closed()),
                    None => break,
                };
                if let Err(error) = arrived {
                    return self.broke_off(deliveries, error);
                }
            }
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            if self.owed == 0 || now >= self.open_until {
                self.request(max, (deadline - now).max(SHORTEST_REQUEST))
                    .await?;
            }
            let arrived = match tokio::time::timeout_at(deadline, self.subscription.next()).await {
                Ok(Some(message)) => self.arrived(message, &mut deliveries),
                Ok(None) => Err(self.closed()),
                Err(_) => Ok(()),
            };
            if let Err(error) = arrived {
                return self.broke_off(deliveries, error);
            }
        }
    }

    async fn backlog(&mut self) -> Result<u64, BusError> {
        let info = self
            .consumer
            .info()
            .await
            .map_err(|e| consumer_error(&self.name, "read the backlog", e.into()))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

struct NatsSettler {
    message: jetstream::Message,
    consumer: String,
}

#[async_trait]
impl Settler for NatsSettler {
    async fn settle(self: Box<Self>, settlement: Settlement) -> Result<(), BusError> {
        let result = match settlement {
            // Waits for the server's confirmation: once this returns, the event is
            // never delivered again.
            Settlement::Done => self.message.double_ack().await,
            Settlement::Ignored => self.message.ack().await,
            Settlement::RetryAfter(delay) => self.message.ack_with(AckKind::Nak(Some(delay))).await,
            Settlement::GiveUp => self.message.ack_with(AckKind::Term).await,
        };
        result.map_err(|e| consumer_error(&self.consumer, "settle an event", e))
    }
}

/// The events of one in-process consumer: due, waiting for a retry, or out.
#[derive(Default)]
pub(super) struct LocalQueue {
    state: Mutex<QueueState>,
    changed: Notify,
}

#[derive(Default)]
struct QueueState {
    ready: VecDeque<Pending>,
    delayed: Vec<(Instant, Pending)>,
    out: u64,
    seen: RecentIds,
}

struct Pending {
    event: Event,
    deliveries: u64,
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue").finish_non_exhaustive()
    }
}

impl LocalQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a durable event, once per message id within the duplicate window.
    pub(super) fn push(&self, event: Event) {
        let mut state = self.lock();
        if let Some(id) = &event.msg_id
            && !state.seen.first_time(id)
        {
            return;
        }
        state.ready.push_back(Pending {
            event,
            deliveries: 0,
        });
        drop(state);
        self.changed.notify_waiters();
    }

    fn put_back(&self, pending: Pending, at: Option<Instant>) {
        let mut state = self.lock();
        state.out -= 1;
        match at {
            Some(at) => state.delayed.push((at, pending)),
            None => state.ready.push_front(pending),
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

/// A consumer of the in-process bus: every handle of one name shares its queue.
pub(super) struct LocalConsumer {
    pub(super) queue: Arc<LocalQueue>,
}

#[async_trait]
impl DurableConsumer for LocalConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let deadline = Instant::now() + wait;
        loop {
            let changed = self.queue.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next_due = {
                let mut state = self.queue.lock();
                let now = Instant::now();
                let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut state.delayed)
                    .into_iter()
                    .partition(|(at, _)| *at <= now);
                state.delayed = later;
                due.sort_by_key(|(at, _)| *at);
                state
                    .ready
                    .extend(due.into_iter().map(|(_, pending)| pending));
                let count = max.min(state.ready.len());
                if count > 0 {
                    state.out += count as u64;
                    let taken: Vec<Pending> = state.ready.drain(..count).collect();
                    drop(state);
                    return Ok(taken
                        .into_iter()
                        .map(|mut pending| {
                            pending.deliveries += 1;
                            Delivery {
                                event: pending.event.clone(),
                                attempt: pending.deliveries,
                                settler: Box::new(LocalSettler {
                                    queue: self.queue.clone(),
                                    pending: Some(pending),
                                }),
                            }
                        })
                        .collect());
                }
                state.delayed.iter().map(|(at, _)| *at).min()
            };
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            let until = next_due.map_or(deadline, |due| due.min(deadline));
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn backlog(&mut self) -> Result<u64, BusError> {
        let state = self.queue.lock();
        Ok(state.ready.len() as u64 + state.delayed.len() as u64 + state.out)
    }
}

struct LocalSettler {
    queue: Arc<LocalQueue>,
    pending: Option<Pending>,
}

#[async_trait]
impl Settler for LocalSettler {
    async fn settle(mut self: Box<Self>, settlement: Settlement) -> Result<(), BusError> {
        if let Some(pending) = self.pending.take() {
            match settlement {
                Settlement::Done | Settlement::Ignored | Settlement::GiveUp => {
                    self.queue.lock().out -= 1
                }
                Settlement::RetryAfter(delay) => {
                    self.queue.put_back(pending, Some(Instant::now() + delay))
                }
            }
        }
        Ok(())
    }
}

impl Drop for LocalSettler {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.queue.put_back(pending, None);
        }
    }
}
