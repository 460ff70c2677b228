//! Presence over the WebSocket: a watching socket, a watch-only (token-less) socket of a
//! page, and operator devices kept online by batched heartbeats.

use std::time::Duration;

use palaver_proto::conversation::v1 as conv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SITE, json_of, spawn, spawn_configured};

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
