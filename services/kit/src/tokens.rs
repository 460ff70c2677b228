//! Access tokens: the claims every service reads, and their verification.
//!
//! The identity service signs access tokens (visitor and operator) as Ed25519 JWTs and
//! publishes its public keys as a JWKS. Every other service verifies tokens locally with
//! a [`TokenVerifier`], which caches the keys, fetches them again when a token names a
//! key it has not seen (a rotation), and refreshes them periodically so retired keys go.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use palaver_proto::identity::v1::{GetJwksRequest, Jwk, identity_client::IdentityClient};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::error::{Error, ErrorCode};

/// The `iss` and `aud` of every Palaver access token.
pub const ISSUER: &str = "palaver";
pub const AUDIENCE: &str = "palaver";
/// How long past its `exp` a token is still accepted (clock skew between services).
pub const LEEWAY_SECONDS: u64 = 30;

/// Whom an access token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A web visitor (anonymous or verified by the CMS).
    Visitor,
    /// A member signed in to an operator client (console or CLI).
    Operator,
}

/// The claims of a Palaver access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The visitor id or the member id.
    pub sub: String,
    /// The app the token belongs to.
    pub app: String,
    pub kind: TokenKind,
    /// Display name (a visitor's chosen or CMS-given name, a member's name).
    pub name: String,
    /// A visitor the CMS vouched for.
    #[serde(default)]
    pub verified: bool,
    /// The CMS's user id: of a verified visitor, or of the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
    /// A verified visitor who is also a member of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Where a verifier gets the public keys.
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    async fn fetch_jwks(&self) -> Result<Vec<Jwk>, Error>;
}

/// The identity service over gRPC.
#[async_trait]
impl<T> JwksSource for IdentityClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    async fn fetch_jwks(&self) -> Result<Vec<Jwk>, Error> {
        let mut client = self.clone();
        let jwks = client
            .get_jwks(GetJwksRequest {})
            .await
            .map_err(|s| Error::from_status(&s))?;
        Ok(jwks.into_inner().keys)
    }
}

struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// Verifies access tokens against the identity JWKS, caching keys.
#[derive(Clone)]
pub struct TokenVerifier {
    source: Arc<dyn JwksSource>,
    keys: Arc<RwLock<Keys>>,
    refresh_every: Duration,
    min_refetch: Duration,
}

impl TokenVerifier {
    pub fn new(source: Arc<dyn JwksSource>) -> Self {
        TokenVerifier {
            source,
            keys: Arc::new(RwLock::new(Keys {
                by_kid: HashMap::new(),
                fetched_at: None,
            })),
            refresh_every: Duration::from_secs(300),
            min_refetch: Duration::from_secs(5),
        }
    }

    /// How often keys are fetched again even when every token names a known key, and
    /// how soon after a fetch an unknown key may trigger another.
    pub fn with_intervals(mut self, refresh_every: Duration, min_refetch: Duration) -> Self {
        self.refresh_every = refresh_every;
        self.min_refetch = min_refetch;
        self
    }

    /// Checks signature, issuer, audience and expiry; returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        let unauthenticated = |why: &str| {
            Error::new(
                ErrorCode::Unauthenticated,
                format!("invalid access token: {why}"),
            )
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(unauthenticated("unexpected algorithm"));
        }
        let kid = header.kid.ok_or_else(|| unauthenticated("no key id"))?;
        let key = self
            .key(&kid)
            .await?
            .ok_or_else(|| unauthenticated("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => Err(
                Error::new(ErrorCode::TokenExpired, "the access token has expired"),
            ),
            Err(e) => Err(unauthenticated(&e.to_string())),
        }
    }

    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, Error> {
        {
            let keys = self.keys.read().await;
            let fresh = keys
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.refresh_every);
            if fresh && let Some(key) = keys.by_kid.get(kid) {
                return Ok(Some(key.clone()));
            }
            let may_refetch = keys
                .fetched_at
                .is_none_or(|at| at.elapsed() >= self.min_refetch);
            if !may_refetch {
                return Ok(keys.by_kid.get(kid).cloned());
            }
        }
        let mut keys = self.keys.write().await;
        // Another caller may have fetched while this one waited for the lock.
        let fetched_meanwhile = keys
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.min_refetch);
        if !fetched_meanwhile {
            match self.source.fetch_jwks().await {
                Ok(jwks) => {
                    keys.by_kid = decoding_keys(&jwks);
                    keys.fetched_at = Some(Instant::now());
                }
                // Keys already known keep working while identity is unreachable.
                Err(error) if keys.by_kid.contains_key(kid) => {
                    tracing::warn!(%error, "cannot refresh signing keys; using cached ones");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(keys.by_kid.get(kid).cloned())
    }
}

fn decoding_keys(jwks: &[Jwk]) -> HashMap<String, DecodingKey> {
    jwks.iter()
        .filter(|jwk| jwk.kty == "OKP" && jwk.crv == "Ed25519")
        .filter_map(|jwk| match DecodingKey::from_ed_components(&jwk.x) {
            Ok(key) => Some((jwk.kid.clone(), key)),
            Err(error) => {
                tracing::warn!(kid = %jwk.kid, %error, "ignoring a malformed signing key");
                None
            }
        })
        .collect()
}
