//! Blocked visitors: blocking (which closes their open conversations with the member),
//! lifting a block, and which visitors are blocked.

use std::collections::HashSet;

use palaver_kit::Error;
use palaver_kit::db::placeholders;

use super::{Store, internal};
use crate::model::ConversationState;

impl Store {
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
}
