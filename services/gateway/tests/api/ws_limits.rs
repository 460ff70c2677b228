//! What a WebSocket is refused or closed for: the wrong origin, bad frames, a frame past
//! the size limit, messages past the session's limit, a consumer that falls behind, an
//! expired token, a client that stops answering pings.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use palaver_kit::bus::{ConversationKind, Subject};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::events::v1 as events;
use prost::Message as _;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{SITE, Ws, spawn, spawn_with};
use crate::ws::visitor_in_chat;

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
