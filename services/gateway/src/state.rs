//! What every handler shares: the clients of the other services, the fan-out of bus
//! events and the publisher of the gateway's own, the operator devices and open sockets
//! of the process, the token verifier, the webhook settings and attempts, the
//! deployment's settings and the rate limiters. Cheap to clone.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palaver_kit::bus::{EventBus, Journal};
use palaver_kit::config::ExposeSecret;
use palaver_kit::tokens::TokenVerifier;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::GatewayConfig;
use crate::clients::{Clients, ConversationClient, IdentityClient, PresenceClient};
use crate::domain::client_ip::TrustedProxies;
use crate::domain::limits::{LimitOverrides, Limits};
use crate::domain::rate_limit::RateLimiter;
use crate::publish::Publisher;
use crate::realtime::devices::Devices;
use crate::realtime::fanout::Fanout;
use crate::realtime::sockets::Sockets;
use crate::webhooks::{WebhookCache, WebhookContext};

/// The shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    identity: IdentityClient,
    presence: PresenceClient,
    conversation: ConversationClient,
    fanout: Fanout,
    publisher: Publisher,
    devices: Devices,
    sockets: Sockets,
    next_socket: AtomicU64,
    process_token: u64,
    ws_send_queue: usize,
    ws_ping_every: Duration,
    ws_messages: RateLimiter<(String, String)>,
    verifier: TokenVerifier,
    admin_token_digest: [u8; 32],
    public_base: String,
    public_origin: String,
    trusted_proxies: TrustedProxies,
    limits: Limits,
    max_body_bytes: usize,
    visitor_sessions: RateLimiter<(String, IpAddr)>,
    offline_messages: RateLimiter<(String, IpAddr)>,
    webhook_attempts: Arc<dyn Journal>,
    webhook_cache: Arc<WebhookCache>,
}

impl AppState {
    pub fn new(
        config: &GatewayConfig,
        public_url: Url,
        clients: Clients,
        bus: Arc<dyn EventBus>,
        webhooks: &WebhookContext,
    ) -> Self {
        let verifier = TokenVerifier::new(Arc::new(clients.identity.clone()));
        AppState(Arc::new(Shared {
            identity: clients.identity,
            presence: clients.presence,
            conversation: clients.conversation,
            fanout: Fanout::new(bus.clone()),
            publisher: Publisher::new(bus),
            devices: Devices::default(),
            sockets: Sockets::default(),
            next_socket: AtomicU64::new(1),
            process_token: RandomState::new().build_hasher().finish(),
            ws_send_queue: config.ws_send_queue,
            ws_ping_every: config.ws_ping_every,
            ws_messages: RateLimiter::default(),
            verifier,
            admin_token_digest: Sha256::digest(config.admin_token.expose_secret().as_bytes())
                .into(),
            public_origin: public_url.origin().ascii_serialization(),
            public_base: public_url.as_str().trim_end_matches('/').to_owned(),
            trusted_proxies: config.trusted_proxies.clone(),
            limits: config.limits,
            max_body_bytes: config.max_body_bytes,
            visitor_sessions: RateLimiter::default(),
            offline_messages: RateLimiter::default(),
            webhook_attempts: webhooks.attempts.clone(),
            webhook_cache: webhooks.settings.clone(),
        }))
    }

    /// A client of the identity service.
    pub fn identity(&self) -> IdentityClient {
        self.0.identity.clone()
    }

    /// A client of the presence service.
    pub fn presence(&self) -> PresenceClient {
        self.0.presence.clone()
    }

    /// A client of the conversation service.
    pub fn conversation(&self) -> ConversationClient {
        self.0.conversation.clone()
    }

    /// The registry of bus subjects and the sockets watching them.
    pub fn fanout(&self) -> &Fanout {
        &self.0.fanout
    }

    /// Publishes the gateway's own events: typing, permission changes.
    pub fn publisher(&self) -> &Publisher {
        &self.0.publisher
    }

    /// The operator devices of this process's sockets.
    pub fn devices(&self) -> &Devices {
        &self.0.devices
    }

    /// The open sockets, which shutdown closes and waits for.
    pub fn sockets(&self) -> &Sockets {
        &self.0.sockets
    }

    /// A new socket id, unique in the process.
    pub fn next_socket_id(&self) -> u64 {
        self.0.next_socket.fetch_add(1, Ordering::Relaxed)
    }

    /// A random number of this process, so device ids differ between gateways.
    pub fn process_token(&self) -> u64 {
        self.0.process_token
    }

    /// Bus events a socket may have waiting before it is a slow consumer.
    pub fn ws_send_queue(&self) -> usize {
        self.0.ws_send_queue
    }

    /// How often each socket is pinged.
    pub fn ws_ping_every(&self) -> Duration {
        self.0.ws_ping_every
    }

    /// WebSocket messages per (app, session holder).
    pub fn ws_messages(&self) -> &RateLimiter<(String, String)> {
        &self.0.ws_messages
    }

    /// Verifies access tokens locally against identity's published keys.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.0.verifier
    }

    /// True when `token` is the admin token. The comparison takes the same time
    /// wherever the two differ, and whatever their lengths (both are hashed first).
    pub fn is_admin_token(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        digest.ct_eq(&self.0.admin_token_digest).into()
    }

    /// An absolute link under the public URL: `path` appended to it, with `query`.
    pub fn public_link(&self, path: &str, query: &[(&str, &str)]) -> String {
        link(&self.0.public_base, path, query)
    }

    /// The gateway's own origin (of the public URL): the console and consent pages.
    pub fn public_origin(&self) -> &str {
        &self.0.public_origin
    }

    /// The client of a request from `peer` with these `X-Forwarded-For` values.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        self.0.trusted_proxies.client_ip(peer, forwarded_for)
    }

    /// The limits in force for an app with these overrides.
    pub fn limits_for(&self, overrides: &LimitOverrides) -> Limits {
        self.0.limits.with_overrides(overrides)
    }

    /// The largest request body accepted, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.0.max_body_bytes
    }

    /// New visitor sessions per (app, client IP).
    pub fn visitor_sessions(&self) -> &RateLimiter<(String, IpAddr)> {
        &self.0.visitor_sessions
    }

    /// Offline messages per (app, client IP).
    pub fn offline_messages(&self) -> &RateLimiter<(String, IpAddr)> {
        &self.0.offline_messages
    }

    /// The log of webhook attempts, per app.
    pub fn webhook_attempts(&self) -> &Arc<dyn Journal> {
        &self.0.webhook_attempts
    }

    /// The apps' webhook settings as the webhook worker keeps them.
    pub fn webhook_cache(&self) -> &WebhookCache {
        &self.0.webhook_cache
    }

    /// Lets the rate limiters forget clients whose buckets filled up again.
    pub fn forget_idle_rate_limits(&self) {
        self.0.visitor_sessions.forget_idle();
        self.0.offline_messages.forget_idle();
        self.0.ws_messages.forget_idle();
    }
}

/// `base` (without a trailing slash) and `path`, with `query` form-encoded.
fn link(base: &str, path: &str, query: &[(&str, &str)]) -> String {
    let mut link = format!("{base}{path}");
    if !query.is_empty() {
        link.push('?');
        link.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish(),
        );
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_public_urls_path_and_encode_the_query() {
        assert_eq!(
            link(
                "https://example.org/chat",
                "/consent",
                &[("request", "cr_a+b/c")]
            ),
            "https://example.org/chat/consent?request=cr_a%2Bb%2Fc"
        );
        assert_eq!(
            link("https://chat.example.org", "", &[]),
            "https://chat.example.org"
        );
    }
}
