//! The Ed25519 keys that sign access tokens, and the JWKS that publishes them.
//!
//! The newest key signs; older keys stay published until every token they signed has
//! expired, so a rotation logs nobody out. Keys live in the database, shared by every
//! replica; each replica reloads them every [`RELOAD_EVERY`] seconds, so a rotation made
//! by one replica reaches the others without a restart.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palaver_kit::random::new_id;
use palaver_kit::tokens::Claims;
use palaver_kit::{Error, ErrorCode};
use rand::Rng;
use tokio::sync::RwLock;

use super::Identity;
use crate::store::SigningKeyRow;

/// How often a replica reloads the keys, in seconds.
pub const RELOAD_EVERY: i64 = 30;

/// A published public key (RFC 8037 OKP JWK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// The base64url public key.
    pub x: String,
}

struct Loaded {
    signer: Option<(String, EncodingKey)>,
    published: Vec<PublicKey>,
    loaded_at: i64,
}

/// This replica's copy of the keys.
#[derive(Default)]
pub struct SigningKeys(RwLock<Option<Loaded>>);

fn encoding_key(row: &SigningKeyRow) -> Result<EncodingKey, Error> {
    let seed: [u8; 32] = STANDARD
        .decode(&row.seed)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            Error::internal(&std::io::Error::other(format!(
                "signing key {} is malformed",
                row.kid
            )))
        })?;
    let der = SigningKey::from_bytes(&seed)
        .to_pkcs8_der()
        .map_err(|e| Error::internal(&std::io::Error::other(e.to_string())))?;
    Ok(EncodingKey::from_ed_der(der.as_bytes()))
}

impl Identity {
    /// Keys whose tokens may still be alive were retired less than this long ago.
    fn longest_token_ttl(&self) -> i64 {
        self.policy
            .visitor_token_ttl
            .max(self.policy.operator_token_ttl)
            + 300
    }

    async fn loaded<T>(&self, read: impl Fn(&Loaded) -> T) -> Result<T, Error> {
        let now = self.now();
        {
            let guard = self.signing.0.read().await;
            if let Some(loaded) = guard
                .as_ref()
                .filter(|l| now - l.loaded_at < RELOAD_EVERY && l.signer.is_some())
            {
                return Ok(read(loaded));
            }
        }
        let mut guard = self.signing.0.write().await;
        let rows = self
            .store
            .signing_keys(now - self.longest_token_ttl())
            .await?;
        let signer = match rows.iter().find(|r| r.retired_at.is_none()) {
            Some(row) => Some((row.kid.clone(), encoding_key(row)?)),
            None => None,
        };
        let published = rows
            .iter()
            .map(|r| PublicKey {
                kid: r.kid.clone(),
                x: r.public_key.clone(),
            })
            .collect();
        let loaded = guard.insert(Loaded {
            signer,
            published,
            loaded_at: now,
        });
        Ok(read(loaded))
    }

    /// Drops this replica's copy so the next use reloads from the database.
    async fn forget_keys(&self) {
        *self.signing.0.write().await = None;
    }

    /// Makes sure a signing key exists and is younger than the policy's maximum age,
    /// rotating otherwise. Run at start and periodically.
    pub async fn ensure_signing_key(&self) -> Result<(), Error> {
        let now = self.now();
        let rows = self
            .store
            .signing_keys(now - self.longest_token_ttl())
            .await?;
        let current = rows.iter().find(|r| r.retired_at.is_none());
        if current.is_none_or(|c| now - c.created_at >= self.policy.signing_key_max_age) {
            match self.rotate_signing_key().await {
                // Another replica rotated at the same moment: its key serves as well.
                Err(e) if e.code == ErrorCode::Conflict => self.forget_keys().await,
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    /// Starts signing with a new key; the previous keys stay published.
    #[tracing::instrument(skip_all)]
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        let now = self.now();
        let rows = self.store.signing_keys(i64::MIN).await?;
        let generation = rows.first().map_or(1, |r| r.generation + 1);
        let seed: [u8; 32] = rand::rng().random();
        let public = SigningKey::from_bytes(&seed).verifying_key();
        let row = SigningKeyRow {
            kid: new_id("sk_", 12),
            seed: STANDARD.encode(seed),
            public_key: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            generation,
            created_at: now,
            retired_at: None,
        };
        self.store.insert_signing_key(&row).await?;
        self.forget_keys().await;
        tracing::info!(kid = %row.kid, generation, "signing key rotated");
        Ok(row.kid)
    }

    /// The public keys of every token that may still be alive.
    pub async fn jwks(&self) -> Result<Vec<PublicKey>, Error> {
        self.loaded(|l| l.published.clone()).await
    }

    /// Signs an access token with the current key.
    pub(crate) async fn sign_access_token(&self, claims: &Claims) -> Result<String, Error> {
        let (kid, key) = self
            .loaded(|l| l.signer.clone())
            .await?
            .ok_or_else(|| Error::new(ErrorCode::Unavailable, "no signing key yet"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| Error::internal(&e))
    }
}
