//! Palaver's conversation service: conversations between a visitor and a member,
//! messages, offline messages, read state, history, transcripts, blocking, retention
//! and erasure. Durable: an accepted message is committed before it is acknowledged,
//! sending is idempotent on the client's message id, and every change reaches NATS
//! through a transactional outbox, so no event is lost when NATS or the process fails.
//!
//! Dependencies point one way: [`model`] holds the nouns; [`domain`] the rules over them
//! (validation, which events a change emits, transcripts); [`store`] the SQL repository
//! (PostgreSQL or SQLite) with its [group commit](store::group_commit), which writes each
//! change's events as [`proto`] encodes them; [`outbox`] the relay of those events and
//! the hand-off from the store; [`directory`] what is asked of identity; [`service`] the
//! service on top of them; [`grpc`] the tonic server over it.
//! [`ConversationService::build`] binds the gRPC and admin listeners (port 0 works) and
//! [`ConversationService::run_until_stopped`] serves until the shutdown is triggered;
//! `main.rs`, `palaver up` and the tests start it the same way, `palaver up` handing it
//! the in-process bus.
//!
//! Configuration (environment variables):
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `PALAVER_LISTEN` | gRPC address | `0.0.0.0:50053` |
//! | `PALAVER_ADMIN_LISTEN` | `/healthz`, `/readyz`, `/metrics` | `0.0.0.0:9090` |
//! | `PALAVER_DATABASE_URL` | `postgres://…` or `sqlite://…` | required |
//! | `PALAVER_NATS_URL` | `nats://…`, where events are published | required |
//! | `PALAVER_BUS_PREFIX` | the subject prefix on NATS, the same for every service of a deployment | `palaver` |
//! | `PALAVER_IDENTITY_URL` | `http://identity:50051`, balanced over every address | required |
//! | `PALAVER_DRAIN_SECONDS` | how long a SIGTERM waits for work in flight | `20` |
//! | `PALAVER_LIMIT_OPEN_CONVERSATIONS_PER_VISITOR` | open conversations a visitor may have, unless the app sets its own | `3` |
//! | `PALAVER_GROUP_COMMIT_WINDOW_MICROS` | how long a batch of sends gathers (at most 2000) | `2000` |
//! | `PALAVER_GROUP_COMMIT_MAX_BATCH` | the most sends in one commit | `32` |
//! | `PALAVER_RETENTION_INTERVAL_SECONDS` | how often old messages are deleted | `3600` |
//!
//! `palaver-conversation migrate` reads `PALAVER_DATABASE_URL` only. `/readyz` checks
//! the database only: while NATS is down the service still takes
//! messages, and their events wait in the outbox.

pub mod directory;
pub mod domain;
pub mod grpc;
pub mod model;
pub mod outbox;
pub mod proto;
pub mod service;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use palaver_kit::admin::{DatabaseCheck, ReadinessCheck};
use palaver_kit::bus::EventBus;
use palaver_kit::config::{CommonConfig, ConfigError, Env};
use palaver_kit::db::{Backend, Database, Migrations};
use palaver_kit::grpc::BalanceOptions;
use palaver_kit::service::{Listeners, Service};
use palaver_kit::shutdown::Shutdown;
use tokio::task::JoinHandle;

use crate::directory::Directory;
use crate::domain::{Clock, Policy};
use crate::outbox::Relay;
use crate::service::Conversations;
use crate::store::Store;
use crate::store::group_commit::{GroupCommit, GroupCommitConfig};

/// The gRPC service name, as health checks know it.
pub const SERVICE_NAME: &str = "palaver.conversation.v1.Conversations";

/// How long identity's answers about an app (retention, limits) are reused.
const APP_CACHE: Duration = Duration::from_secs(30);

/// How long one call to identity may take: less than the gateway's deadline on the call
/// that needs it, so a stalled identity is answered here.
const IDENTITY_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The conversation service's configuration.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    pub common: CommonConfig,
    pub database_url: String,
    /// Where `main` connects the bus; `None` when the caller hands [`ConversationService::build`]
    /// its bus (`palaver up`, tests).
    pub nats_url: Option<String>,
    /// The subject prefix on NATS (`PALAVER_BUS_PREFIX`).
    pub bus_prefix: String,
    pub identity_url: String,
    pub policy: Policy,
    pub group_commit: GroupCommitConfig,
    pub retention_interval: Duration,
}

impl ConversationConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let window_micros: u64 = env.parse_or("PALAVER_GROUP_COMMIT_WINDOW_MICROS", 2000)?;
        if window_micros > 2000 {
            return Err(ConfigError {
                var: "PALAVER_GROUP_COMMIT_WINDOW_MICROS".into(),
                message: "must be at most 2000 (2 ms)".into(),
            });
        }
        let max_batch: usize = env.parse_or(
            "PALAVER_GROUP_COMMIT_MAX_BATCH",
            GroupCommitConfig::default().max_batch,
        )?;
        if !(1..=1000).contains(&max_batch) {
            return Err(ConfigError {
                var: "PALAVER_GROUP_COMMIT_MAX_BATCH".into(),
                message: "must be between 1 and 1000".into(),
            });
        }
        let open: u32 = env.positive_or("PALAVER_LIMIT_OPEN_CONVERSATIONS_PER_VISITOR", 3)?;
        Ok(ConversationConfig {
            common: CommonConfig::from_env(env, 50053)?,
            database_url: env.required_url(
                "PALAVER_DATABASE_URL",
                &["postgres", "postgresql", "sqlite"],
            )?,
            nats_url: Some(env.required_url("PALAVER_NATS_URL", &["nats", "tls"])?),
            bus_prefix: palaver_kit::bus::prefix_from_env(env)?,
            identity_url: env.required_url("PALAVER_IDENTITY_URL", &["http"])?,
            policy: Policy {
                open_conversations_per_visitor: open,
            },
            group_commit: GroupCommitConfig {
                window: Duration::from_micros(window_micros),
                max_batch,
                ..GroupCommitConfig::default()
            },
            retention_interval: env.seconds_or("PALAVER_RETENTION_INTERVAL_SECONDS", 3600)?,
        })
    }

    /// Loopback on ports the system picks, with the defaults, talking to identity at
    /// `identity_url`: for tests and `palaver up`, which hand `build` their bus.
    pub fn ephemeral(database_url: &str, identity_url: &str) -> Self {
        ConversationConfig {
            common: CommonConfig::ephemeral(),
            database_url: database_url.to_owned(),
            nats_url: None,
            bus_prefix: palaver_kit::bus::DEFAULT_PREFIX.to_owned(),
            identity_url: identity_url.to_owned(),
            policy: Policy::default(),
            group_commit: GroupCommitConfig::default(),
            retention_interval: Duration::from_secs(3600),
        }
    }
}

/// Runs the migrations of the database at `database_url`.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    palaver_kit::service::migrate(database_url, &store::migrations())
        .await
        .context("the conversation database")
}

/// A bound, ready-to-run conversation service.
pub struct ConversationService {
    conversations: Arc<Conversations>,
    relay: Relay,
    writer: JoinHandle<()>,
    writer_stop: Shutdown,
    listeners: Listeners,
    retention_interval: Duration,
}

impl ConversationService {
    /// Connects the database, binds the listeners and starts the group commit; events
    /// go out on `bus`.
    pub async fn build(config: ConversationConfig, bus: Arc<dyn EventBus>) -> anyhow::Result<Self> {
        Self::build_with_clock(config, bus, Clock::default()).await
    }

    /// Builds with a given clock (tests shift it to age messages).
    pub async fn build_with_clock(
        config: ConversationConfig,
        bus: Arc<dyn EventBus>,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database_url)
            .await
            .context("connecting to the conversation database")?;
        let store = Store::new(db.clone(), proto::encode_event);
        let channel = palaver_kit::grpc::balanced_channel_with(
            &config.identity_url,
            BalanceOptions {
                call_timeout: IDENTITY_CALL_TIMEOUT,
                ..BalanceOptions::default()
            },
        )
        .with_context(|| format!("PALAVER_IDENTITY_URL {}", config.identity_url))?;
        let directory = Directory::new(channel, APP_CACHE);
        let group_commit_config = GroupCommitConfig {
            // SQLite has one writer: more committers would only wait for each other.
            committers: match db.backend() {
                Backend::Postgres => config.group_commit.committers,
                Backend::Sqlite => 1,
            },
            ..config.group_commit
        };
        let writer_stop = Shutdown::new();
        let (group_commit, writer) = GroupCommit::start(
            store.clone(),
            group_commit_config,
            clock.clone(),
            writer_stop.clone(),
        );
        let relay = Relay::new(store.clone(), bus, clock.clone());
        let conversations = Arc::new(Conversations::new(
            store,
            group_commit,
            directory,
            config.policy,
            clock,
        ));
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(DatabaseCheck(db.pool().clone()))];
        let listeners = Listeners::bind(&config.common, checks).await?;
        Ok(ConversationService {
            conversations,
            relay,
            writer,
            writer_stop,
            listeners,
            retention_interval: config.retention_interval,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.listeners.admin_addr()
    }

    /// The domain, for running it in process.
    pub fn conversations(&self) -> Arc<Conversations> {
        self.conversations.clone()
    }

    /// Serves until `shutdown` triggers, then drains for at most the drain timeout: the
    /// calls in flight finish, the sends already queued are committed, and the relay
    /// makes one last pass.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let routes =
            tonic::service::Routes::new(grpc::ConversationServer::new(self.conversations.clone()));
        let relay = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        let retention = tokio::spawn(retain_periodically(
            self.conversations.clone(),
            self.retention_interval,
            shutdown.clone(),
        ));
        let (writer, writer_stop, last_relay) = (self.writer, self.writer_stop, self.relay);
        self.listeners
            .run_grpc(
                "conversation service",
                shutdown,
                routes,
                &[SERVICE_NAME],
                async move {
                    writer_stop.trigger();
                    let _ = writer.await;
                    let _ = relay.await;
                    if let Err(error) = last_relay.relay_once().await {
                        tracing::warn!(%error, "the last relay pass failed; events wait in the outbox");
                    }
                    let _ = retention.await;
                },
            )
            .await
    }
}

impl Service for ConversationService {
    const NAME: &'static str = "palaver-conversation";
    type Config = ConversationConfig;

    fn config(env: &Env) -> Result<ConversationConfig, ConfigError> {
        ConversationConfig::from_env(env)
    }

    async fn start(config: ConversationConfig) -> anyhow::Result<Self> {
        let nats_url = config
            .nats_url
            .clone()
            .context("PALAVER_NATS_URL must be set")?;
        let bus = palaver_kit::bus::NatsBus::connect(&nats_url, &config.bus_prefix)
            .await
            .context("connecting to NATS (PALAVER_NATS_URL)")?;
        ConversationService::build(config, Arc::new(bus)).await
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        ConversationService::run_until_stopped(self, shutdown).await
    }

    fn migrations() -> Option<Migrations> {
        Some(store::migrations())
    }
}

/// Applies every app's retention every `interval`, the first time at start.
async fn retain_periodically(
    conversations: Arc<Conversations>,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => match conversations.apply_retention().await {
                Ok(retained) if retained == model::Retained::default() => {}
                Ok(retained) => tracing::info!(?retained, "retention applied"),
                Err(error) => tracing::error!(%error, "retention failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            ("PALAVER_DATABASE_URL", "sqlite://conversation.db"),
            ("PALAVER_NATS_URL", "nats://nats:4222"),
            ("PALAVER_IDENTITY_URL", "http://identity:50051"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_apply_when_unset() {
        let config = ConversationConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.common.listen, "0.0.0.0:50053".parse().unwrap());
        assert_eq!(config.nats_url.as_deref(), Some("nats://nats:4222"));
        assert_eq!(config.policy, Policy::default());
        assert_eq!(config.policy.open_conversations_per_visitor, 3);
        assert_eq!(config.group_commit.window, Duration::from_millis(2));
        assert_eq!(config.group_commit.max_batch, 32);
        assert_eq!(config.retention_interval, Duration::from_secs(3600));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PALAVER_GROUP_COMMIT_WINDOW_MICROS", "2001"),
            ("PALAVER_GROUP_COMMIT_MAX_BATCH", "0"),
            ("PALAVER_LIMIT_OPEN_CONVERSATIONS_PER_VISITOR", "0"),
            ("PALAVER_RETENTION_INTERVAL_SECONDS", "soon"),
            ("PALAVER_IDENTITY_URL", "identity:50051"),
            ("PALAVER_NATS_URL", "http://nats"),
            ("PALAVER_DATABASE_URL", "mysql://db"),
        ] {
            let error = ConversationConfig::from_env(&env(&[(var, value)])).unwrap_err();
            assert_eq!(error.var, var, "{error}");
        }
        let error = ConversationConfig::from_env(&Env::from_pairs([(
            "PALAVER_DATABASE_URL",
            "sqlite://x",
        )]))
        .unwrap_err();
        assert_eq!(error.var, "PALAVER_NATS_URL");
    }
}
