//! The member's own conversations as the operator console reads and changes them with
//! an operator access token: list, transcript, close, block and unblock, offline
//! messages; nobody else's, never with a visitor's token, never for a malformed id. A
//! member who started a chat on another member's chat box reads it but cannot block.

use palaver_proto::conversation::v1 as conv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{App, TestGateway, json_of, problem, spawn};

/// A request with an operator (or any) bearer token.
async fn with_token(t: &TestGateway, token: &str, method: Method, path: &str) -> reqwest::Response {
    t.request(method, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The conversation as the CMS sees it: what a refused request must not have changed.
async fn cms_view(t: &TestGateway, app: &App, id: &str) -> Value {
    json_of(
        t.cms(app, Method::GET, &format!("/v1/cms/conversations/{id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn an_operator_reads_their_conversations_transcripts_and_offline_messages() {
    let t = spawn().await;
    let (app, endpoint, member_id) = t.open_chat(json!({})).await;
    let visitor = t.visitor_token(&app, &endpoint, "Guest").await;
    let (_socket, id) = t.visitor_chat(&visitor, &endpoint).await;
    let operator = t.operator_token(&app, "owner").await;

    let page = json_of(
        with_token(&t, &operator, Method::GET, "/v1/me/conversations").await,
        StatusCode::OK,
    )
    .await;
    let listed = &page["conversations"][0];
    assert_eq!(listed["id"], id, "{page}");
    assert_eq!(listed["member_id"], member_id);
    assert_eq!(listed["visitor"]["display_name"], "Guest");
    assert_eq!(listed["visitor"]["verified"], false);
    assert_eq!(listed["unread"], 1);

    let messages = json_of(
        with_token(
            &t,
            &operator,
            Method::GET,
            &format!("/v1/me/conversations/{id}/messages"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(messages["more"], false, "{messages}");
    let first = &messages["messages"][0];
    assert_eq!(first["seq"], 1, "{messages}");
    assert_eq!(first["from"], "visitor");
    assert_eq!(first["client_id"], "c1");
    assert_eq!(first["text"], "Hello there");
    let older = json_of(
        with_token(
            &t,
            &operator,
            Method::GET,
            &format!("/v1/me/conversations/{id}/messages?before_seq=1"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(older, json!({"messages": [], "more": false}));

    let path = format!("/v1/me/conversations/{id}/transcript");
    let text = t
        .request(Method::GET, &path)
        .bearer_auth(&operator)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::OK);
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = text.text().await.unwrap();
    assert!(
        text.contains("Hello there") && text.contains("Guest"),
        "{text}"
    );
    let document = json_of(
        with_token(&t, &operator, Method::GET, &path).await,
        StatusCode::OK,
    )
    .await;
    assert!(document.to_string().contains("Hello there"), "{document}");

    let empty = json_of(
        with_token(&t, &operator, Method::GET, "/v1/me/offline-messages").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(empty, json!({"offline_messages": [], "next_cursor": null}));
    let left = t
        .leave_offline_message(
            &endpoint,
            json!({"session_token": visitor, "text": "Call me back", "email": "guest@example.org"}),
        )
        .await;
    let left = json_of(left, StatusCode::ACCEPTED).await;
    let offline = json_of(
        with_token(&t, &operator, Method::GET, "/v1/me/offline-messages").await,
        StatusCode::OK,
    )
    .await;
    let message = &offline["offline_messages"][0];
    assert_eq!(message["id"], left["id"], "{offline}");
    assert_eq!(message["text"], "Call me back");
    assert_eq!(message["email"], "guest@example.org");
    assert_eq!(message["endpoint"], endpoint);
    assert_eq!(message["visitor"]["display_name"], "Guest");

    let granted = t.grant(&app, "owner").await;
    let with_permission = json_of(
        with_token(
            &t,
            granted["access_token"].as_str().unwrap(),
            Method::GET,
            "/v1/me/offline-messages",
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(with_permission, offline, "either credential reads the same");
}

/// `visitor_blocked` of each of the member's conversations, newest first.
async fn blocked_flags(t: &TestGateway, operator: &str) -> Vec<bool> {
    json_of(
        with_token(t, operator, Method::GET, "/v1/me/conversations").await,
        StatusCode::OK,
    )
    .await["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["visitor_blocked"].as_bool().expect("visitor_blocked"))
        .collect()
}

#[tokio::test]
async fn an_operator_closes_a_conversation_and_blocks_its_visitor() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let visitor = t.visitor_token(&app, &endpoint, "Pest").await;
    let (mut socket, first) = t.visitor_chat(&visitor, &endpoint).await;
    let operator = t.operator_token(&app, "owner").await;

    let closed = json_of(
        with_token(
            &t,
            &operator,
            Method::POST,
            &format!("/v1/me/conversations/{first}/close"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(closed["id"], first);
    assert_eq!(closed["state"], "closed");
    assert!(closed["closed_at"].is_string(), "{closed}");
    assert_eq!(cms_view(&t, &app, &first).await["state"], "closed");

    socket
        .send(json!({"type": "conversation.open", "endpoint": endpoint}))
        .await;
    let second = socket
        .until("conversation", |f| f["id"] != first && f["state"] == "open")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cms_view(&t, &app, &second).await["visitor_blocked"], false);
    let block = format!("/v1/me/conversations/{second}/block");
    let blocked = json_of(
        with_token(&t, &operator, Method::POST, &block).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(blocked["closed_conversations"], 1, "{blocked}");
    assert_eq!(cms_view(&t, &app, &second).await["state"], "closed");
    let visitor_id = cms_view(&t, &app, &second).await["visitor"]["id"].clone();
    assert_eq!(blocked["visitor_id"], visitor_id);
    // Every conversation with the visitor says so, in the list a reloaded console reads.
    assert_eq!(cms_view(&t, &app, &second).await["visitor_blocked"], true);
    assert_eq!(blocked_flags(&t, &operator).await, [true, true]);
    socket
        .send(json!({"type": "conversation.open", "endpoint": endpoint}))
        .await;
    let refused = socket.until("error", |_| true).await;
    assert_eq!(refused["code"], "visitor_blocked", "{refused}");

    let unblocked = with_token(&t, &operator, Method::DELETE, &block).await;
    assert_eq!(unblocked.status(), StatusCode::NO_CONTENT);
    let again = with_token(&t, &operator, Method::DELETE, &block).await;
    problem(again, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(blocked_flags(&t, &operator).await, [false, false]);
    socket
        .send(json!({"type": "conversation.open", "endpoint": endpoint}))
        .await;
    let reopened = socket.until("conversation", |f| f["state"] == "open").await;
    assert_ne!(reopened["id"], second);
}

#[tokio::test]
async fn another_members_conversation_is_not_found_and_stays_as_it_was() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let visitor = t.visitor_token(&app, &endpoint, "Guest").await;
    let (_socket, id) = t.visitor_chat(&visitor, &endpoint).await;
    t.create_member(&app, "second").await;
    let other = t.operator_token(&app, "second").await;

    let mine = json_of(
        with_token(&t, &other, Method::GET, "/v1/me/conversations").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine["conversations"], json!([]));
    for (method, path) in [
        (Method::GET, format!("/v1/me/conversations/{id}/messages")),
        (Method::GET, format!("/v1/me/conversations/{id}/transcript")),
        (Method::POST, format!("/v1/me/conversations/{id}/close")),
        (Method::POST, format!("/v1/me/conversations/{id}/block")),
        (Method::DELETE, format!("/v1/me/conversations/{id}/block")),
    ] {
        let response = with_token(&t, &other, method, &path).await;
        problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let view = cms_view(&t, &app, &id).await;
    assert_eq!(view["state"], "open", "{view}");
    let offline = json_of(
        with_token(&t, &other, Method::GET, "/v1/me/offline-messages").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offline["offline_messages"], json!([]));
}

#[tokio::test]
async fn visitor_tokens_permission_tokens_for_changes_and_bad_ids_are_refused() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let visitor = t.visitor_token(&app, &endpoint, "Guest").await;
    let (_socket, id) = t.visitor_chat(&visitor, &endpoint).await;
    let operator = t.operator_token(&app, "owner").await;
    let granted = t.grant(&app, "owner").await;
    let permission = granted["access_token"].as_str().unwrap();

    let every = [
        (Method::GET, "/v1/me/conversations".to_owned()),
        (Method::GET, "/v1/me/offline-messages".to_owned()),
        (Method::GET, format!("/v1/me/conversations/{id}/messages")),
        (Method::GET, format!("/v1/me/conversations/{id}/transcript")),
        (Method::POST, format!("/v1/me/conversations/{id}/close")),
        (Method::POST, format!("/v1/me/conversations/{id}/block")),
        (Method::DELETE, format!("/v1/me/conversations/{id}/block")),
    ];
    for (method, path) in &every {
        let response = with_token(&t, &visitor, method.clone(), path).await;
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        let anonymous = t.request(method.clone(), path).send().await.unwrap();
        problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    for (method, path) in &every[4..] {
        let response = with_token(&t, permission, method.clone(), path).await;
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    for (method, path) in [
        (Method::GET, "/v1/me/conversations/not%20an%20id/messages"),
        (
            Method::GET,
            "/v1/me/conversations/c_x/messages?before_seq=2&after_seq=1",
        ),
        (
            Method::GET,
            "/v1/me/conversations/c_x/messages?before_seq=-1",
        ),
        (Method::GET, "/v1/me/conversations/not%20an%20id/transcript"),
        (Method::POST, "/v1/me/conversations/not%20an%20id/close"),
        (Method::POST, "/v1/me/conversations/not%20an%20id/block"),
        (Method::DELETE, "/v1/me/conversations/not%20an%20id/block"),
        (Method::GET, "/v1/me/offline-messages?cursor=%25%25"),
        (Method::GET, "/v1/me/offline-messages?limit=5000"),
        (Method::GET, "/v1/me/conversations?limit=x"),
    ] {
        let response = with_token(&t, &operator, method, path).await;
        problem(response, StatusCode::BAD_REQUEST, "invalid_argument").await;
    }
    assert_eq!(cms_view(&t, &app, &id).await["state"], "open");
}

#[tokio::test]
async fn a_member_who_started_a_chat_elsewhere_reads_it_but_cannot_block() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let second = t.create_member(&app, "second").await;
    // A verified visitor who is also the member `second`, as a widget on the owner's
    // profile page would start it.
    let caller = conv::Caller {
        app_id: app.app_id.clone(),
        who: Some(conv::caller::Who::VisitorId("v_second0visitor".to_owned())),
        display_name: "Member second".to_owned(),
        verified: true,
        external_id: "second".to_owned(),
        visitor_member_id: second["member_id"].as_str().unwrap().to_owned(),
    };
    let id = t
        .conversation()
        .start_conversation(conv::StartConversationRequest {
            caller: Some(caller),
            endpoint: endpoint.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let operator = t.operator_token(&app, "second").await;

    let page = json_of(
        with_token(&t, &operator, Method::GET, "/v1/me/conversations").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["conversations"][0]["id"], id, "{page}");
    let transcript = with_token(
        &t,
        &operator,
        Method::GET,
        &format!("/v1/me/conversations/{id}/transcript"),
    )
    .await;
    assert_eq!(transcript.status(), StatusCode::OK);
    let refused = with_token(
        &t,
        &operator,
        Method::POST,
        &format!("/v1/me/conversations/{id}/block"),
    )
    .await;
    problem(refused, StatusCode::FORBIDDEN, "permission_denied").await;
    assert_eq!(cms_view(&t, &app, &id).await["state"], "open");
}
