//! Presence over HTTP (JSON and badge, ETag, CORS, 404 for closed endpoints) and
//! offline messages (origin, session token, per-IP limit).

use palaver_proto::conversation::v1 as conv;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{SITE, json_of, problem, spawn};

#[tokio::test]
async fn presence_answers_json_and_a_badge_with_etags() {
    let t = spawn().await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let path = format!("/v1/endpoints/{endpoint}/presence");

    let response = t
        .request(Method::GET, &format!("{path}?lang=fr"))
        .header("origin", SITE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], SITE);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=5")
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = json_of(response, StatusCode::OK).await;
    assert_eq!(body["endpoint"], endpoint);
    assert_eq!(body["status"], "offline", "a member never seen is offline");
    assert_eq!(body["status_text"], "Hors ligne");
    assert_eq!(body["accepts_chats"], false);
    assert_eq!(body["display_name"], "Member owner");
    assert_eq!(
        body["icon"],
        json!({"url": t.url(&format!("{path}.svg")), "width": 16, "height": 16})
    );

    let again = t
        .request(Method::GET, &format!("{path}?lang=fr"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    let english = t.request(Method::GET, &path).send().await.unwrap();
    assert_ne!(english.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(
        json_of(english, StatusCode::OK).await["status_text"],
        "Offline"
    );

    let other_site = t
        .request(Method::GET, &path)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_site.status(),
        StatusCode::OK,
        "simple GETs answer anyone"
    );
    assert!(
        other_site
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "but script on other sites cannot read them"
    );

    let badge = t
        .request(Method::GET, &format!("{path}.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(badge.status(), StatusCode::OK);
    assert_eq!(badge.headers()["content-type"], "image/svg+xml");
    let badge_etag = badge.headers()["etag"].to_str().unwrap().to_owned();
    let svg = badge.text().await.unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains(r#"width="16""#),
        "{svg}"
    );
    assert!(svg.contains("<title>Offline</title>"), "{svg}");
    let unchanged = t
        .request(Method::GET, &format!("{path}.svg"))
        .header("if-none-match", &badge_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);

    let revoked = t
        .cms(&app, Method::DELETE, "/v1/cms/members/owner/permission")
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    for path in [path.clone(), format!("{path}.svg")] {
        let closed = t.request(Method::GET, &path).send().await.unwrap();
        problem(closed, StatusCode::NOT_FOUND, "endpoint_closed").await;
    }
    let unknown = t
        .request(Method::GET, "/v1/endpoints/ce_unknown00/presence")
        .send()
        .await
        .unwrap();
    problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn offline_messages_are_stored_for_the_member_within_the_limit() {
    let t = spawn().await;
    let (app, endpoint, member_id) = t
        .open_chat(json!({"limits": {"offline_messages_per_ip_per_hour": 2}}))
        .await;
    let token = t.visitor_token(&app, &endpoint, "Guest").await;
    let path = format!("/v1/endpoints/{endpoint}/offline-messages");
    let message =
        json!({"session_token": token, "text": "Call me back", "email": "guest@example.org"});

    let refused = t
        .request(Method::POST, &path)
        .header("origin", "https://evil.example")
        .json(&message)
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::FORBIDDEN, "origin_not_allowed").await;
    let forged = t
        .request(Method::POST, &path)
        .header("origin", SITE)
        .json(&json!({"session_token": "not-a-token", "text": "hi"}))
        .send()
        .await
        .unwrap();
    problem(forged, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let empty = t
        .request(Method::POST, &path)
        .header("origin", SITE)
        .json(&json!({"session_token": token, "text": "  "}))
        .send()
        .await
        .unwrap();
    problem(empty, StatusCode::BAD_REQUEST, "invalid_argument").await;
    // Every attempt past the origin and token checks counts against the limit (2).

    let accepted = t
        .request(Method::POST, &path)
        .header("origin", SITE)
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.headers()["access-control-allow-origin"], SITE);
    let stored = json_of(accepted, StatusCode::ACCEPTED).await;
    assert!(stored["id"].is_string(), "{stored}");

    let limited = t
        .request(Method::POST, &path)
        .header("origin", SITE)
        .json(&message)
        .send()
        .await
        .unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    let listed = t
        .conversation()
        .list_offline_messages(conv::ListOfflineMessagesRequest {
            app_id: app.app_id.clone(),
            member_id,
            cursor: String::new(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .offline_messages;
    assert_eq!(listed.len(), 1, "refused messages are not stored");
    assert_eq!(listed[0].text, "Call me back");
    assert_eq!(listed[0].email, "guest@example.org");
    assert_eq!(listed[0].id, stored["id"]);
}
