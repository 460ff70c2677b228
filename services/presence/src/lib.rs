//! Palaver's presence service: each member device reports a status and heartbeats; a
//! member shows the most available status among their live devices; a device that
//! stops heartbeating goes offline after the TTL plus grace; readers get single and
//! batch answers and watch streams; changes go out on the event bus, coalesced.
//!
//! [`domain`] holds the logic (aggregation, expiry, coalescing, the settle loop,
//! watches), [`store`] the member records (a NATS key-value bucket, or in memory),
//! [`events`] the change events on the bus, [`identity`] the lookups of members and
//! chat endpoints in the identity service, [`grpc`] the tonic server.
//! [`PresenceService::build`] binds the gRPC and admin listeners (port 0 works) and
//! [`PresenceService::run_until_stopped`] serves until the shutdown is triggered;
//! `main.rs`, `palaver up` and the tests start it the same way. Replicas keep nothing
//! that matters in memory, so ops scale them freely and any replica answers any
//! request.
//!
//! Configuration (environment variables):
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `PALAVER_LISTEN` | gRPC address | `0.0.0.0:50052` |
//! | `PALAVER_ADMIN_LISTEN` | `/healthz`, `/readyz`, `/metrics` | `0.0.0.0:9090` |
//! | `PALAVER_NATS_URL` | NATS with JetStream: the event bus and the key-value bucket | required |
//! | `PALAVER_BUS_PREFIX` | the subject prefix on NATS, the same for every service of a deployment | `palaver` |
//! | `PALAVER_IDENTITY_URL` | the identity service, `http://host:port` (every address the name resolves to) | required |
//! | `PALAVER_DRAIN_SECONDS` | how long a SIGTERM waits for work in flight | `20` |
//! | `PALAVER_PRESENCE_TTL_SECONDS` | a device that has not heartbeated for TTL + grace is offline | `30` |
//! | `PALAVER_PRESENCE_GRACE_SECONDS` | see TTL | `15` |
//! | `PALAVER_PRESENCE_COALESCE_MS` | at most one change event per member per this window | `250` |
//! | `PALAVER_PRESENCE_IDENTITY_CACHE_SECONDS` | how long answers from identity are kept (a closed endpoint may read as open this long) | `5` |
//! | `PALAVER_PRESENCE_KV_REPLICAS` | copies of each record in a NATS cluster (1–5) | `1` |

pub mod domain;
pub mod events;
pub mod grpc;
pub mod identity;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use palaver_kit::admin::{BusCheck, ReadinessCheck};
use palaver_kit::bus::{EventBus, NatsBus};
use palaver_kit::config::{CommonConfig, ConfigError, Env};
use palaver_kit::grpc::BalanceOptions;
use palaver_kit::service::{Listeners, Service};
use palaver_kit::shutdown::Shutdown;

use crate::domain::{Policy, Presence};
use crate::events::BusEvents;
use crate::grpc::WatchStreams;
use crate::identity::IdentityDirectory;
use crate::store::{KvOptions, KvStore, MemoryStore, PresenceStore, StoreCheck};

/// The gRPC service name, as health checks know it.
pub const SERVICE_NAME: &str = "palaver.presence.v1.Presence";

/// How long one call to identity may take: less than the gateway's deadline on the call
/// that needs it, so a stalled identity is answered here.
const IDENTITY_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The presence service's configuration.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    pub common: CommonConfig,
    /// Where `main.rs` connects the bus and the bucket (see [`Backends::nats`]);
    /// unset in process, where the caller hands over [`Backends`] of its own.
    pub nats_url: Option<String>,
    /// The subject prefix and bucket name on NATS (`PALAVER_BUS_PREFIX`).
    pub bus_prefix: String,
    pub identity_url: String,
    pub policy: Policy,
    pub kv: KvOptions,
    /// This replica's name in records and in the `palaver-replica` answer metadata:
    /// the host name (the pod's, in Kubernetes) and a random suffix.
    pub replica: String,
}

fn out_of_range(var: &str, message: &str) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        message: message.to_owned(),
    }
}

fn replica_name(host: &str) -> String {
    let suffix = palaver_kit::random::new_id("", 6);
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    format!("{host}-{suffix}")
}

impl PresenceConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let ttl = env.positive_seconds_or("PALAVER_PRESENCE_TTL_SECONDS", 30)?;
        let grace = env.seconds_or("PALAVER_PRESENCE_GRACE_SECONDS", 15)?;
        if ttl + grace > Duration::from_secs(3600) {
            return Err(out_of_range(
                "PALAVER_PRESENCE_GRACE_SECONDS",
                "TTL plus grace must be at most an hour",
            ));
        }
        let window = Duration::from_millis(env.parse_or("PALAVER_PRESENCE_COALESCE_MS", 250)?);
        if window > Duration::from_secs(10) {
            return Err(out_of_range(
                "PALAVER_PRESENCE_COALESCE_MS",
                "must be at most 10000",
            ));
        }
        let replicas: usize = env.parse_or("PALAVER_PRESENCE_KV_REPLICAS", 1)?;
        if !(1..=5).contains(&replicas) {
            return Err(out_of_range(
                "PALAVER_PRESENCE_KV_REPLICAS",
                "must be 1 to 5",
            ));
        }
        Ok(PresenceConfig {
            common: CommonConfig::from_env(env, 50052)?,
            nats_url: Some(env.required_url("PALAVER_NATS_URL", &["nats", "tls"])?),
            bus_prefix: palaver_kit::bus::prefix_from_env(env)?,
            identity_url: env.required_url("PALAVER_IDENTITY_URL", &["http"])?,
            policy: Policy {
                ttl,
                grace,
                window,
                directory_ttl: env.seconds_or("PALAVER_PRESENCE_IDENTITY_CACHE_SECONDS", 5)?,
                ..Policy::default()
            },
            kv: KvOptions { replicas },
            replica: replica_name(&env.raw("HOSTNAME").unwrap_or_else(|| "presence".into())),
        })
    }

    /// Loopback on ports the system picks, with the default policy and no NATS URL:
    /// for tests and `palaver up`.
    pub fn ephemeral(identity_url: &str) -> Self {
        PresenceConfig {
            common: CommonConfig::ephemeral(),
            nats_url: None,
            bus_prefix: palaver_kit::bus::DEFAULT_PREFIX.to_owned(),
            identity_url: identity_url.to_owned(),
            policy: Policy::default(),
            kv: KvOptions::default(),
            replica: replica_name("presence"),
        }
    }
}

/// What presence runs on: the event bus it publishes to and the store of its records.
#[derive(Clone)]
pub struct Backends {
    pub bus: Arc<dyn EventBus>,
    pub store: Arc<dyn PresenceStore>,
}

impl Backends {
    /// In process (the embedded default): `bus` shared with the other services,
    /// records in memory.
    pub fn in_memory(bus: Arc<dyn EventBus>) -> Self {
        Backends {
            bus,
            store: Arc::new(MemoryStore::new()),
        }
    }

    /// On NATS at `url`: the bus under `prefix` and the prefix's key-value bucket,
    /// each on a connection of its own, so state writes and their change stream never
    /// queue behind events (one connection is one task's worth of throughput).
    pub async fn nats(url: &str, prefix: &str, kv: KvOptions) -> anyhow::Result<Self> {
        let bus = NatsBus::connect(url, prefix)
            .await
            .context("connecting the event bus")?;
        let state = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url} for the presence bucket"))?;
        let store = KvStore::open(async_nats::jetstream::new(state), prefix, kv)
            .await
            .context("opening the presence bucket")?;
        Ok(Backends {
            bus: Arc::new(bus),
            store: Arc::new(store),
        })
    }
}

/// A bound, ready-to-run presence service.
pub struct PresenceService {
    presence: Arc<Presence>,
    listeners: Listeners,
    watch_streams: WatchStreams,
}

impl PresenceService {
    pub async fn build(config: PresenceConfig, backends: Backends) -> anyhow::Result<Self> {
        let channel = palaver_kit::grpc::balanced_channel_with(
            &config.identity_url,
            BalanceOptions {
                call_timeout: IDENTITY_CALL_TIMEOUT,
                ..BalanceOptions::default()
            },
        )
        .context("PALAVER_IDENTITY_URL")?;
        let events = BusEvents::new(backends.bus.clone());
        let subscriptions = events.subscriptions();
        let presence = Arc::new(Presence::new(
            backends.store.clone(),
            Arc::new(IdentityDirectory::new(channel)),
            Arc::new(events),
            config.policy,
            config.replica,
        ));
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(BusCheck(backends.bus)),
            Arc::new(StoreCheck(backends.store)),
        ];
        let watch_streams = WatchStreams::default();
        let streams = watch_streams.clone();
        let mut listeners = Listeners::bind(&config.common, checks).await?;
        listeners.admin = listeners
            .admin
            .with_gauge("palaver_presence_watch_streams", move || {
                streams.count() as f64
            })
            .with_gauge("palaver_presence_bus_subscriptions", move || {
                subscriptions() as f64
            });
        Ok(PresenceService {
            presence,
            listeners,
            watch_streams,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.listeners.admin_addr()
    }

    /// This replica's name, as answers carry it in `palaver-replica`.
    pub fn replica(&self) -> &str {
        self.presence.replica()
    }

    /// Serves and settles records until `shutdown` triggers, then drains for at most
    /// the drain timeout.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let routes = tonic::service::Routes::new(grpc::PresenceServer::new(
            self.presence.clone(),
            shutdown.clone(),
            self.watch_streams,
        ));
        let settle = tokio::spawn(domain::settle::run(self.presence.clone(), shutdown.clone()));
        let name = format!("presence service (replica {})", self.presence.replica());
        self.listeners
            .run_grpc(&name, shutdown, routes, &[SERVICE_NAME], async {
                if let Err(error) = settle.await {
                    tracing::warn!(%error, "the settle task failed");
                }
            })
            .await
    }
}

impl Service for PresenceService {
    const NAME: &'static str = "palaver-presence";
    type Config = PresenceConfig;

    fn config(env: &Env) -> Result<PresenceConfig, ConfigError> {
        PresenceConfig::from_env(env)
    }

    async fn start(config: PresenceConfig) -> anyhow::Result<Self> {
        let nats_url = config
            .nats_url
            .clone()
            .context("PALAVER_NATS_URL must be set")?;
        let backends = Backends::nats(&nats_url, &config.bus_prefix, config.kv.clone()).await?;
        PresenceService::build(config, backends).await
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        PresenceService::run_until_stopped(self, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut all = vec![
            ("PALAVER_NATS_URL", "nats://127.0.0.1:4222"),
            ("PALAVER_IDENTITY_URL", "http://identity:50051"),
        ];
        all.extend_from_slice(pairs);
        Env::from_pairs(all)
    }

    #[test]
    fn defaults_apply_when_unset() {
        let config = PresenceConfig::from_env(&env(&[("HOSTNAME", "presence-7f9c.x")])).unwrap();
        assert_eq!(config.common.listen, "0.0.0.0:50052".parse().unwrap());
        assert_eq!(config.policy.ttl, Duration::from_secs(30));
        assert_eq!(config.policy.grace, Duration::from_secs(15));
        assert_eq!(config.policy.window, Duration::from_millis(250));
        assert_eq!(config.policy.directory_ttl, Duration::from_secs(5));
        assert_eq!(config.kv.replicas, 1);
        assert!(
            config.replica.starts_with("presence-7f9cx-"),
            "{}",
            config.replica
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PALAVER_PRESENCE_TTL_SECONDS", "0"),
            ("PALAVER_PRESENCE_TTL_SECONDS", "soon"),
            ("PALAVER_PRESENCE_GRACE_SECONDS", "3600"),
            ("PALAVER_PRESENCE_COALESCE_MS", "60000"),
            ("PALAVER_PRESENCE_KV_REPLICAS", "0"),
            ("PALAVER_NATS_URL", "http://nats:4222"),
            ("PALAVER_IDENTITY_URL", "identity:50051"),
        ] {
            let error = PresenceConfig::from_env(&env(&[(var, value)])).unwrap_err();
            assert_eq!(error.var, var, "{var}={value}: {error}");
        }
        let missing = PresenceConfig::from_env(&Env::from_pairs([(
            "PALAVER_IDENTITY_URL",
            "http://identity:50051",
        )]))
        .unwrap_err();
        assert_eq!(missing.var, "PALAVER_NATS_URL");
    }

    #[test]
    fn replicas_have_distinct_names() {
        assert_ne!(replica_name("presence"), replica_name("presence"));
    }
}
