//! Erasure of a member's or a visitor's data, and retention.

use palaver_kit::Error;
use palaver_kit::db::placeholders;

use super::{Store, internal};
use crate::model::Erased;

impl Store {
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
}
