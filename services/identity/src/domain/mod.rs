//! The identity service's logic, free of gRPC types.
//!
//! [`Identity`] holds the repository, the signing keys and the [`Policy`]; its methods
//! are grouped by subject: [`apps`], [`members`], [`consent`] (the OAuth grant and
//! permission tokens), [`visitors`], [`operators`] and [`keys`] (access tokens).

pub mod apps;
pub mod consent;
pub mod keys;
pub mod members;
pub mod operators;
pub mod secrets;
pub mod validate;
pub mod visitors;

pub use palaver_kit::clock::Clock;

use crate::store::Store;

/// Durations and limits of the identity service, in seconds.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long a permission token lives (default 365 days).
    pub permission_token_ttl: i64,
    /// A permission token counts as expired this much early (default 300 s).
    pub permission_early_expiry: i64,
    /// Consent requests and authorization codes (default 10 minutes).
    pub consent_ttl: i64,
    /// One-time login links (default 10 minutes).
    pub login_link_ttl: i64,
    /// Visitor access tokens (default 24 hours).
    pub visitor_token_ttl: i64,
    /// Operator access tokens (default 12 hours).
    pub operator_token_ttl: i64,
    /// Rotate the signing key once it is this old (default 30 days).
    pub signing_key_max_age: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            permission_token_ttl: 365 * 86_400,
            permission_early_expiry: 300,
            consent_ttl: 600,
            login_link_ttl: 600,
            visitor_token_ttl: 86_400,
            operator_token_ttl: 12 * 3_600,
            signing_key_max_age: 30 * 86_400,
        }
    }
}

/// The identity service's logic.
pub struct Identity {
    pub(crate) store: Store,
    pub(crate) policy: Policy,
    pub(crate) clock: Clock,
    pub(crate) signing: keys::SigningKeys,
    pub(crate) api_secrets: apps::ApiSecretCache,
}

impl Identity {
    pub fn new(store: Store, policy: Policy, clock: Clock) -> Self {
        Identity {
            store,
            policy,
            clock,
            signing: keys::SigningKeys::default(),
            api_secrets: apps::ApiSecretCache::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }
}
