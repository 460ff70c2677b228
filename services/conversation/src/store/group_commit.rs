//! Group commit: concurrent sends share one transaction and one commit.
//!
//! One collector task per process takes the first waiting send, gathers whatever else
//! arrives within the window (at most 2 ms by default) or until the batch is full, and
//! hands the batch to a committer (at a light load with no commit in flight it does not
//! wait, since nothing would join), which appends it with [`Store::append_messages_on`].
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

use super::{Appended, NewMessage, Store};
use crate::domain::Clock;

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

/// Batches smaller than this mean a light load.
const LIGHT_LOAD: usize = 4;

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
    let mut previous_batch = 0;
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
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.window;
        while batch.len() < config.max_batch {
            match receiver.try_recv() {
                Ok(request) => {
                    batch.push(request);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            // At a light load (small batches) with no commit in flight, waiting would
            // only add latency: what arrives meanwhile forms the next batch.
            if previous_batch < LIGHT_LOAD
                && committers.available_permits() == config.committers.max(1)
            {
                break;
            }
            tokio::select! {
                request = receiver.recv() => match request {
                    Some(request) => batch.push(request),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        previous_batch = batch.len();
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
