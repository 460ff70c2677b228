//! The transactional outbox and its relay.
//!
//! Every change writes its [`events`] into the `outbox` table in the transaction that
//! makes the change, so an event exists exactly when its change does. The [`Relay`]
//! publishes waiting events through the bus's `publish_durable` (the event id is the
//! `Nats-Msg-Id`) and then marks them published by deleting them. A relay that dies
//! between the two publishes again on its next start, and JetStream's de-duplication
//! absorbs the repeat. While it runs, marking is not on the path of the next event: a
//! pass hands what it published to a mark running beside the next passes, which skip
//! those events until the mark has deleted them.
//!
//! Order: the events of one stream (a conversation) are published one after the other,
//! in commit order, and a stream stops at its first failure, so nothing is published
//! ahead of an event that failed; different streams are published concurrently. While
//! NATS is down, every publish fails, the relay backs off and tries again, and the
//! events wait in the table, committed.
//!
//! Each publish runs in an `outbox.publish` span continuing the trace of the request
//! that caused the event (its `traceparent`, stored with the event), so the event
//! carries that trace on over the bus.

pub mod events;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use palaver_kit::Error;
use palaver_kit::bus::{BusError, EventBus};
use palaver_kit::shutdown::Shutdown;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::domain::Clock;
use crate::store::{PendingEvent, Store};

/// The most events one pass reads.
const BATCH: u32 = 1000;
/// Streams published at once.
const CONCURRENT_STREAMS: usize = 64;
/// How often the relay looks for events when nothing woke it (events committed by
/// another replica).
const POLL: Duration = Duration::from_millis(500);
/// Backoff after a failed publish.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the backlog is measured.
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pass {
    /// Events published and marked.
    pub published: usize,
    /// The first publish that failed, if any did.
    pub failed: Option<String>,
    /// Whether the pass read a full batch (more may wait).
    pub full: bool,
}

/// The span of one event's publish: a child of the request that caused the event when
/// its trace context was stored, of the relay's pass otherwise.
fn publish_span(event: &PendingEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "outbox.publish",
        otel.name = format!("publish {}", event.subject),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = %event.subject,
        messaging.message.id = %event.event_id,
    );
    if let Some(traceparent) = &event.traceparent {
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.clone())]);
        let _ = span.set_parent(palaver_kit::telemetry::extract(&carrier));
    }
    span
}

/// Publishes the outbox's events.
#[derive(Clone)]
pub struct Relay {
    store: Store,
    bus: Arc<dyn EventBus>,
    clock: Clock,
}

impl Relay {
    pub fn new(store: Store, bus: Arc<dyn EventBus>, clock: Clock) -> Self {
        Relay { store, bus, clock }
    }

    /// The events waiting, in publishing order.
    pub async fn pending(&self) -> Result<Vec<PendingEvent>, Error> {
        self.store.pending_events(BATCH).await
    }

    /// Publishes `events` (each stream in order, streams concurrently) and returns the
    /// ids published, and the first error.
    pub async fn publish(&self, events: &[PendingEvent]) -> (Vec<String>, Option<BusError>) {
        let mut streams: Vec<Vec<PendingEvent>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for event in events {
            let i = *index.entry(event.stream.as_str()).or_insert_with(|| {
                streams.push(Vec::new());
                streams.len() - 1
            });
            streams[i].push(event.clone());
        }
        let publishing = streams.into_iter().map(|stream| {
            let bus = self.bus.clone();
            async move {
                let mut published = Vec::new();
                for event in stream {
                    let span = publish_span(&event);
                    let payload = bytes::Bytes::from(event.payload);
                    match bus
                        .publish_durable(&event.subject, &event.event_id, payload)
                        .instrument(span)
                        .await
                    {
                        Ok(()) => published.push(event.event_id),
                        Err(error) => return (published, Some(error)),
                    }
                }
                (published, None)
            }
        });
        let outcomes: Vec<(Vec<String>, Option<BusError>)> = futures::stream::iter(publishing)
            .buffer_unordered(CONCURRENT_STREAMS)
            .collect()
            .await;
        let mut published = Vec::new();
        let mut first_error = None;
        for (ids, error) in outcomes {
            published.extend(ids);
            if first_error.is_none() {
                first_error = error;
            }
        }
        (published, first_error)
    }

    /// Marks events published.
    pub async fn mark_published(&self, event_ids: &[String]) -> Result<(), Error> {
        let ids: Vec<&str> = event_ids.iter().map(String::as_str).collect();
        self.store.mark_published(&ids).await
    }

    /// One pass: read the waiting events, publish them, mark those published.
    #[tracing::instrument(skip(self))]
    pub async fn relay_once(&self) -> Result<Pass, Error> {
        let (pass, published) = self.publish_pending(&HashSet::new()).await?;
        self.mark_published(&published).await?;
        Ok(pass)
    }

    /// Reads the waiting events but those in `skip` (published, being marked), publishes
    /// them, and returns what the pass did and the ids it published.
    async fn publish_pending(&self, skip: &HashSet<String>) -> Result<(Pass, Vec<String>), Error> {
        let mut events = self.pending().await?;
        let full = events.len() >= BATCH as usize;
        events.retain(|event| !skip.contains(&event.event_id));
        if events.is_empty() {
            return Ok((
                Pass {
                    full,
                    ..Pass::default()
                },
                Vec::new(),
            ));
        }
        let (published, error) = self.publish(&events).await;
        metrics::counter!("palaver_conversation_events_published_total")
            .increment(published.len() as u64);
        metrics::histogram!("palaver_conversation_relay_batch_size").record(published.len() as f64);
        let now = self.clock.now_ms();
        let published_ids: HashSet<&str> = published.iter().map(String::as_str).collect();
        for event in events
            .iter()
            .filter(|e| published_ids.contains(e.event_id.as_str()))
        {
            metrics::histogram!("palaver_conversation_outbox_lag_seconds")
                .record((now - event.created_at).max(0) as f64 / 1000.0);
        }
        let pass = Pass {
            published: published.len(),
            failed: error.map(|e| palaver_kit::error::error_chain(&e)),
            full,
        };
        Ok((pass, published))
    }

    /// Relays until `stop` triggers: after every commit (`wake`), every half second
    /// otherwise, with a growing pause while publishing fails. What was published is
    /// marked beside the next passes; at the end, every mark is finished.
    pub async fn run(self, wake: Arc<Notify>, stop: Shutdown) {
        let mut marking = Marking::new(self.store.clone());
        let mut backoff = MIN_BACKOFF;
        let mut last_housekeeping = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            marking.settle_if_done().await;
            // A full batch of events still being marked: the next pass waits for the mark.
            let mut blocked_by_marks = false;
            let pause = match self.publish_pending(&marking.unmarked).await {
                Ok((pass, published)) => {
                    marking.add(published);
                    match pass.failed {
                        None => {
                            if std::mem::take(&mut failing) {
                                tracing::info!("publishing events again");
                            }
                            backoff = MIN_BACKOFF;
                            blocked_by_marks = pass.full && pass.published == 0;
                            if pass.full && !blocked_by_marks {
                                Duration::ZERO
                            } else {
                                POLL
                            }
                        }
                        Some(error) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(%error, "cannot publish events; they wait in the outbox");
                            }
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            backoff
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the outbox");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            };
            if last_housekeeping.elapsed() >= HOUSEKEEPING {
                last_housekeeping = tokio::time::Instant::now();
                self.housekeeping().await;
            }
            if pause.is_zero() && !stop.is_triggered() {
                continue;
            }
            let sleep = tokio::time::sleep(pause);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = stop.wait() => {
                        marking.finish().await;
                        return;
                    }
                    () = wake.notified(), if !failing => break,
                    () = &mut sleep => break,
                    () = marking.settled() => if blocked_by_marks { break },
                }
            }
        }
    }

    /// Reports the backlog: how many events wait, and for how long the oldest has.
    async fn housekeeping(&self) {
        match self.store.outbox_backlog().await {
            Ok((count, oldest)) => {
                metrics::gauge!("palaver_conversation_outbox_backlog").set(count as f64);
                let age = oldest.map_or(0, |at| (self.clock.now_ms() - at).max(0));
                metrics::gauge!("palaver_conversation_outbox_oldest_seconds")
                    .set(age as f64 / 1000.0);
            }
            Err(error) => tracing::warn!(%error, "cannot measure the outbox"),
        }
    }
}

/// Events published and not yet marked: the mark of the previous ones runs (at most one
/// at a time) while the relay goes on, and passes skip what is in `unmarked`. An id
/// leaves `unmarked` only between passes, once its deletion committed, so no pass can
/// have read it before it was deleted and publish it again.
struct Marking {
    store: Store,
    unmarked: HashSet<String>,
    queued: Vec<String>,
    running: Option<JoinHandle<Marked>>,
}

/// The ids a mark was given, and whether it deleted them.
type Marked = (Vec<String>, Result<(), Error>);

impl Marking {
    fn new(store: Store) -> Self {
        Marking {
            store,
            unmarked: HashSet::new(),
            queued: Vec::new(),
            running: None,
        }
    }

    /// Queues `published` to be marked, and starts a mark unless one runs.
    fn add(&mut self, published: Vec<String>) {
        self.unmarked.extend(published.iter().cloned());
        self.queued.extend(published);
        self.start();
    }

    fn start(&mut self) {
        if self.running.is_some() || self.queued.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.queued);
        let store = self.store.clone();
        self.running = Some(tokio::spawn(async move {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let marked = store.mark_published(&refs).await;
            (ids, marked)
        }));
    }

    /// Takes the outcome of a finished mark, without waiting for a running one, and
    /// starts the next (also after a failed one, once per pass).
    async fn settle_if_done(&mut self) {
        if self.running.as_ref().is_some_and(JoinHandle::is_finished) {
            self.settled().await;
        }
        self.start();
    }

    /// Waits for the running mark (forever when none runs) and takes its outcome: the
    /// ids it deleted leave `unmarked` and the next mark starts; after a failure they
    /// wait to be marked again with the next ones, at the next pass.
    async fn settled(&mut self) {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = running.await;
        self.running = None;
        match outcome {
            Ok((ids, Ok(()))) => {
                for id in &ids {
                    self.unmarked.remove(id);
                }
                self.start();
            }
            Ok((ids, Err(error))) => {
                tracing::warn!(%error, "cannot mark published events; they will be marked again");
                self.queued.extend(ids);
            }
            Err(error) => tracing::warn!(%error, "the marking task failed"),
        }
    }

    /// Waits until every published event is marked, or a mark failed (the events are
    /// then published again by a later relay, and de-duplicated).
    async fn finish(&mut self) {
        while self.running.is_some() {
            self.settled().await;
        }
    }
}
