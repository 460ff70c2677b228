//! Palaver's gateway: the only public service. It serves the public HTTP contract of
//! DESIGN.md ("Public HTTP contract") and turns it into gRPC calls to the other services.
//!
//! That is the admin API (apps), the CMS API (members, the consent flow and its OAuth
//! token endpoint, permissions, login links, the webhook settings, key rotation,
//! conversations and transcripts), the member API (`/v1/me`, the member's
//! conversations), visitor and operator sessions, personal access tokens, presence
//! (JSON and badge), offline messages, the WebSocket, the JWKS and the OpenAPI document.
//!
//! - `http` holds one router per API area, all sharing one `state::AppState`, and the
//!   middleware every response goes through (tracing, metrics, security headers, body
//!   limits, problem+json for every error). `http::ws` is the WebSocket's sessions.
//! - `realtime` holds what the sockets of the process share: the fan-out of bus events
//!   (one subscription per subject, shared by every socket), the operator devices,
//!   heartbeated to presence in one batch, and the open sockets, which a shutdown
//!   closes and waits for.
//! - [`domain`] holds the logic that is not mapping: rate limits, allowed origins,
//!   member statuses and the client's IP address behind trusted proxies.
//! - `clients` holds the gRPC clients of identity, presence and conversation;
//!   `erasure` erases a member in every service that holds their data.
//! - `publish` publishes what the gateway itself says on the bus: typing and permission
//!   changes.
//! - `webhooks` sends the webhook events from the bus's durable consumer, which every
//!   gateway shares, and records each attempt.
//!
//! [`GatewayService::build`] binds the HTTP and admin listeners (port 0 works) and
//! [`GatewayService::run_until_stopped`] serves until the shutdown is triggered, then
//! drains; `main.rs` and the tests start it the same way.
//!
//! Configuration (environment variables):
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `PALAVER_LISTEN` | the public HTTP address | `0.0.0.0:8080` |
//! | `PALAVER_ADMIN_LISTEN` | `/healthz`, `/readyz`, `/metrics` | `0.0.0.0:9090` |
//! | `PALAVER_DRAIN_SECONDS` | how long a SIGTERM waits for requests in flight and for the WebSockets to close | `20` |
//! | `PALAVER_IDENTITY_URL` | the identity service, `http://host:port` (every address the name resolves to is used) | required |
//! | `PALAVER_PRESENCE_URL` | the presence service, `http://host:port` (every address the name resolves to is used) | required |
//! | `PALAVER_CONVERSATION_URL` | the conversation service, `http://host:port` (every address the name resolves to is used) | required |
//! | `PALAVER_NATS_URL` | NATS, `nats://…`, for the events the WebSocket fans out (`main.rs` connects it; `palaver up` hands [`GatewayService::build`] its in-process bus instead) | required |
//! | `PALAVER_BUS_PREFIX` | the subject prefix on NATS | `palaver` |
//! | `PALAVER_ADMIN_TOKEN` | bearer token of the admin API, at least 16 characters (secret) | required |
//! | `PALAVER_PUBLIC_URL` | the external base URL, for consent and login links | required |
//! | `PALAVER_TRUSTED_PROXIES` | comma-separated addresses or CIDR ranges of the reverse proxies in front of the gateway; only behind them is `X-Forwarded-For` read | empty: the socket peer is the client |
//! | `PALAVER_MAX_BODY_BYTES` | the largest request body accepted | `65536` |
//! | `PALAVER_LIMIT_SESSIONS_PER_IP_PER_MINUTE` | new visitor sessions per minute per client IP (and app) | `30` |
//! | `PALAVER_LIMIT_MESSAGES_PER_SECOND` | messages per second per visitor session | `10` |
//! | `PALAVER_LIMIT_MESSAGE_BURST` | burst of messages per visitor session | `20` |
//! | `PALAVER_LIMIT_OFFLINE_MESSAGES_PER_IP_PER_HOUR` | offline messages per hour per client IP | `5` |
//! | `PALAVER_LIMIT_OPEN_CONVERSATIONS_PER_VISITOR` | open conversations per visitor | `3` |
//! | `PALAVER_WS_HEARTBEAT_SECONDS` | how often the operator devices of the process are heartbeated to presence, all in one `BatchHeartbeat`; keep it well within presence's TTL | `10` |
//! | `PALAVER_WS_PING_SECONDS` | how often the gateway pings each WebSocket; a client that has not answered by the next ping is dropped | `25` |
//! | `PALAVER_WS_SEND_QUEUE` | events a WebSocket may have waiting before it is closed as a slow consumer | `256` |
//! | `PALAVER_WEBHOOK_RETRY_SECONDS` | comma-separated waits, in seconds, before the second, third, … attempt at a webhook event; after the last it is given up. Together they must be shorter than the event stream keeps events (7 days) | `5,300,1800,7200,18000,36000,36000` (Standard Webhooks: 8 attempts over 27.6 h) |
//! | `PALAVER_WEBHOOK_TIMEOUT_SECONDS` | how long one webhook request may take | `10` |
//! | `PALAVER_WEBHOOK_CONCURRENCY` | webhook requests in flight at once, per gateway | `16` |
//!
//! The `PALAVER_LIMIT_*` values are the deployment's defaults; an app's own `limits`
//! (admin API) override them field by field.
//!
//! The client's IP address (for per-IP limits) is the socket peer's. When the peer is one
//! of `PALAVER_TRUSTED_PROXIES`, it is the nearest `X-Forwarded-For` hop that is not a
//! trusted proxy, read from the right: hops further left were written by the client and
//! prove nothing.

mod clients;
pub mod domain;
mod erasure;
mod http;
mod publish;
mod realtime;
mod state;
pub mod webhooks;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use palaver_kit::admin::ReadinessCheck;
use palaver_kit::bus::{DEFAULT_PREFIX, EventBus};
use palaver_kit::config::{CommonConfig, ConfigError, Env, ExposeSecret, SecretString};
use palaver_kit::service::{Listeners, Service};
use palaver_kit::shutdown::Shutdown;
use url::Url;

use crate::clients::{
    BusReady, Clients, ConversationClient, IdentityClient, PresenceClient, ServiceReady,
};
use crate::domain::client_ip::TrustedProxies;
use crate::domain::limits::Limits;
use crate::state::AppState;
use crate::webhooks::{WebhookConfig, WebhookContext, WebhookWorker};

/// How often rate-limit buckets that filled up again are forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Bus events a WebSocket may have waiting, unless configured otherwise.
const DEFAULT_WS_SEND_QUEUE: usize = 256;

/// How often each WebSocket is pinged, unless configured otherwise.
const DEFAULT_WS_PING_EVERY: Duration = Duration::from_secs(25);

/// How often operator devices are heartbeated, unless configured otherwise: well
/// within presence's default TTL (30 s).
const DEFAULT_HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// The shortest admin token accepted.
const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub common: CommonConfig,
    /// The identity service, `http://host:port`.
    pub identity_url: String,
    /// The presence service, `http://host:port`.
    pub presence_url: String,
    /// The conversation service, `http://host:port`.
    pub conversation_url: String,
    /// NATS, where `main.rs` connects the bus; unset when the caller hands
    /// [`GatewayService::build`] a bus of its own (`palaver up`, tests).
    pub nats_url: Option<String>,
    /// The subject prefix of the bus on NATS.
    pub bus_prefix: String,
    /// The bearer token of the admin API.
    pub admin_token: SecretString,
    /// The external base URL; `None` uses `http://` and the address the gateway bound.
    pub public_url: Option<Url>,
    /// The reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The deployment's default abuse limits.
    pub limits: Limits,
    /// Bus events a WebSocket may have waiting before it is a slow consumer.
    pub ws_send_queue: usize,
    /// How often each WebSocket is pinged; a client that has not answered by the next
    /// ping is dropped.
    pub ws_ping_every: Duration,
    /// How often the operator devices of this process are heartbeated to presence
    /// (one `BatchHeartbeat` for all of them); well within presence's TTL.
    pub heartbeat_every: Duration,
    /// How webhook events are sent: retries, timeout, concurrency.
    pub webhooks: WebhookConfig,
}

impl GatewayConfig {
    /// Reads the variables in the crate docs; a missing or malformed one is an error
    /// naming it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Limits::default();
        let limit = |var: &str, default: NonZeroU32| env.parse_or(var, default);
        let admin_token = env.required_secret("PALAVER_ADMIN_TOKEN")?;
        if admin_token.expose_secret().chars().count() < MIN_ADMIN_TOKEN_CHARS {
            return Err(ConfigError {
                var: "PALAVER_ADMIN_TOKEN".to_owned(),
                message: format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
            });
        }
        Ok(GatewayConfig {
            common: CommonConfig::from_env(env, 8080)?,
            identity_url: env.required_url("PALAVER_IDENTITY_URL", &["http"])?,
            presence_url: env.required_url("PALAVER_PRESENCE_URL", &["http"])?,
            conversation_url: env.required_url("PALAVER_CONVERSATION_URL", &["http"])?,
            nats_url: Some(env.required_url("PALAVER_NATS_URL", &["nats", "tls", "ws", "wss"])?),
            bus_prefix: palaver_kit::bus::prefix_from_env(env)?,
            admin_token,
            public_url: Some(public_url(env)?),
            trusted_proxies: env.parse_or("PALAVER_TRUSTED_PROXIES", TrustedProxies::none())?,
            max_body_bytes: env.parse_or("PALAVER_MAX_BODY_BYTES", 64 * 1024)?,
            ws_send_queue: env.positive_or("PALAVER_WS_SEND_QUEUE", DEFAULT_WS_SEND_QUEUE)?,
            ws_ping_every: env
                .positive_seconds_or("PALAVER_WS_PING_SECONDS", DEFAULT_WS_PING_EVERY.as_secs())?,
            heartbeat_every: env.positive_seconds_or(
                "PALAVER_WS_HEARTBEAT_SECONDS",
                DEFAULT_HEARTBEAT_EVERY.as_secs(),
            )?,
            webhooks: webhook_config(env)?,
            limits: Limits {
                sessions_per_ip_per_minute: limit(
                    "PALAVER_LIMIT_SESSIONS_PER_IP_PER_MINUTE",
                    defaults.sessions_per_ip_per_minute,
                )?,
                messages_per_second: limit(
                    "PALAVER_LIMIT_MESSAGES_PER_SECOND",
                    defaults.messages_per_second,
                )?,
                message_burst: limit("PALAVER_LIMIT_MESSAGE_BURST", defaults.message_burst)?,
                offline_messages_per_ip_per_hour: limit(
                    "PALAVER_LIMIT_OFFLINE_MESSAGES_PER_IP_PER_HOUR",
                    defaults.offline_messages_per_ip_per_hour,
                )?,
                open_conversations_per_visitor: limit(
                    "PALAVER_LIMIT_OPEN_CONVERSATIONS_PER_VISITOR",
                    defaults.open_conversations_per_visitor,
                )?,
            },
        })
    }

    /// Loopback on ports the system picks, links to the bound address, default limits,
    /// no NATS URL (the caller hands `build` its bus): for tests and `palaver up`.
    pub fn ephemeral(urls: ServiceUrls, admin_token: SecretString) -> Self {
        GatewayConfig {
            common: CommonConfig::ephemeral(),
            identity_url: urls.identity,
            presence_url: urls.presence,
            conversation_url: urls.conversation,
            nats_url: None,
            bus_prefix: DEFAULT_PREFIX.to_owned(),
            admin_token,
            public_url: None,
            trusted_proxies: TrustedProxies::none(),
            max_body_bytes: 64 * 1024,
            limits: Limits::default(),
            ws_send_queue: DEFAULT_WS_SEND_QUEUE,
            ws_ping_every: DEFAULT_WS_PING_EVERY,
            heartbeat_every: DEFAULT_HEARTBEAT_EVERY,
            webhooks: WebhookConfig::default(),
        }
    }
}

fn webhook_config(env: &Env) -> Result<WebhookConfig, ConfigError> {
    let defaults = WebhookConfig::default();
    let retry = env.parse_or("PALAVER_WEBHOOK_RETRY_SECONDS", defaults.retry)?;
    Ok(WebhookConfig {
        retry,
        timeout: env.positive_seconds_or(
            "PALAVER_WEBHOOK_TIMEOUT_SECONDS",
            defaults.timeout.as_secs(),
        )?,
        concurrency: env.positive_or("PALAVER_WEBHOOK_CONCURRENCY", defaults.concurrency)?,
    })
}

/// Where the services behind the gateway listen, `http://host:port` each.
#[derive(Debug, Clone)]
pub struct ServiceUrls {
    pub identity: String,
    pub presence: String,
    pub conversation: String,
}

fn public_url(env: &Env) -> Result<Url, ConfigError> {
    let raw = env.required_url("PALAVER_PUBLIC_URL", &["http", "https"])?;
    let invalid = |message: String| ConfigError {
        var: "PALAVER_PUBLIC_URL".to_owned(),
        message,
    };
    let url = Url::parse(&raw).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "must be a base URL such as https://chat.example.org (no query or fragment)".into(),
        ));
    }
    Ok(url)
}

/// A bound, ready-to-run gateway.
pub struct GatewayService {
    state: AppState,
    listeners: Listeners,
    heartbeat_every: Duration,
    webhooks: WebhookWorker,
}

impl GatewayService {
    /// Binds the HTTP and admin listeners and prepares the clients of the other
    /// services (connections are made lazily: an unreachable service shows in
    /// `/readyz`, not here); events are read from and published on `bus`, whose durable
    /// webhook consumer it joins here, so events published from now on are sent.
    pub async fn build(config: GatewayConfig, bus: Arc<dyn EventBus>) -> anyhow::Result<Self> {
        let identity = clients::connect(&config.identity_url)
            .with_context(|| format!("PALAVER_IDENTITY_URL {}", config.identity_url))?;
        let presence = clients::connect(&config.presence_url)
            .with_context(|| format!("PALAVER_PRESENCE_URL {}", config.presence_url))?;
        let conversation = clients::connect(&config.conversation_url)
            .with_context(|| format!("PALAVER_CONVERSATION_URL {}", config.conversation_url))?;
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(ServiceReady::new(
                "identity",
                palaver_proto::identity::v1::identity_server::SERVICE_NAME,
                identity.clone(),
            )),
            Arc::new(ServiceReady::new(
                "presence",
                palaver_proto::presence::v1::presence_server::SERVICE_NAME,
                presence.clone(),
            )),
            Arc::new(ServiceReady::new(
                "conversation",
                palaver_proto::conversation::v1::conversations_server::SERVICE_NAME,
                conversation.clone(),
            )),
            Arc::new(BusReady(bus.clone())),
        ];
        let clients = Clients {
            identity: IdentityClient::new(identity),
            presence: PresenceClient::new(presence),
            conversation: ConversationClient::new(conversation),
        };
        let listeners = Listeners::bind(&config.common, checks).await?;
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{}", listeners.addr))
                .context("making the public URL from the bound address")?,
        };
        let webhooks = WebhookContext::open(bus.as_ref(), &clients).await?;
        let state = AppState::new(&config, public_url, clients, bus.clone(), &webhooks);
        let webhooks = WebhookWorker::open(&config.webhooks, bus.as_ref(), webhooks).await?;
        Ok(GatewayService {
            state,
            listeners,
            heartbeat_every: config.heartbeat_every,
            webhooks,
        })
    }

    /// The address of the public HTTP server.
    pub fn http_addr(&self) -> SocketAddr {
        self.listeners.addr
    }

    /// The address of the admin server (`/healthz`, `/readyz`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.listeners.admin_addr()
    }

    /// Serves (and sends webhooks) until `shutdown` triggers, then stops accepting
    /// connections and fetching webhook events, closes every WebSocket with 1001 ("going
    /// away", operators' devices disconnected from presence at once), and waits for the
    /// requests, sockets and webhook attempts in flight, for at most the drain timeout.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let router = http::router(self.state.clone());
        let heartbeats = {
            let state = self.state.clone();
            let shutdown = shutdown.clone();
            let every = self.heartbeat_every;
            tokio::spawn(async move {
                state.devices().run(state.presence(), every, shutdown).await;
            })
        };
        let webhooks = tokio::spawn(self.webhooks.run(shutdown.clone()));
        let housekeeping = tokio::spawn(forget_idle_limits(self.state.clone(), shutdown.clone()));
        let stopping = shutdown.clone();
        let state = self.state;
        self.listeners
            .run(
                "gateway",
                shutdown,
                |listener| async move {
                    axum::serve(
                        listener,
                        router.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(async move { stopping.wait().await })
                    .await
                    .context("HTTP server")
                },
                async move { state.sockets().close_all().await },
                async {
                    let _ = heartbeats.await;
                    let _ = webhooks.await;
                    let _ = housekeeping.await;
                },
            )
            .await
    }
}

impl Service for GatewayService {
    const NAME: &'static str = "palaver-gateway";
    type Config = GatewayConfig;

    fn config(env: &Env) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_env(env)
    }

    async fn start(config: GatewayConfig) -> anyhow::Result<Self> {
        let nats_url = config
            .nats_url
            .clone()
            .context("PALAVER_NATS_URL is required")?;
        let bus = palaver_kit::bus::NatsBus::connect(&nats_url, &config.bus_prefix)
            .await
            .context("connecting the event bus")?;
        GatewayService::build(config, Arc::new(bus)).await
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        GatewayService::run_until_stopped(self, shutdown).await
    }
}

/// Keeps the rate limiters' memory to the clients seen lately.
async fn forget_idle_limits(state: AppState, shutdown: Shutdown) {
    let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => state.forget_idle_rate_limits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            ("PALAVER_IDENTITY_URL", "http://identity:50051"),
            ("PALAVER_PRESENCE_URL", "http://presence:50052"),
            ("PALAVER_CONVERSATION_URL", "http://conversation:50053"),
            ("PALAVER_NATS_URL", "nats://nats:4222"),
            ("PALAVER_ADMIN_TOKEN", "an-admin-token-long-enough"),
            ("PALAVER_PUBLIC_URL", "https://chat.example.org"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_apply_when_unset() {
        let config = GatewayConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.common.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.limits.sessions_per_ip_per_minute.get(), 30);
        assert_eq!(config.max_body_bytes, 65536);
        assert_eq!(config.presence_url, "http://presence:50052");
        assert_eq!(config.nats_url.as_deref(), Some("nats://nats:4222"));
        assert_eq!(config.bus_prefix, "palaver");
        assert_eq!(config.webhooks, WebhookConfig::default());
        assert_eq!(config.ws_ping_every, Duration::from_secs(25));
        assert!(!format!("{config:?}").contains("an-admin-token-long-enough"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases = [
            ("PALAVER_ADMIN_TOKEN", "short"),
            ("PALAVER_PUBLIC_URL", "chat.example.org"),
            ("PALAVER_PUBLIC_URL", "https://chat.example.org/?x=1"),
            ("PALAVER_IDENTITY_URL", "https://identity:50051"),
            ("PALAVER_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("PALAVER_LIMIT_SESSIONS_PER_IP_PER_MINUTE", "0"),
            ("PALAVER_NATS_URL", "redis://x"),
            ("PALAVER_PRESENCE_URL", "presence:50052"),
            ("PALAVER_CONVERSATION_URL", "https://conversation:50053"),
            ("PALAVER_WS_SEND_QUEUE", "0"),
            ("PALAVER_WS_HEARTBEAT_SECONDS", "0"),
            ("PALAVER_WS_PING_SECONDS", "0"),
            ("PALAVER_WEBHOOK_RETRY_SECONDS", "5,x"),
            ("PALAVER_WEBHOOK_RETRY_SECONDS", ","),
            ("PALAVER_WEBHOOK_TIMEOUT_SECONDS", "0"),
            ("PALAVER_WEBHOOK_CONCURRENCY", "0"),
        ];
        for (var, value) in cases {
            let err = GatewayConfig::from_env(&env(&[(var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{value}: {err}");
        }
    }

    #[test]
    fn the_services_and_nats_are_required() {
        for var in [
            "PALAVER_PRESENCE_URL",
            "PALAVER_CONVERSATION_URL",
            "PALAVER_NATS_URL",
        ] {
            let pairs: Vec<(&str, &str)> = [
                ("PALAVER_IDENTITY_URL", "http://identity:50051"),
                ("PALAVER_PRESENCE_URL", "http://presence:50052"),
                ("PALAVER_CONVERSATION_URL", "http://conversation:50053"),
                ("PALAVER_NATS_URL", "nats://nats:4222"),
                ("PALAVER_ADMIN_TOKEN", "an-admin-token-long-enough"),
                ("PALAVER_PUBLIC_URL", "https://chat.example.org"),
            ]
            .into_iter()
            .filter(|(name, _)| *name != var)
            .collect();
            let err = GatewayConfig::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert_eq!(err.var, var);
        }
    }

    #[test]
    fn limits_and_proxies_are_read() {
        let config = GatewayConfig::from_env(&env(&[
            ("PALAVER_LIMIT_SESSIONS_PER_IP_PER_MINUTE", "5"),
            ("PALAVER_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7"),
        ]))
        .unwrap();
        assert_eq!(config.limits.sessions_per_ip_per_minute.get(), 5);
        assert!(
            config
                .trusted_proxies
                .contains("192.168.1.7".parse().unwrap())
        );
        assert!(config.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
        assert!(!config.trusted_proxies.contains("11.0.0.1".parse().unwrap()));
    }
}
