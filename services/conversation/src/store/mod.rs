//! The conversation repository: one set of portable queries over PostgreSQL or SQLite
//! (see `palaver_kit::db`), with two differences kept local: how a transaction locks the
//! conversations it changes (`Store::lock_conversations`), and how it sends its writes
//! (`writes`: one statement on PostgreSQL, so however many rows and tables a
//! transaction writes, that costs one round trip).
//!
//! Every change writes its events to the outbox in its own transaction (see
//! [`crate::outbox`]). Within a conversation, events get a strictly increasing
//! `event_at` while the conversation's row is locked, so their order is the commit
//! order, which is the order the relay publishes them in. Messages arrive in batches
//! from [`group_commit`], one transaction and one commit per batch.

mod blocks;
mod conversations;
mod erasure;
pub mod group_commit;
mod messages;
mod offline;
mod outbox;
mod rows;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;

use palaver_kit::Error;
use palaver_kit::db::{Backend, Database, Migrations, placeholders};
use sqlx::{Any, Transaction};

use crate::domain::events::Encode;
use crate::model::{Conversation, Cursor};
use crate::outbox::handoff::{Handed, Handoff};
use rows::{CONVERSATION_COLUMNS, ConversationRow};

/// The embedded migrations (the same portable SQL for both backends).
pub fn migrations() -> Migrations {
    Migrations {
        postgres: sqlx::migrate!("./migrations"),
        sqlite: sqlx::migrate!("./migrations"),
    }
}

fn internal(error: sqlx::Error) -> Error {
    Error::internal(&error)
}

/// A conversation as a transaction that locked it sees it: with the order key of its
/// newest event (`None` while it has none).
#[derive(Debug, Clone)]
struct Locked {
    conversation: Conversation,
    event_at: Option<i64>,
}

impl Locked {
    /// The order key of an event committed at `now`: after the conversation's newest
    /// event's and no earlier than `now`. Answers the key before it too (`None`: the
    /// first of its stream).
    fn next_event_at(&mut self, now: i64) -> (Option<i64>, i64) {
        let after = self.event_at;
        let event_at = after.map_or(now, |newest| now.max(newest + 1));
        self.event_at = Some(event_at);
        (after, event_at)
    }
}

/// The statement sizes batches are rounded to (powers of two), so that few distinct
/// statements exist and each stays prepared.
fn bucket(count: usize) -> usize {
    count.next_power_of_two()
}

/// `items` split into chunks whose lengths are powers of two, largest first, at most
/// 256 long.
fn pow2_chunks<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    while !items.is_empty() {
        let len = (1usize << items.len().ilog2()).min(256);
        let (chunk, rest) = items.split_at(len);
        chunks.push(chunk);
        items = rest;
    }
    chunks
}

/// The conversation repository.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    handoff: Arc<Handoff>,
    encode: Encode,
}

impl Store {
    /// A repository over `db` that writes each event as `encode` makes it.
    pub fn new(db: Database, encode: Encode) -> Self {
        Store {
            db,
            handoff: Arc::default(),
            encode,
        }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Where the events of every commit are handed to the relay.
    pub fn handoff(&self) -> Arc<Handoff> {
        self.handoff.clone()
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>, Error> {
        self.db.pool().begin().await.map_err(internal)
    }

    /// Commits `tx`, which wrote `events` to the outbox, and hands them to the relay.
    async fn commit(
        &self,
        tx: Transaction<'_, Any>,
        events: Vec<Handed>,
    ) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.handoff.hand(events);
        Ok(())
    }

    /// Locks the conversations `ids` (sorted, without repeats) for the rest of `tx` and
    /// reads them. PostgreSQL locks their rows in id order, so two transactions never
    /// wait on each other in a cycle; SQLite takes its one write lock with a write that
    /// changes nothing, before reading, so the reads see the newest state.
    async fn lock_conversations(
        &self,
        tx: &mut Transaction<'_, Any>,
        ids: &[&str],
    ) -> Result<HashMap<String, Locked>, sqlx::Error> {
        let padded: Vec<&str> = (0..bucket(ids.len()))
            .map(|i| ids[i.min(ids.len() - 1)])
            .collect();
        let ids = &padded[..];
        let list = placeholders(1, ids.len());
        let select = match self.db.backend() {
            Backend::Postgres => format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id IN ({list}) ORDER BY conversation_id FOR UPDATE"
            ),
            Backend::Sqlite => {
                let touch_sql = format!(
                    "UPDATE conversations SET event_at = event_at WHERE conversation_id IN ({list})"
                );
                let mut touch = sqlx::query(&touch_sql);
                for id in ids {
                    touch = touch.bind(*id);
                }
                touch.execute(&mut **tx).await?;
                format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id IN ({list})"
                )
            }
        };
        let mut query = sqlx::query_as::<_, ConversationRow>(&select);
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|row| (row.conversation_id.clone(), Locked::from(row)))
            .collect())
    }

    async fn lock_conversation(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: &str,
    ) -> Result<Locked, Error> {
        self.lock_conversations(tx, &[id])
            .await
            .map_err(internal)?
            .remove(id)
            .ok_or_else(|| Error::not_found("no such conversation"))
    }
}

/// Pages read `limit + 1` rows: when the extra one came, it is dropped and the last row
/// kept names where the next page starts.
fn next_page<T>(rows: &mut Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> Cursor) -> Option<Cursor> {
    if rows.len() <= limit as usize {
        return None;
    }
    rows.truncate(limit as usize);
    rows.last().map(cursor_of)
}
