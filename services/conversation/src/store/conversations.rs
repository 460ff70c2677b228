//! Conversations: starting one (or finding the visitor's open one), reading, read
//! marks, closing, and a member's list.

use palaver_kit::db::is_unique_violation;
use palaver_kit::random::new_id;
use palaver_kit::{Error, ErrorCode};
use sqlx::{Any, Transaction};

use super::rows::{CONVERSATION_COLUMNS, ConversationRow};
use super::writes::Writes;
use super::{Locked, Store, internal, next_page};
use crate::domain::events;
use crate::model::{Conversation, ConversationState, Cursor, NewConversation, Sender, Started};
use crate::outbox::handoff::Handed;

impl Store {
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
        let events: Vec<Handed> = events::started(&locked.conversation, now)
            .into_iter()
            .map(|event| self.stamp(&mut locked, event, now))
            .collect();
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
        let read = events::read(&locked.conversation, side, seq, now);
        let events = vec![self.stamp(&mut locked, read, now)];
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
    pub(super) async fn close_locked(
        &self,
        tx: &mut Transaction<'_, Any>,
        locked: &mut Locked,
        now: i64,
    ) -> Result<Handed, Error> {
        locked.conversation.state = ConversationState::Closed;
        locked.conversation.closed_at = Some(now);
        locked.conversation.last_activity_at = now;
        let closed = events::closed(&locked.conversation, now);
        let event = self.stamp(locked, closed, now);
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
}
