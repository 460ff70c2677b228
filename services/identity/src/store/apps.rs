//! Apps: their settings, their API secret and webhook, and the identity keys their CMS
//! signs visitors with.

use palaver_kit::Error;
use sqlx::{Any, FromRow, Transaction};

use super::{Store, db_error};

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

const APP_COLUMNS: &str = "app_id, name, origins, privacy_url, logo_url, return_urls, retention_days, limits, webhook_url, webhook_events, webhook_secret, api_secret_hash, created_at, updated_at";

impl Store {
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
