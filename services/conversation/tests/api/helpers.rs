//! Spawns a real identity service and a real conversation service on port 0, each on a
//! fresh database of the chosen backend, and hands tests gRPC clients, a direct view of
//! the conversation database, and the chat set-up every test needs (an app, a member
//! with a chat endpoint, visitors).

use std::sync::Arc;
use std::time::Duration;

use palaver_conversation::domain::Clock;
use palaver_conversation::proto::encode_event;
use palaver_conversation::service::Conversations;
use palaver_conversation::store::Store;
use palaver_conversation::{ConversationConfig, ConversationService};
pub use palaver_identity::testing::TestIdentity;
use palaver_identity::testing::example_app;
use palaver_kit::bus::{Event, EventBus, LocalBus, Subscription};
use palaver_kit::db::Database;
use palaver_kit::grpc::{GrpcChannel, balanced_channel};
use palaver_kit::shutdown::Shutdown;
use palaver_kit::testing::{self, TestDatabase};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as pb;
use palaver_proto::identity::v1 as id;
use pb::conversations_client::ConversationsClient;

pub type Client = ConversationsClient<GrpcChannel>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

async fn database(backend: Backend) -> TestDatabase {
    match backend {
        Backend::Postgres => testing::postgres().await,
        Backend::Sqlite => testing::sqlite(),
    }
}

/// Identity on a fresh database of `backend`.
pub async fn spawn_identity(backend: Backend) -> TestIdentity {
    TestIdentity::spawn(database(backend).await).await
}

/// A running conversation service, and what its tests need around it.
pub struct TestConversation {
    pub client: Client,
    pub identity: Arc<TestIdentity>,
    pub clock: Clock,
    /// The conversation database, as the service sees it.
    pub store: Store,
    pub bus: Arc<dyn EventBus>,
    pub admin: std::net::SocketAddr,
    /// The service's domain, to run its periodic jobs on demand.
    pub conversations: Arc<Conversations>,
    running: Option<Running>,
    _db: Arc<TestDatabase>,
}

struct Running {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for TestConversation {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown.trigger();
        }
    }
}

/// A conversation service on a fresh database with an in-process bus.
pub async fn spawn(backend: Backend) -> TestConversation {
    let bus = LocalBus::new()
        .with_prefix(&testing::unique_prefix())
        .unwrap();
    spawn_with(backend, Arc::new(bus)).await
}

/// A conversation service on a fresh database, publishing on `bus`.
pub async fn spawn_with(backend: Backend, bus: Arc<dyn EventBus>) -> TestConversation {
    let identity = Arc::new(spawn_identity(backend).await);
    let db = Arc::new(database(backend).await);
    palaver_conversation::migrate(&db.url)
        .await
        .expect("conversation migrations");
    start(identity, db, bus, Clock::default()).await
}

async fn start(
    identity: Arc<TestIdentity>,
    db: Arc<TestDatabase>,
    bus: Arc<dyn EventBus>,
    clock: Clock,
) -> TestConversation {
    let config = ConversationConfig::ephemeral(&db.url, &identity.url);
    let service = ConversationService::build_with_clock(config, bus.clone(), clock.clone())
        .await
        .expect("conversation builds");
    let url = format!("http://{}", service.grpc_addr());
    let admin = service.admin_addr();
    let conversations = service.conversations();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(service.run_until_stopped(shutdown.clone()));
    let store = Store::new(Database::connect(&db.url).await.unwrap(), encode_event);
    TestConversation {
        client: ConversationsClient::new(balanced_channel(&url).unwrap()),
        identity,
        clock,
        store,
        bus,
        admin,
        conversations,
        running: Some(Running { shutdown, task }),
        _db: db,
    }
}

/// A conversation database, migrated, with no service on it yet.
pub async fn database_only(backend: Backend) -> (Arc<TestDatabase>, Store) {
    let db = Arc::new(database(backend).await);
    palaver_conversation::migrate(&db.url)
        .await
        .expect("conversation migrations");
    let store = Store::new(Database::connect(&db.url).await.unwrap(), encode_event);
    (db, store)
}

/// A conversation service on an existing database (see [`database_only`]).
pub async fn spawn_on(
    identity: Arc<TestIdentity>,
    db: Arc<TestDatabase>,
    bus: Arc<dyn EventBus>,
) -> TestConversation {
    start(identity, db, bus, Clock::default()).await
}

/// Counts of what the conversation database holds (events leave the outbox once
/// published: see [`TestConversation::events`] for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub conversations: i64,
    pub messages: i64,
    pub offline_messages: i64,
    pub blocks: i64,
}

impl TestConversation {
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Stops the service and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.trigger();
            tokio::time::timeout(Duration::from_secs(30), running.task)
                .await
                .expect("the service stops")
                .unwrap()
                .unwrap();
        }
    }

    /// What the database holds now.
    pub async fn counts(&self) -> Counts {
        let pool = self.store.database().pool();
        let count = |table: &'static str| async move {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(pool)
                .await
                .unwrap();
            n
        };
        Counts {
            conversations: count("conversations").await,
            messages: count("messages").await,
            offline_messages: count("offline_messages").await,
            blocks: count("blocked_visitors").await,
        }
    }

    /// A new app; `open_conversations_per_visitor` 0 keeps the deployment's default.
    pub async fn app(&self, retention_days: u32, open_conversations_per_visitor: u32) -> String {
        let app = self.identity.create_app(id::CreateAppRequest {
            retention_days,
            limits: Some(id::Limits {
                open_conversations_per_visitor,
                ..Default::default()
            }),
            ..example_app()
        });
        app.await.app.expect("app").app_id
    }

    /// A member with a permission token: their member id and open chat endpoint.
    pub async fn member(&self, app_id: &str, external_id: &str) -> (String, String) {
        let member = self.identity.member(app_id, external_id).await;
        let token = self.identity.grant(app_id, external_id).await;
        (member.member_id, token.endpoint)
    }

    /// Revokes a member's permission: their endpoint closes.
    pub async fn revoke(&self, app_id: &str, external_id: &str) {
        self.identity.revoke(app_id, external_id).await;
    }

    /// An anonymous visitor session from identity, as the gateway's caller.
    pub async fn visitor(&self, app_id: &str, endpoint: &str, name: &str) -> pb::Caller {
        let session = self
            .identity
            .client
            .clone()
            .create_visitor_session(id::CreateVisitorSessionRequest {
                app_id: app_id.into(),
                endpoint: endpoint.into(),
                who: Some(id::create_visitor_session_request::Who::DisplayName(
                    name.into(),
                )),
            })
            .await
            .expect("visitor session")
            .into_inner();
        let visitor = session.visitor.unwrap();
        pb::Caller {
            app_id: app_id.into(),
            who: Some(pb::caller::Who::VisitorId(visitor.visitor_id)),
            display_name: visitor.display_name,
            verified: false,
            external_id: String::new(),
            visitor_member_id: String::new(),
        }
    }

    /// A chat: an app, its member "owner" with an open endpoint, a visitor, and their
    /// conversation.
    pub async fn chat(&self) -> Chat {
        let app_id = self.app(90, 0).await;
        let (member_id, endpoint) = self.member(&app_id, "owner").await;
        let visitor = self.visitor(&app_id, &endpoint, "Curious Visitor").await;
        let conversation = self.start(&visitor, &endpoint).await.expect("start");
        Chat {
            member: member_caller(&app_id, &member_id),
            app_id,
            member_id,
            endpoint,
            visitor,
            conversation,
        }
    }

    pub async fn start(
        &self,
        caller: &pb::Caller,
        endpoint: &str,
    ) -> Result<pb::Conversation, Error> {
        self.client()
            .start_conversation(pb::StartConversationRequest {
                caller: Some(caller.clone()),
                endpoint: endpoint.into(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }

    pub async fn send(
        &self,
        caller: &pb::Caller,
        conversation_id: &str,
        client_id: &str,
        text: &str,
    ) -> Result<pb::SendMessageResponse, Error> {
        send(&mut self.client(), caller, conversation_id, client_id, text).await
    }

    pub async fn messages(
        &self,
        caller: &pb::Caller,
        conversation_id: &str,
        page: Option<pb::list_messages_request::Page>,
        limit: u32,
    ) -> Result<pb::ListMessagesResponse, Error> {
        self.client()
            .list_messages(pb::ListMessagesRequest {
                caller: Some(caller.clone()),
                conversation_id: conversation_id.into(),
                page,
                limit,
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }

    pub async fn get(
        &self,
        caller: &pb::Caller,
        conversation_id: &str,
    ) -> Result<pb::Conversation, Error> {
        self.client()
            .get_conversation(pb::GetConversationRequest {
                caller: Some(caller.clone()),
                conversation_id: conversation_id.into(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }

    pub async fn close(
        &self,
        caller: &pb::Caller,
        conversation_id: &str,
    ) -> Result<pb::Conversation, Error> {
        self.client()
            .close(pb::CloseRequest {
                caller: Some(caller.clone()),
                conversation_id: conversation_id.into(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }

    /// Every event published from now on.
    pub async fn events(&self) -> Subscription {
        self.bus.subscribe(">").await.unwrap()
    }

    /// Waits until the relay has published every event in the outbox.
    pub async fn relayed(&self) {
        testing::eventually("the relay to empty the outbox", || async {
            match self.store.outbox_backlog().await.unwrap() {
                (0, _) => Ok(()),
                (waiting, _) => Err(format!("{waiting} events wait")),
            }
        })
        .await
    }
}

pub async fn send(
    client: &mut Client,
    caller: &pb::Caller,
    conversation_id: &str,
    client_id: &str,
    text: &str,
) -> Result<pb::SendMessageResponse, Error> {
    client
        .send_message(pb::SendMessageRequest {
            caller: Some(caller.clone()),
            conversation_id: conversation_id.into(),
            client_id: client_id.into(),
            text: text.into(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| Error::from_status(&s))
}

/// An app, a member with an open endpoint, a visitor and their open conversation.
pub struct Chat {
    pub app_id: String,
    pub member_id: String,
    pub endpoint: String,
    pub visitor: pb::Caller,
    pub member: pb::Caller,
    pub conversation: pb::Conversation,
}

pub fn member_caller(app_id: &str, member_id: &str) -> pb::Caller {
    pb::Caller {
        app_id: app_id.into(),
        who: Some(pb::caller::Who::MemberId(member_id.into())),
        ..Default::default()
    }
}

/// The app itself (the CMS API).
pub fn app_caller(app_id: &str) -> pb::Caller {
    pb::Caller {
        app_id: app_id.into(),
        ..Default::default()
    }
}

/// The next event of a subscription.
pub async fn next_event(subscription: &mut Subscription) -> Event {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an event within 10 s")
        .expect("the subscription is open")
}

/// The message a `created` message event carries.
pub fn created_message(event: &Event) -> pb::Message {
    use prost::Message as _;
    let event = palaver_proto::events::v1::MessageEvent::decode(event.payload.clone())
        .expect("a message event");
    match event.kind {
        Some(palaver_proto::events::v1::message_event::Kind::Created(message)) => message,
        other => panic!("not a created message: {other:?}"),
    }
}

/// The code of a failed call.
pub fn code<T: std::fmt::Debug>(result: Result<T, Error>) -> ErrorCode {
    result.expect_err("the call should fail").code
}

/// Runs one async test body against each SQL backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        palaver_kit::on_each_backend!($name, [postgres: Postgres, sqlite: Sqlite], $body);
    };
}
