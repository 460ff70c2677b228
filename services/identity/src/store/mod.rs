//! The identity repository: one set of portable queries over PostgreSQL or SQLite
//! (see `palaver_kit::db`). Methods speak the domain's words; rows come back as the
//! plain structs below, and the domain decides what they mean.

use palaver_kit::db::{Database, Migrations, is_unique_violation, placeholders};
use palaver_kit::{Error, ErrorCode};
use sqlx::any::AnyRow;
use sqlx::{Any, FromRow, Transaction};

/// The embedded migrations (the same portable SQL for both backends).
pub fn migrations() -> Migrations {
    Migrations {
        postgres: sqlx::migrate!("./migrations"),
        sqlite: sqlx::migrate!("./migrations"),
    }
}

/// Turns a database error into an API error: unique violations are conflicts, the rest
/// is logged with its cause and reported as internal.
fn db_error(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |error| {
        if is_unique_violation(&error) {
            Error::new(ErrorCode::Conflict, format!("{what} already exists"))
        } else {
            Error::internal(&error)
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct AppRow {
    pub app_id: String,
    pub name: String,
    pub origins: String,
    pub privacy_url: String,
    pub logo_url: String,
    pub return_urls: String,
    pub retention_days: i64,
    pub limits: String,
    pub webhook_url: String,
    pub webhook_events: String,
    pub webhook_secret: String,
    pub api_secret_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct IdentityKeyRow {
    pub key_id: String,
    pub secret: String,
    pub generation: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub member_id: String,
    pub app_id: String,
    pub external_id: String,
    pub display_name: String,
    pub email: String,
    pub endpoint: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

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

#[derive(Debug, Clone, FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub seed: String,
    pub public_key: String,
    pub generation: i64,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

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

const APP_COLUMNS: &str = "app_id, name, origins, privacy_url, logo_url, return_urls, retention_days, limits, webhook_url, webhook_events, webhook_secret, api_secret_hash, created_at, updated_at";
const MEMBER_COLUMNS: &str =
    "member_id, app_id, external_id, display_name, email, endpoint, created_at, updated_at";
const GRANT_COLUMNS: &str =
    "grant_id, app_id, member_id, scope, expires_at, created_at, revoked_at";
const PAT_COLUMNS: &str = "id, app_id, member_id, name, created_at, last_used_at, revoked_at";

/// The identity repository.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>, Error> {
        self.db
            .pool()
            .begin()
            .await
            .map_err(|e| Error::internal(&e))
    }

    // ---- apps ----

    #[tracing::instrument(skip_all, fields(app_id = %app.app_id))]
    pub async fn insert_app(&self, app: &AppRow, key: &IdentityKeyRow) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        sqlx::query(&format!("INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"))
            .bind(&app.app_id)
            .bind(&app.name)
            .bind(&app.origins)
            .bind(&app.privacy_url)
            .bind(&app.logo_url)
            .bind(&app.return_urls)
            .bind(app.retention_days)
            .bind(&app.limits)
            .bind(&app.webhook_url)
            .bind(&app.webhook_events)
            .bind(&app.webhook_secret)
            .bind(&app.api_secret_hash)
            .bind(app.created_at)
            .bind(app.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error("app"))?;
        insert_identity_key(&mut tx, &app.app_id, key, app.created_at).await?;
        tx.commit().await.map_err(|e| Error::internal(&e))
    }

    pub async fn app(&self, app_id: &str) -> Result<Option<AppRow>, Error> {
        sqlx::query_as::<_, AppRow>(&format!("SELECT {APP_COLUMNS} FROM apps WHERE app_id = $1"))
            .bind(app_id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))
    }

    /// Saves every setting of an app (not its secrets).
    pub async fn save_app_settings(&self, app: &AppRow) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE apps SET name = $2, origins = $3, privacy_url = $4, logo_url = $5, return_urls = $6, retention_days = $7, limits = $8, updated_at = $9 WHERE app_id = $1",
        )
        .bind(&app.app_id)
        .bind(&app.name)
        .bind(&app.origins)
        .bind(&app.privacy_url)
        .bind(&app.logo_url)
        .bind(&app.return_urls)
        .bind(app.retention_days)
        .bind(&app.limits)
        .bind(app.updated_at)
        .execute(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_app(&self, app_id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM apps WHERE app_id = $1")
            .bind(app_id)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_api_secret_hash(
        &self,
        app_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let done =
            sqlx::query("UPDATE apps SET api_secret_hash = $2, updated_at = $3 WHERE app_id = $1")
                .bind(app_id)
                .bind(hash)
                .bind(now)
                .execute(self.db.pool())
                .await
                .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_webhook(
        &self,
        app_id: &str,
        url: &str,
        events: &str,
        secret: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let done = sqlx::query("UPDATE apps SET webhook_url = $2, webhook_events = $3, webhook_secret = $4, updated_at = $5 WHERE app_id = $1")
            .bind(app_id)
            .bind(url)
            .bind(events)
            .bind(secret)
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    /// The identity keys currently accepted, newest first.
    pub async fn active_identity_keys(&self, app_id: &str) -> Result<Vec<IdentityKeyRow>, Error> {
        sqlx::query_as::<_, IdentityKeyRow>(
            "SELECT key_id, secret, generation FROM identity_keys WHERE app_id = $1 AND retired_at IS NULL ORDER BY generation DESC",
        )
        .bind(app_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    /// Adds a new identity key; keeps the one before it, retires older ones.
    pub async fn rotate_identity_key(
        &self,
        app_id: &str,
        key: &IdentityKeyRow,
        now: i64,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        insert_identity_key(&mut tx, app_id, key, now).await?;
        sqlx::query("UPDATE identity_keys SET retired_at = $3 WHERE app_id = $1 AND retired_at IS NULL AND generation < $2 - 1")
            .bind(app_id)
            .bind(key.generation)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::internal(&e))?;
        tx.commit().await.map_err(|e| Error::internal(&e))
    }

    // ---- members ----

    pub async fn insert_member(&self, member: &MemberRow) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO members ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&member.member_id)
        .bind(&member.app_id)
        .bind(&member.external_id)
        .bind(&member.display_name)
        .bind(&member.email)
        .bind(&member.endpoint)
        .bind(member.created_at)
        .bind(member.updated_at)
        .execute(self.db.pool())
        .await
        .map_err(db_error("a member with this external_id"))?;
        Ok(())
    }

    pub async fn member_by_external_id(
        &self,
        app_id: &str,
        external_id: &str,
    ) -> Result<Option<MemberRow>, Error> {
        sqlx::query_as::<_, MemberRow>(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE app_id = $1 AND external_id = $2"
        ))
        .bind(app_id)
        .bind(external_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn member_by_id(&self, member_id: &str) -> Result<Option<MemberRow>, Error> {
        sqlx::query_as::<_, MemberRow>(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE member_id = $1"
        ))
        .bind(member_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn members_by_endpoints(
        &self,
        endpoints: &[String],
    ) -> Result<Vec<MemberRow>, Error> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE endpoint IN ({})",
            placeholders(1, endpoints.len())
        );
        let mut query = sqlx::query_as::<_, MemberRow>(&sql);
        for endpoint in endpoints {
            query = query.bind(endpoint);
        }
        query
            .fetch_all(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))
    }

    pub async fn update_member(&self, member: &MemberRow) -> Result<bool, Error> {
        let done = sqlx::query("UPDATE members SET display_name = $2, email = $3, updated_at = $4 WHERE member_id = $1")
            .bind(&member.member_id)
            .bind(&member.display_name)
            .bind(&member.email)
            .bind(member.updated_at)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the member and, through the schema's cascades, their grants, tokens,
    /// consent requests, login links and personal access tokens.
    pub async fn delete_member(&self, member_id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM members WHERE member_id = $1")
            .bind(member_id)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    // ---- consent ----

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

    // ---- grants ----

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

    // ---- visitors ----

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

    // ---- operator sign-in ----

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

    // ---- signing keys ----

    /// Keys not retired, or retired after `retired_after`: those whose tokens may still
    /// be alive. Newest first.
    pub async fn signing_keys(&self, retired_after: i64) -> Result<Vec<SigningKeyRow>, Error> {
        sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, seed, public_key, generation, created_at, retired_at FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY generation DESC",
        )
        .bind(retired_after)
        .fetch_all(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    /// Adds a signing key and retires the ones before it. A conflict means another
    /// replica rotated at the same moment.
    pub async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO signing_keys (kid, seed, public_key, generation, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&key.kid)
            .bind(&key.seed)
            .bind(&key.public_key)
            .bind(key.generation)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error("signing key generation"))?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE generation < $1 AND retired_at IS NULL",
        )
        .bind(key.generation)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::internal(&e))?;
        tx.commit().await.map_err(|e| Error::internal(&e))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .fetch_one(self.db.pool())
            .await
            .map(|_: AnyRow| ())
    }
}

async fn insert_identity_key(
    tx: &mut Transaction<'static, Any>,
    app_id: &str,
    key: &IdentityKeyRow,
    now: i64,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO identity_keys (app_id, key_id, secret, generation, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(app_id)
        .bind(&key.key_id)
        .bind(&key.secret)
        .bind(key.generation)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error("identity key generation"))?;
    Ok(())
}

async fn insert_refresh_token(
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
