//! Conversations through the CMS and member APIs, and erasing a member with them.

use palaver_proto::conversation::v1 as conv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{App, TestGateway, json_of, problem, spawn};

/// A conversation with one message from a visitor, started behind the gateway.
async fn chat(t: &TestGateway, app: &App, endpoint: &str) -> String {
    let token = t.visitor_token(app, endpoint, "Guest").await;
    let claims = t.verifier().verify(&token).await.unwrap();
    let caller = conv::Caller {
        app_id: app.app_id.clone(),
        who: Some(conv::caller::Who::VisitorId(claims.sub)),
        display_name: claims.name,
        ..conv::Caller::default()
    };
    let mut client = t.conversation();
    let conversation = client
        .start_conversation(conv::StartConversationRequest {
            caller: Some(caller.clone()),
            endpoint: endpoint.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    client
        .send_message(conv::SendMessageRequest {
            caller: Some(caller),
            conversation_id: conversation.id.clone(),
            client_id: "c1".to_owned(),
            text: "Hello there".to_owned(),
        })
        .await
        .unwrap();
    conversation.id
}

#[tokio::test]
async fn a_cms_reads_conversations_and_transcripts() {
    let t = spawn().await;
    let (app, endpoint, member_id) = t.open_chat(json!({})).await;
    let id = chat(&t, &app, &endpoint).await;

    let page = json_of(
        t.cms(&app, Method::GET, "/v1/cms/conversations?member=owner")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let listed = page["conversations"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["member_id"], member_id);
    assert_eq!(listed[0]["visitor"]["display_name"], "Guest");
    assert_eq!(listed[0]["state"], "open");
    assert_eq!(listed[0]["last_seq"], 1);
    assert_eq!(page["next_cursor"], Value::Null);

    let one = json_of(
        t.cms(&app, Method::GET, &format!("/v1/cms/conversations/{id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["endpoint"], endpoint);

    let path = format!("/v1/cms/conversations/{id}/transcript");
    let text = t
        .cms(&app, Method::GET, &path)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(text.text().await.unwrap().contains("Hello there"));
    let document = json_of(
        t.cms(&app, Method::GET, &path).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(document.to_string().contains("Hello there"), "{document}");

    let missing_member = t
        .cms(&app, Method::GET, "/v1/cms/conversations")
        .send()
        .await
        .unwrap();
    problem(missing_member, StatusCode::BAD_REQUEST, "invalid_argument").await;
    let other_app = t.create_app().await;
    let foreign = t
        .cms(
            &other_app,
            Method::GET,
            &format!("/v1/cms/conversations/{id}"),
        )
        .send()
        .await
        .unwrap();
    problem(foreign, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_member_lists_their_own_conversations() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let id = chat(&t, &app, &endpoint).await;
    let granted = t.granted_member(&app, "second").await;
    let mine = |token: String| {
        t.request(Method::GET, "/v1/me/conversations")
            .bearer_auth(token)
            .send()
    };
    let other = json_of(
        mine(granted["access_token"].as_str().unwrap().to_owned())
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(other["conversations"], json!([]));
    let refused = mine("not-a-permission-token".to_owned()).await.unwrap();
    problem(refused, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let owner = t.grant(&app, "owner").await;
    let page = json_of(
        mine(owner["access_token"].as_str().unwrap().to_owned())
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["conversations"][0]["id"], id, "{page}");
    assert_eq!(page["conversations"][0]["unread"], 1, "{page}");
}

#[tokio::test]
async fn erasing_a_member_erases_their_conversations() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let id = chat(&t, &app, &endpoint).await;
    let erased = t
        .cms(&app, Method::DELETE, "/v1/cms/members/owner")
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);
    let gone = t
        .cms(&app, Method::GET, &format!("/v1/cms/conversations/{id}"))
        .send()
        .await
        .unwrap();
    problem(gone, StatusCode::NOT_FOUND, "not_found").await;
    let member = t
        .cms(&app, Method::GET, "/v1/cms/members/owner")
        .send()
        .await
        .unwrap();
    problem(member, StatusCode::NOT_FOUND, "not_found").await;
}
