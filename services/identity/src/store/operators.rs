//! Operator sign-in: login links and personal access tokens.

use palaver_kit::Error;
use sqlx::FromRow;

use super::{Store, db_error};

#[derive(Debug, Clone, FromRow)]
pub struct LoginLinkRow {
    pub app_id: String,
    pub member_id: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct PatRow {
    pub id: String,
    pub app_id: String,
    pub member_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const PAT_COLUMNS: &str = "id, app_id, member_id, name, created_at, last_used_at, revoked_at";

impl Store {
    pub async fn insert_login_link(
        &self,
        token_hash: &str,
        app_id: &str,
        member_id: &str,
        expires_at: i64,
    ) -> Result<(), Error> {
        sqlx::query("INSERT INTO login_links (token_hash, app_id, member_id, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(app_id)
            .bind(member_id)
            .bind(expires_at)
            .execute(self.db.pool())
            .await
            .map_err(db_error("login link"))?;
        Ok(())
    }

    pub async fn login_link(&self, token_hash: &str) -> Result<Option<LoginLinkRow>, Error> {
        sqlx::query_as::<_, LoginLinkRow>(
            "SELECT app_id, member_id, expires_at, used_at FROM login_links WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    /// Spends a login link; false when it was spent meanwhile.
    pub async fn use_login_link(&self, token_hash: &str, now: i64) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE login_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_pat(&self, pat: &PatRow, token_hash: &str) -> Result<(), Error> {
        sqlx::query(&format!("INSERT INTO personal_access_tokens ({PAT_COLUMNS}, token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(&pat.id)
            .bind(&pat.app_id)
            .bind(&pat.member_id)
            .bind(&pat.name)
            .bind(pat.created_at)
            .bind(pat.last_used_at)
            .bind(pat.revoked_at)
            .bind(token_hash)
            .execute(self.db.pool())
            .await
            .map_err(db_error("personal access token"))?;
        Ok(())
    }

    pub async fn pats(&self, member_id: &str) -> Result<Vec<PatRow>, Error> {
        sqlx::query_as::<_, PatRow>(&format!(
            "SELECT {PAT_COLUMNS} FROM personal_access_tokens WHERE member_id = $1 AND revoked_at IS NULL ORDER BY created_at, id"
        ))
        .bind(member_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn pat_by_token(&self, token_hash: &str) -> Result<Option<PatRow>, Error> {
        sqlx::query_as::<_, PatRow>(&format!(
            "SELECT {PAT_COLUMNS} FROM personal_access_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn touch_pat(&self, id: &str, now: i64) -> Result<(), Error> {
        sqlx::query("UPDATE personal_access_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(())
    }

    pub async fn revoke_pat(&self, member_id: &str, id: &str, now: i64) -> Result<bool, Error> {
        let done = sqlx::query("UPDATE personal_access_tokens SET revoked_at = $3 WHERE member_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(member_id)
            .bind(id)
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }
}
