//! Spawns the services behind a gateway (identity and conversation on fresh PostgreSQL
//! databases, presence on NATS, all on one fresh NATS prefix) and a real gateway in
//! front of them, all on port 0, and drives the gateway over HTTP and WebSocket.

use std::net::SocketAddr;
use std::sync::Arc;

use palaver_conversation::{ConversationConfig, ConversationService};
use palaver_gateway::{GatewayConfig, GatewayService, ServiceUrls};
pub use palaver_identity::testing::TestIdentity;
use palaver_kit::bus::{EventBus, NatsBus};
use palaver_kit::config::SecretString;
use palaver_kit::db::Database;
use palaver_kit::grpc::{GrpcChannel, balanced_channel};
use palaver_kit::shutdown::Shutdown;
use palaver_kit::testing::{self, TestDatabase};
pub use palaver_kit::testing::{Pkce, query_param};
use palaver_kit::tokens::TokenVerifier;
use palaver_presence::{Backends, PresenceConfig, PresenceService};
use palaver_proto::conversation::v1::conversations_client::ConversationsClient;
use palaver_proto::identity::v1 as pb;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The origin every test app allows.
pub const SITE: &str = "https://example.org";
pub const RETURN_URL: &str = "https://example.org/account/palaver";

pub struct TestGateway {
    /// `http://127.0.0.1:<port>`, also the gateway's public URL.
    pub base: String,
    pub admin: SocketAddr,
    /// identity, for what the tests do beside the gateway (the consent page) and its
    /// clock, which a test shifts to age consent requests and tokens.
    pub identity: TestIdentity,
    pub http: reqwest::Client,
    pub gateway_task: JoinHandle<anyhow::Result<()>>,
    pub gateway_shutdown: Shutdown,
    /// Stops presence, conversation and every further gateway.
    pub others_shutdown: Shutdown,
    /// The services behind the gateway, for a second gateway in front of them.
    pub urls: ServiceUrls,
    /// The bus every service of this test shares.
    pub bus: Arc<dyn EventBus>,
    nats_url: String,
    prefix: String,
    _conversation_db: TestDatabase,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.gateway_shutdown.trigger();
        self.others_shutdown.trigger();
    }
}

/// The services and a gateway with the test defaults.
pub async fn spawn() -> TestGateway {
    spawn_with(|_| {}).await
}

/// The services and a gateway whose configuration `configure` adjusts.
pub async fn spawn_with(configure: impl FnOnce(&mut GatewayConfig)) -> TestGateway {
    spawn_configured(configure, |_| {}).await
}

/// The services and a gateway whose configurations `gateway` and `presence` adjust.
pub async fn spawn_configured(
    configure: impl FnOnce(&mut GatewayConfig),
    presence: impl FnOnce(&mut PresenceConfig),
) -> TestGateway {
    let identity = TestIdentity::spawn(testing::postgres().await).await;
    let identity_url = identity.url.clone();

    let nats_url = testing::nats_url().await;
    let prefix = testing::unique_prefix();
    let bus: Arc<dyn EventBus> = Arc::new(
        NatsBus::connect(&nats_url, &prefix)
            .await
            .expect("the bus connects"),
    );
    let others_shutdown = Shutdown::new();
    let backends = Backends::nats(&nats_url, &prefix, Default::default())
        .await
        .expect("presence backends");
    let mut presence_config = PresenceConfig::ephemeral(&identity_url);
    presence(&mut presence_config);
    let presence = PresenceService::build(presence_config, backends)
        .await
        .expect("presence builds");
    let presence_url = format!("http://{}", presence.grpc_addr());
    tokio::spawn(presence.run_until_stopped(others_shutdown.clone()));

    let conversation_db = testing::postgres().await;
    palaver_conversation::migrate(&conversation_db.url)
        .await
        .expect("conversation migrations");
    let conversation = ConversationService::build(
        ConversationConfig::ephemeral(&conversation_db.url, &identity_url),
        bus.clone(),
    )
    .await
    .expect("conversation builds");
    let conversation_url = format!("http://{}", conversation.grpc_addr());
    tokio::spawn(conversation.run_until_stopped(others_shutdown.clone()));

    let urls = ServiceUrls {
        identity: identity_url.clone(),
        presence: presence_url,
        conversation: conversation_url,
    };
    let mut config = GatewayConfig::ephemeral(urls.clone(), SecretString::from(ADMIN_TOKEN));
    configure(&mut config);
    let gateway = GatewayService::build(config, bus.clone())
        .await
        .expect("gateway builds");
    let base = format!("http://{}", gateway.http_addr());
    let admin = gateway.admin_addr();
    let gateway_shutdown = Shutdown::new();
    let gateway_task = tokio::spawn(gateway.run_until_stopped(gateway_shutdown.clone()));
    TestGateway {
        base,
        admin,
        identity,
        http: reqwest::Client::new(),
        gateway_task,
        gateway_shutdown,
        others_shutdown,
        urls,
        bus,
        nats_url,
        prefix,
        _conversation_db: conversation_db,
    }
}

/// An app as the admin API created it.
#[derive(Debug, Clone)]
pub struct App {
    pub app_id: String,
    pub api_secret: String,
    pub identity_key: String,
    pub identity_key_id: String,
}

impl TestGateway {
    /// Another gateway process in front of the same services, on a NATS connection of
    /// its own; answers its base URL. It stops with the test.
    pub async fn second_gateway(&self) -> String {
        let bus = NatsBus::connect(&self.nats_url, &self.prefix)
            .await
            .expect("the bus connects");
        let config = GatewayConfig::ephemeral(self.urls.clone(), SecretString::from(ADMIN_TOKEN));
        let gateway = GatewayService::build(config, Arc::new(bus))
            .await
            .expect("gateway builds");
        let base = format!("http://{}", gateway.http_addr());
        tokio::spawn(gateway.run_until_stopped(self.others_shutdown.clone()));
        base
    }

    /// A WebSocket to this gateway, from a page at `origin` (none: a native client).
    pub async fn ws(&self, origin: Option<&str>) -> Ws {
        Ws::connect(&self.base, origin).await
    }

    /// A number from the gateway's `/metrics`, 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The conversation service over gRPC, for what the tests check behind the gateway.
    pub fn conversation(&self) -> ConversationsClient<GrpcChannel> {
        ConversationsClient::new(balanced_channel(&self.urls.conversation).expect("channel"))
    }

    /// An app with one member (`owner`) holding a valid permission token: the app,
    /// the chat endpoint and the member's id.
    pub async fn open_chat(&self, extra: Value) -> (App, String, String) {
        let app = self.create_app_with(extra).await;
        let granted = self.granted_member(&app, "owner").await;
        let member = self
            .cms(&app, Method::GET, "/v1/cms/members/owner")
            .send()
            .await
            .unwrap();
        let member = json_of(member, StatusCode::OK).await;
        (
            app,
            granted["endpoint"].as_str().unwrap().to_owned(),
            member["member_id"].as_str().unwrap().to_owned(),
        )
    }

    /// An anonymous visitor's session token on `endpoint`.
    pub async fn visitor_token(&self, app: &App, endpoint: &str, name: &str) -> String {
        let response = self
            .visitor_session(
                Some(SITE),
                json!({"app_id": app.app_id, "endpoint": endpoint, "display_name": name}),
            )
            .send()
            .await
            .unwrap();
        json_of(response, StatusCode::CREATED).await["session_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Verifies access tokens against identity's keys, as every service does.
    pub fn verifier(&self) -> TokenVerifier {
        self.identity.verifier()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// A visitor leaves `message` (`{"session_token","text","email"?}`) for the member
    /// behind `endpoint`, from the app's site.
    pub async fn leave_offline_message(&self, endpoint: &str, message: Value) -> reqwest::Response {
        self.request(
            Method::POST,
            &format!("/v1/endpoints/{endpoint}/offline-messages"),
        )
        .header("origin", SITE)
        .json(&message)
        .send()
        .await
        .unwrap()
    }

    /// A request with the admin token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(ADMIN_TOKEN)
    }

    /// A request with an app's API secret.
    /// The member's permission, as the profile checkbox reads it.
    pub async fn permission(&self, app: &App, external_id: &str) -> serde_json::Value {
        let path = format!("/v1/cms/members/{external_id}/permission");
        json_of(
            self.cms(app, Method::GET, &path).send().await.unwrap(),
            reqwest::StatusCode::OK,
        )
        .await
    }

    /// A visitor's socket with a conversation open on `endpoint` and one message sent
    /// (client id `c1`): the socket and the conversation id.
    pub async fn visitor_chat(&self, token: &str, endpoint: &str) -> (Ws, String) {
        let mut visitor = self.ws(Some(SITE)).await;
        visitor.hello(token).await;
        visitor
            .send(serde_json::json!({"type": "conversation.open", "endpoint": endpoint}))
            .await;
        let opened = visitor.until("conversation", |_| true).await;
        let id = opened["id"].as_str().unwrap().to_owned();
        visitor
            .send(serde_json::json!({"type": "message.send", "conversation": id, "client_id": "c1", "text": "Hello there"}))
            .await;
        visitor
            .until("message.ack", |f| f["client_id"] == "c1")
            .await;
        (visitor, id)
    }

    pub fn cms(&self, app: &App, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(&app.api_secret)
    }

    /// Registers an app through the admin API, with `extra` merged into the body.
    pub async fn create_app_with(&self, extra: Value) -> App {
        let mut body = json!({
            "name": "Example Site",
            "origins": [SITE],
            "privacy_url": "https://example.org/privacy",
            "logo_url": "https://example.org/logo.png",
            "return_urls": [RETURN_URL],
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let response = self
            .admin(Method::POST, "/v1/admin/apps")
            .json(&body)
            .send()
            .await
            .unwrap();
        let created = json_of(response, StatusCode::CREATED).await;
        let field = |name: &str| created[name].as_str().expect(name).to_owned();
        App {
            app_id: field("app_id"),
            api_secret: field("api_secret"),
            identity_key: field("identity_key"),
            identity_key_id: field("identity_key_id"),
        }
    }

    pub async fn create_app(&self) -> App {
        self.create_app_with(json!({})).await
    }

    /// Creates a member through the CMS API.
    pub async fn create_member(&self, app: &App, external_id: &str) -> Value {
        let response = self
            .cms(app, Method::POST, "/v1/cms/members")
            .json(&json!({"external_id": external_id, "display_name": format!("Member {external_id}")}))
            .send()
            .await
            .unwrap();
        json_of(response, StatusCode::CREATED).await
    }

    /// Asks for consent through the CMS API; answers the consent URL.
    pub async fn consent_url(&self, app: &App, external_id: &str, pkce: &Pkce) -> String {
        let response = self
            .cms(
                app,
                Method::POST,
                &format!("/v1/cms/members/{external_id}/consent-requests"),
            )
            .json(&json!({
                "return_url": RETURN_URL,
                "state": "state-123",
                "code_challenge": pkce.challenge,
                "code_challenge_method": "S256",
            }))
            .send()
            .await
            .unwrap();
        let body = json_of(response, StatusCode::CREATED).await;
        assert!(body["expires_at"].as_str().is_some(), "{body}");
        body["consent_url"].as_str().unwrap().to_owned()
    }

    /// What the consent page does when the member clicks Approve (or Deny): answers the
    /// URL the member is sent back to.
    pub async fn decide(&self, consent_url: &str, approve: bool) -> String {
        let request = query_param(consent_url, "request").expect("request in the consent URL");
        let mut identity = self.identity.client();
        let shown = identity
            .get_consent_request(pb::GetConsentRequestRequest {
                request: request.clone(),
            })
            .await
            .expect("the consent request")
            .into_inner();
        identity
            .decide_consent(pb::DecideConsentRequest {
                request,
                approve,
                csrf_token: shown.csrf_token,
            })
            .await
            .expect("the decision")
            .into_inner()
            .redirect_url
    }

    /// The code of an approved consent request, and its PKCE verifier.
    pub async fn approved_code(&self, app: &App, external_id: &str) -> (String, Pkce) {
        let pkce = Pkce::generate();
        let consent_url = self.consent_url(app, external_id, &pkce).await;
        let back = self.decide(&consent_url, true).await;
        (query_param(&back, "code").expect("a code"), pkce)
    }

    /// POSTs a form to the token endpoint with the app's API secret.
    pub async fn token_form(&self, app: &App, form: &[(&str, &str)]) -> Response {
        self.cms(app, Method::POST, "/v1/cms/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// A member with a valid permission token: the token response.
    pub async fn granted_member(&self, app: &App, external_id: &str) -> Value {
        self.create_member(app, external_id).await;
        self.grant(app, external_id).await
    }

    /// A new permission token for an existing member: the token response.
    pub async fn grant(&self, app: &App, external_id: &str) -> Value {
        let (code, pkce) = self.approved_code(app, external_id).await;
        let response = self
            .token_form(
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("code_verifier", &pkce.verifier),
                ],
            )
            .await;
        json_of(response, StatusCode::OK).await
    }

    /// An operator access token for a member, through a login link.
    pub async fn operator_token(&self, app: &App, external_id: &str) -> String {
        let response = self
            .cms(
                app,
                Method::POST,
                &format!("/v1/cms/members/{external_id}/login-links"),
            )
            .send()
            .await
            .unwrap();
        let link = json_of(response, StatusCode::CREATED).await;
        let token = query_param(link["url"].as_str().unwrap(), "token").unwrap();
        let response = self
            .request(Method::POST, "/v1/operator-sessions")
            .json(&json!({ "login_token": token }))
            .send()
            .await
            .unwrap();
        json_of(response, StatusCode::CREATED).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A visitor-session request from a page at `origin`.
    pub fn visitor_session(&self, origin: Option<&str>, body: Value) -> RequestBuilder {
        let request = self
            .request(Method::POST, "/v1/visitor-sessions")
            .json(&body);
        match origin {
            Some(origin) => request.header("origin", origin),
            None => request,
        }
    }

    /// The number of rows in one of identity's tables: what a refused request must not
    /// have changed.
    pub async fn count(&self, table: &str) -> i64 {
        let db = Database::connect(self.identity.database_url())
            .await
            .expect("database");
        sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(db.pool())
            .await
            .expect("count")
    }
}

/// The JSON body of a response that must have `status`.
pub async fn json_of(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a problem+json answer with `status` and `code`; answers the problem.
pub async fn problem(response: Response, status: StatusCode, code: &str) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = json_of(response, status).await;
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// How long a test waits for a frame the gateway must send: a guard against hanging,
/// not a timing assertion.
const FRAME_GUARD: Duration = Duration::from_secs(20);

/// A WebSocket client speaking Palaver's JSON frames.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects to `base`'s `/v1/ws`, sending `origin` as the `Origin` header.
    pub async fn connect(base: &str, origin: Option<&str>) -> Ws {
        Ws::connect_over(base, origin, None).await
    }

    /// Connects with a socket receive buffer of `recv_buffer` bytes (a client that
    /// reads slowly fills up sooner).
    pub async fn connect_over(base: &str, origin: Option<&str>, recv_buffer: Option<u32>) -> Ws {
        let url = format!("{}/v1/ws", base.replacen("http://", "ws://", 1));
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let tcp = socket.connect(addr).await.unwrap();
        let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .expect("the WebSocket upgrade");
        Ws { stream }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(WsMessage::text(frame.to_string()))
            .await
            .unwrap();
    }

    /// Sends a JSON frame the gateway may cut off halfway (it closes on oversized
    /// frames).
    pub async fn send_or_cut(&mut self, frame: Value) {
        let _ = self.stream.send(WsMessage::text(frame.to_string())).await;
    }

    /// Sends a raw frame.
    pub async fn send_raw(&mut self, frame: WsMessage) {
        self.stream.send(frame).await.unwrap();
    }

    /// The next JSON frame; `None` once the server closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(FRAME_GUARD, self.stream.next())
                .await
                .expect("a frame from the gateway");
            match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).unwrap());
                }
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next frame, which must exist.
    pub async fn frame(&mut self) -> Value {
        self.next().await.expect("the socket is open")
    }

    /// Skips frames until one of `kind` for which `matches` holds; answers it.
    pub async fn until(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["type"] == kind && matches(&frame) {
                return frame;
            }
        }
    }

    /// Says hello with `token`; answers the welcome.
    pub async fn hello(&mut self, token: &str) -> Value {
        self.send(json!({"type": "hello", "token": token})).await;
        let welcome = self.frame().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        welcome
    }

    /// Every frame until the answer to a ping: what the gateway had sent before it.
    pub async fn drain(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        let mut frames = Vec::new();
        loop {
            let frame = self.frame().await;
            if frame["type"] == "pong" {
                return frames;
            }
            frames.push(frame);
        }
    }

    /// Reads until the gateway closes the socket, skipping any frames before; answers
    /// the code of its close frame (`None`: closed without one).
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = tokio::time::timeout(FRAME_GUARD, self.stream.next())
                .await
                .expect("the gateway closes the socket");
            match frame {
                Some(Ok(WsMessage::Close(close))) => return close.map(|c| u16::from(c.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Asserts that the gateway sends an error with `code` and closes the socket.
    pub async fn refused(&mut self, code: &str) {
        let frame = self.frame().await;
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], code, "{frame}");
        assert!(self.next().await.is_none(), "the socket closes");
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_GUARD, self.stream.next()).await {}
    }
}
