//! The transactional outbox and its relay.
//!
//! Every change writes its events ([`crate::domain::events`]) into the `outbox` table in the transaction that
//! makes the change, so an event exists exactly when its change does. The [`Relay`]
//! publishes waiting events through the bus's `publish_durable` (the event id is the
//! `Nats-Msg-Id`) and then marks them published by deleting them. A relay that dies
//! between the two publishes again on its next start, and JetStream's de-duplication
//! absorbs the repeat. While it runs, marking is not on the path of the next event: a
//! pass hands what it published to a mark running beside the next passes, which skip
//! those events until the mark has deleted them.
//!
//! The events committed in this process are also [`handoff`]ed to its relay, which
//! publishes them without reading the table when it published their streams' previous
//! events itself; it reads the table at its start, every half second (events committed
//! by other replicas), after a failure, and whenever a handed event cannot follow on.
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

pub mod handoff;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use palaver_kit::Error;
use palaver_kit::bus::{BusError, EventBus};
use palaver_kit::shutdown::Shutdown;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::domain::Clock;
use crate::model::PendingEvent;
use crate::outbox::handoff::Handed;
use crate::store::Store;

/// The most events one pass reads.
const BATCH: u32 = 1000;
/// Streams published at once.
const CONCURRENT_STREAMS: usize = 64;
/// How often the relay reads the table when events are handed to it (for events
/// committed by another replica).
const POLL: Duration = Duration::from_millis(500);
/// Published events wait at most this long to be marked together, unless
/// [`MARK_BATCH`] of them wait: marking each pass's few events at a light load would
/// double the database's commits.
const MARK_DELAY: Duration = Duration::from_millis(50);
const MARK_BATCH: usize = 512;
/// Streams whose newest published event the relay remembers; past that it forgets them
/// all, and their next events are read from the table.
const REMEMBERED_STREAMS: usize = 100_000;
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
        let _ = span.set_parent(palaver_kit::telemetry::extract_traceparent(traceparent));
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
    /// events published, and the first error.
    pub async fn publish<'e>(
        &self,
        events: &'e [PendingEvent],
    ) -> (Vec<&'e PendingEvent>, Option<BusError>) {
        let mut streams: Vec<Vec<&PendingEvent>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for event in events {
            let i = *index.entry(event.stream.as_str()).or_insert_with(|| {
                streams.push(Vec::new());
                streams.len() - 1
            });
            streams[i].push(event);
        }
        // Collected first: a lazy iterator of futures that borrow `events` would not be
        // `Send` for every lifetime, as a spawned relay needs.
        let publishing: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                let bus = self.bus.clone();
                async move {
                    let mut published = Vec::new();
                    for event in stream {
                        let span = publish_span(event);
                        let payload = bytes::Bytes::copy_from_slice(&event.payload);
                        match bus
                            .publish_durable(&event.subject, &event.event_id, payload)
                            .instrument(span)
                            .await
                        {
                            Ok(()) => published.push(event),
                            Err(error) => return (published, Some(error)),
                        }
                    }
                    (published, None)
                }
            })
            .collect();
        let outcomes: Vec<(Vec<&PendingEvent>, Option<BusError>)> =
            futures::stream::iter(publishing)
                .buffer_unordered(CONCURRENT_STREAMS)
                .collect()
                .await;
        let mut published = Vec::new();
        let mut first_error = None;
        for (sent, error) in outcomes {
            published.extend(sent);
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
        let (pass, published) = self
            .publish_pending(&HashSet::new(), &mut Published::default())
            .await?;
        self.mark_published(&published).await?;
        Ok(pass)
    }

    /// Reads the waiting events but those in `skip` (published, being marked), publishes
    /// them, and returns what the pass did and the ids it published.
    async fn publish_pending(
        &self,
        skip: &HashSet<String>,
        published: &mut Published,
    ) -> Result<(Pass, Vec<String>), Error> {
        let mut events = self.pending().await?;
        let full = events.len() >= BATCH as usize;
        events.retain(|event| !skip.contains(&event.event_id));
        Ok(self.publish_recorded(events, full, published).await)
    }

    /// Publishes `events`, records what was published in `published` and the metrics,
    /// and returns what the pass did and the ids it published.
    async fn publish_recorded(
        &self,
        events: Vec<PendingEvent>,
        full: bool,
        published: &mut Published,
    ) -> (Pass, Vec<String>) {
        if events.is_empty() {
            let pass = Pass {
                full,
                ..Pass::default()
            };
            return (pass, Vec::new());
        }
        let (sent, error) = self.publish(&events).await;
        metrics::counter!("palaver_conversation_events_published_total")
            .increment(sent.len() as u64);
        metrics::histogram!("palaver_conversation_relay_batch_size").record(sent.len() as f64);
        let now = self.clock.now_ms();
        let mut ids = Vec::with_capacity(sent.len());
        for event in sent {
            metrics::histogram!("palaver_conversation_outbox_lag_seconds")
                .record((now - event.created_at).max(0) as f64 / 1000.0);
            published.record(event);
            ids.push(event.event_id.clone());
        }
        let pass = Pass {
            published: ids.len(),
            failed: error.map(|e| palaver_kit::error::error_chain(&e)),
            full,
        };
        (pass, ids)
    }

    /// Relays until `stop` triggers: the events handed over after every commit, the
    /// table's every half second and whenever the handed ones do not suffice, with a
    /// growing pause while publishing fails. What was published is marked beside the
    /// next passes; at the end, every mark is finished.
    pub async fn run(self, stop: Shutdown) {
        let handoff = self.store.handoff();
        let mut marking = Marking::new(self.store.clone());
        let mut published = Published::default();
        // Events left by an earlier run are in the table only.
        let mut read_table = true;
        let mut next_read = tokio::time::Instant::now();
        let mut backoff = MIN_BACKOFF;
        let mut last_housekeeping = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            marking.settle_if_done().await;
            let (handed, dropped) = handoff.take();
            let now = tokio::time::Instant::now();
            let outcome = if read_table || dropped || now >= next_read {
                next_read = now + POLL;
                // What was handed is committed, so the table holds it until published.
                read_table = false;
                self.publish_pending(&marking.unmarked, &mut published)
                    .await
            } else {
                let (events, complete) = published.follow_on(handed);
                read_table = !complete;
                Ok(self.publish_recorded(events, false, &mut published).await)
            };
            // A full batch of events still being marked: the next pass waits for the mark.
            let mut blocked_by_marks = false;
            let pause = match outcome {
                Ok((pass, ids)) => {
                    marking.add(ids);
                    match pass.failed {
                        None => {
                            if std::mem::take(&mut failing) {
                                tracing::info!("publishing events again");
                            }
                            backoff = MIN_BACKOFF;
                            blocked_by_marks = pass.full && pass.published == 0;
                            read_table |= pass.full;
                            if read_table && !blocked_by_marks {
                                Duration::ZERO
                            } else {
                                next_read.saturating_duration_since(now)
                            }
                        }
                        Some(error) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(%error, "cannot publish events; they wait in the outbox");
                            }
                            read_table = true;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            backoff
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the outbox");
                    read_table = true;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            };
            if blocked_by_marks {
                marking.start(true);
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING {
                last_housekeeping = tokio::time::Instant::now();
                self.housekeeping().await;
            }
            if pause.is_zero() && !stop.is_triggered() {
                continue;
            }
            let pause = marking.due_in().map_or(pause, |due| pause.min(due));
            let sleep = tokio::time::sleep(pause);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = stop.wait() => {
                        marking.finish().await;
                        return;
                    }
                    () = handoff.handed(), if !failing && !blocked_by_marks => break,
                    () = &mut sleep => break,
                    _ = marking.settled() => if blocked_by_marks { break },
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

/// The order key of the newest event this relay published, per stream.
#[derive(Debug, Default)]
struct Published(HashMap<String, i64>);

impl Published {
    fn record(&mut self, event: &PendingEvent) {
        if self.0.len() >= REMEMBERED_STREAMS && !self.0.contains_key(&event.stream) {
            self.0.clear();
        }
        self.0.insert(event.stream.clone(), event.event_at);
    }

    /// Of the events handed over, those that can be published now without reading the
    /// table, in order: per stream, each event whose predecessor was published by this
    /// relay (or comes just before it here), leaving out those published already. False
    /// when some stream's events cannot follow on: the table must be read for them.
    fn follow_on(&self, mut handed: Vec<Handed>) -> (Vec<PendingEvent>, bool) {
        handed.sort_unstable_by(|a, b| {
            (a.event.stream.as_str(), a.event.event_at)
                .cmp(&(b.event.stream.as_str(), b.event.event_at))
        });
        let mut ready = Vec::with_capacity(handed.len());
        let mut complete = true;
        let mut stream: Option<String> = None;
        let mut newest: Option<i64> = None;
        let mut broken = false;
        for Handed { event, after } in handed {
            if stream.as_deref() != Some(event.stream.as_str()) {
                newest = self.0.get(&event.stream).copied();
                broken = false;
                stream = Some(event.stream.clone());
            }
            if broken || newest.is_some_and(|newest| event.event_at <= newest) {
                continue;
            }
            if after == newest {
                newest = Some(event.event_at);
                ready.push(event);
            } else {
                broken = true;
                complete = false;
            }
        }
        (ready, complete)
    }
}

/// Events published and not yet marked: they are marked together once [`MARK_DELAY`]
/// passed or [`MARK_BATCH`] wait, by a mark running (at most one at a time) while the
/// relay goes on, and passes skip what is in `unmarked`. An id leaves `unmarked` only
/// between passes, once its deletion committed, so no pass can have read it before it
/// was deleted and publish it again.
struct Marking {
    store: Store,
    unmarked: HashSet<String>,
    queued: Vec<String>,
    /// When the oldest of `queued` was queued.
    queued_since: Option<tokio::time::Instant>,
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
            queued_since: None,
            running: None,
        }
    }

    /// Queues `published` to be marked, and starts a mark if they are due.
    fn add(&mut self, published: Vec<String>) {
        self.unmarked.extend(published.iter().cloned());
        self.queue(published);
        self.start(false);
    }

    fn queue(&mut self, ids: Vec<String>) {
        if !ids.is_empty() && self.queued.is_empty() {
            self.queued_since = Some(tokio::time::Instant::now());
        }
        self.queued.extend(ids);
    }

    /// How long until the queued events are due to be marked; `None` when none wait
    /// or a mark runs (which starts the next one when it ends).
    fn due_in(&self) -> Option<Duration> {
        if self.running.is_some() {
            return None;
        }
        self.queued_since.map(|since| {
            (since + MARK_DELAY).saturating_duration_since(tokio::time::Instant::now())
        })
    }

    /// Starts marking the queued events unless a mark runs, or unless they are not due
    /// yet and `now` is false.
    fn start(&mut self, now: bool) {
        if self.running.is_some() || self.queued.is_empty() {
            return;
        }
        let due = self.queued.len() >= MARK_BATCH
            || self
                .queued_since
                .is_some_and(|since| since.elapsed() >= MARK_DELAY);
        if !now && !due {
            return;
        }
        self.queued_since = None;
        let ids = std::mem::take(&mut self.queued);
        let store = self.store.clone();
        self.running = Some(tokio::spawn(async move {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let marked = store.mark_published(&refs).await;
            (ids, marked)
        }));
    }

    /// Takes the outcome of a finished mark, without waiting for a running one, and
    /// starts the next if it is due (also after a failed one).
    async fn settle_if_done(&mut self) {
        if self.running.as_ref().is_some_and(JoinHandle::is_finished) {
            self.settled().await;
        }
        self.start(false);
    }

    /// Waits for the running mark (forever when none runs) and takes its outcome: the
    /// ids it deleted leave `unmarked` and the next mark starts if due; after a failure
    /// they wait to be marked again with the next ones. True when the mark succeeded.
    async fn settled(&mut self) -> bool {
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
                self.start(false);
                true
            }
            Ok((ids, Err(error))) => {
                tracing::warn!(%error, "cannot mark published events; they will be marked again");
                self.queue(ids);
                false
            }
            Err(error) => {
                tracing::warn!(%error, "the marking task failed");
                false
            }
        }
    }

    /// Marks every published event now and waits until done, or until a mark failed
    /// (the events are then published again by a later relay, and de-duplicated).
    async fn finish(&mut self) {
        self.start(true);
        while self.running.is_some() {
            if self.settled().await {
                self.start(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use palaver_kit::bus::{ConversationKind, Subject};

    use super::*;

    fn handed(stream: &str, event_at: i64, after: Option<i64>) -> Handed {
        Handed {
            event: PendingEvent {
                event_id: format!("ev_{stream}_{event_at}"),
                stream: stream.into(),
                subject: Subject::conversation("app", stream, ConversationKind::Msg).to_string(),
                payload: Vec::new(),
                event_at,
                created_at: event_at,
                traceparent: None,
            },
            after,
        }
    }

    fn ids(events: &[PendingEvent]) -> Vec<&str> {
        events.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[test]
    fn handed_events_follow_on_what_this_relay_published() {
        let mut published = Published::default();
        published.record(&handed("c_a", 10, None).event);
        let (ready, complete) = published.follow_on(vec![
            // Handed out of order: commits of one stream may be handed in either order.
            handed("c_a", 12, Some(11)),
            handed("c_new", 5, None),
            handed("c_a", 11, Some(10)),
            // Published already, by a pass over the table.
            handed("c_a", 10, None),
        ]);
        assert!(complete);
        assert_eq!(ids(&ready), ["ev_c_a_11", "ev_c_a_12", "ev_c_new_5"]);
    }

    #[test]
    fn a_stream_whose_predecessor_this_relay_did_not_publish_waits_for_the_table() {
        let mut published = Published::default();
        published.record(&handed("c_a", 10, None).event);
        let (ready, complete) = published.follow_on(vec![
            // Its predecessor (11) was committed elsewhere, or is not handed yet.
            handed("c_a", 12, Some(11)),
            handed("c_a", 13, Some(12)),
            // Never published here: maybe before a restart.
            handed("c_b", 7, Some(6)),
            handed("c_c", 3, None),
        ]);
        assert!(!complete);
        assert_eq!(
            ids(&ready),
            ["ev_c_c_3"],
            "only the stream that can follow on"
        );
    }

    #[test]
    fn forgetting_streams_only_sends_them_to_the_table() {
        let mut published = Published::default();
        for i in 0..REMEMBERED_STREAMS {
            published.record(&handed(&format!("c_{i}"), 1, None).event);
        }
        published.record(&handed("c_last", 1, None).event);
        assert_eq!(published.0.len(), 1);
        let (ready, complete) = published.follow_on(vec![handed("c_0", 2, Some(1))]);
        assert!(ready.is_empty() && !complete);
    }
}
