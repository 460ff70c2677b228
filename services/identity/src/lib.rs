//! Palaver's identity service: apps, members, the consent flow and permission tokens,
//! chat endpoints, visitor sessions, operator sign-in and the keys that sign access
//! tokens.
//!
//! [`domain`] holds the logic, [`store`] the SQL repository (PostgreSQL or SQLite),
//! [`grpc`] the tonic server. [`IdentityService::build`] binds the gRPC and admin
//! listeners (port 0 works) and [`IdentityService::run_until_stopped`] serves until the
//! shutdown is triggered; `main.rs` (through `palaver_kit::service`) and the tests start
//! it the same way. `palaver-identity migrate` reads `PALAVER_DATABASE_URL` only.
//!
//! Configuration (environment variables):
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `PALAVER_LISTEN` | gRPC address | `0.0.0.0:50051` |
//! | `PALAVER_ADMIN_LISTEN` | `/healthz`, `/readyz`, `/metrics` | `0.0.0.0:9090` |
//! | `PALAVER_DATABASE_URL` | `postgres://…` or `sqlite://…` | required |
//! | `PALAVER_DRAIN_SECONDS` | how long a SIGTERM waits for work in flight | `20` |
//! | `PALAVER_PERMISSION_TOKEN_DAYS` | permission token lifetime | `365` |
//! | `PALAVER_VISITOR_TOKEN_SECONDS` | visitor access token lifetime | `86400` |
//! | `PALAVER_OPERATOR_TOKEN_SECONDS` | operator access token lifetime | `43200` |
//! | `PALAVER_SIGNING_KEY_DAYS` | rotate the access-token signing key after | `30` |

pub mod domain;
pub mod grpc;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use palaver_kit::admin::{DatabaseCheck, ReadinessCheck};
use palaver_kit::config::{CommonConfig, ConfigError, Env};
use palaver_kit::db::{Database, Migrations};
use palaver_kit::service::{Listeners, Service};
use palaver_kit::shutdown::Shutdown;

use crate::domain::{Clock, Identity, Policy};
use crate::store::Store;

/// The gRPC service name, as health checks know it.
pub const SERVICE_NAME: &str = "palaver.identity.v1.Identity";

/// The identity service's configuration.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub common: CommonConfig,
    pub database_url: String,
    pub policy: Policy,
}

impl IdentityConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Policy::default();
        let days = |var, default: i64| env.parse_or::<i64>(var, default).map(|d| d * 86_400);
        Ok(IdentityConfig {
            common: CommonConfig::from_env(env, 50051)?,
            database_url: env.required_url(
                "PALAVER_DATABASE_URL",
                &["postgres", "postgresql", "sqlite"],
            )?,
            policy: Policy {
                permission_token_ttl: days("PALAVER_PERMISSION_TOKEN_DAYS", 365)?,
                visitor_token_ttl: env
                    .parse_or("PALAVER_VISITOR_TOKEN_SECONDS", defaults.visitor_token_ttl)?,
                operator_token_ttl: env.parse_or(
                    "PALAVER_OPERATOR_TOKEN_SECONDS",
                    defaults.operator_token_ttl,
                )?,
                signing_key_max_age: days("PALAVER_SIGNING_KEY_DAYS", 30)?,
                ..defaults
            },
        })
    }

    /// Loopback on ports the system picks, with the default policy: for tests and
    /// `palaver up`.
    pub fn ephemeral(database_url: &str) -> Self {
        IdentityConfig {
            common: CommonConfig::ephemeral(),
            database_url: database_url.to_owned(),
            policy: Policy::default(),
        }
    }
}

/// Runs the migrations of the database at `database_url`.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    palaver_kit::service::migrate(database_url, &store::migrations())
        .await
        .context("the identity database")
}

/// A bound, ready-to-run identity service.
pub struct IdentityService {
    identity: Arc<Identity>,
    listeners: Listeners,
}

impl IdentityService {
    pub async fn build(config: IdentityConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::default()).await
    }

    /// Builds with a given clock (tests shift it to expire tokens).
    pub async fn build_with_clock(config: IdentityConfig, clock: Clock) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database_url)
            .await
            .context("connecting to the identity database")?;
        let identity = Arc::new(Identity::new(Store::new(db.clone()), config.policy, clock));
        identity
            .ensure_signing_key()
            .await
            .context("preparing the signing key")?;
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(DatabaseCheck(db.pool().clone()))];
        let listeners = Listeners::bind(&config.common, checks).await?;
        Ok(IdentityService {
            identity,
            listeners,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.listeners.admin_addr()
    }

    /// The domain, for running it in process (`palaver up`).
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// Serves until `shutdown` triggers, then drains for at most the drain timeout.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let routes = tonic::service::Routes::new(grpc::IdentityServer::new(self.identity.clone()));
        let rotation = tokio::spawn(rotate_keys_periodically(
            self.identity.clone(),
            shutdown.clone(),
        ));
        self.listeners
            .run_grpc(
                "identity service",
                shutdown,
                routes,
                &[SERVICE_NAME],
                async {
                    let _ = rotation.await;
                },
            )
            .await
    }
}

impl Service for IdentityService {
    const NAME: &'static str = "palaver-identity";
    type Config = IdentityConfig;

    fn config(env: &Env) -> Result<IdentityConfig, ConfigError> {
        IdentityConfig::from_env(env)
    }

    async fn start(config: IdentityConfig) -> anyhow::Result<Self> {
        IdentityService::build(config).await
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        IdentityService::run_until_stopped(self, shutdown).await
    }

    fn migrations() -> Option<Migrations> {
        Some(store::migrations())
    }
}

/// Rotates the signing key when it reaches the policy's age.
async fn rotate_keys_periodically(identity: Arc<Identity>, shutdown: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.tick().await;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => {
                if let Err(error) = identity.ensure_signing_key().await {
                    tracing::error!(%error, "signing key rotation failed");
                }
            }
        }
    }
}
