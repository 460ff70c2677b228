//! The keys that sign permission tokens: those still in use, and adding a new one.

use palaver_kit::Error;
use sqlx::FromRow;

use super::{Store, db_error};

#[derive(Debug, Clone, FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub seed: String,
    pub public_key: String,
    pub generation: i64,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Store {
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
}
