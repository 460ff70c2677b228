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

pub mod group_commit;
mod writes;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use palaver_kit::db::{Backend, Database, Migrations, is_unique_violation, placeholders};
use palaver_kit::{Error, ErrorCode};
use sqlx::pool::PoolConnection;
use sqlx::{Any, FromRow, Transaction};

use crate::domain::validate::Cursor;
use crate::domain::{
    Caller, Conversation, ConversationState, Erased, Message, OfflineMessage, Page, Sender,
    Visitor, new_id,
};
use crate::outbox::events::{self, OutboxEvent};
use crate::outbox::handoff::{Handed, Handoff};
use writes::Writes;

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

const CONVERSATION_COLUMNS: &str = "conversation_id, app_id, endpoint, member_id, member_name, visitor_id, visitor_name, visitor_verified, visitor_external_id, visitor_member_id, state, started_at, closed_at, last_seq, last_activity_at, member_read_seq, visitor_read_seq, event_at";
const MESSAGE_COLUMNS: &str = "message_id, conversation_id, seq, client_id, sender, text, sent_at";
const OFFLINE_COLUMNS: &str = "offline_message_id, app_id, member_id, endpoint, visitor_id, visitor_name, visitor_verified, visitor_external_id, visitor_member_id, text, email, sent_at";

#[derive(Debug, FromRow)]
struct ConversationRow {
    conversation_id: String,
    app_id: String,
    endpoint: String,
    member_id: String,
    member_name: String,
    visitor_id: String,
    visitor_name: String,
    visitor_verified: i64,
    visitor_external_id: String,
    visitor_member_id: String,
    state: String,
    started_at: i64,
    closed_at: Option<i64>,
    last_seq: i64,
    last_activity_at: i64,
    member_read_seq: i64,
    visitor_read_seq: i64,
    event_at: i64,
}

/// A conversation as a transaction that locked it sees it: with the order key of its
/// newest event (`None` while it has none).
#[derive(Debug, Clone)]
struct Locked {
    conversation: Conversation,
    event_at: Option<i64>,
}

impl Locked {
    /// Gives `event`, committed at `now`, the order key after the conversation's newest
    /// event's and no earlier than `now`.
    fn stamp(&mut self, event: OutboxEvent, now: i64) -> Handed {
        let after = self.event_at;
        let event_at = after.map_or(now, |newest| now.max(newest + 1));
        self.event_at = Some(event_at);
        Handed {
            event: PendingEvent::new(event, event_at, now),
            after,
        }
    }
}

impl From<ConversationRow> for Locked {
    fn from(row: ConversationRow) -> Self {
        Locked {
            conversation: Conversation {
                conversation_id: row.conversation_id,
                app_id: row.app_id,
                endpoint: row.endpoint,
                member_id: row.member_id,
                member_name: row.member_name,
                visitor: Visitor {
                    visitor_id: row.visitor_id,
                    display_name: row.visitor_name,
                    verified: row.visitor_verified != 0,
                    external_id: row.visitor_external_id,
                    member_id: row.visitor_member_id,
                },
                state: if row.state == ConversationState::Open.as_str() {
                    ConversationState::Open
                } else {
                    ConversationState::Closed
                },
                started_at: row.started_at,
                closed_at: row.closed_at,
                last_seq: row.last_seq,
                last_activity_at: row.last_activity_at,
                member_read_seq: row.member_read_seq,
                visitor_read_seq: row.visitor_read_seq,
            },
            event_at: Some(row.event_at),
        }
    }
}

#[derive(Debug, FromRow)]
struct MessageRow {
    message_id: String,
    conversation_id: String,
    seq: i64,
    client_id: String,
    sender: String,
    text: String,
    sent_at: i64,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            message_id: row.message_id,
            conversation_id: row.conversation_id,
            seq: row.seq,
            client_id: row.client_id,
            sender: Sender::parse(&row.sender).unwrap_or(Sender::Visitor),
            text: row.text,
            sent_at: row.sent_at,
        }
    }
}

#[derive(Debug, FromRow)]
struct OfflineRow {
    offline_message_id: String,
    app_id: String,
    member_id: String,
    endpoint: String,
    visitor_id: String,
    visitor_name: String,
    visitor_verified: i64,
    visitor_external_id: String,
    visitor_member_id: String,
    text: String,
    email: String,
    sent_at: i64,
}

impl From<OfflineRow> for OfflineMessage {
    fn from(row: OfflineRow) -> Self {
        OfflineMessage {
            offline_message_id: row.offline_message_id,
            app_id: row.app_id,
            member_id: row.member_id,
            endpoint: row.endpoint,
            visitor: Visitor {
                visitor_id: row.visitor_id,
                display_name: row.visitor_name,
                verified: row.visitor_verified != 0,
                external_id: row.visitor_external_id,
                member_id: row.visitor_member_id,
            },
            text: row.text,
            email: row.email,
            sent_at: row.sent_at,
        }
    }
}

/// An event waiting in the outbox.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct PendingEvent {
    pub event_id: String,
    pub stream: String,
    pub subject: String,
    pub payload: Vec<u8>,
    /// The order key: strictly increasing within a stream, in commit order.
    pub event_at: i64,
    /// When the change was committed (Unix milliseconds).
    pub created_at: i64,
    /// The W3C `traceparent` of the request that caused the event.
    pub traceparent: Option<String>,
}

impl PendingEvent {
    fn new(event: OutboxEvent, event_at: i64, created_at: i64) -> Self {
        PendingEvent {
            event_id: event.event_id,
            stream: event.stream,
            subject: event.subject,
            payload: event.payload,
            event_at,
            created_at,
            traceparent: event.traceparent,
        }
    }
}

/// A conversation to open.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub app_id: String,
    pub endpoint: String,
    pub member_id: String,
    pub member_name: String,
    pub visitor: Visitor,
}

/// What starting a conversation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new conversation.
    Created(Conversation),
    /// The visitor's open conversation with the endpoint, returned instead.
    Existing(Conversation),
}

/// A message to append, as the caller sent it (validated).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: String,
    pub caller: Caller,
    pub client_id: String,
    pub text: String,
    /// The W3C `traceparent` of the sending request, which its event carries on.
    pub traceparent: Option<String>,
}

/// An appended message: new, or stored before under the same client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: Message,
    pub created: bool,
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
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store {
            db,
            handoff: Arc::default(),
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

    /// Adds the outbox rows of `events` to `writes`.
    fn write_events<'q>(writes: &mut Writes<'q>, events: &'q [Handed], now: i64) {
        for chunk in pow2_chunks(events) {
            writes.add(false, |arguments| {
                let now = arguments.bind(now);
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|Handed { event, .. }| {
                        format!(
                            "({}, {}, {}, {}, {}, {}, {now})",
                            arguments.bind(&event.event_id),
                            arguments.bind(&event.stream),
                            arguments.bind(&event.subject),
                            arguments.bind(&event.payload),
                            arguments.bind(event.event_at),
                            arguments.bind(&event.traceparent),
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO outbox (event_id, stream, subject, payload, event_at, traceparent, created_at) VALUES {}",
                    rows.join(", ")
                )
            });
        }
    }

    // ---- conversations ----

    /// Opens a conversation, or returns the visitor's open one with the same endpoint.
    /// Refused while the member has blocked the visitor (`visitor_blocked`) or when the
    /// visitor already has `open_limit` open conversations (`rate_limited`).
    #[tracing::instrument(skip_all, fields(app_id = %new.app_id, endpoint = %new.endpoint))]
    pub async fn start_conversation(
        &self,
        new: &NewConversation,
        open_limit: u32,
        now: i64,
    ) -> Result<Started, Error> {
        let mut tx = self.begin().await?;
        // The visitor's row serialises their starts, so the limit holds.
        sqlx::query(
            "INSERT INTO visitors (app_id, visitor_id, seen_at) VALUES ($1, $2, $3) ON CONFLICT (app_id, visitor_id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(&new.app_id)
        .bind(&new.visitor.visitor_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        let (blocked,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM blocked_visitors WHERE app_id = $1 AND member_id = $2 AND visitor_id = $3",
        )
        .bind(&new.app_id)
        .bind(&new.member_id)
        .bind(&new.visitor.visitor_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(internal)?;
        if blocked > 0 {
            return Err(Error::new(
                ErrorCode::VisitorBlocked,
                "the member does not accept chats from this visitor",
            ));
        }
        let existing = sqlx::query_as::<_, ConversationRow>(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE app_id = $1 AND visitor_id = $2 AND endpoint = $3 AND state = 'open'"
        ))
        .bind(&new.app_id)
        .bind(&new.visitor.visitor_id)
        .bind(&new.endpoint)
        .fetch_optional(&mut *tx)
        .await
        .map_err(internal)?;
        if let Some(row) = existing {
            tx.commit().await.map_err(internal)?;
            return Ok(Started::Existing(Locked::from(row).conversation));
        }
        let (open,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM conversations WHERE app_id = $1 AND visitor_id = $2 AND state = 'open'",
        )
        .bind(&new.app_id)
        .bind(&new.visitor.visitor_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(internal)?;
        if open >= i64::from(open_limit) {
            return Err(Error::new(
                ErrorCode::RateLimited,
                format!(
                    "a visitor may have at most {open_limit} open conversations; close one first"
                ),
            ));
        }
        let mut locked = Locked {
            conversation: Conversation {
                conversation_id: new_id("c_", 20),
                app_id: new.app_id.clone(),
                endpoint: new.endpoint.clone(),
                member_id: new.member_id.clone(),
                member_name: new.member_name.clone(),
                visitor: new.visitor.clone(),
                state: ConversationState::Open,
                started_at: now,
                closed_at: None,
                last_seq: 0,
                last_activity_at: now,
                member_read_seq: 0,
                visitor_read_seq: 0,
            },
            event_at: None,
        };
        let opened = events::opened(&locked.conversation, now);
        let started = events::conversation_started(&locked.conversation, now);
        let events = vec![locked.stamp(opened, now), locked.stamp(started, now)];
        let c = &locked.conversation;
        let mut writes = Writes::new(self.db.backend());
        writes.add(false, |arguments| {
            let values = [
                arguments.bind(&c.conversation_id),
                arguments.bind(&c.app_id),
                arguments.bind(&c.endpoint),
                arguments.bind(&c.member_id),
                arguments.bind(&c.member_name),
                arguments.bind(&c.visitor.visitor_id),
                arguments.bind(&c.visitor.display_name),
                arguments.bind(i64::from(c.visitor.verified)),
                arguments.bind(&c.visitor.external_id),
                arguments.bind(&c.visitor.member_id),
                arguments.bind(c.state.as_str()),
                arguments.bind(c.started_at),
                arguments.bind(c.closed_at),
                arguments.bind(c.last_seq),
                arguments.bind(c.last_activity_at),
                arguments.bind(c.member_read_seq),
                arguments.bind(c.visitor_read_seq),
                arguments.bind(locked.event_at),
            ];
            format!(
                "INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES ({})",
                values.join(", ")
            )
        });
        Self::write_events(&mut writes, &events, now);
        writes.execute(&mut tx).await.map_err(|error| {
            if is_unique_violation(&error) {
                Error::new(ErrorCode::Conflict, "the conversation was opened meanwhile")
            } else {
                internal(error)
            }
        })?;
        self.commit(tx, events).await.map_err(internal)?;
        Ok(Started::Created(locked.conversation))
    }

    /// A conversation by id.
    #[tracing::instrument(skip(self))]
    pub async fn conversation(&self, conversation_id: &str) -> Result<Option<Conversation>, Error> {
        let row = sqlx::query_as::<_, ConversationRow>(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = $1"
        ))
        .bind(conversation_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(row.map(|row| Locked::from(row).conversation))
    }

    /// Appends a batch of messages in one transaction and one commit. Each message gets
    /// its own result: a message of a conversation that does not exist, is closed or
    /// does not have the caller as a participant fails alone; a client id sent before
    /// (earlier, or earlier in the batch) returns the stored message. The outer error
    /// means the transaction failed and nothing was stored.
    pub async fn append_messages(
        &self,
        batch: &[NewMessage],
        now: i64,
    ) -> Result<Vec<Result<Appended, Error>>, sqlx::Error> {
        let mut connection = self.db.pool().acquire().await?;
        self.append_messages_on(&mut connection, batch, now).await
    }

    /// [`Store::append_messages`] on a connection the caller holds (the group commit
    /// keeps one per committer). Most sends are new, so the batch is first inserted
    /// without looking for stored messages; only when a client id turns out to be
    /// stored already is that rolled back and the batch appended again, looking them up.
    #[tracing::instrument(skip_all, fields(batch = batch.len()))]
    pub async fn append_messages_on(
        &self,
        connection: &mut PoolConnection<Any>,
        batch: &[NewMessage],
        now: i64,
    ) -> Result<Vec<Result<Appended, Error>>, sqlx::Error> {
        if let Some(results) = self.try_append(connection, batch, now, false).await? {
            return Ok(results);
        }
        self.try_append(connection, batch, now, true)
            .await?
            .ok_or_else(|| {
                sqlx::Error::Protocol(
                    "a client id was stored while its conversation was locked".into(),
                )
            })
    }

    /// One attempt at a batch; `None` when, not looking stored messages up, a client id
    /// was found stored (the transaction is then rolled back).
    async fn try_append(
        &self,
        connection: &mut PoolConnection<Any>,
        batch: &[NewMessage],
        now: i64,
        look_up_stored: bool,
    ) -> Result<Option<Vec<Result<Appended, Error>>>, sqlx::Error> {
        let mut ids: Vec<&str> = batch.iter().map(|m| m.conversation_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = sqlx::Connection::begin(&mut **connection).await?;
        let mut conversations = self.lock_conversations(&mut tx, &ids).await?;

        // The stored messages under the batch's client ids, looked up exactly (by
        // conversation, side and client id) so the cost does not grow with history.
        let keys: Vec<(&str, Sender, &str)> = batch
            .iter()
            .filter_map(|m| {
                let locked = conversations.get(&m.conversation_id)?;
                let side = m.caller.participant_in(&locked.conversation).ok()?;
                Some((m.conversation_id.as_str(), side, m.client_id.as_str()))
            })
            .collect();
        let mut stored: HashMap<(String, Sender, String), Message> = HashMap::new();
        if look_up_stored && !keys.is_empty() {
            let terms: Vec<String> = (0..bucket(keys.len()))
                .map(|i| {
                    format!(
                        "(conversation_id = ${} AND sender = ${} AND client_id = ${})",
                        1 + i * 3,
                        2 + i * 3,
                        3 + i * 3
                    )
                })
                .collect();
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {}",
                terms.join(" OR ")
            );
            let mut query = sqlx::query_as::<_, MessageRow>(&sql);
            for i in 0..bucket(keys.len()) {
                let (conversation_id, side, client_id) = keys[i.min(keys.len() - 1)];
                query = query
                    .bind(conversation_id)
                    .bind(side.as_str())
                    .bind(client_id);
            }
            stored = query
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(Message::from)
                .map(|m| {
                    (
                        (m.conversation_id.clone(), m.sender, m.client_id.clone()),
                        m,
                    )
                })
                .collect();
        }

        let mut results = Vec::with_capacity(batch.len());
        let mut new_messages: Vec<Message> = Vec::new();
        let mut new_events: Vec<Handed> = Vec::new();
        for item in batch {
            let result = (|| {
                let locked = conversations
                    .get_mut(&item.conversation_id)
                    .ok_or_else(|| Error::not_found("no such conversation"))?;
                let side = item.caller.participant_in(&locked.conversation)?;
                let key = (item.conversation_id.clone(), side, item.client_id.clone());
                if let Some(message) = stored.get(&key) {
                    return Ok(Appended {
                        message: message.clone(),
                        created: false,
                    });
                }
                if locked.conversation.state == ConversationState::Closed {
                    return Err(Error::new(
                        ErrorCode::FailedPrecondition,
                        "the conversation is closed",
                    ));
                }
                let conversation = &mut locked.conversation;
                conversation.last_seq += 1;
                conversation.last_activity_at = now;
                // Whoever writes has read everything before their message.
                match side {
                    Sender::Member => conversation.member_read_seq = conversation.last_seq,
                    Sender::Visitor => conversation.visitor_read_seq = conversation.last_seq,
                }
                let message = Message {
                    message_id: new_id("msg_", 20),
                    conversation_id: item.conversation_id.clone(),
                    seq: conversation.last_seq,
                    client_id: item.client_id.clone(),
                    sender: side,
                    text: item.text.clone(),
                    sent_at: now,
                };
                let event =
                    events::message_created(conversation, &message, now, item.traceparent.clone());
                new_events.push(locked.stamp(event, now));
                stored.insert(key, message.clone());
                new_messages.push(message.clone());
                Ok(Appended {
                    message,
                    created: true,
                })
            })();
            results.push(result);
        }

        if !new_messages.is_empty() {
            let changed: Vec<&Locked> = ids
                .iter()
                .filter(|id| new_messages.iter().any(|m| m.conversation_id == **id))
                .filter_map(|id| conversations.get(*id))
                .collect();
            let mut writes = Writes::new(self.db.backend());
            Self::write_messages(&mut writes, &conversations, &new_messages, !look_up_stored);
            Self::write_events(&mut writes, &new_events, now);
            Self::write_counters(&mut writes, &changed, new_messages.len());
            let inserted = writes.execute(&mut tx).await?;
            if inserted < new_messages.len() as u64 {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        self.commit(tx, new_events).await?;
        Ok(Some(results))
    }

    /// Adds the inserts of `messages` to `writes`, counted; with `skip_stored`, a
    /// message whose client id is stored already is skipped.
    fn write_messages<'q>(
        writes: &mut Writes<'q>,
        conversations: &'q HashMap<String, Locked>,
        messages: &'q [Message],
        skip_stored: bool,
    ) {
        for chunk in pow2_chunks(messages) {
            writes.add(true, |arguments| {
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|message| {
                        let app_id = conversations
                            .get(&message.conversation_id)
                            .map(|c| c.conversation.app_id.as_str())
                            .unwrap_or_default();
                        format!(
                            "({}, {}, {}, {}, {}, {}, {}, {})",
                            arguments.bind(&message.message_id),
                            arguments.bind(&message.conversation_id),
                            arguments.bind(app_id),
                            arguments.bind(message.seq),
                            arguments.bind(&message.client_id),
                            arguments.bind(message.sender.as_str()),
                            arguments.bind(&message.text),
                            arguments.bind(message.sent_at),
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO messages (message_id, conversation_id, app_id, seq, client_id, sender, text, sent_at) VALUES {}{}",
                    rows.join(", "),
                    if skip_stored {
                        " ON CONFLICT (conversation_id, sender, client_id) DO NOTHING"
                    } else {
                        ""
                    }
                )
            });
        }
    }

    /// Adds the update of the counters of the conversations a batch of `batch` messages
    /// changed, in one statement. The list is padded to the batch's bucket, so that the
    /// statement's shape depends on the batch's size alone.
    fn write_counters<'q>(writes: &mut Writes<'q>, changed: &[&'q Locked], batch: usize) {
        const COLUMNS: [&str; 5] = [
            "last_seq",
            "last_activity_at",
            "member_read_seq",
            "visitor_read_seq",
            "event_at",
        ];
        writes.add(false, |arguments| {
            let rows: Vec<(String, [String; 5])> = (0..bucket(batch))
                .map(|i| {
                    let locked = changed[i.min(changed.len() - 1)];
                    let c = &locked.conversation;
                    (
                        arguments.bind(&c.conversation_id),
                        [
                            arguments.bind(c.last_seq),
                            arguments.bind(c.last_activity_at),
                            arguments.bind(c.member_read_seq),
                            arguments.bind(c.visitor_read_seq),
                            arguments.bind(locked.event_at),
                        ],
                    )
                })
                .collect();
            let sets: Vec<String> = COLUMNS
                .iter()
                .enumerate()
                .map(|(column_index, column)| {
                    let whens: String = rows
                        .iter()
                        .map(|(id, values)| format!(" WHEN {id} THEN {}", values[column_index]))
                        .collect();
                    format!("{column} = CASE conversation_id{whens} END")
                })
                .collect();
            let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
            format!(
                "UPDATE conversations SET {} WHERE conversation_id IN ({})",
                sets.join(", "),
                ids.join(", ")
            )
        });
    }

    /// Messages of a conversation in sequence order, and whether there are more in the
    /// page's direction.
    #[tracing::instrument(skip(self))]
    pub async fn messages(
        &self,
        conversation_id: &str,
        page: Page,
        limit: u32,
    ) -> Result<(Vec<Message>, bool), Error> {
        let (condition, order, bound) = match page {
            Page::Newest => ("", "DESC", None),
            Page::After(seq) => ("AND seq > $2", "ASC", Some(seq)),
            Page::Before(seq) => ("AND seq < $2", "DESC", Some(seq)),
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 {condition} ORDER BY seq {order} LIMIT {}",
            i64::from(limit) + 1
        );
        let mut query = sqlx::query_as::<_, MessageRow>(&sql).bind(conversation_id);
        if let Some(seq) = bound {
            query = query.bind(seq);
        }
        let mut messages: Vec<Message> = query
            .fetch_all(self.db.pool())
            .await
            .map_err(internal)?
            .into_iter()
            .map(Message::from)
            .collect();
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        if order == "DESC" {
            messages.reverse();
        }
        Ok((messages, more))
    }

    /// Every message of a conversation, in sequence order.
    #[tracing::instrument(skip(self))]
    pub async fn all_messages(&self, conversation_id: &str) -> Result<Vec<Message>, Error> {
        Ok(sqlx::query_as::<_, MessageRow>(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq"
        ))
        .bind(conversation_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(internal)?
        .into_iter()
        .map(Message::from)
        .collect())
    }

    /// Moves `side`'s read mark forward to `seq` (at most the newest message); returns
    /// the conversation after the change. A mark at or past `seq` stays as it is and
    /// writes no event.
    #[tracing::instrument(skip(self))]
    pub async fn mark_read(
        &self,
        conversation_id: &str,
        side: Sender,
        seq: i64,
        now: i64,
    ) -> Result<Conversation, Error> {
        let mut tx = self.begin().await?;
        let mut locked = self.lock_conversation(&mut tx, conversation_id).await?;
        if seq > locked.conversation.last_seq {
            return Err(Error::invalid(
                "seq",
                format!(
                    "is past the newest message ({})",
                    locked.conversation.last_seq
                ),
            ));
        }
        let mark = match side {
            Sender::Member => &mut locked.conversation.member_read_seq,
            Sender::Visitor => &mut locked.conversation.visitor_read_seq,
        };
        if seq <= *mark {
            return Ok(locked.conversation);
        }
        *mark = seq;
        let column = match side {
            Sender::Member => "member_read_seq",
            Sender::Visitor => "visitor_read_seq",
        };
        let events = vec![locked.stamp(events::read(&locked.conversation, side, seq, now), now)];
        let mut writes = Writes::new(self.db.backend());
        writes.add(false, |arguments| {
            format!(
                "UPDATE conversations SET {column} = {}, event_at = {} WHERE conversation_id = {}",
                arguments.bind(seq),
                arguments.bind(events[0].event.event_at),
                arguments.bind(conversation_id),
            )
        });
        Self::write_events(&mut writes, &events, now);
        writes.execute(&mut tx).await.map_err(internal)?;
        self.commit(tx, events).await.map_err(internal)?;
        Ok(locked.conversation)
    }

    /// Closes a conversation; one already closed stays as it is.
    #[tracing::instrument(skip(self))]
    pub async fn close(&self, conversation_id: &str, now: i64) -> Result<Conversation, Error> {
        let mut tx = self.begin().await?;
        let mut locked = self.lock_conversation(&mut tx, conversation_id).await?;
        let mut events = Vec::new();
        if locked.conversation.state == ConversationState::Open {
            events.push(self.close_locked(&mut tx, &mut locked, now).await?);
        }
        self.commit(tx, events).await.map_err(internal)?;
        Ok(locked.conversation)
    }

    /// Closes a locked conversation; returns the event it wrote.
    async fn close_locked(
        &self,
        tx: &mut Transaction<'_, Any>,
        locked: &mut Locked,
        now: i64,
    ) -> Result<Handed, Error> {
        locked.conversation.state = ConversationState::Closed;
        locked.conversation.closed_at = Some(now);
        locked.conversation.last_activity_at = now;
        let event = locked.stamp(events::closed(&locked.conversation, now), now);
        let mut writes = Writes::new(self.db.backend());
        writes.add(false, |arguments| {
            let now = arguments.bind(now);
            format!(
                "UPDATE conversations SET state = 'closed', closed_at = {now}, last_activity_at = {now}, event_at = {} WHERE conversation_id = {}",
                arguments.bind(event.event.event_at),
                arguments.bind(&locked.conversation.conversation_id),
            )
        });
        Self::write_events(&mut writes, std::slice::from_ref(&event), now);
        writes.execute(tx).await.map_err(internal)?;
        Ok(event)
    }

    /// A member's conversations (as the member, or as a verified visitor), newest first,
    /// starting after `cursor`; and the cursor of the next page when there is one.
    #[tracing::instrument(skip(self))]
    pub async fn conversations_of_member(
        &self,
        app_id: &str,
        member_id: &str,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<(Vec<Conversation>, Option<Cursor>), Error> {
        let after = if cursor.is_some() {
            "AND (started_at < $3 OR (started_at = $3 AND conversation_id < $4))"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE app_id = $1 AND (member_id = $2 OR visitor_member_id = $2) {after} ORDER BY started_at DESC, conversation_id DESC LIMIT {}",
            i64::from(limit) + 1
        );
        let mut query = sqlx::query_as::<_, ConversationRow>(&sql)
            .bind(app_id)
            .bind(member_id);
        if let Some(cursor) = cursor {
            query = query.bind(cursor.at).bind(&cursor.id);
        }
        let mut conversations: Vec<Conversation> = query
            .fetch_all(self.db.pool())
            .await
            .map_err(internal)?
            .into_iter()
            .map(|row| Locked::from(row).conversation)
            .collect();
        let next = next_page(&mut conversations, limit, |c| Cursor {
            at: c.started_at,
            id: c.conversation_id.clone(),
        });
        Ok((conversations, next))
    }

    // ---- offline messages ----

    /// Stores an offline message and its inbox event. Refused while the member has
    /// blocked the visitor.
    #[tracing::instrument(skip_all, fields(app_id = %message.app_id))]
    pub async fn insert_offline_message(
        &self,
        message: &OfflineMessage,
        now: i64,
    ) -> Result<(), Error> {
        let v = &message.visitor;
        // The first and only event of its stream.
        let events = vec![Handed {
            event: PendingEvent::new(events::offline_message(message, now), now, now),
            after: None,
        }];
        let mut writes = Writes::new(self.db.backend());
        writes.add(true, |arguments| {
            let [app_id, member_id, visitor_id] = [&message.app_id, &message.member_id, &v.visitor_id]
                .map(|value| arguments.bind(value));
            let values = [
                arguments.bind(&message.offline_message_id),
                app_id.clone(),
                member_id.clone(),
                arguments.bind(&message.endpoint),
                visitor_id.clone(),
                arguments.bind(&v.display_name),
                arguments.bind(i64::from(v.verified)),
                arguments.bind(&v.external_id),
                arguments.bind(&v.member_id),
                arguments.bind(&message.text),
                arguments.bind(&message.email),
                arguments.bind(message.sent_at),
            ];
            format!(
                "INSERT INTO offline_messages ({OFFLINE_COLUMNS}) SELECT {} WHERE NOT EXISTS (SELECT 1 FROM blocked_visitors WHERE app_id = {app_id} AND member_id = {member_id} AND visitor_id = {visitor_id})",
                values.join(", ")
            )
        });
        Self::write_events(&mut writes, &events, now);
        let mut tx = self.begin().await?;
        // Blocked, the message is not inserted and the transaction (with its event) is
        // rolled back.
        if writes.execute(&mut tx).await.map_err(internal)? != 1 {
            return Err(Error::new(
                ErrorCode::VisitorBlocked,
                "the member does not accept messages from this visitor",
            ));
        }
        self.commit(tx, events).await.map_err(internal)
    }

    /// A member's offline messages, newest first, after `cursor`; and the next cursor.
    #[tracing::instrument(skip(self))]
    pub async fn offline_messages(
        &self,
        app_id: &str,
        member_id: &str,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<(Vec<OfflineMessage>, Option<Cursor>), Error> {
        let after = if cursor.is_some() {
            "AND (sent_at < $3 OR (sent_at = $3 AND offline_message_id < $4))"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {OFFLINE_COLUMNS} FROM offline_messages WHERE app_id = $1 AND member_id = $2 {after} ORDER BY sent_at DESC, offline_message_id DESC LIMIT {}",
            i64::from(limit) + 1
        );
        let mut query = sqlx::query_as::<_, OfflineRow>(&sql)
            .bind(app_id)
            .bind(member_id);
        if let Some(cursor) = cursor {
            query = query.bind(cursor.at).bind(&cursor.id);
        }
        let mut messages: Vec<OfflineMessage> = query
            .fetch_all(self.db.pool())
            .await
            .map_err(internal)?
            .into_iter()
            .map(OfflineMessage::from)
            .collect();
        let next = next_page(&mut messages, limit, |m| Cursor {
            at: m.sent_at,
            id: m.offline_message_id.clone(),
        });
        Ok((messages, next))
    }

    // ---- blocking ----

    /// Blocks a visitor from the member and closes their open conversations with the
    /// member; returns how many it closed. Blocking twice is the same as once.
    #[tracing::instrument(skip(self))]
    pub async fn block(
        &self,
        app_id: &str,
        member_id: &str,
        visitor_id: &str,
        now: i64,
    ) -> Result<u64, Error> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO blocked_visitors (app_id, member_id, visitor_id, blocked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (app_id, member_id, visitor_id) DO NOTHING",
        )
        .bind(app_id)
        .bind(member_id)
        .bind(visitor_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        let open: Vec<(String,)> = sqlx::query_as(
            "SELECT conversation_id FROM conversations WHERE app_id = $1 AND member_id = $2 AND visitor_id = $3 AND state = 'open' ORDER BY conversation_id",
        )
        .bind(app_id)
        .bind(member_id)
        .bind(visitor_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(internal)?;
        let ids: Vec<&str> = open.iter().map(|(id,)| id.as_str()).collect();
        let mut events = Vec::new();
        if !ids.is_empty() {
            let locked = self
                .lock_conversations(&mut tx, &ids)
                .await
                .map_err(internal)?;
            for id in &ids {
                if let Some(mut conversation) = locked.get(*id).cloned()
                    && conversation.conversation.state == ConversationState::Open
                {
                    events.push(self.close_locked(&mut tx, &mut conversation, now).await?);
                }
            }
        }
        let closed = events.len() as u64;
        self.commit(tx, events).await.map_err(internal)?;
        Ok(closed)
    }

    /// Lifts a block; false when there was none.
    #[tracing::instrument(skip(self))]
    pub async fn unblock(
        &self,
        app_id: &str,
        member_id: &str,
        visitor_id: &str,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "DELETE FROM blocked_visitors WHERE app_id = $1 AND member_id = $2 AND visitor_id = $3",
        )
        .bind(app_id)
        .bind(member_id)
        .bind(visitor_id)
        .execute(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(done.rows_affected() == 1)
    }

    /// Which of `visitor_ids` the member has blocked.
    #[tracing::instrument(skip(self, visitor_ids))]
    pub async fn blocked_among(
        &self,
        app_id: &str,
        member_id: &str,
        visitor_ids: &[&str],
    ) -> Result<HashSet<String>, Error> {
        if visitor_ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = format!(
            "SELECT visitor_id FROM blocked_visitors WHERE app_id = $1 AND member_id = $2 AND visitor_id IN ({})",
            placeholders(3, visitor_ids.len())
        );
        let mut query = sqlx::query_as::<_, (String,)>(&sql)
            .bind(app_id)
            .bind(member_id);
        for visitor_id in visitor_ids {
            query = query.bind(*visitor_id);
        }
        let rows = query.fetch_all(self.db.pool()).await.map_err(internal)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    // ---- erasure and retention ----

    /// Erases every conversation the member took part in (as the member or as a verified
    /// visitor), their messages, the member's offline messages, their blocks and the
    /// events about all of it not yet published.
    #[tracing::instrument(skip(self))]
    pub async fn erase_member(&self, app_id: &str, member_id: &str) -> Result<Erased, Error> {
        self.erase(
            app_id,
            member_id,
            "(member_id = $2 OR visitor_member_id = $2)",
            "(member_id = $2 OR visitor_member_id = $2)",
            "DELETE FROM blocked_visitors WHERE app_id = $1 AND member_id = $2",
        )
        .await
    }

    /// Erases every conversation and offline message of the visitor, the blocks of them
    /// and the events about all of it not yet published.
    #[tracing::instrument(skip(self))]
    pub async fn erase_visitor(&self, app_id: &str, visitor_id: &str) -> Result<Erased, Error> {
        let erased = self
            .erase(
                app_id,
                visitor_id,
                "visitor_id = $2",
                "visitor_id = $2",
                "DELETE FROM blocked_visitors WHERE app_id = $1 AND visitor_id = $2",
            )
            .await?;
        sqlx::query("DELETE FROM visitors WHERE app_id = $1 AND visitor_id = $2")
            .bind(app_id)
            .bind(visitor_id)
            .execute(self.db.pool())
            .await
            .map_err(internal)?;
        Ok(erased)
    }

    async fn erase(
        &self,
        app_id: &str,
        who: &str,
        conversation_filter: &str,
        offline_filter: &str,
        delete_blocks: &str,
    ) -> Result<Erased, Error> {
        let mut tx = self.begin().await?;
        let ids: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT conversation_id FROM conversations WHERE app_id = $1 AND {conversation_filter} ORDER BY conversation_id"
        ))
        .bind(app_id)
        .bind(who)
        .fetch_all(&mut *tx)
        .await
        .map_err(internal)?;
        let ids: Vec<&str> = ids.iter().map(|(id,)| id.as_str()).collect();
        let mut erased = Erased::default();
        for chunk in ids.chunks(500) {
            self.lock_conversations(&mut tx, chunk)
                .await
                .map_err(internal)?;
            let list = placeholders(1, chunk.len());
            for (table, count) in [
                ("messages", Some(&mut erased.messages)),
                ("outbox", None),
                ("conversations", Some(&mut erased.conversations)),
            ] {
                let column = if table == "outbox" {
                    "stream"
                } else {
                    "conversation_id"
                };
                let sql = format!("DELETE FROM {table} WHERE {column} IN ({list})");
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                let deleted = query
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?
                    .rows_affected();
                if let Some(count) = count {
                    *count += deleted;
                }
            }
        }
        sqlx::query(&format!(
            "DELETE FROM outbox WHERE stream IN (SELECT offline_message_id FROM offline_messages WHERE app_id = $1 AND {offline_filter})"
        ))
        .bind(app_id)
        .bind(who)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        erased.offline_messages = sqlx::query(&format!(
            "DELETE FROM offline_messages WHERE app_id = $1 AND {offline_filter}"
        ))
        .bind(app_id)
        .bind(who)
        .execute(&mut *tx)
        .await
        .map_err(internal)?
        .rows_affected();
        sqlx::query(delete_blocks)
            .bind(app_id)
            .bind(who)
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(erased)
    }

    /// The apps that have conversations or offline messages.
    pub async fn apps(&self) -> Result<Vec<String>, Error> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT app_id FROM conversations UNION SELECT app_id FROM offline_messages",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(rows.into_iter().map(|(app_id,)| app_id).collect())
    }

    /// Deletes an app's messages and offline messages sent before `cutoff`, and its
    /// closed conversations idle since before `cutoff` that have no message left, a
    /// thousand rows per statement. Returns (messages, offline messages, conversations).
    #[tracing::instrument(skip(self))]
    pub async fn delete_older_than(
        &self,
        app_id: &str,
        cutoff: i64,
    ) -> Result<(u64, u64, u64), Error> {
        let mut counts = [0u64; 3];
        let statements = [
            "DELETE FROM messages WHERE (conversation_id, seq) IN (SELECT conversation_id, seq FROM messages WHERE app_id = $1 AND sent_at < $2 LIMIT 1000)",
            "DELETE FROM offline_messages WHERE offline_message_id IN (SELECT offline_message_id FROM offline_messages WHERE app_id = $1 AND sent_at < $2 LIMIT 1000)",
            "DELETE FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM conversations c WHERE app_id = $1 AND state = 'closed' AND last_activity_at < $2 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.conversation_id) LIMIT 1000)",
        ];
        for (statement, count) in statements.iter().zip(counts.iter_mut()) {
            loop {
                let deleted = sqlx::query(statement)
                    .bind(app_id)
                    .bind(cutoff)
                    .execute(self.db.pool())
                    .await
                    .map_err(internal)?
                    .rows_affected();
                *count += deleted;
                if deleted < 1000 {
                    break;
                }
            }
        }
        Ok((counts[0], counts[1], counts[2]))
    }

    // ---- the outbox ----

    /// Up to `limit` unpublished events, in publishing order (by stream, the commit
    /// order).
    pub async fn pending_events(&self, limit: u32) -> Result<Vec<PendingEvent>, Error> {
        sqlx::query_as::<_, PendingEvent>(&format!(
            "SELECT event_id, stream, subject, payload, event_at, created_at, traceparent FROM outbox ORDER BY event_at, stream LIMIT {limit}"
        ))
        .fetch_all(self.db.pool())
        .await
        .map_err(internal)
    }

    /// Marks events published, by deleting them: nothing is left to do with an event
    /// once it is published.
    pub async fn mark_published(&self, event_ids: &[&str]) -> Result<(), Error> {
        for chunk in event_ids.chunks(512) {
            let padded = bucket(chunk.len());
            let sql = format!(
                "DELETE FROM outbox WHERE event_id IN ({})",
                placeholders(1, padded)
            );
            let mut query = sqlx::query(&sql);
            for i in 0..padded {
                query = query.bind(chunk[i.min(chunk.len() - 1)]);
            }
            query.execute(self.db.pool()).await.map_err(internal)?;
        }
        Ok(())
    }

    /// How many events wait, and when the oldest of them was committed.
    pub async fn outbox_backlog(&self) -> Result<(i64, Option<i64>), Error> {
        sqlx::query_as::<_, (i64, Option<i64>)>("SELECT COUNT(*), MIN(created_at) FROM outbox")
            .fetch_one(self.db.pool())
            .await
            .map_err(internal)
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
