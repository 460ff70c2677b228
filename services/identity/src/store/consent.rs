//! Consent requests: asking a member, recording their decision, and redeeming the
//! authorization code for a grant.

use palaver_kit::Error;
use sqlx::FromRow;

use super::grants::insert_refresh_token;
use super::{Store, db_error};

#[derive(Debug, Clone, FromRow)]
pub struct ConsentRow {
    pub request_hash: String,
    pub app_id: String,
    pub member_id: String,
    pub return_url: String,
    pub state: String,
    pub code_challenge: String,
    pub csrf_token: String,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    pub code_expires_at: Option<i64>,
    pub code_used_at: Option<i64>,
}

/// A grant to issue: the hashes of its tokens and when it expires.
pub struct NewGrant<'a> {
    pub grant_id: &'a str,
    pub app_id: &'a str,
    pub member_id: &'a str,
    pub request_hash: &'a str,
    pub scope: &'a str,
    pub access_token_hash: &'a str,
    pub refresh_token_hash: &'a str,
    pub expires_at: i64,
    pub now: i64,
    /// The chat endpoint to give the member if they have none yet.
    pub endpoint_if_new: &'a str,
}

impl Store {
    pub async fn insert_consent_request(&self, row: &ConsentRow) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO consent_requests (request_hash, app_id, member_id, return_url, state, code_challenge, csrf_token, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.request_hash)
        .bind(&row.app_id)
        .bind(&row.member_id)
        .bind(&row.return_url)
        .bind(&row.state)
        .bind(&row.code_challenge)
        .bind(&row.csrf_token)
        .bind(row.expires_at)
        .execute(self.db.pool())
        .await
        .map_err(db_error("consent request"))?;
        Ok(())
    }

    const CONSENT_COLUMNS: &str = "request_hash, app_id, member_id, return_url, state, code_challenge, csrf_token, expires_at, decided_at, code_expires_at, code_used_at";

    pub async fn consent_request(&self, request_hash: &str) -> Result<Option<ConsentRow>, Error> {
        sqlx::query_as::<_, ConsentRow>(&format!(
            "SELECT {} FROM consent_requests WHERE request_hash = $1",
            Self::CONSENT_COLUMNS
        ))
        .bind(request_hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn consent_request_by_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<ConsentRow>, Error> {
        sqlx::query_as::<_, ConsentRow>(&format!(
            "SELECT {} FROM consent_requests WHERE code_hash = $1",
            Self::CONSENT_COLUMNS
        ))
        .bind(code_hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    /// Records the member's decision once; false when it was already decided.
    pub async fn decide_consent(
        &self,
        request_hash: &str,
        now: i64,
        code: Option<(&str, i64)>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE consent_requests SET decided_at = $2, code_hash = $3, code_expires_at = $4 WHERE request_hash = $1 AND decided_at IS NULL",
        )
        .bind(request_hash)
        .bind(now)
        .bind(code.map(|(hash, _)| hash.to_owned()))
        .bind(code.map(|(_, expires_at)| expires_at))
        .execute(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends an authorization code and issues its grant in one transaction; false
    /// (and nothing issued) when the code was spent meanwhile.
    pub async fn redeem_code(&self, code_hash: &str, grant: &NewGrant<'_>) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let spent = sqlx::query("UPDATE consent_requests SET code_used_at = $2 WHERE code_hash = $1 AND code_used_at IS NULL")
            .bind(code_hash)
            .bind(grant.now)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::internal(&e))?;
        if spent.rows_affected() != 1 {
            return Ok(false);
        }
        // A new grant supersedes the member's earlier ones.
        sqlx::query(
            "UPDATE grants SET revoked_at = $2 WHERE member_id = $1 AND revoked_at IS NULL",
        )
        .bind(grant.member_id)
        .bind(grant.now)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::internal(&e))?;
        sqlx::query("UPDATE members SET endpoint = $2 WHERE member_id = $1 AND endpoint IS NULL")
            .bind(grant.member_id)
            .bind(grant.endpoint_if_new)
            .execute(&mut *tx)
            .await
            .map_err(db_error("chat endpoint"))?;
        sqlx::query(
            "INSERT INTO grants (grant_id, app_id, member_id, request_hash, scope, access_token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(grant.grant_id)
        .bind(grant.app_id)
        .bind(grant.member_id)
        .bind(grant.request_hash)
        .bind(grant.scope)
        .bind(grant.access_token_hash)
        .bind(grant.expires_at)
        .bind(grant.now)
        .execute(&mut *tx)
        .await
        .map_err(db_error("grant"))?;
        insert_refresh_token(&mut tx, grant.refresh_token_hash, grant.grant_id, grant.now).await?;
        tx.commit().await.map_err(|e| Error::internal(&e))?;
        Ok(true)
    }

    /// Revokes the grant issued from a consent request (an authorization code was
    /// presented a second time).
    pub async fn revoke_grants_of_request(
        &self,
        request_hash: &str,
        now: i64,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE grants SET revoked_at = $2 WHERE request_hash = $1 AND revoked_at IS NULL",
        )
        .bind(request_hash)
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))?;
        Ok(())
    }
}
