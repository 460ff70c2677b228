//! The CMS API: members, webhook settings, key rotation and who may call it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{App, json_of, problem, spawn};

#[tokio::test]
async fn a_wrong_or_missing_api_secret_is_401() {
    let t = spawn().await;
    let app = t.create_app().await;
    let forged = App {
        api_secret: format!("psk_{}_forgedforgedforged", app.app_id),
        ..app.clone()
    };
    let body = json!({"external_id": "u1", "display_name": "Ada"});
    let response = t
        .cms(&forged, Method::POST, "/v1/cms/members")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"palaver\""
    );
    problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let missing = t
        .request(Method::POST, "/v1/cms/members")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(missing, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let admin_token = t
        .admin(Method::GET, "/v1/cms/webhook")
        .send()
        .await
        .unwrap();
    problem(admin_token, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(t.count("members").await, 0);
}

#[tokio::test]
async fn members_are_created_read_changed_and_erased() {
    let t = spawn().await;
    let app = t.create_app().await;
    let other_app = t.create_app().await;
    let created = t.create_member(&app, "user/42").await;
    assert_eq!(created["external_id"], "user/42");
    assert_eq!(created["display_name"], "Member user/42");
    assert_eq!(created["endpoint"], json!(null));
    assert!(created["member_id"].as_str().unwrap().starts_with("m_"));

    let path = "/v1/cms/members/user%2F42";
    let read = json_of(
        t.cms(&app, Method::GET, path).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["member_id"], created["member_id"]);
    problem(
        t.cms(&other_app, Method::GET, path).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let changed = t
        .cms(&app, Method::PATCH, path)
        .json(&json!({"display_name": "Ada Lovelace", "email": "ada@example.org"}))
        .send()
        .await
        .unwrap();
    let changed = json_of(changed, StatusCode::OK).await;
    assert_eq!(changed["display_name"], "Ada Lovelace");
    assert_eq!(changed["email"], "ada@example.org");

    let again = t
        .cms(&app, Method::POST, "/v1/cms/members")
        .json(&json!({"external_id": "user/42", "display_name": "Twin"}))
        .send()
        .await
        .unwrap();
    problem(again, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(t.count("members").await, 1);

    let erased = t.cms(&app, Method::DELETE, path).send().await.unwrap();
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);
    problem(
        t.cms(&app, Method::GET, path).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        t.cms(&app, Method::DELETE, path).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(t.count("members").await, 0);
}

#[tokio::test]
async fn bad_member_input_gets_its_code_and_changes_nothing() {
    let t = spawn().await;
    let app = t.create_app().await;
    let create = |body: serde_json::Value| {
        t.cms(&app, Method::POST, "/v1/cms/members")
            .json(&body)
            .send()
    };
    let body = problem(
        create(json!({"external_id": "u1", "display_name": "   "}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "display_name", "{body}");
    let body = problem(
        create(json!({"external_id": "u1"})).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("display_name"),
        "{body}"
    );
    problem(
        create(json!({"external_id": "u1", "display_name": "Ada", "email": "not-an-address"}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert_eq!(t.count("members").await, 0);

    t.create_member(&app, "u2").await;
    problem(
        t.cms(&app, Method::PATCH, "/v1/cms/members/u2")
            .json(&json!({"display_name": "x".repeat(65)}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    let unchanged = json_of(
        t.cms(&app, Method::GET, "/v1/cms/members/u2")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged["display_name"], "Member u2");
}

#[tokio::test]
async fn the_webhook_is_set_read_and_validated() {
    let t = spawn().await;
    let app = t.create_app().await;
    let unset = json_of(
        t.cms(&app, Method::GET, "/v1/cms/webhook")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(unset["url"], json!(null));

    let set = t
        .cms(&app, Method::PUT, "/v1/cms/webhook")
        .json(&json!({"url": "https://example.org/hooks", "events": ["message.created", "conversation.started"]}))
        .send()
        .await
        .unwrap();
    let set = json_of(set, StatusCode::OK).await;
    assert_eq!(set["url"], "https://example.org/hooks");
    assert_eq!(
        set["events"],
        json!(["message.created", "conversation.started"])
    );
    assert!(set["secret"].as_str().unwrap().starts_with("whsec_"));

    let bad = t
        .cms(&app, Method::PUT, "/v1/cms/webhook")
        .json(&json!({"url": "https://example.org/other", "events": ["message.exploded"]}))
        .send()
        .await
        .unwrap();
    let body = problem(bad, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert_eq!(body["errors"][0]["field"], "events[0]");
    let read = json_of(
        t.cms(&app, Method::GET, "/v1/cms/webhook")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, set, "the refused change changed nothing");
}

#[tokio::test]
async fn keys_rotate_through_the_colon_paths() {
    let t = spawn().await;
    let app = t.create_app().await;
    let rotated = t
        .cms(&app, Method::POST, "/v1/cms/keys/api-secret:rotate")
        .send()
        .await
        .unwrap();
    let rotated = json_of(rotated, StatusCode::OK).await;
    let new_app = App {
        api_secret: rotated["api_secret"].as_str().unwrap().to_owned(),
        ..app.clone()
    };
    assert_ne!(new_app.api_secret, app.api_secret);
    problem(
        t.cms(&app, Method::GET, "/v1/cms/webhook")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    json_of(
        t.cms(&new_app, Method::GET, "/v1/cms/webhook")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;

    let key = t
        .cms(&new_app, Method::POST, "/v1/cms/keys/identity-key:rotate")
        .send()
        .await
        .unwrap();
    let key = json_of(key, StatusCode::OK).await;
    assert_eq!(
        key["previous_identity_key_id"],
        app.identity_key_id.as_str()
    );
    assert_ne!(key["identity_key_id"], app.identity_key_id.as_str());
    let settings = json_of(
        t.admin(Method::GET, &format!("/v1/admin/apps/{}", app.app_id))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(settings["identity_key_ids"].as_array().unwrap().len(), 2);

    problem(
        t.cms(&new_app, Method::POST, "/v1/cms/keys/webhook-secret:rotate")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn server_apis_refuse_foreign_web_pages() {
    let t = spawn().await;
    let app = t.create_app().await;
    let foreign = t
        .cms(&app, Method::POST, "/v1/cms/members")
        .header("origin", "https://evil.example")
        .json(&json!({"external_id": "u1", "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    problem(foreign, StatusCode::FORBIDDEN, "origin_not_allowed").await;
    let preflight = t
        .request(Method::OPTIONS, "/v1/cms/members")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    problem(preflight, StatusCode::FORBIDDEN, "origin_not_allowed").await;
    assert_eq!(t.count("members").await, 0);

    let own = t
        .cms(&app, Method::POST, "/v1/cms/members")
        .header("origin", &t.base)
        .json(&json!({"external_id": "u1", "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    json_of(own, StatusCode::CREATED).await;
}
