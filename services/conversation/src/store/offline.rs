//! Offline messages ("leave a message"): storing one with its inbox event, and a
//! member's list.

use palaver_kit::{Error, ErrorCode};

use super::rows::{OFFLINE_COLUMNS, OfflineRow};
use super::writes::Writes;
use super::{Store, internal, next_page};
use crate::domain::events;
use crate::model::{Cursor, OfflineMessage};
use crate::outbox::handoff::Handed;

impl Store {
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
            event: self.pending(events::offline_message(message, now), now, now),
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
}
