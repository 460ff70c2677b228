//! Spawns the real thing: an identity service on a fresh SQLite database, and presence
//! replicas on port 0 either on NATS (a fresh subject prefix, stream and bucket per
//! test, removed afterwards) or in memory (an in-process bus). Tests talk to them over
//! gRPC and watch the events on the bus.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use palaver_identity::testing::TestIdentity;
use palaver_kit::bus::{EventBus, LocalBus, NatsBus, Subject, Subscription};
use palaver_kit::grpc::{GrpcChannel, balanced_channel};
use palaver_kit::shutdown::Shutdown;
use palaver_kit::testing;
use palaver_kit::{Error, ErrorCode};
use palaver_presence::domain::Policy;
use palaver_presence::store::{KvOptions, KvStore};
use palaver_presence::{Backends, PresenceConfig, PresenceService};
use palaver_proto::presence::v1 as pb;
use tokio::task::JoinHandle;

pub type Client = pb::presence_client::PresenceClient<GrpcChannel>;

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
    pub identity: TestIdentity,
    shared: Shared,
    policy: Policy,
    replicas: Mutex<Vec<Option<Replica>>>,
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
    let identity = TestIdentity::spawn(testing::sqlite()).await;
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
        identity,
        shared,
        policy,
        replicas: Mutex::default(),
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
            ..PresenceConfig::ephemeral(&self.identity.url)
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
    /// shared by every replica of every test in it, but for its instance gauges).
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
            .subscribe(&Subject::presence(app_id, member_id).to_string())
            .await
            .expect("subscribe");
        Events(subscription)
    }

    /// A new app.
    pub async fn app(&self) -> String {
        self.identity.app().await.app.expect("app").app_id
    }

    /// A new member of the app named `Member <external_id>`; answers their member id.
    pub async fn member(&self, app_id: &str, external_id: &str) -> String {
        self.identity.member(app_id, external_id).await.member_id
    }

    /// Runs the consent flow (request, approve, exchange the code) for a member;
    /// answers their chat endpoint, now open.
    pub async fn grant(&self, app_id: &str, external_id: &str) -> String {
        self.identity.grant(app_id, external_id).await.endpoint
    }

    /// Revokes the member's permission token: their endpoint closes.
    pub async fn revoke(&self, app_id: &str, external_id: &str) {
        self.identity.revoke(app_id, external_id).await;
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
        palaver_kit::on_each_backend!($name, [memory: Memory, nats: Nats], $body);
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
    testing::eventually(&format!("{name} to become {value}"), || async {
        match metric(&t.metrics(i).await, name) {
            Some(seen) if seen == value => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    })
    .await
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
