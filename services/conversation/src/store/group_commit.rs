//! Group commit: concurrent sends share one transaction and one commit.
//!
//! One collector task per process takes the first waiting send, gathers whatever else
//! arrives within the window (at most 2 ms by default) or until the batch is full, and
//! hands the batch to a committer (at a light load, when at the recent pace fewer than
//! four sends would join within the window, it does not wait), which appends it with
//! [`Store::append_messages_on`].
//! Every send is answered only after the commit of its own batch, with its own result:
//! one message that fails (a closed conversation, a caller who is not a participant)
//! does not fail the others. Up to `committers` batches commit at once (PostgreSQL
//! overlaps their flushes; SQLite has one writer and gets one committer), so the next
//! batch gathers while the previous one is flushing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use palaver_kit::db::Backend;
use palaver_kit::shutdown::Shutdown;
use palaver_kit::{Error, ErrorCode};
use sqlx::Any;
use sqlx::pool::PoolConnection;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::Store;
use crate::domain::Clock;
use crate::model::{Appended, NewMessage};

/// How sends are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// How long a batch waits for more sends after its first.
    pub window: Duration,
    /// The most sends in one batch. Small enough that a busy service has several
    /// batches committing at once: while PostgreSQL executes one, the next is gathered
    /// and sent, instead of every sender waiting on one large commit. Past ~32 sends a
    /// bigger batch saves little per message (with 64 senders: 8,000 messages/s at 256,
    /// 10,000 at 32).
    pub max_batch: usize,
    /// How many batches may commit at once.
    pub committers: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            window: Duration::from_millis(2),
            max_batch: 32,
            committers: 4,
        }
    }
}

/// Fewer sends than this expected within the window mean a light load.
const LIGHT_LOAD: u32 = 4;

/// The pace of sends: the gap between two, smoothed over the last few dozen.
struct Pace {
    window: Duration,
    last: Option<Instant>,
    gap: Duration,
}

impl Pace {
    /// A gap counts at most this many windows, so that a load that starts after a quiet
    /// spell is soon seen as one.
    const LONGEST_GAP: u32 = 10;

    /// The pace of a quiet service whose batches wait at most `window`.
    fn new(window: Duration) -> Self {
        Pace {
            window,
            last: None,
            gap: window * Self::LONGEST_GAP,
        }
    }

    /// A send arrived at `now`.
    fn arrived(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now
                .saturating_duration_since(last)
                .min(self.window * Self::LONGEST_GAP);
            self.gap = (self.gap * 7 + gap) / 8;
        }
        self.last = Some(now);
    }

    /// True when fewer than [`LIGHT_LOAD`] sends are expected within the window.
    fn light(&self) -> bool {
        self.gap * LIGHT_LOAD > self.window
    }
}

/// Sends waiting for the collector before new ones wait for room.
const QUEUE: usize = 8192;

struct Request {
    message: NewMessage,
    reply: oneshot::Sender<Result<Appended, Error>>,
}

/// The handle sends go through; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    sender: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts the collector. It stops taking sends once `stop` triggers, commits the
    /// ones it has, and then the returned task ends.
    pub fn start(
        store: Store,
        config: GroupCommitConfig,
        clock: Clock,
        stop: Shutdown,
    ) -> (GroupCommit, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let task = tokio::spawn(collect(store, config, clock, stop, receiver));
        (GroupCommit { sender }, task)
    }

    /// Appends one message; answers after its batch committed.
    pub async fn append(&self, message: NewMessage) -> Result<Appended, Error> {
        let stopped = || Error::new(ErrorCode::Unavailable, "the service is shutting down");
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Request { message, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn collect(
    store: Store,
    config: GroupCommitConfig,
    clock: Clock,
    stop: Shutdown,
    mut receiver: mpsc::Receiver<Request>,
) {
    let committers = Arc::new(Semaphore::new(config.committers.max(1)));
    // Each committer keeps its connection between batches.
    let connections: Connections = Arc::default();
    let mut commits = JoinSet::new();
    let mut stopping = false;
    let mut pace = Pace::new(config.window);
    loop {
        let first = tokio::select! {
            biased;
            () = stop.wait(), if !stopping => {
                // Sends already queued are still committed; new ones are refused.
                receiver.close();
                stopping = true;
                continue;
            }
            request = receiver.recv() => request,
        };
        let Some(first) = first else { break };
        pace.arrived(Instant::now());
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.window;
        while batch.len() < config.max_batch {
            match receiver.try_recv() {
                Ok(request) => {
                    pace.arrived(Instant::now());
                    batch.push(request);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            // At a light load, waiting would only add latency: what arrives meanwhile
            // forms the next batch.
            if pace.light() {
                break;
            }
            tokio::select! {
                request = receiver.recv() => match request {
                    Some(request) => {
                        pace.arrived(Instant::now());
                        batch.push(request);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let Ok(permit) = committers.clone().acquire_owned().await else {
            break;
        };
        while commits.try_join_next().is_some() {}
        let (store, clock) = (store.clone(), clock.clone());
        let connections = connections.clone();
        commits.spawn(async move {
            commit(&store, &connections, batch, clock.now_ms()).await;
            drop(permit);
        });
    }
    while commits.join_next().await.is_some() {}
}

/// Connections of committers between batches.
type Connections = Arc<Mutex<Vec<PoolConnection<Any>>>>;

/// Appends a batch on a kept connection (or a new one from the pool); the connection
/// is kept again unless the batch failed on it, and then closed.
async fn append(
    store: &Store,
    connections: &Connections,
    messages: &[NewMessage],
    now: i64,
) -> Result<Vec<Result<Appended, Error>>, sqlx::Error> {
    let kept = connections
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    let mut connection = match kept {
        Some(connection) => connection,
        None => {
            let mut connection = store.database().pool().acquire().await?;
            // The batch statements are planned once per shape: planning them again for
            // every batch cost more than a quarter of PostgreSQL's time per message. The
            // setting stays with this connection, which is closed rather than returned
            // to the pool.
            connection.close_on_drop();
            if store.database().backend() == Backend::Postgres {
                sqlx::query("SET plan_cache_mode = force_generic_plan")
                    .execute(&mut *connection)
                    .await?;
            }
            connection
        }
    };
    let results = store
        .append_messages_on(&mut connection, messages, now)
        .await?;
    connections
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(connection);
    Ok(results)
}

async fn commit(store: &Store, connections: &Connections, batch: Vec<Request>, now: i64) {
    let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch
        .into_iter()
        .map(|request| (request.message, request.reply))
        .unzip();
    metrics::histogram!("palaver_conversation_batch_size").record(messages.len() as f64);
    let started = Instant::now();
    // A failed transaction stored nothing and is tried once more (a deadlock or a
    // dropped connection); a commit that did go through is then found by client id.
    let result = match append(store, connections, &messages, now).await {
        Ok(results) => Ok(results),
        Err(error) => {
            tracing::warn!(%error, batch = messages.len(), "batch failed; trying once more");
            append(store, connections, &messages, now).await
        }
    };
    metrics::histogram!("palaver_conversation_commit_seconds")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(results) => {
            let created = results
                .iter()
                .filter(|r| r.as_ref().is_ok_and(|a| a.created))
                .count();
            metrics::counter!("palaver_conversation_messages_persisted_total")
                .increment(created as u64);
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(error) => {
            let error = Error::internal(&error);
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_tells_a_light_load_from_a_heavy_one() {
        let window = Duration::from_millis(2);
        let mut pace = Pace::new(window);
        assert!(pace.light(), "a quiet service does not wait");
        let start = Instant::now();
        let at = |micros: u64| start + Duration::from_micros(micros);
        // 1,000 sends a second: about two per window.
        for n in 0..100 {
            pace.arrived(at(n * 1000));
        }
        assert!(pace.light(), "{:?} between sends", pace.gap);
        // 10,000 a second: about twenty per window.
        for n in 0..100 {
            pace.arrived(at(100_000 + n * 100));
        }
        assert!(!pace.light(), "{:?} between sends", pace.gap);
        // A long quiet spell, then sends at 1,000 a second again: light within a few.
        pace.arrived(at(60_000_000));
        for n in 1..=5 {
            pace.arrived(at(60_000_000 + n * 1000));
        }
        assert!(pace.light(), "{:?} between sends", pace.gap);
    }
}
