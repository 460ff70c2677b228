//! The Helm chart, run locally: `helm template` of `helm/palaver` with the values below
//! (NATS and PostgreSQL from a Secret that points at this test's backends, presence at 3
//! replicas, migrations on), the migrations Job's commands run first, then every
//! Deployment's pods as processes of the real binaries with exactly the rendered command,
//! args, env and ports (mapped to loopback as `chart_run/cluster.rs` describes). Then the
//! smoke scenario goes through the gateway: an app, a member, consent with PKCE, a
//! visitor and an operator chatting over WebSockets, and presence seen by a watcher.
//! Passing proves the chart wires the services together.

#[path = "chart_run/chart.rs"]
mod chart;
#[path = "chart_run/client.rs"]
mod client;
#[path = "chart_run/cluster.rs"]
mod cluster;

use std::collections::BTreeMap;

use palaver_kit::grpc::balanced_channel;
use palaver_kit::testing;
use palaver_proto::identity::v1 as pb;
use pb::identity_client::IdentityClient;
use reqwest::StatusCode;
use serde_json::json;

use chart::RELEASE;
use client::{Pkce, Ws, json_of, query_param};
use cluster::{Cluster, Loopback, RunSpec};

/// The origin the test app allows (the CMS site).
const SITE: &str = "https://example.org";
const RETURN_URL: &str = "https://example.org/account/palaver";
/// The Secret the values name for PostgreSQL and NATS; a real install creates it by hand.
const BACKENDS_SECRET: &str = "palaver-e2e-backends";

/// The values file: everything else is the chart's default.
fn values(public_url: &str) -> String {
    format!(
        r#"# Written by tests/e2e/tests/chart_run.rs.
externalDatabase:
  existingSecret: {BACKENDS_SECRET}
externalNats:
  existingSecret: {BACKENDS_SECRET}
migrations:
  enabled: true
identity:
  replicas: 1
conversation:
  replicas: 1
presence:
  autoscaling:
    enabled: false
  replicas: 3
gateway:
  publicUrl: "{public_url}"
  autoscaling:
    enabled: false
  replicas: 1
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_wires_the_services_together() {
    testing::init_logs();
    let identity_db = testing::postgres().await;
    let conversation_db = testing::postgres().await;
    let nats_url = testing::nats_url().await;
    let bin_dir = cluster::binaries().await;

    // The gateway's Service address is decided first: it is the public URL (what the
    // Ingress host would be in a cluster).
    let loopback = Loopback::random();
    let gateway_service = format!("{RELEASE}-gateway");
    let services = BTreeMap::from([(gateway_service.clone(), loopback.service(0))]);
    let public_url = format!("http://{}:8080", loopback.service(0));

    let log_dir = bin_dir.join(format!("e2e-chart-run-{}", testing::unique_prefix()));
    std::fs::create_dir_all(&log_dir).unwrap();
    let values_file = log_dir.join("values.yaml");
    std::fs::write(&values_file, values(&public_url)).unwrap();
    let rendered = chart::render(&values_file).await;

    let secret = |key: &str, value: &str| {
        (
            (BACKENDS_SECRET.to_owned(), key.to_owned()),
            value.to_owned(),
        )
    };
    let cluster = Cluster::start(RunSpec {
        rendered: &rendered,
        loopback,
        services,
        external_secrets: BTreeMap::from([
            secret("identity-database-url", &identity_db.url),
            secret("conversation-database-url", &conversation_db.url),
            secret("nats-url", &nats_url),
        ]),
        bin_dir,
        log_dir,
    })
    .await;
    assert_eq!(cluster.replicas(&format!("{RELEASE}-presence")), 3);

    let base = cluster.service_url(&gateway_service, 8080);
    assert_eq!(base, public_url);
    let smoke = Smoke {
        base: base.clone(),
        admin_token: cluster.env_of(&gateway_service, "PALAVER_ADMIN_TOKEN"),
        identity: IdentityClient::new(
            balanced_channel(&cluster.env_of(&gateway_service, "PALAVER_IDENTITY_URL"))
                .expect("a channel to identity"),
        ),
        http: reqwest::Client::new(),
    };
    let outcome = tokio::spawn(async move { smoke.run().await }).await;
    if let Err(error) = outcome {
        panic!(
            "the smoke scenario failed: {error}\nlogs of the pods:\n{}",
            cluster.logs()
        );
    }
}

struct Smoke {
    base: String,
    admin_token: String,
    identity: IdentityClient<palaver_kit::grpc::GrpcChannel>,
    http: reqwest::Client,
}

impl Smoke {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn run(mut self) {
        // The admin creates an app.
        let response = self
            .http
            .post(self.url("/v1/admin/apps"))
            .bearer_auth(&self.admin_token)
            .json(&json!({
                "name": "Example Site",
                "origins": [SITE],
                "privacy_url": "https://example.org/privacy",
                "return_urls": [RETURN_URL],
            }))
            .send()
            .await
            .unwrap();
        let app = json_of(response, StatusCode::CREATED).await;
        let app_id = app["app_id"].as_str().unwrap().to_owned();
        let secret = app["api_secret"].as_str().unwrap().to_owned();

        // The CMS creates a member and asks for their consent.
        let response = self
            .http
            .post(self.url("/v1/cms/members"))
            .bearer_auth(&secret)
            .json(&json!({"external_id": "owner", "display_name": "Site Owner"}))
            .send()
            .await
            .unwrap();
        json_of(response, StatusCode::CREATED).await;
        let pkce = Pkce::generate();
        let response = self
            .http
            .post(self.url("/v1/cms/members/owner/consent-requests"))
            .bearer_auth(&secret)
            .json(&json!({
                "return_url": RETURN_URL,
                "state": "state-1",
                "code_challenge": pkce.challenge,
                "code_challenge_method": "S256",
            }))
            .send()
            .await
            .unwrap();
        let consent = json_of(response, StatusCode::CREATED).await;
        let consent_url = consent["consent_url"].as_str().unwrap();
        assert!(consent_url.starts_with(&self.base), "{consent_url}");

        // The member approves (what the consent page does, over identity's gRPC).
        let request = query_param(consent_url, "request").expect("request in the consent URL");
        let shown = self
            .identity
            .get_consent_request(pb::GetConsentRequestRequest {
                request: request.clone(),
            })
            .await
            .expect("the consent request")
            .into_inner();
        let back = self
            .identity
            .decide_consent(pb::DecideConsentRequest {
                request,
                approve: true,
                csrf_token: shown.csrf_token,
            })
            .await
            .expect("the decision")
            .into_inner()
            .redirect_url;
        assert_eq!(query_param(&back, "state").as_deref(), Some("state-1"));
        let code = query_param(&back, "code").expect("a code");

        // The CMS exchanges the code with its PKCE verifier.
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        let response = self
            .http
            .post(self.url("/v1/cms/oauth/token"))
            .bearer_auth(&secret)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        let token = json_of(response, StatusCode::OK).await;
        assert_eq!(token["token_type"], "Bearer", "{token}");
        let endpoint = token["endpoint"].as_str().unwrap().to_owned();
        let response = self
            .http
            .get(self.url("/v1/cms/members/owner/permission"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        let permission = json_of(response, StatusCode::OK).await;
        assert_eq!(permission["status"], "valid", "{permission}");
        assert_eq!(permission["endpoint"], endpoint.as_str());

        // An anonymous visitor on the site.
        let response = self
            .http
            .post(self.url("/v1/visitor-sessions"))
            .header("origin", SITE)
            .json(&json!({"app_id": app_id, "endpoint": endpoint, "display_name": "Guest"}))
            .send()
            .await
            .unwrap();
        let session = json_of(response, StatusCode::CREATED).await;
        let visitor_token = session["session_token"].as_str().unwrap().to_owned();
        assert_eq!(session["visitor"]["verified"], false);

        // A visitor socket watching the endpoint.
        let mut watcher = Ws::connect(&self.base, Some(SITE)).await;
        watcher.hello(&visitor_token).await;
        watcher
            .send(json!({"type": "presence.watch", "endpoints": [endpoint]}))
            .await;
        let first = watcher.until("presence", |_| true).await;
        assert_eq!(first["status"], "offline", "{first}");

        // The operator: login link, operator session, WebSocket.
        let response = self
            .http
            .post(self.url("/v1/cms/members/owner/login-links"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        let link = json_of(response, StatusCode::CREATED).await;
        let login_token = query_param(link["url"].as_str().unwrap(), "token").unwrap();
        let response = self
            .http
            .post(self.url("/v1/operator-sessions"))
            .json(&json!({"login_token": login_token}))
            .send()
            .await
            .unwrap();
        let operator_session = json_of(response, StatusCode::CREATED).await;
        let mut operator = Ws::connect(&self.base, None).await;
        let welcome = operator
            .hello(operator_session["access_token"].as_str().unwrap())
            .await;
        assert_eq!(welcome["you"]["kind"], "operator", "{welcome}");
        watcher.until("presence", |f| f["status"] == "online").await;

        // The visitor opens a conversation and writes; the operator sees it and replies.
        let mut visitor = Ws::connect(&self.base, Some(SITE)).await;
        visitor.hello(&visitor_token).await;
        visitor
            .send(json!({"type": "conversation.open", "endpoint": endpoint}))
            .await;
        let opened = visitor.until("conversation", |_| true).await;
        assert_eq!(opened["state"], "open", "{opened}");
        let id = opened["id"].as_str().unwrap().to_owned();
        operator.until("conversation", |f| f["id"] == id).await;
        visitor
            .send(json!({"type": "message.send", "conversation": id, "client_id": "v1", "text": "Hello?"}))
            .await;
        let ack = visitor
            .until("message.ack", |f| f["client_id"] == "v1")
            .await;
        assert_eq!(ack["seq"], 1, "{ack}");
        let heard = operator.until("message", |f| f["conversation"] == id).await;
        assert_eq!(
            (&heard["from"], &heard["text"], &heard["seq"]),
            (&json!("visitor"), &json!("Hello?"), &json!(1))
        );
        operator
            .send(json!({"type": "message.send", "conversation": id, "client_id": "o1", "text": "Hi, how can I help?"}))
            .await;
        let answer = visitor.until("message", |f| f["seq"] == 2).await;
        assert_eq!(
            (&answer["from"], &answer["text"]),
            (&json!("member"), &json!("Hi, how can I help?"))
        );

        // The operator turns busy; the watching visitor sees it.
        operator
            .send(json!({"type": "presence.set", "status": "busy"}))
            .await;
        let busy = watcher.until("presence", |f| f["status"] == "busy").await;
        assert_eq!(busy["endpoint"], endpoint.as_str());
        assert_eq!(busy["accepts_chats"], true, "{busy}");
    }
}
