//! Messages: appending a batch from the group commit in one transaction, and reading
//! a conversation's history.

use std::collections::HashMap;

use palaver_kit::random::new_id;
use palaver_kit::{Error, ErrorCode};
use sqlx::Any;
use sqlx::pool::PoolConnection;

use super::rows::{MESSAGE_COLUMNS, MessageRow};
use super::writes::Writes;
use super::{Locked, Store, bucket, internal, pow2_chunks};
use crate::domain::events;
use crate::model::{Appended, ConversationState, Message, NewMessage, Page, Sender};
use crate::outbox::handoff::Handed;

impl Store {
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
                new_events.push(self.stamp(locked, event, now));
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
}
