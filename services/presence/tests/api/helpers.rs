//! Spawns the real thing: an identity service on a fresh SQLite database, and presence
//! replicas on port 0 either on NATS (a fresh subject prefix, stream and bucket per
//! test, removed afterwards) or in memory (an in-process bus). Tests talk to them over
//! gRPC and watch the events on the bus.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use palaver_identity::{IdentityConfig, IdentityService};
use palaver_kit::bus::{EventBus, LocalBus, NatsBus, Subscription};
use palaver_kit::grpc::{GrpcChannel, balanced_channel};
use palaver_kit::shutdown::Shutdown;
use palaver_kit::testing::{self, TestDatabase};
use palaver_kit::{Error, ErrorCode};
use palaver_presence::domain::Policy;
use palaver_presence::store::{KvOptions, KvStore};
use palaver_presence::{Backends, PresenceConfig, PresenceService};
use palaver_proto::identity::v1 as idpb;
use palaver_proto::presence::v1 as pb;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

pub type Client = pb::presence_client::PresenceClient<GrpcChannel>;
pub type IdentityClient = idpb::identity_client::IdentityClient<GrpcChannel>;

/// A bound on waits for something that should happen, so a broken build fails
/// instead of hanging; never a speed goal.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Nats,
}

/// Where the replicas of one test keep state and publish.
enum Shared {
    Memory { bus: LocalBus, backends: Backends },
    Nats { url: String, prefix: String },
}

/// One running presence replica.
pub struct Replica {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub name: String,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

/// An identity service and the presence replicas of one test.
pub struct TestPresence {
    pub identity: IdentityClient,
    identity_url: String,
    identity_shutdown: Shutdown,
    shared: Shared,
    policy: Policy,
    replicas: Mutex<Vec<Option<Replica>>>,
    _db: TestDatabase,
}

/// A policy for tests: nothing expires unless a test asks for it, answers from identity
/// are never cached (so a revoked permission shows at once), events coalesce as by
/// default.
pub fn test_policy() -> Policy {
    Policy {
        directory_ttl: Duration::ZERO,
        ..Policy::default()
    }
}

/// Starts identity and one presence replica with the test policy.
pub async fn spawn(backend: Backend) -> TestPresence {
    spawn_with(backend, test_policy()).await
}

/// Starts identity and one presence replica with `policy`.
pub async fn spawn_with(backend: Backend, policy: Policy) -> TestPresence {
    palaver_kit::telemetry::init_for_tests();
    let db = testing::sqlite();
    palaver_identity::migrate(&db.url)
        .await
        .expect("migrations");
    let identity = IdentityService::build(IdentityConfig::ephemeral(&db.url))
        .await
        .expect("identity builds");
    let identity_url = format!("http://{}", identity.grpc_addr());
    let identity_shutdown = Shutdown::new();
    tokio::spawn(identity.run_until_stopped(identity_shutdown.clone()));
    let shared = match backend {
        Backend::Memory => {
            let bus = LocalBus::new();
            let backends = Backends::in_memory(Arc::new(bus.clone()));
            Shared::Memory { bus, backends }
        }
        Backend::Nats => Shared::Nats {
            url: testing::nats_url().await,
            prefix: testing::unique_prefix(),
        },
    };
    let t = TestPresence {
        identity: idpb::identity_client::IdentityClient::new(
            balanced_channel(&identity_url).expect("identity channel"),
        ),
        identity_url,
        identity_shutdown,
        shared,
        policy,
        replicas: Mutex::default(),
        _db: db,
    };
    t.add_replica().await;
    t
}

impl TestPresence {
    /// Starts one more replica on the same state and bus; answers its index.
    pub async fn add_replica(&self) -> usize {
        let backends = match &self.shared {
            Shared::Memory { backends, .. } => backends.clone(),
            Shared::Nats { url, prefix } => Backends::nats(url, prefix, KvOptions::default())
                .await
                .expect("NATS backends"),
        };
        let config = PresenceConfig {
            policy: self.policy.clone(),
            ..PresenceConfig::ephemeral(&self.identity_url)
        };
        let service = PresenceService::build(config, backends)
            .await
            .expect("presence builds");
        let shutdown = Shutdown::new();
        let replica = Replica {
            addr: service.grpc_addr(),
            admin: service.admin_addr(),
            name: service.replica().to_owned(),
            shutdown: shutdown.clone(),
            task: tokio::spawn(service.run_until_stopped(shutdown)),
        };
        let mut replicas = self.replicas.lock().unwrap();
        replicas.push(Some(replica));
        replicas.len() - 1
    }

    /// Stops replica `i` and waits until it has.
    pub async fn kill(&self, i: usize) {
        let replica = self.replicas.lock().unwrap()[i]
            .take()
            .expect("a running replica");
        replica.shutdown.trigger();
        replica
            .task
            .await
            .expect("replica task")
            .expect("replica stops cleanly");
    }

    fn replica<T>(&self, i: usize, f: impl FnOnce(&Replica) -> T) -> T {
        f(self.replicas.lock().unwrap()[i]
            .as_ref()
            .expect("a running replica"))
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.replica(i, |r| r.addr)
    }

    pub fn replica_name(&self, i: usize) -> String {
        self.replica(i, |r| r.name.clone())
    }

    /// A client of replica `i` alone.
    pub fn client_of(&self, i: usize) -> Client {
        let url = format!("http://{}", self.addr(i));
        pb::presence_client::PresenceClient::new(balanced_channel(&url).expect("channel"))
    }

    /// A client of the first replica.
    pub fn client(&self) -> Client {
        self.client_of(0)
    }

    /// The Prometheus text of replica `i`'s admin port (the recorder is the process's,
    /// shared by every replica of the test).
    pub async fn metrics(&self, i: usize) -> String {
        let url = format!("http://{}/metrics", self.replica(i, |r| r.admin));
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    pub async fn readyz(&self, i: usize) -> (u16, serde_json::Value) {
        let url = format!("http://{}/readyz", self.replica(i, |r| r.admin));
        let response = reqwest::get(url).await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The bus the replicas publish on, as another service sees it.
    pub async fn bus(&self) -> Arc<dyn EventBus> {
        match &self.shared {
            Shared::Memory { bus, .. } => Arc::new(bus.clone()),
            Shared::Nats { url, prefix } => {
                Arc::new(NatsBus::connect(url, prefix).await.expect("bus"))
            }
        }
    }

    /// The test's key-value bucket, as the replicas on NATS use it.
    pub async fn kv_store(&self) -> KvStore {
        let Shared::Nats { url, prefix } = &self.shared else {
            panic!("only replicas on NATS have a bucket");
        };
        let client = async_nats::connect(url).await.expect("NATS");
        KvStore::open(
            async_nats::jetstream::new(client),
            prefix,
            KvOptions::default(),
        )
        .await
        .expect("bucket")
    }

    /// Every presence event of a member from now on.
    pub async fn events(&self, app_id: &str, member_id: &str) -> Events {
        let subscription = self
            .bus()
            .await
            .subscribe(&format!("{app_id}.presence.{member_id}"))
            .await
            .expect("subscribe");
        Events(subscription)
    }

    /// A new app.
    pub async fn app(&self) -> String {
        self.identity
            .clone()
            .create_app(idpb::CreateAppRequest {
                name: "Example Site".into(),
                origins: vec!["https://example.org".into()],
                privacy_url: "https://example.org/privacy".into(),
                logo_url: String::new(),
                return_urls: vec!["https://example.org/account/palaver".into()],
                retention_days: 90,
                limits: None,
            })
            .await
            .expect("create app")
            .into_inner()
            .app
            .expect("app")
            .app_id
    }

    /// A new member of the app named `Member <external_id>`; answers their member id.
    pub async fn member(&self, app_id: &str, external_id: &str) -> String {
        self.identity
            .clone()
            .create_member(idpb::CreateMemberRequest {
                app_id: app_id.into(),
                external_id: external_id.into(),
                display_name: format!("Member {external_id}"),
                email: String::new(),
            })
            .await
            .expect("create member")
            .into_inner()
            .member_id
    }

    /// Runs the consent flow (request, approve, exchange the code) for a member;
    /// answers their chat endpoint, now open.
    pub async fn grant(&self, app_id: &str, external_id: &str) -> String {
        let verifier = format!("verifier-{}", testing::unique_prefix().repeat(4));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut identity = self.identity.clone();
        let request = identity
            .create_consent_request(idpb::CreateConsentRequestRequest {
                app_id: app_id.into(),
                external_id: external_id.into(),
                return_url: "https://example.org/account/palaver".into(),
                state: "state-1".into(),
                code_challenge: challenge,
                code_challenge_method: "S256".into(),
            })
            .await
            .expect("consent request")
            .into_inner();
        let redirect = identity
            .decide_consent(idpb::DecideConsentRequest {
                request: request.request,
                approve: true,
                csrf_token: request.csrf_token,
            })
            .await
            .expect("approve")
            .into_inner()
            .redirect_url;
        let code = url::Url::parse(&redirect)
            .expect("redirect URL")
            .query_pairs()
            .find(|(name, _)| name == "code")
            .map(|(_, value)| value.into_owned())
            .expect("a code in the redirect");
        identity
            .exchange_authorization_code(idpb::ExchangeAuthorizationCodeRequest {
                app_id: app_id.into(),
                code,
                code_verifier: verifier,
                redirect_uri: String::new(),
            })
            .await
            .expect("exchange code")
            .into_inner()
            .endpoint
    }

    /// Revokes the member's permission token: their endpoint closes.
    pub async fn revoke(&self, app_id: &str, external_id: &str) {
        self.identity
            .clone()
            .revoke_permission(idpb::RevokePermissionRequest {
                app_id: app_id.into(),
                external_id: external_id.into(),
            })
            .await
            .expect("revoke");
    }

    /// An app with one member who holds a permission token: `(app_id, member_id,
    /// endpoint)`.
    pub async fn owner(&self) -> (String, String, String) {
        let app_id = self.app().await;
        let member_id = self.member(&app_id, "owner").await;
        let endpoint = self.grant(&app_id, "owner").await;
        (app_id, member_id, endpoint)
    }
}

impl Drop for TestPresence {
    fn drop(&mut self) {
        for replica in self.replicas.lock().unwrap().iter().flatten() {
            replica.shutdown.trigger();
        }
        self.identity_shutdown.trigger();
        let Shared::Nats { url, prefix } = &self.shared else {
            return;
        };
        let (url, prefix) = (url.clone(), prefix.clone());
        // A thread with a runtime of its own, since the test's runtime may be shutting
        // down; waited for, since the test process exits right after.
        let cleaner = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(client) = async_nats::connect(&url).await {
                    let jetstream = async_nats::jetstream::new(client);
                    let upper = prefix.to_uppercase();
                    let _ = jetstream
                        .delete_stream(format!("KV_{upper}_PRESENCE"))
                        .await;
                    let _ = jetstream.delete_stream(format!("{upper}_EVENTS")).await;
                }
            });
        });
        let _ = cleaner.join();
    }
}

/// A member's presence events as they arrive on the bus.
pub struct Events(Subscription);

impl Events {
    pub async fn next(&mut self) -> pb::MemberPresence {
        let event = tokio::time::timeout(HANG_GUARD, self.0.next())
            .await
            .expect("an event before the hang guard")
            .expect("the subscription is open");
        let changed = <palaver_proto::events::v1::PresenceChanged as prost::Message>::decode(
            event.payload.as_ref(),
        )
        .expect("a PresenceChanged");
        changed.presence.expect("a presence")
    }

    /// The next event showing `status`, with the ones before it.
    pub async fn until(&mut self, status: pb::Status) -> Vec<pb::MemberPresence> {
        let mut seen = Vec::new();
        loop {
            let presence = self.next().await;
            let done = presence.status() == status;
            seen.push(presence);
            if done {
                return seen;
            }
        }
    }
}

pub fn device(app_id: &str, member_id: &str, device_id: &str) -> pb::Device {
    pb::Device {
        app_id: app_id.into(),
        member_id: member_id.into(),
        device_id: device_id.into(),
    }
}

pub fn by_member(member_id: &str) -> pb::Target {
    pb::Target {
        target: Some(pb::target::Target::MemberId(member_id.into())),
    }
}

pub fn by_endpoint(endpoint: &str) -> pb::Target {
    pb::Target {
        target: Some(pb::target::Target::Endpoint(endpoint.into())),
    }
}

pub async fn set_status(
    client: &mut Client,
    device: pb::Device,
    status: pb::Status,
) -> Result<pb::MemberPresence, tonic::Status> {
    client
        .set_status(pb::SetStatusRequest {
            device: Some(device),
            status: status as i32,
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn get(
    client: &mut Client,
    app_id: &str,
    target: pb::Target,
) -> Result<pb::MemberPresence, tonic::Status> {
    client
        .get(pb::GetRequest {
            app_id: app_id.into(),
            target: Some(target),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The error code a failed call carried.
pub fn code_of<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> ErrorCode {
    Error::from_status(&result.expect_err("the call should fail")).code
}

/// Runs one async test body against each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let t = $crate::helpers::spawn($crate::helpers::Backend::Memory).await;
                ($body)(t).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats() {
                let t = $crate::helpers::spawn($crate::helpers::Backend::Nats).await;
                ($body)(t).await;
            }
        }
    };
}

/// A value of the Prometheus text `metrics` for a metric without labels.
pub fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// Waits until replica `i` reports `value` for the metric `name`.
pub async fn wait_for_metric(t: &TestPresence, i: usize, name: &str, value: f64) {
    let waiting = async {
        loop {
            if metric(&t.metrics(i).await, name) == Some(value) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, waiting)
        .await
        .unwrap_or_else(|_| panic!("{name} never became {value}"));
}

/// The next message of a watch stream.
pub async fn next_watched(
    stream: &mut tonic::Streaming<pb::MemberPresence>,
) -> Result<pb::MemberPresence, tonic::Status> {
    tokio::time::timeout(HANG_GUARD, stream.message())
        .await
        .expect("a message before the hang guard")
        .map(|message| message.expect("the stream is open"))
}
