//! Spawns a real identity service on port 0 against a fresh database and hands tests a
//! gRPC client, the service's clock and a token verifier.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palaver_identity::domain::Clock;
use palaver_identity::{IdentityConfig, IdentityService};
use palaver_kit::grpc::{GrpcChannel, balanced_channel};
use palaver_kit::shutdown::Shutdown;
use palaver_kit::testing::{self, TestDatabase};
use palaver_kit::tokens::TokenVerifier;
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use pb::identity_client::IdentityClient;
use sha2::{Digest, Sha256};

pub type Client = IdentityClient<GrpcChannel>;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub struct TestIdentity {
    pub client: Client,
    pub clock: Clock,
    pub admin: std::net::SocketAddr,
    running: Arc<Running>,
}

/// Stops the service and lets go of its database when the last holder drops it.
pub struct Running {
    shutdown: Shutdown,
    _db: TestDatabase,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub async fn spawn(backend: Backend) -> TestIdentity {
    palaver_kit::telemetry::init_for_tests();
    let db = match backend {
        Backend::Postgres => testing::postgres().await,
        Backend::Sqlite => testing::sqlite(),
    };
    palaver_identity::migrate(&db.url)
        .await
        .expect("migrations");
    let clock = Clock::default();
    let service =
        IdentityService::build_with_clock(IdentityConfig::ephemeral(&db.url), clock.clone())
            .await
            .expect("identity builds");
    let url = format!("http://{}", service.grpc_addr());
    let admin = service.admin_addr();
    let shutdown = Shutdown::new();
    tokio::spawn(service.run_until_stopped(shutdown.clone()));
    let client = IdentityClient::new(balanced_channel(&url).expect("channel"));
    TestIdentity {
        client,
        clock,
        admin,
        running: Arc::new(Running { shutdown, _db: db }),
    }
}

impl TestIdentity {
    /// Keeps the service running while held, even after the test body moved out of
    /// `self` only the fields it uses.
    pub fn keep_running(&self) -> Arc<Running> {
        self.running.clone()
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A verifier that fetches keys from this service, as every other service does.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(Arc::new(self.client()))
    }

    /// A new app with a privacy URL, one origin and one return URL.
    pub async fn app(&self) -> pb::CreateAppResponse {
        self.client()
            .create_app(pb::CreateAppRequest {
                name: "Example Site".into(),
                origins: vec!["https://example.org".into()],
                privacy_url: "https://example.org/privacy".into(),
                logo_url: "https://example.org/logo.png".into(),
                return_urls: vec!["https://example.org/account/palaver".into()],
                retention_days: 90,
                limits: None,
            })
            .await
            .expect("create app")
            .into_inner()
    }

    pub async fn member(&self, app_id: &str, external_id: &str) -> pb::Member {
        self.client()
            .create_member(pb::CreateMemberRequest {
                app_id: app_id.into(),
                external_id: external_id.into(),
                display_name: format!("Member {external_id}"),
                email: String::new(),
            })
            .await
            .expect("create member")
            .into_inner()
    }

    /// Runs the whole consent flow for a member: request, approve, exchange.
    pub async fn grant(&self, app_id: &str, external_id: &str) -> pb::PermissionTokenResponse {
        let code = self.approved_code(app_id, external_id).await;
        self.client()
            .exchange_authorization_code(pb::ExchangeAuthorizationCodeRequest {
                app_id: app_id.into(),
                code: code.code,
                code_verifier: code.verifier,
                redirect_uri: String::new(),
            })
            .await
            .expect("exchange code")
            .into_inner()
    }

    /// A consent request approved by the member: its code and PKCE verifier.
    pub async fn approved_code(&self, app_id: &str, external_id: &str) -> ApprovedCode {
        let pkce = Pkce::new();
        let request = self.consent_request(app_id, external_id, &pkce).await;
        let redirect = self
            .client()
            .decide_consent(pb::DecideConsentRequest {
                request: request.request,
                approve: true,
                csrf_token: request.csrf_token,
            })
            .await
            .expect("approve")
            .into_inner()
            .redirect_url;
        let code = query_param(&redirect, "code").expect("code in redirect");
        ApprovedCode {
            code,
            verifier: pkce.verifier,
        }
    }

    pub async fn consent_request(
        &self,
        app_id: &str,
        external_id: &str,
        pkce: &Pkce,
    ) -> pb::ConsentRequest {
        self.client()
            .create_consent_request(pb::CreateConsentRequestRequest {
                app_id: app_id.into(),
                external_id: external_id.into(),
                return_url: "https://example.org/account/palaver".into(),
                state: "xyz-state".into(),
                code_challenge: pkce.challenge.clone(),
                code_challenge_method: "S256".into(),
            })
            .await
            .expect("consent request")
            .into_inner()
    }

    pub async fn permission(&self, app_id: &str, external_id: &str) -> pb::Permission {
        self.client()
            .get_permission(pb::GetPermissionRequest {
                app_id: app_id.into(),
                external_id: external_id.into(),
            })
            .await
            .expect("permission")
            .into_inner()
    }

    pub async fn endpoint(&self, endpoint: &str) -> Result<pb::ChatEndpoint, Error> {
        self.client()
            .resolve_endpoint(pb::ResolveEndpointRequest {
                endpoint: endpoint.into(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }

    pub async fn anonymous_session(
        &self,
        app_id: &str,
        endpoint: &str,
        name: &str,
    ) -> Result<pb::VisitorSession, Error> {
        self.client()
            .create_visitor_session(pb::CreateVisitorSessionRequest {
                app_id: app_id.into(),
                endpoint: endpoint.into(),
                who: Some(pb::create_visitor_session_request::Who::DisplayName(
                    name.into(),
                )),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }
}

pub struct ApprovedCode {
    pub code: String,
    pub verifier: String,
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = format!(
            "verifier-{}",
            palaver_identity::domain::secrets::random_string(50)
        );
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The error code a failed call carried.
pub fn code_of<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> ErrorCode {
    Error::from_status(&result.expect_err("the call should fail")).code
}

/// Runs one async test body against each SQL backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::helpers::spawn($crate::helpers::Backend::Postgres).await;
                let _running = t.keep_running();
                ($body)(t).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::helpers::spawn($crate::helpers::Backend::Sqlite).await;
                let _running = t.keep_running();
                ($body)(t).await;
            }
        }
    };
}
