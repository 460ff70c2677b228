//! The Helm chart, run locally: `helm template` of `helm/palaver` with the values of
//! `chart_run/install.rs` (NATS and PostgreSQL from a Secret that points at this test's
//! backends, presence at 3 replicas, migrations on), the migrations Job's commands run first, then every
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
#[path = "chart_run/install.rs"]
mod install;

use palaver_kit::grpc::GrpcChannel;
use palaver_kit::testing;
use palaver_proto::identity::v1::identity_client::IdentityClient;
use serde_json::json;

use client::{SITE, Site, Ws, approve};
use install::Install;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_wires_the_services_together() {
    testing::init_logs();
    let install = Install::start(3).await;
    assert_eq!(install.cluster.replicas(&install.presence), 3);
    let smoke = Smoke {
        base: install.base.clone(),
        admin_token: install.admin_token.clone(),
        identity: install.identity.clone(),
    };
    let outcome = tokio::spawn(async move { smoke.run().await }).await;
    if let Err(error) = outcome {
        panic!(
            "the smoke scenario failed: {error}\nlogs of the pods:\n{}",
            install.cluster.logs()
        );
    }
}

struct Smoke {
    base: String,
    admin_token: String,
    identity: IdentityClient<GrpcChannel>,
}

impl Smoke {
    async fn run(self) {
        // The admin creates an app; the CMS creates a member and gets their consent.
        let site = Site::create(&self.base, &self.admin_token, json!({})).await;
        let identity = self.identity.clone();
        let endpoint = site
            .member_with_permission("owner", "Site Owner", |url| approve(identity, url))
            .await;

        // An anonymous visitor on the site, with a socket watching the endpoint.
        let visitor_token = site.visitor(&endpoint, "Guest").await;
        let mut watcher = Ws::connect(&self.base, Some(SITE)).await;
        watcher.hello(&visitor_token).await;
        watcher
            .send(json!({"type": "presence.watch", "endpoints": [endpoint]}))
            .await;
        let first = watcher.until("presence", |_| true).await;
        assert_eq!(first["status"], "offline", "{first}");

        // The operator: login link, operator session, WebSocket.
        let mut operator = Ws::connect(&self.base, None).await;
        let welcome = operator.hello(&site.operator_token("owner").await).await;
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
