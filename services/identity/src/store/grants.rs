//! Grants (permission tokens): the member's newest grant, looking one up by its access
//! token, renewing it with a refresh token, and revoking.

use palaver_kit::Error;
use palaver_kit::db::placeholders;
use sqlx::{Any, FromRow, Transaction};

use super::{Store, db_error};

#[derive(Debug, Clone, FromRow)]
pub struct GrantRow {
    pub grant_id: String,
    pub app_id: String,
    pub member_id: String,
    pub scope: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct RefreshRow {
    pub grant_id: String,
    pub used_at: Option<i64>,
}

const GRANT_COLUMNS: &str =
    "grant_id, app_id, member_id, scope, expires_at, created_at, revoked_at";

impl Store {
    /// The member's newest grant, which decides their permission status.
    pub async fn latest_grant(&self, member_id: &str) -> Result<Option<GrantRow>, Error> {
        Ok(self.latest_grants(&[member_id.to_owned()]).await?.pop())
    }

    /// Each member's newest grant (none for a member without any), in one query.
    pub async fn latest_grants(&self, member_ids: &[String]) -> Result<Vec<GrantRow>, Error> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Newest first per member; a superseded grant made in the same second as its
        // successor sorts after it.
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE member_id IN ({}) ORDER BY member_id, created_at DESC, revoked_at IS NULL DESC",
            placeholders(1, member_ids.len())
        );
        let mut query = sqlx::query_as::<_, GrantRow>(&sql);
        for member_id in member_ids {
            query = query.bind(member_id);
        }
        let mut grants = query
            .fetch_all(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        grants.dedup_by(|later, first| later.member_id == first.member_id);
        Ok(grants)
    }

    pub async fn grant_by_access_token(
        &self,
        access_token_hash: &str,
    ) -> Result<Option<GrantRow>, Error> {
        sqlx::query_as::<_, GrantRow>(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE access_token_hash = $1"
        ))
        .bind(access_token_hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn grant(&self, grant_id: &str) -> Result<Option<GrantRow>, Error> {
        sqlx::query_as::<_, GrantRow>(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE grant_id = $1"
        ))
        .bind(grant_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRow>, Error> {
        sqlx::query_as::<_, RefreshRow>(
            "SELECT grant_id, used_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    /// Spends a refresh token and gives its grant new tokens and a new expiry, in one
    /// transaction; false (nothing changed) when the token was spent meanwhile or the
    /// grant was revoked.
    pub async fn rotate_grant(
        &self,
        grant_id: &str,
        old_refresh_hash: &str,
        new_access_hash: &str,
        new_refresh_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(old_refresh_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::internal(&e))?;
        let renewed = sqlx::query("UPDATE grants SET access_token_hash = $2, expires_at = $3 WHERE grant_id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .bind(new_access_hash)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error("grant"))?;
        if spent.rows_affected() != 1 || renewed.rows_affected() != 1 {
            return Ok(false);
        }
        insert_refresh_token(&mut tx, new_refresh_hash, grant_id, now).await?;
        tx.commit().await.map_err(|e| Error::internal(&e))?;
        Ok(true)
    }

    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> Result<(), Error> {
        sqlx::query("UPDATE grants SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(())
    }

    pub async fn revoke_member_grants(&self, member_id: &str, now: i64) -> Result<u64, Error> {
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = $2 WHERE member_id = $1 AND revoked_at IS NULL",
        )
        .bind(member_id)
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected())
    }
}

pub(super) async fn insert_refresh_token(
    tx: &mut Transaction<'static, Any>,
    token_hash: &str,
    grant_id: &str,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(grant_id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_error("refresh token"))?;
    Ok(())
}
