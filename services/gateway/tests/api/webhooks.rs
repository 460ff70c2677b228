//! Webhooks: each event type reaches a real receiver (an HTTP server on port 0) signed
//! as Standard Webhooks specifies; a failing receiver gets the event again until it
//! answers 2xx, every attempt listed; a gateway stopped mid-retry leaves the event to the
//! next one; unsubscribed events are not sent; a changed webhook applies to the next
//! event; the delivery log's auth, paging and cursors; the OpenAPI document's `webhooks`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use bytes::Bytes;
use http::HeaderMap;
use palaver_gateway::webhooks::RetrySchedule;
use palaver_kit::testing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{ADMIN_TOKEN, App, TestGateway, json_of, problem, spawn, spawn_with};

/// How long a test waits for a webhook it must get: a guard against hanging, not a
/// timing assertion. Generous, because a gateway that stops may hold an event until the
/// bus hands it out again.
const GUARD: Duration = Duration::from_secs(120);

const ALL_EVENTS: [&str; 5] = [
    "conversation.started",
    "message.created",
    "message.offline",
    "conversation.closed",
    "member.permission_changed",
];

/// One request the receiver got.
#[derive(Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks the signature with the app's webhook secret, as a receiver does.
    fn verify(&self, secret: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        palaver_gateway::webhooks::signature::verify(
            secret,
            &self.id,
            &self.timestamp,
            &self.signature,
            &self.body,
            now,
        )
        .unwrap_or_else(|e| panic!("the signature of {} does not verify: {e}", self.id));
    }
}

/// What the receiver answers: the planned statuses first, then the default.
#[derive(Default)]
struct Answers {
    planned: VecDeque<StatusCode>,
    default: Option<StatusCode>,
}

#[derive(Clone)]
struct ReceiverState {
    received: mpsc::UnboundedSender<Received>,
    answers: Arc<Mutex<Answers>>,
}

/// A webhook receiver on a port of its own.
struct Receiver {
    url: String,
    received: mpsc::UnboundedReceiver<Received>,
    answers: Arc<Mutex<Answers>>,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/json");
    let _ = state.received.send(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    let mut answers = state.answers.lock().unwrap();
    answers
        .planned
        .pop_front()
        .or(answers.default)
        .unwrap_or(StatusCode::NO_CONTENT)
}

impl Receiver {
    async fn start() -> Receiver {
        let (sender, received) = mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(Answers::default()));
        let router = axum::Router::new()
            .route("/hooks", post(receive))
            .with_state(ReceiverState {
                received: sender,
                answers: answers.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            url,
            received,
            answers,
        }
    }

    fn plan(&self, statuses: &[StatusCode]) {
        self.answers.lock().unwrap().planned.extend(statuses);
    }

    fn answer_from_now_on(&self, status: StatusCode) {
        self.answers.lock().unwrap().default = Some(status);
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(GUARD, self.received.recv())
            .await
            .expect("a webhook in time")
            .expect("the receiver runs")
    }

    /// The next request of type `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Received {
        loop {
            let received = self.next().await;
            if received.json()["type"] == kind {
                return received;
            }
        }
    }
}

/// Sets the app's webhook; answers its signing secret.
async fn set_webhook(t: &TestGateway, app: &App, url: &str, events: &[&str]) -> String {
    let response = t
        .cms(app, Method::PUT, "/v1/cms/webhook")
        .json(&json!({"url": url, "events": events}))
        .send()
        .await
        .unwrap();
    let webhook = json_of(response, StatusCode::OK).await;
    webhook["secret"].as_str().unwrap().to_owned()
}

/// The delivery log of `app` on the gateway at `base`.
async fn deliveries(t: &TestGateway, base: &str, app: &App, query: &str) -> Value {
    let response = t
        .http
        .get(format!("{base}/v1/cms/webhook/deliveries{query}"))
        .bearer_auth(&app.api_secret)
        .send()
        .await
        .unwrap();
    json_of(response, StatusCode::OK).await
}

/// The attempts of event `id`, newest first, once there are `count` of them and the
/// newest is settled as `outcome` (attempts are recorded just after they end).
async fn attempts_of(
    t: &TestGateway,
    base: &str,
    app: &App,
    id: &str,
    count: usize,
    outcome: &str,
) -> Vec<Value> {
    testing::eventually(&format!("{count} attempts of {id}"), || async {
        let log = deliveries(t, base, app, "?limit=200").await;
        let attempts: Vec<Value> = log["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["event_id"] == id)
            .cloned()
            .collect();
        if attempts.len() >= count && attempts[0]["outcome"] == outcome {
            Ok(attempts)
        } else {
            Err(log.to_string())
        }
    })
    .await
}

/// A short schedule, so retries come within the test.
fn quick_retries(config: &mut palaver_gateway::GatewayConfig, seconds: &str) {
    config.webhooks.retry = seconds.parse::<RetrySchedule>().unwrap();
}

#[tokio::test]
async fn every_event_type_arrives_signed_with_its_data() {
    let t = spawn().await;
    let mut receiver = Receiver::start().await;
    let app = t.create_app().await;
    let secret = set_webhook(&t, &app, &receiver.url, &ALL_EVENTS).await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    let granted = t.granted_member(&app, "owner").await;
    let endpoint = granted["endpoint"].as_str().unwrap().to_owned();
    let permission = receiver.next_of("member.permission_changed").await;
    permission.verify(&secret);
    let body = permission.json();
    assert!(permission.id.starts_with("ev_"), "{}", permission.id);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(body["data"]["member"]["external_id"], "owner", "{body}");
    assert_eq!(body["data"]["endpoint"], endpoint.as_str());
    assert_eq!(body["data"]["status"], "valid");
    assert_eq!(body["data"]["reason"], "granted");
    assert!(body["data"]["expires_at"].is_string(), "{body}");

    let refreshed = t
        .token_form(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", granted["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refresh = receiver.next_of("member.permission_changed").await;
    refresh.verify(&secret);
    assert_eq!(refresh.json()["data"]["reason"], "refreshed");
    assert_ne!(refresh.id, permission.id);

    let visitor = t.visitor_token(&app, &endpoint, "Guest").await;
    let (_socket, conversation) = t.visitor_chat(&visitor, &endpoint).await;
    let started = receiver.next_of("conversation.started").await;
    started.verify(&secret);
    let data = &started.json()["data"];
    assert_eq!(data["conversation_id"], conversation.as_str(), "{data}");
    assert_eq!(data["endpoint"], endpoint.as_str());
    assert_eq!(data["member"]["external_id"], "owner");
    assert_eq!(data["visitor"]["display_name"], "Guest");
    assert_eq!(data["visitor"]["verified"], false);

    let message = receiver.next_of("message.created").await;
    message.verify(&secret);
    let data = &message.json()["data"];
    assert_eq!(data["conversation_id"], conversation.as_str(), "{data}");
    assert_eq!(data["endpoint"], endpoint.as_str());
    assert_eq!(data["member"]["external_id"], "owner");
    assert_eq!(
        (&data["seq"], &data["from"], &data["text"]),
        (&json!(1), &json!("visitor"), &json!("Hello there"))
    );
    assert!(data["sent_at"].is_string(), "{data}");

    let left = t
        .leave_offline_message(
            &endpoint,
            json!({"session_token": visitor, "text": "Call me back", "email": "guest@example.org"}),
        )
        .await;
    assert_eq!(left.status(), StatusCode::ACCEPTED);
    let offline = receiver.next_of("message.offline").await;
    offline.verify(&secret);
    let data = &offline.json()["data"];
    assert_eq!(data["text"], "Call me back", "{data}");
    assert_eq!(data["email"], "guest@example.org");
    assert_eq!(data["endpoint"], endpoint.as_str());
    assert_eq!(data["member"]["external_id"], "owner");
    assert_eq!(data["visitor"]["display_name"], "Guest");

    let operator = t.operator_token(&app, "owner").await;
    let closed = t
        .request(
            Method::POST,
            &format!("/v1/me/conversations/{conversation}/close"),
        )
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let closed = receiver.next_of("conversation.closed").await;
    closed.verify(&secret);
    let data = &closed.json()["data"];
    assert_eq!(data["conversation_id"], conversation.as_str(), "{data}");
    assert_eq!(data["last_seq"], 1);
    assert!(data["closed_at"].is_string(), "{data}");

    let revoked = t
        .cms(&app, Method::DELETE, "/v1/cms/members/owner/permission")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let change = receiver.next_of("member.permission_changed").await;
    change.verify(&secret);
    let data = &change.json()["data"];
    assert_eq!(
        (&data["status"], &data["reason"]),
        (&json!("revoked"), &json!("revoked"))
    );

    let deleted = t
        .cms(&app, Method::DELETE, "/v1/cms/members/owner")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = receiver.next_of("member.permission_changed").await;
    gone.verify(&secret);
    let data = &gone.json()["data"];
    assert_eq!(data["reason"], "member_deleted", "{data}");
    assert_eq!(data["member"]["external_id"], "owner");

    let log = attempts_of(&t, &t.base, &app, &gone.id, 1, "delivered").await;
    assert_eq!(log[0]["status"], 204, "{log:?}");
    assert_eq!(log[0]["url"], receiver.url.as_str());
    assert_eq!(log[0]["event_type"], "member.permission_changed");
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_until_it_answers_2xx() {
    let t = spawn_with(|config| quick_retries(config, "1,1,1,1")).await;
    let mut receiver = Receiver::start().await;
    receiver.plan(&[
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ]);
    let app = t.create_app().await;
    let secret = set_webhook(&t, &app, &receiver.url, &["member.permission_changed"]).await;
    t.granted_member(&app, "owner").await;

    let tries = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ];
    for received in &tries {
        received.verify(&secret);
        assert_eq!(received.id, tries[0].id, "the webhook-id stays the same");
        assert_eq!(received.body, tries[0].body, "the body stays the same");
    }
    let id = tries[0].id.clone();
    let attempts = attempts_of(&t, &t.base, &app, &id, 3, "delivered").await;
    let summary: Vec<(u64, u64, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["status"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, 204, "delivered"),
            (2, 503, "retrying"),
            (1, 500, "retrying")
        ]
    );
    assert!(attempts[1]["next_attempt_at"].is_string(), "{attempts:?}");
    assert!(attempts[0]["next_attempt_at"].is_null());

    // A later event comes and goes; the delivered one never comes back.
    t.cms(&app, Method::DELETE, "/v1/cms/members/owner/permission")
        .send()
        .await
        .unwrap();
    let later = receiver.next().await;
    assert_ne!(later.id, id);
    attempts_of(&t, &t.base, &app, &later.id, 1, "delivered").await;
    let all = deliveries(&t, &t.base, &app, "").await;
    let of_first = all["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["event_id"] == id.as_str())
        .count();
    assert_eq!(of_first, 3, "{all}");

    // Paging: newest first, two at a time.
    let first = deliveries(&t, &t.base, &app, "?limit=2").await;
    assert_eq!(first["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(first["attempts"][0]["event_id"], later.id.as_str());
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let second = deliveries(&t, &t.base, &app, &format!("?limit=2&cursor={cursor}")).await;
    let rest: Vec<u64> = second["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(rest, [2, 1], "{second}");
    assert!(second["next_cursor"].is_null(), "{second}");
}

#[tokio::test]
async fn an_event_given_up_after_the_last_attempt_is_recorded_as_failed() {
    let t = spawn_with(|config| quick_retries(config, "1")).await;
    let mut receiver = Receiver::start().await;
    receiver.answer_from_now_on(StatusCode::GONE);
    let app = t.create_app().await;
    set_webhook(&t, &app, &receiver.url, &["member.permission_changed"]).await;
    t.granted_member(&app, "owner").await;
    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!(first.id, second.id);
    let attempts = attempts_of(&t, &t.base, &app, &first.id, 2, "failed").await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["status"], 410);
    assert!(attempts[0]["next_attempt_at"].is_null());
}

#[tokio::test]
async fn a_gateway_stopped_mid_retry_leaves_the_event_to_the_next() {
    let mut t = spawn_with(|config| quick_retries(config, "2,2,2,2,2,2,2,2")).await;
    let mut receiver = Receiver::start().await;
    receiver.answer_from_now_on(StatusCode::INTERNAL_SERVER_ERROR);
    let app = t.create_app().await;
    let secret = set_webhook(&t, &app, &receiver.url, &["member.permission_changed"]).await;
    t.granted_member(&app, "owner").await;
    let failed = receiver.next().await;
    attempts_of(&t, &t.base, &app, &failed.id, 1, "retrying").await;

    t.gateway_shutdown.trigger();
    (&mut t.gateway_task)
        .await
        .expect("the gateway task")
        .expect("the gateway stops cleanly");
    // What the stopped gateway sent before it stopped was answered 500.
    while receiver.received.try_recv().is_ok() {}
    receiver.answer_from_now_on(StatusCode::OK);
    let next = t.second_gateway().await;

    let delivered = receiver.next().await;
    assert_eq!(delivered.id, failed.id, "only the one event exists");
    delivered.verify(&secret);
    let attempts = attempts_of(&t, &next, &app, &failed.id, 2, "delivered").await;
    assert!(
        attempts[0]["attempt"].as_u64().unwrap() >= 2,
        "{attempts:?}"
    );
    assert_eq!(attempts.last().unwrap()["status"], 500);
}

#[tokio::test]
async fn only_subscribed_events_are_sent() {
    let t = spawn().await;
    let mut receiver = Receiver::start().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    set_webhook(&t, &app, &receiver.url, &["message.offline"]).await;
    // Neither sent: a permission change and a conversation.
    t.grant(&app, "owner").await;
    let visitor = t.visitor_token(&app, &endpoint, "Guest").await;
    let _chat = t.visitor_chat(&visitor, &endpoint).await;
    let left = t
        .leave_offline_message(
            &endpoint,
            json!({"session_token": visitor, "text": "Later"}),
        )
        .await;
    assert_eq!(left.status(), StatusCode::ACCEPTED);

    let received = receiver.next().await;
    assert_eq!(received.json()["type"], "message.offline");
    assert!(received.json()["data"]["email"].is_null());
    attempts_of(&t, &t.base, &app, &received.id, 1, "delivered").await;
    let log = deliveries(&t, &t.base, &app, "").await;
    let types: Vec<&str> = log["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["message.offline"], "{log}");
    assert!(
        receiver.received.try_recv().is_err(),
        "nothing else was sent"
    );
}

#[tokio::test]
async fn a_changed_webhook_applies_to_the_next_event() {
    let t = spawn().await;
    let mut old = Receiver::start().await;
    let mut new = Receiver::start().await;
    let app = t.create_app().await;
    let secret = set_webhook(&t, &app, &old.url, &["member.permission_changed"]).await;
    let granted = t.granted_member(&app, "owner").await;
    let endpoint = granted["endpoint"].as_str().unwrap().to_owned();
    // The gateway has read the webhook for this event, and keeps it a while.
    let first = old.next().await;
    first.verify(&secret);
    assert_eq!(first.json()["type"], "member.permission_changed");
    attempts_of(&t, &t.base, &app, &first.id, 1, "delivered").await;

    set_webhook(&t, &app, &new.url, &["message.offline"]).await;
    // Unsubscribed now: a permission change; subscribed now: an offline message.
    t.granted_member(&app, "second").await;
    let visitor = t.visitor_token(&app, &endpoint, "Guest").await;
    let left = t
        .leave_offline_message(
            &endpoint,
            json!({"session_token": visitor, "text": "Later"}),
        )
        .await;
    assert_eq!(left.status(), StatusCode::ACCEPTED);

    let received = new.next().await;
    received.verify(&secret);
    assert_eq!(received.json()["type"], "message.offline");
    let attempts = attempts_of(&t, &t.base, &app, &received.id, 1, "delivered").await;
    assert_eq!(attempts[0]["url"], new.url.as_str());
    let log = deliveries(&t, &t.base, &app, "").await;
    let sent: Vec<(&str, &str)> = log["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["event_type"].as_str().unwrap(),
                a["url"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("message.offline", new.url.as_str()),
            ("member.permission_changed", old.url.as_str())
        ],
        "{log}"
    );
    assert!(
        old.received.try_recv().is_err(),
        "nothing more to the old URL"
    );
    assert!(
        new.received.try_recv().is_err(),
        "nothing else to the new URL"
    );
}

#[tokio::test]
async fn the_delivery_log_needs_the_api_secret_and_its_own_cursors() {
    let t = spawn().await;
    let app = t.create_app().await;
    let empty = json_of(
        t.cms(&app, Method::GET, "/v1/cms/webhook/deliveries")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(empty, json!({"attempts": [], "next_cursor": null}));

    let anonymous = t
        .request(Method::GET, "/v1/cms/webhook/deliveries")
        .send()
        .await
        .unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    for token in ["psk_wrong", ADMIN_TOKEN] {
        let refused = t
            .request(Method::GET, "/v1/cms/webhook/deliveries")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        problem(refused, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    for query in [
        "?cursor=abc",
        "?cursor=0",
        "?cursor=-1",
        "?limit=0",
        "?limit=201",
        "?page=2",
    ] {
        let refused = t
            .cms(
                &app,
                Method::GET,
                &format!("/v1/cms/webhook/deliveries{query}"),
            )
            .send()
            .await
            .unwrap();
        problem(refused, StatusCode::BAD_REQUEST, "invalid_argument").await;
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_webhook() {
    let t = spawn().await;
    let doc = json_of(
        t.request(Method::GET, "/v1/openapi.json")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let webhooks = doc["webhooks"].as_object().expect("a webhooks section");
    let mut names: Vec<&str> = webhooks.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = ALL_EVENTS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for (name, item) in webhooks {
        let schema = &item["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(
            schema["properties"]["type"]["enum"],
            json!([name]),
            "{item}"
        );
        let data = schema["properties"]["data"]["$ref"].as_str().unwrap();
        let component = data.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][component].is_object(),
            "{component}"
        );
    }
    let attempt = &doc["components"]["schemas"]["WebhookAttempt"];
    assert!(
        attempt["properties"]["next_attempt_at"].is_object(),
        "{attempt}"
    );
}
