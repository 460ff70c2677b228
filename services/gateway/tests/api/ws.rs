//! The WebSocket: visitors and operators chatting (messages, acks, typing, read),
//! resume without loss or doubles, two gateways sharing the load, presence on a
//! watching socket and on a watch-only (token-less) socket, origin rules, bad frames, the per-session message limit and slow
//! consumers, sockets closed when their token expires or when they stop answering pings.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palaver_kit::bus::{ConversationKind, Subject};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::events::v1 as events;
use prost::Message as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{App, SITE, TestGateway, Ws, json_of, spawn, spawn_configured, spawn_with};

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
async fn visitor_in_chat(base: &str, token: &str, endpoint: &str) -> (Ws, String) {
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
async fn a_watching_socket_sees_presence_change() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let mut watcher = t.ws(Some(SITE)).await;
    watcher.hello(&token).await;
    watcher
        .send(json!({"type": "presence.watch", "endpoints": [endpoint, "ce_unknown00"]}))
        .await;
    let unknown = watcher.until("error", |_| true).await;
    assert_eq!(unknown["code"], "not_found");
    assert_eq!(unknown["ref"], "ce_unknown00");
    let first = watcher.until("presence", |_| true).await;
    assert_eq!(
        first,
        json!({"type": "presence", "endpoint": endpoint, "status": "offline", "status_text": "Offline", "accepts_chats": false})
    );

    let mut operator = t.ws(None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    watcher.until("presence", |f| f["status"] == "online").await;
    operator
        .send(json!({"type": "presence.set", "status": "busy"}))
        .await;
    let busy = watcher.until("presence", |f| f["status"] == "busy").await;
    assert_eq!(busy["accepts_chats"], true);
    let http = json_of(
        t.request(Method::GET, &format!("/v1/endpoints/{endpoint}/presence"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(http["status"], "busy");
    operator
        .send(json!({"type": "presence.set", "status": "invisible"}))
        .await;
    let hidden = watcher.until("presence", |f| f["status"] != "busy").await;
    assert_eq!(
        hidden["status"], "offline",
        "visitors see invisible as offline"
    );
    operator
        .send(json!({"type": "presence.set", "status": "away"}))
        .await;
    watcher.until("presence", |f| f["status"] == "away").await;
    operator.close().await;
    watcher
        .until("presence", |f| f["status"] == "offline")
        .await;
}

#[tokio::test]
async fn a_page_watches_presence_without_a_session_and_can_do_nothing_else() {
    let t = spawn().await;
    let (app, endpoint, member) = t.open_chat(json!({})).await;
    let (other_app, other_endpoint, _) = t.open_chat(json!({})).await;
    let sessions = t.count("visitor_sessions").await;

    let mut watcher = t.ws(Some(SITE)).await;
    watcher
        .send(json!({"type": "hello", "app_id": app.app_id, "lang": "de"}))
        .await;
    let welcome = watcher.frame().await;
    assert_eq!(
        welcome,
        json!({"type": "welcome", "you": {"kind": "watcher", "app_id": app.app_id, "verified": false}})
    );
    watcher
        .send(json!({"type": "presence.watch", "endpoints": [endpoint, other_endpoint]}))
        .await;
    let foreign = watcher.until("error", |_| true).await;
    assert_eq!(
        (&foreign["code"], &foreign["ref"]),
        (&json!("not_found"), &json!(other_endpoint)),
        "only the app's own endpoints"
    );
    let first = watcher.until("presence", |_| true).await;
    assert_eq!(
        first,
        json!({"type": "presence", "endpoint": endpoint, "status": "offline", "status_text": "Offline", "accepts_chats": false})
    );

    let mut operator = t.ws(None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    watcher.until("presence", |f| f["status"] == "online").await;
    operator
        .send(json!({"type": "presence.set", "status": "busy"}))
        .await;
    let busy = watcher.until("presence", |f| f["status"] == "busy").await;
    assert_eq!(
        (&busy["status_text"], &busy["accepts_chats"]),
        (&json!("Beschäftigt"), &json!(true)),
        "status text in the hello's language"
    );

    for frame in [
        json!({"type": "conversation.open", "endpoint": endpoint}),
        json!({"type": "message.send", "conversation": "c1", "client_id": "w1", "text": "hi"}),
        json!({"type": "typing", "conversation": "c1"}),
        json!({"type": "read", "conversation": "c1", "seq": 1}),
        json!({"type": "resume", "conversation": "c1", "after_seq": 0}),
        json!({"type": "presence.set", "status": "online"}),
        json!({"type": "hello", "app_id": app.app_id}),
    ] {
        watcher.send(frame.clone()).await;
        let refused = watcher.until("error", |_| true).await;
        assert_eq!(refused["code"], "unauthenticated", "{frame} → {refused}");
    }
    assert_eq!(watcher.drain().await, Vec::<Value>::new());
    let conversations = t
        .conversation()
        .list_conversations(conv::ListConversationsRequest {
            app_id: app.app_id.clone(),
            member_id: member,
            ..conv::ListConversationsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(conversations.conversations.is_empty());
    assert_eq!(t.count("visitor_sessions").await, sessions);

    // The widget's frame page is served by the gateway itself: it watches, and its
    // visitors chat, from the gateway's own origin.
    let mut framed = t.ws(Some(&t.base)).await;
    framed
        .send(json!({"type": "hello", "app_id": other_app.app_id}))
        .await;
    assert_eq!(framed.frame().await["you"]["kind"], "watcher");
    let session = t
        .visitor_session(
            Some(&t.base),
            json!({"app_id": app.app_id, "endpoint": endpoint, "display_name": "Framed"}),
        )
        .send()
        .await
        .unwrap();
    let session = json_of(session, StatusCode::CREATED).await;
    let mut framed_visitor = t.ws(Some(&t.base)).await;
    let welcome = framed_visitor
        .hello(session["session_token"].as_str().unwrap())
        .await;
    assert_eq!(welcome["you"]["kind"], "visitor");

    let mut elsewhere = t.ws(Some("https://evil.example")).await;
    elsewhere
        .send(json!({"type": "hello", "app_id": app.app_id}))
        .await;
    elsewhere.refused("origin_not_allowed").await;
    let mut no_origin = t.ws(None).await;
    no_origin
        .send(json!({"type": "hello", "app_id": app.app_id}))
        .await;
    no_origin.refused("origin_not_allowed").await;
    let mut unknown = t.ws(Some(SITE)).await;
    unknown
        .send(json!({"type": "hello", "app_id": "app_unknown"}))
        .await;
    unknown.refused("not_found").await;
    let mut both = t.ws(Some(SITE)).await;
    both.send(json!({"type": "hello", "app_id": app.app_id, "token": "x"}))
        .await;
    both.refused("invalid_argument").await;
}

#[tokio::test]
async fn operator_devices_stay_online_through_batched_heartbeats() {
    let ttl = Duration::from_secs(1);
    let t = spawn_configured(
        |gateway| gateway.heartbeat_every = Duration::from_millis(200),
        |presence| {
            presence.policy.ttl = ttl;
            presence.policy.grace = Duration::ZERO;
        },
    )
    .await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let mut console = t.ws(Some(&t.base)).await;
    console.hello(&t.operator_token(&app, "owner").await).await;
    let mut cli = t.ws(None).await;
    cli.hello(&t.operator_token(&app, "owner").await).await;
    cli.send(json!({"type": "presence.set", "status": "busy"}))
        .await;
    assert!(cli.drain().await.is_empty());
    let started = std::time::Instant::now();
    // Several TTLs' worth of batches: without them both devices would have expired.
    while started.elapsed() < ttl * 3
        || t.metric("palaver_gateway_presence_heartbeat_batches_total")
            .await
            < 5.0
    {
        console.drain().await;
    }
    let http = json_of(
        t.request(Method::GET, &format!("/v1/endpoints/{endpoint}/presence"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(http["status"], "online", "{http}");
    console.close().await;
    cli.close().await;
}

#[tokio::test]
async fn sockets_from_the_wrong_place_are_refused() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;

    let mut elsewhere = t.ws(Some("https://evil.example")).await;
    elsewhere
        .send(json!({"type": "hello", "token": token}))
        .await;
    elsewhere.refused("origin_not_allowed").await;
    let mut native = t.ws(None).await;
    native.send(json!({"type": "hello", "token": token})).await;
    native.refused("origin_not_allowed").await;
    let mut forged = t.ws(Some(SITE)).await;
    forged
        .send(json!({"type": "hello", "token": "not-a-token"}))
        .await;
    forged.refused("unauthenticated").await;
    let mut silent = t.ws(Some(SITE)).await;
    silent.send(json!({"type": "ping"})).await;
    silent.refused("invalid_argument").await;

    let mut operator = t.ws(Some("https://evil.example")).await;
    operator
        .send(json!({"type": "hello", "token": t.operator_token(&app, "owner").await}))
        .await;
    operator.refused("origin_not_allowed").await;
    let mut console = t.ws(Some(&t.base)).await;
    console.hello(&t.operator_token(&app, "owner").await).await;
}

#[tokio::test]
async fn bad_frames_are_refused_and_change_nothing() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let (mut visitor, id) = visitor_in_chat(&t.base, &token, &endpoint).await;
    let bad = [
        json!("not an object"),
        json!({"type": "nope"}),
        json!({"type": "message.send", "conversation": id, "client_id": "c1"}),
        json!({"type": "read", "conversation": id, "seq": "one"}),
        json!({"type": "message.send", "conversation": id, "client_id": "c1", "text": "   "}),
        json!({"type": "hello", "token": token}),
        json!({"type": "resume", "conversation": "c_someone_elses", "after_seq": 0}),
    ];
    for frame in bad {
        visitor.send(frame.clone()).await;
        let error = visitor.until("error", |_| true).await;
        assert!(
            ["invalid_argument", "not_found"].contains(&error["code"].as_str().unwrap()),
            "{frame}: {error}"
        );
    }
    visitor.send_raw(WsMessage::text("{")).await;
    assert_eq!(
        visitor.until("error", |_| true).await["code"],
        "invalid_argument"
    );
    visitor
        .send_raw(WsMessage::Binary(Bytes::from_static(b"\x00")))
        .await;
    assert_eq!(
        visitor.until("error", |_| true).await["code"],
        "invalid_argument"
    );
    visitor
        .send(json!({"type": "presence.set", "status": "online"}))
        .await;
    assert_eq!(
        visitor.until("error", |_| true).await["code"],
        "permission_denied"
    );

    let mut operator = t.ws(None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    operator
        .send(json!({"type": "presence.set", "status": "sleeping"}))
        .await;
    assert_eq!(
        operator.until("error", |_| true).await["code"],
        "invalid_argument"
    );

    let stored = t
        .conversation()
        .list_messages(conv::ListMessagesRequest {
            caller: Some(conv::Caller {
                app_id: app.app_id.clone(),
                ..conv::Caller::default()
            }),
            conversation_id: id.clone(),
            page: None,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert!(stored.is_empty(), "{stored:?}");
    // The socket stays usable. The bus may still bring the conversation's `opened`
    // event, which the socket subscribed to after the conversation was made.
    let rest = visitor.drain().await;
    assert!(
        rest.iter()
            .all(|f| f["type"] == "conversation" && f["id"] == id),
        "{rest:?}"
    );
}

#[tokio::test]
async fn a_frame_past_the_size_limit_closes_the_socket() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let mut visitor = t.ws(Some(SITE)).await;
    visitor.hello(&token).await;
    let huge = "x".repeat(64 * 1024);
    visitor
        .send_or_cut(json!({"type": "typing", "conversation": huge}))
        .await;
    assert!(
        visitor.next().await.is_none(),
        "the gateway closes the socket"
    );
}

#[tokio::test]
async fn messages_past_the_session_limit_are_refused_and_not_stored() {
    let t = spawn().await;
    let (app, endpoint, _) = t
        .open_chat(json!({"limits": {"messages_per_second": 1, "message_burst": 3}}))
        .await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let (mut visitor, id) = visitor_in_chat(&t.base, &token, &endpoint).await;
    for i in 0..3 {
        visitor
            .send(json!({"type": "message.send", "conversation": id, "client_id": format!("c{i}"), "text": "hi"}))
            .await;
    }
    visitor
        .send(json!({"type": "message.send", "conversation": id, "client_id": "c3", "text": "hi"}))
        .await;
    let limited = visitor.until("error", |_| true).await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    assert_eq!(limited["ref"], "c3");
    let stored = t
        .conversation()
        .list_messages(conv::ListMessagesRequest {
            caller: Some(conv::Caller {
                app_id: app.app_id.clone(),
                ..conv::Caller::default()
            }),
            conversation_id: id.clone(),
            page: None,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    let ids: Vec<&str> = stored.iter().map(|m| m.client_id.as_str()).collect();
    assert_eq!(ids, ["c0", "c1", "c2"]);
}

#[tokio::test]
async fn a_consumer_that_falls_behind_is_told_and_closed() {
    let t = spawn_with(|config| config.ws_send_queue = 4).await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let mut visitor = Ws::connect_over(&t.base, Some(SITE), Some(4096)).await;
    visitor.hello(&token).await;
    visitor
        .send(json!({"type": "conversation.open", "endpoint": endpoint}))
        .await;
    let id = visitor.until("conversation", |_| true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let typing = events::ConversationStateEvent {
        conversation_id: id.clone(),
        kind: Some(events::conversation_state_event::Kind::Typing(
            events::Typing {
                from: conv::Sender::Member.into(),
            },
        )),
        ..events::ConversationStateEvent::default()
    }
    .encode_to_vec();
    let subject = Subject::conversation(&app.app_id, &id, ConversationKind::Typing).to_string();
    while t.metric("palaver_gateway_ws_slow_consumers_total").await < 1.0 {
        for _ in 0..2000 {
            t.bus
                .publish(&subject, Bytes::from(typing.clone()))
                .await
                .unwrap();
        }
    }
    loop {
        let frame = visitor
            .next()
            .await
            .expect("the slow_consumer error before the close");
        if frame["type"] == "error" {
            assert_eq!(frame["code"], "slow_consumer", "{frame}");
            break;
        }
        assert_eq!(frame["type"], "typing");
    }
    assert!(visitor.next().await.is_none(), "then the socket closes");
}

#[tokio::test]
async fn a_socket_is_closed_when_its_token_expires() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let fresh = t.visitor_token(&app, &endpoint, "Guest").await;
    let claims = t.verifier().verify(&fresh).await.unwrap();
    // A token identity signed a lifetime ago, less a few seconds, expires in a few
    // seconds, counting the 30 s the gateway's verifier allows past `exp`.
    let age_ms = (claims.exp - claims.iat + 30 - 5) * 1000;
    t.identity.clock.shift_ms(-age_ms);
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    t.identity.clock.shift_ms(age_ms);

    let mut visitor = t.ws(Some(SITE)).await;
    visitor.hello(&token).await;
    let expired = visitor.frame().await;
    assert_eq!(
        expired,
        json!({"type": "error", "code": "token_expired", "message": "the token expired; reconnect"})
    );
    assert!(visitor.next().await.is_none(), "then the socket closes");

    let mut again = t.ws(Some(SITE)).await;
    again.send(json!({"type": "hello", "token": token})).await;
    again.refused("token_expired").await;
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_dropped() {
    let t = spawn_with(|gateway| gateway.ws_ping_every = Duration::from_secs(1)).await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let mut answering = t.ws(Some(SITE)).await;
    answering.hello(&token).await;

    let mut request = format!("{}/v1/ws", t.base.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", SITE.parse().unwrap());
    let (mut silent, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    silent
        .send(WsMessage::text(
            json!({"type": "hello", "token": token}).to_string(),
        ))
        .await
        .unwrap();
    let welcome = silent.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"), "{welcome}");
    // From here on the client reads the raw bytes, so nothing answers the pings, while
    // the other client keeps reading (and answering) until the silent one is dropped.
    let mut received = Vec::new();
    let dropped = tokio::time::timeout(
        Duration::from_secs(20),
        silent.get_mut().read_to_end(&mut received),
    );
    let kept = async {
        loop {
            answering.drain().await;
        }
    };
    tokio::select! {
        read = dropped => {
            read.expect("the gateway drops the silent client").unwrap();
        }
        _ = kept => {}
    }
    assert!(
        received.windows(9).any(|frame| frame == b"\x89\x07palaver"),
        "it was pinged: {received:?}"
    );
    assert!(
        received.ends_with(&[0x88, 0x00]),
        "a close frame, then the end of the stream: {received:?}"
    );
    assert!(
        answering.drain().await.is_empty(),
        "the answering client stays"
    );
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
