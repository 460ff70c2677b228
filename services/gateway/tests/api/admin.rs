//! The admin API: apps, their settings and limits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{SITE, json_of, problem, spawn};

#[tokio::test]
async fn a_wrong_or_missing_admin_token_is_401() {
    let t = spawn().await;
    let body = json!({"name": "x", "origins": [SITE], "privacy_url": "https://example.org/p", "return_urls": []});
    let wrong = t
        .request(Method::POST, "/v1/admin/apps")
        .bearer_auth("not-the-admin-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.headers()["www-authenticate"],
        "Bearer realm=\"palaver\""
    );
    problem(wrong, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let missing = t
        .request(Method::POST, "/v1/admin/apps")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(missing, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let basic = t
        .request(Method::GET, "/v1/admin/apps/app_x")
        .basic_auth("admin", Some(crate::helpers::ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    problem(basic, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(t.count("apps").await, 0);
}

#[tokio::test]
async fn apps_are_created_read_changed_and_deleted() {
    let t = spawn().await;
    let response = t
        .admin(Method::POST, "/v1/admin/apps")
        .json(&json!({
            "name": "Example Site",
            "origins": ["https://Example.org"],
            "privacy_url": "https://example.org/privacy",
            "return_urls": ["https://example.org/back"],
            "retention_days": 30,
            "limits": {"sessions_per_ip_per_minute": 5},
        }))
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created = json_of(response, StatusCode::CREATED).await;
    let app_id = created["app_id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/admin/apps/{app_id}"));
    assert!(created["api_secret"].as_str().unwrap().starts_with("psk_"));
    assert!(created["identity_key"].as_str().is_some());

    let app = json_of(
        t.admin(Method::GET, &location).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(app["name"], "Example Site");
    assert_eq!(app["origins"], json!([SITE]));
    assert_eq!(app["retention_days"], 30);
    assert_eq!(app["logo_url"], json!(null));
    assert_eq!(app["limits"]["sessions_per_ip_per_minute"], 5);
    assert_eq!(app["limits"]["message_burst"], json!(null));
    assert_eq!(app["effective_limits"]["sessions_per_ip_per_minute"], 5);
    assert_eq!(app["effective_limits"]["message_burst"], 20);
    assert_eq!(app["identity_key_ids"], json!([created["identity_key_id"]]));
    assert!(app.get("api_secret").is_none());

    let patched = t
        .admin(Method::PATCH, &location)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"name": "Renamed", "limits": {"message_burst": 7}}).to_string())
        .send()
        .await
        .unwrap();
    let patched = json_of(patched, StatusCode::OK).await;
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["origins"], json!([SITE]), "untouched settings stay");
    assert_eq!(
        patched["limits"]["sessions_per_ip_per_minute"], 5,
        "limits merge"
    );
    assert_eq!(patched["limits"]["message_burst"], 7);
    let reset = t
        .admin(Method::PATCH, &location)
        .json(&json!({"limits": {"sessions_per_ip_per_minute": 0}}))
        .send()
        .await
        .unwrap();
    let reset = json_of(reset, StatusCode::OK).await;
    assert_eq!(reset["limits"]["sessions_per_ip_per_minute"], json!(null));
    assert_eq!(reset["effective_limits"]["sessions_per_ip_per_minute"], 30);

    let deleted = t.admin(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(
        t.admin(Method::GET, &location).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        t.admin(Method::DELETE, &location).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(t.count("apps").await, 0);
}

#[tokio::test]
async fn bad_app_input_gets_its_code_and_changes_nothing() {
    let t = spawn().await;
    let post = |body: String, content_type: &str| {
        t.admin(Method::POST, "/v1/admin/apps")
            .header("content-type", content_type)
            .body(body)
    };
    let valid = json!({"name": "x", "origins": [SITE], "privacy_url": "https://example.org/p", "return_urls": []});

    let mut bad_origin = valid.clone();
    bad_origin["origins"] = json!(["https://example.org/with/path"]);
    let body = problem(
        post(bad_origin.to_string(), "application/json")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "origins[0]", "{body}");

    let mut wrong_type = valid.clone();
    wrong_type["limits"] = json!({"message_burst": -3});
    let body = problem(
        post(wrong_type.to_string(), "application/json")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "limits.message_burst", "{body}");

    let mut unknown = valid.clone();
    unknown["retention_day"] = json!(3);
    let body = problem(
        post(unknown.to_string(), "application/json")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("retention_day"),
        "{body}"
    );

    let body = problem(
        post("{\"name\": ".into(), "application/json")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    problem(
        post(valid.to_string(), "text/plain").send().await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let huge =
        json!({"name": "x".repeat(70_000), "origins": [], "privacy_url": "", "return_urls": []});
    problem(
        post(huge.to_string(), "application/json")
            .send()
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(t.count("apps").await, 0, "no refused request stored an app");

    let app = t.create_app().await;
    let path = format!("/v1/admin/apps/{}", app.app_id);
    problem(
        t.admin(Method::PATCH, &path)
            .json(&json!({"privacy_url": "javascript:alert(1)"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    let unchanged = json_of(
        t.admin(Method::GET, &path).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged["privacy_url"], "https://example.org/privacy");
}
