//! The WebSocket: visitors and operators chatting (messages, acks, typing, read),
//! resume without loss or doubles, two gateways sharing the load, and an operator who
//! hears of a chat after its first messages. Presence over the socket is in
//! `ws_presence`, what a socket is refused or closed for in `ws_limits`.

use std::time::Duration;

use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{App, SITE, TestGateway, Ws, json_of, spawn};

/// A verified visitor's session token: the CMS's assertion for `sub`.
async fn verified_token(t: &TestGateway, app: &App, endpoint: &str, sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(app.identity_key_id.clone());
    let claims =
        json!({"sub": sub, "name": "Grace", "aud": app.app_id, "iat": now, "exp": now + 600});
    let assertion = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(app.identity_key.as_bytes()),
    )
    .unwrap();
    let response = t
        .visitor_session(
            Some(SITE),
            json!({"app_id": app.app_id, "endpoint": endpoint, "assertion": assertion}),
        )
        .send()
        .await
        .unwrap();
    json_of(response, StatusCode::CREATED).await["session_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A visitor's socket with a conversation open: the socket and the conversation id.
pub(crate) async fn visitor_in_chat(base: &str, token: &str, endpoint: &str) -> (Ws, String) {
    let mut visitor = Ws::connect(base, Some(SITE)).await;
    visitor.hello(token).await;
    visitor
        .send(json!({"type": "conversation.open", "endpoint": endpoint}))
        .await;
    let opened = visitor.until("conversation", |_| true).await;
    assert_eq!(opened["endpoint"], endpoint);
    assert_eq!(opened["state"], "open");
    (visitor, opened["id"].as_str().unwrap().to_owned())
}

async fn say(ws: &mut Ws, conversation: &str, client_id: &str, text: &str) -> Value {
    ws.send(json!({"type": "message.send", "conversation": conversation, "client_id": client_id, "text": text}))
        .await;
    ws.until("message.ack", |f| f["client_id"] == client_id)
        .await
}

async fn chat_between(
    t: &TestGateway,
    app: &App,
    endpoint: &str,
    visitor_token: String,
    verified: bool,
) {
    let mut operator = t.ws(None).await;
    let welcome = operator.hello(&t.operator_token(app, "owner").await).await;
    assert_eq!(welcome["you"]["kind"], "operator");

    let (mut visitor, id) = visitor_in_chat(&t.base, &visitor_token, endpoint).await;
    let started = operator.until("conversation", |f| f["id"] == id).await;
    assert_eq!(started["visitor"]["verified"], verified);

    let ack = say(&mut visitor, &id, "v1", "Hello?").await;
    assert_eq!(ack["seq"], 1);
    let own = visitor.until("message", |_| true).await;
    assert_eq!(own["id"], ack["id"]);
    let heard = operator.until("message", |_| true).await;
    assert_eq!(
        (
            &heard["conversation"],
            &heard["seq"],
            &heard["from"],
            &heard["text"],
            &heard["client_id"]
        ),
        (
            &json!(id),
            &json!(1),
            &json!("visitor"),
            &json!("Hello?"),
            &json!("v1")
        )
    );
    assert!(heard["sent_at"].is_string());

    operator
        .send(json!({"type": "read", "conversation": id, "seq": 1}))
        .await;
    let read = visitor.until("read", |_| true).await;
    assert_eq!(
        read,
        json!({"type": "read", "conversation": id, "seq": 1, "by": "member"})
    );
    operator
        .send(json!({"type": "typing", "conversation": id}))
        .await;
    let typing = visitor.until("typing", |_| true).await;
    assert_eq!(
        typing,
        json!({"type": "typing", "conversation": id, "from": "member"})
    );
    let ack = say(&mut operator, &id, "o1", "Hi, how can I help?").await;
    assert_eq!(ack["seq"], 2);
    let answer = visitor.until("message", |f| f["seq"] == 2).await;
    assert_eq!(answer["from"], "member");
    assert_eq!(answer["text"], "Hi, how can I help?");

    visitor
        .send(json!({"type": "read", "conversation": id, "seq": 2}))
        .await;
    let read = operator.until("read", |f| f["by"] == "visitor").await;
    assert_eq!(read["seq"], 2);
    assert!(
        operator
            .drain()
            .await
            .iter()
            .all(|f| f["type"] != "message"),
        "each message once per socket"
    );
}

#[tokio::test]
async fn an_anonymous_visitor_and_the_operator_chat() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    chat_between(&t, &app, &endpoint, token, false).await;
}

#[tokio::test]
async fn a_verified_visitor_and_the_operator_chat() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = verified_token(&t, &app, &endpoint, "cms-42").await;
    chat_between(&t, &app, &endpoint, token, true).await;
}

#[tokio::test]
async fn resume_after_a_dropped_connection_loses_and_doubles_nothing() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let mut operator = t.ws(None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    let (mut visitor, id) = visitor_in_chat(&t.base, &token, &endpoint).await;
    say(&mut visitor, &id, "v1", "one").await;
    say(&mut visitor, &id, "v2", "two").await;
    visitor.close().await;

    operator.until("conversation", |f| f["id"] == id).await;
    for (i, text) in ["three", "four", "five"].iter().enumerate() {
        say(&mut operator, &id, &format!("o{i}"), text).await;
    }
    let again = say(&mut operator, &id, "o0", "three").await;
    assert_eq!(again["seq"], 3, "a repeated client id is stored once");

    let mut visitor = Ws::connect(&t.base, Some(SITE)).await;
    visitor.hello(&token).await;
    visitor
        .send(json!({"type": "resume", "conversation": id, "after_seq": 2}))
        .await;
    let missed: Vec<Value> = visitor.drain().await;
    let seqs: Vec<&Value> = missed.iter().map(|f| &f["seq"]).collect();
    assert_eq!(seqs, [&json!(3), &json!(4), &json!(5)], "{missed:?}");
    assert_eq!(missed[0]["text"], "three");
    visitor
        .send(json!({"type": "resume", "conversation": id, "after_seq": 0}))
        .await;
    let rest: Vec<Value> = visitor.drain().await;
    let seqs: Vec<&Value> = rest.iter().map(|f| &f["seq"]).collect();
    assert_eq!(
        seqs,
        [&json!(1), &json!(2)],
        "what the socket had is not sent again"
    );

    say(&mut operator, &id, "o9", "six").await;
    let live = visitor.until("message", |_| true).await;
    assert_eq!(live["seq"], 6);
}

#[tokio::test]
async fn two_gateways_share_the_load() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let other = t.second_gateway().await;
    let mut operator = Ws::connect(&other, None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let (mut visitor, id) = visitor_in_chat(&t.base, &token, &endpoint).await;
    operator.until("conversation", |f| f["id"] == id).await;
    say(&mut visitor, &id, "v1", "from the first gateway").await;
    let heard = operator.until("message", |_| true).await;
    assert_eq!(heard["text"], "from the first gateway");
    say(&mut operator, &id, "o1", "from the second").await;
    let answer = visitor.until("message", |f| f["from"] == "member").await;
    assert_eq!(answer["text"], "from the second");
}

#[tokio::test]
async fn an_operator_gets_the_first_messages_of_a_chat_announced_after_they_were_published() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let mut inbox = t
        .bus
        .subscribe(&format!("{}.member.*.inbox", app.app_id))
        .await
        .unwrap();
    let token = t.visitor_token(&app, &endpoint, "Early").await;
    let (_visitor, id) = t.visitor_chat(&token, &endpoint).await;
    let started = tokio::time::timeout(Duration::from_secs(20), inbox.next())
        .await
        .expect("the conversation is announced")
        .unwrap();

    // The operator's socket subscribes only when a chat is announced, so a message
    // published before that is not seen live: announcing the chat again (as if the
    // announcement had overtaken its first message) must still bring message 1.
    let mut operator = t.ws(None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    t.bus
        .publish(&started.subject, started.payload.clone())
        .await
        .unwrap();
    operator.until("conversation", |f| f["id"] == id).await;
    let first = operator.until("message", |f| f["conversation"] == id).await;
    assert_eq!(first["seq"], 1);
    assert_eq!(first["text"], "Hello there");
    assert_eq!(first["client_id"], "c1");
}
