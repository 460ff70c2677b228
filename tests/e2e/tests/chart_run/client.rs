//! Driving the gateway as sites, browsers and operator clients do: HTTP with reqwest,
//! the WebSocket with tokio-tungstenite (as `services/gateway/tests/api` does).

use std::time::Duration;

use palaver_kit::grpc::GrpcChannel;
use palaver_proto::identity::v1 as identity_pb;
use palaver_proto::identity::v1::identity_client::IdentityClient;

use futures::{SinkExt, StreamExt};
pub use palaver_kit::testing::{Pkce, query_param};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long the test waits for a frame the gateway must send: a guard against hanging,
/// not a timing assertion.
const FRAME_GUARD: Duration = Duration::from_secs(30);

/// The JSON body of a response that must have `status`.
pub async fn json_of(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A WebSocket client speaking Palaver's JSON frames.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects to `base`'s `/v1/ws`, from a page at `origin` (none: a native client).
    pub async fn connect(base: &str, origin: Option<&str>) -> Ws {
        let url = format!("{}/v1/ws", base.replacen("http://", "ws://", 1));
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket upgrade");
        Ws { stream }
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON frame, which must come.
    pub async fn frame(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(FRAME_GUARD, self.stream.next())
                .await
                .expect("a frame from the gateway");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).unwrap();
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => panic!("the socket closed"),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Skips frames until one of `kind` for which `matches` holds; answers it.
    pub async fn until(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.frame().await;
            assert_ne!(frame["type"], "error", "{frame}");
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
}

/// The origin of the site the apps here belong to (the CMS's pages).
pub const SITE: &str = "https://example.org";
/// Where the consent flow sends the member back to.
pub const RETURN_URL: &str = "https://example.org/account/palaver";

/// One app on a gateway, driven as its CMS does with the app's API secret.
pub struct Site {
    pub base: String,
    pub http: reqwest::Client,
    pub app_id: String,
    pub secret: String,
}

impl Site {
    /// The admin creates an app for [`SITE`]; `extra` adds fields to the request
    /// (`limits`, say).
    pub async fn create(base: &str, admin_token: &str, extra: Value) -> Site {
        let http = reqwest::Client::new();
        let mut body = json!({
            "name": "Example Site",
            "origins": [SITE],
            "privacy_url": "https://example.org/privacy",
            "return_urls": [RETURN_URL],
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let response = http
            .post(format!("{base}/v1/admin/apps"))
            .bearer_auth(admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let app = json_of(response, StatusCode::CREATED).await;
        Site {
            base: base.to_owned(),
            http,
            app_id: app["app_id"].as_str().unwrap().to_owned(),
            secret: app["api_secret"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn cms(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// The CMS creates a member and gets them a permission token through the consent
    /// flow with PKCE; `approve` stands for the member at the consent page. Answers the
    /// member's chat endpoint, checked against the permission the checkbox reads.
    pub async fn member_with_permission<F, Fut>(
        &self,
        external_id: &str,
        display_name: &str,
        approve: F,
    ) -> String
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = String>,
    {
        let response = self
            .cms(
                reqwest::Method::POST,
                "/v1/cms/members",
                Some(json!({"external_id": external_id, "display_name": display_name})),
            )
            .await;
        json_of(response, StatusCode::CREATED).await;
        let pkce = Pkce::generate();
        let response = self
            .cms(
                reqwest::Method::POST,
                &format!("/v1/cms/members/{external_id}/consent-requests"),
                Some(json!({
                    "return_url": RETURN_URL,
                    "state": "state-1",
                    "code_challenge": pkce.challenge,
                    "code_challenge_method": "S256",
                })),
            )
            .await;
        let consent = json_of(response, StatusCode::CREATED).await;
        let consent_url = consent["consent_url"].as_str().unwrap().to_owned();
        assert!(consent_url.starts_with(&self.base), "{consent_url}");
        let back = approve(consent_url).await;
        assert_eq!(query_param(&back, "state").as_deref(), Some("state-1"));
        let code = query_param(&back, "code").expect("a code");

        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        let response = self
            .http
            .post(self.url("/v1/cms/oauth/token"))
            .bearer_auth(&self.secret)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        let token = json_of(response, StatusCode::OK).await;
        assert_eq!(token["token_type"], "Bearer", "{token}");
        let endpoint = token["endpoint"].as_str().unwrap().to_owned();
        let response = self
            .cms(
                reqwest::Method::GET,
                &format!("/v1/cms/members/{external_id}/permission"),
                None,
            )
            .await;
        let permission = json_of(response, StatusCode::OK).await;
        assert_eq!(permission["status"], "valid", "{permission}");
        assert_eq!(permission["endpoint"], endpoint.as_str());
        endpoint
    }

    /// A new anonymous visitor session on [`SITE`]: its token.
    pub async fn visitor(&self, endpoint: &str, display_name: &str) -> String {
        let response = self
            .http
            .post(self.url("/v1/visitor-sessions"))
            .header("origin", SITE)
            .json(
                &json!({"app_id": self.app_id, "endpoint": endpoint, "display_name": display_name}),
            )
            .send()
            .await
            .unwrap();
        let session = json_of(response, StatusCode::CREATED).await;
        assert_eq!(session["visitor"]["verified"], false);
        session["session_token"].as_str().unwrap().to_owned()
    }

    /// An operator access token for the member, through a one-time login link.
    pub async fn operator_token(&self, external_id: &str) -> String {
        let response = self
            .cms(
                reqwest::Method::POST,
                &format!("/v1/cms/members/{external_id}/login-links"),
                None,
            )
            .await;
        let link = json_of(response, StatusCode::CREATED).await;
        let login_token = query_param(link["url"].as_str().unwrap(), "token").unwrap();
        let response = self
            .http
            .post(self.url("/v1/operator-sessions"))
            .json(&json!({"login_token": login_token}))
            .send()
            .await
            .unwrap();
        let session = json_of(response, StatusCode::CREATED).await;
        session["access_token"].as_str().unwrap().to_owned()
    }
}

/// The member's approval at the consent page, over identity's gRPC as the page does it:
/// answers where the member's browser is sent back to.
pub async fn approve(mut identity: IdentityClient<GrpcChannel>, consent_url: String) -> String {
    let request = query_param(&consent_url, "request").expect("request in the consent URL");
    let shown = identity
        .get_consent_request(identity_pb::GetConsentRequestRequest {
            request: request.clone(),
        })
        .await
        .expect("the consent request")
        .into_inner();
    identity
        .decide_consent(identity_pb::DecideConsentRequest {
            request,
            approve: true,
            csrf_token: shown.csrf_token,
        })
        .await
        .expect("the decision")
        .into_inner()
        .redirect_url
}
