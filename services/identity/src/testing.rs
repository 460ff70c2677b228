//! Test support (feature `testing`) for identity's own tests and for every service that
//! stands on identity: a real identity service on port 0 over a fresh database
//! ([`TestIdentity::spawn`]), and the set-up their tests share, made through its gRPC
//! API as the gateway would: an app, a member, and the consent flow (PKCE, approve,
//! exchange) that gives the member a permission token and an open chat endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use palaver_kit::Error;
use palaver_kit::grpc::{GrpcChannel, balanced_channel};
use palaver_kit::shutdown::Shutdown;
use palaver_kit::testing::{Pkce, TestDatabase, query_param};
use palaver_kit::tokens::TokenVerifier;
use palaver_proto::identity::v1 as pb;
use pb::identity_client::IdentityClient;

use crate::domain::Clock;
use crate::{IdentityConfig, IdentityService};

/// A client of the identity service.
pub type Client = IdentityClient<GrpcChannel>;

/// The return URL of [`example_app`], where consent redirects go.
pub const RETURN_URL: &str = "https://example.org/account/palaver";

/// A running identity service on a database of its own, stopped when this is dropped.
/// (It implements `Drop` and has no public `Copy` field, so a test's `async move` block
/// that uses a part of it captures the whole value: the service runs until the test
/// ends.)
pub struct TestIdentity {
    /// `http://127.0.0.1:<port>`, for the other services' `PALAVER_IDENTITY_URL`.
    pub url: String,
    pub client: Client,
    /// The service's clock: tests shift it to expire tokens.
    pub clock: Clock,
    admin: SocketAddr,
    shutdown: Shutdown,
    db: TestDatabase,
}

impl Drop for TestIdentity {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The app most tests need: "Example Site" on `https://example.org`, with a privacy
/// policy, a logo, one return URL and 90 days of retention.
pub fn example_app() -> pb::CreateAppRequest {
    pb::CreateAppRequest {
        name: "Example Site".into(),
        origins: vec!["https://example.org".into()],
        privacy_url: "https://example.org/privacy".into(),
        logo_url: "https://example.org/logo.png".into(),
        return_urls: vec![RETURN_URL.into()],
        retention_days: 90,
        limits: None,
    }
}

/// An approved consent request: the code the member's approval gave, and the PKCE
/// verifier that exchanges it.
pub struct ApprovedCode {
    pub code: String,
    pub verifier: String,
}

impl TestIdentity {
    /// Migrates `db` and starts identity on it, on loopback ports of its own.
    pub async fn spawn(db: TestDatabase) -> TestIdentity {
        palaver_kit::telemetry::init_for_tests();
        crate::migrate(&db.url).await.expect("identity migrations");
        let clock = Clock::default();
        let service =
            IdentityService::build_with_clock(IdentityConfig::ephemeral(&db.url), clock.clone())
                .await
                .expect("identity builds");
        let url = format!("http://{}", service.grpc_addr());
        let admin = service.admin_addr();
        let shutdown = Shutdown::new();
        tokio::spawn(service.run_until_stopped(shutdown.clone()));
        let client = IdentityClient::new(balanced_channel(&url).expect("identity channel"));
        TestIdentity {
            url,
            client,
            clock,
            admin,
            shutdown,
            db,
        }
    }

    /// The URL of identity's database, for a test that looks at its rows.
    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    /// Stops the service now, as its going away looks to the services on it.
    pub fn stop(&self) {
        self.shutdown.trigger();
    }

    /// The admin server's address (`/healthz`, `/readyz`, `/metrics`).
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A verifier that fetches keys from this service, as every other service does.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(Arc::new(self.client()))
    }

    /// Creates the app `request` describes ([`example_app`], changed as the test needs).
    pub async fn create_app(&self, request: pb::CreateAppRequest) -> pb::CreateAppResponse {
        self.client()
            .create_app(request)
            .await
            .expect("create app")
            .into_inner()
    }

    /// A new [`example_app`].
    pub async fn app(&self) -> pb::CreateAppResponse {
        self.create_app(example_app()).await
    }

    /// A new member of the app, named `Member <external_id>`.
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

    /// A consent request for the member, to [`RETURN_URL`], with `pkce`'s challenge.
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
                return_url: RETURN_URL.into(),
                state: "xyz-state".into(),
                code_challenge: pkce.challenge.clone(),
                code_challenge_method: "S256".into(),
            })
            .await
            .expect("consent request")
            .into_inner()
    }

    /// A consent request approved by the member: its code and PKCE verifier.
    pub async fn approved_code(&self, app_id: &str, external_id: &str) -> ApprovedCode {
        let pkce = Pkce::generate();
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
        ApprovedCode {
            code: query_param(&redirect, "code").expect("a code in the redirect"),
            verifier: pkce.verifier,
        }
    }

    /// Runs the whole consent flow for the member (request, approve, exchange): they
    /// hold a permission token and their chat endpoint is open.
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

    /// Revokes the member's permission token: their chat endpoint closes.
    pub async fn revoke(&self, app_id: &str, external_id: &str) {
        self.client()
            .revoke_permission(pb::RevokePermissionRequest {
                app_id: app_id.into(),
                external_id: external_id.into(),
            })
            .await
            .expect("revoke");
    }

    /// The member's permission, as the profile checkbox reads it.
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

    /// What identity says of a chat endpoint.
    pub async fn endpoint(&self, endpoint: &str) -> Result<pb::ChatEndpoint, Error> {
        self.client()
            .resolve_endpoint(pb::ResolveEndpointRequest {
                endpoint: endpoint.into(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }

    /// A new anonymous visitor session on `endpoint`.
    pub async fn anonymous_session(
        &self,
        app_id: &str,
        endpoint: &str,
        name: &str,
    ) -> Result<pb::VisitorSession, Error> {
        anonymous_session(&mut self.client(), app_id, endpoint, name).await
    }
}

/// A new anonymous visitor session on `endpoint`, asked through `client`.
pub async fn anonymous_session(
    client: &mut Client,
    app_id: &str,
    endpoint: &str,
    name: &str,
) -> Result<pb::VisitorSession, Error> {
    client
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
