//! Visitors and their sessions: verified visitors recorded once and renamed, anonymous
//! ones with their first session.

use palaver_kit::Error;

use super::{Store, db_error};

/// A visitor session to record.
pub struct NewVisitorSession<'a> {
    pub session_id: &'a str,
    pub visitor_id: &'a str,
    /// The name of an anonymous visitor, recorded with the session.
    pub anonymous_name: Option<&'a str>,
    pub app_id: &'a str,
    pub endpoint: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

impl Store {
    /// The visitor id of a verified visitor, created on first sight and renamed when
    /// the CMS gives a new screen name.
    pub async fn upsert_verified_visitor(
        &self,
        visitor_id: &str,
        app_id: &str,
        external_id: &str,
        name: &str,
        now: i64,
    ) -> Result<String, Error> {
        let row: (String,) = sqlx::query_as(
            "INSERT INTO visitors (visitor_id, app_id, external_id, display_name, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, external_id) DO UPDATE SET display_name = excluded.display_name RETURNING visitor_id",
        )
        .bind(visitor_id)
        .bind(app_id)
        .bind(external_id)
        .bind(name)
        .bind(now)
        .fetch_one(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))?;
        Ok(row.0)
    }

    /// Records the new session, and the visitor too when they are anonymous (a
    /// verified visitor was recorded by [`Store::upsert_verified_visitor`]).
    pub async fn insert_visitor_session(
        &self,
        session: &NewVisitorSession<'_>,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        if let Some(name) = session.anonymous_name {
            sqlx::query("INSERT INTO visitors (visitor_id, app_id, display_name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(session.visitor_id)
                .bind(session.app_id)
                .bind(name)
                .bind(session.now)
                .execute(&mut *tx)
                .await
                .map_err(db_error("visitor"))?;
        }
        sqlx::query("INSERT INTO visitor_sessions (session_id, visitor_id, app_id, endpoint, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(session.session_id)
            .bind(session.visitor_id)
            .bind(session.app_id)
            .bind(session.endpoint)
            .bind(session.now)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error("visitor session"))?;
        tx.commit().await.map_err(|e| Error::internal(&e))
    }
}
