//! The consent flow over HTTP: consent request, the member's decision, the token
//! endpoint (form and JSON), the permission the profile checkbox reads, refresh,
//! revocation, and the member API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{App, Pkce, RETURN_URL, json_of, problem, query_param, spawn};

#[tokio::test]
async fn the_whole_cms_flow_over_http() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    assert_eq!(t.permission(&app, "owner").await["status"], "none");

    let pkce = Pkce::generate();
    let consent_url = t.consent_url(&app, "owner", &pkce).await;
    assert!(
        consent_url.starts_with(&format!("{}/consent?request=cr_", t.base)),
        "{consent_url}"
    );
    let back = t.decide(&consent_url, true).await;
    assert!(back.starts_with(RETURN_URL), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("state-123"));
    let code = query_param(&back, "code").unwrap();

    let issued = t
        .token_form(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &pkce.verifier),
                ("redirect_uri", RETURN_URL),
            ],
        )
        .await;
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let issued = json_of(issued, StatusCode::OK).await;
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["scope"], "presence chat");
    assert!(issued["expires_in"].as_u64().unwrap() > 364 * 86_400);
    let endpoint = issued["endpoint"].as_str().unwrap().to_owned();
    assert!(endpoint.starts_with("ce_"), "{endpoint}");
    let permission_token = issued["access_token"].as_str().unwrap().to_owned();

    let valid = t.permission(&app, "owner").await;
    assert_eq!(valid["status"], "valid", "the checkbox may be enabled");
    assert_eq!(valid["endpoint"], endpoint.as_str());
    assert!(valid["expires_at"].as_str().is_some());

    let me = t
        .request(Method::GET, "/v1/me")
        .bearer_auth(&permission_token)
        .send()
        .await
        .unwrap();
    let me = json_of(me, StatusCode::OK).await;
    assert_eq!(me["member"]["external_id"], "owner");
    assert_eq!(me["endpoint"], endpoint.as_str());
    assert_eq!(me["scope"], "presence chat");

    let refreshed = t
        .cms(&app, Method::POST, "/v1/cms/oauth/token")
        .json(&json!({"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}))
        .send()
        .await
        .unwrap();
    let refreshed = json_of(refreshed, StatusCode::OK).await;
    assert_ne!(refreshed["access_token"], issued["access_token"]);
    assert_ne!(refreshed["refresh_token"], issued["refresh_token"]);
    assert_eq!(refreshed["endpoint"], endpoint.as_str());
    let renewed_token = refreshed["access_token"].as_str().unwrap();
    json_of(
        t.request(Method::GET, "/v1/me")
            .bearer_auth(renewed_token)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;

    let revoked = t
        .cms(&app, Method::DELETE, "/v1/cms/members/owner/permission")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(revoked, StatusCode::OK).await["status"], "revoked");
    assert_eq!(t.permission(&app, "owner").await["status"], "revoked");
    problem(
        t.request(Method::GET, "/v1/me")
            .bearer_auth(renewed_token)
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn the_code_exchange_takes_json_and_basic_client_credentials() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "m1").await;
    let (code, pkce) = t.approved_code(&app, "m1").await;
    let basic = STANDARD.encode(format!("{}:{}", app.app_id, app.api_secret));
    let issued = t
        .request(Method::POST, "/v1/cms/oauth/token")
        .header("authorization", format!("Basic {basic}"))
        .json(&json!({"grant_type": "authorization_code", "code": code, "code_verifier": pkce.verifier}))
        .send()
        .await
        .unwrap();
    let issued = json_of(issued, StatusCode::OK).await;
    assert!(issued["access_token"].as_str().unwrap().starts_with("pt_"));
    assert_eq!(t.permission(&app, "m1").await["status"], "valid");

    let other = t.create_app().await;
    let mismatched = STANDARD.encode(format!("{}:{}", other.app_id, app.api_secret));
    let refused = t
        .request(Method::POST, "/v1/cms/oauth/token")
        .header("authorization", format!("Basic {mismatched}"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

/// An RFC 6749 §5.2 error: its status and `error`.
async fn oauth_error(response: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_of(response, status).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert!(
        body.get("code").is_none(),
        "an OAuth error, not problem+json: {body}"
    );
    body
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "m1").await;
    let (code, pkce) = t.approved_code(&app, "m1").await;

    let wrong_verifier = t
        .token_form(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", "x".repeat(43).as_str()),
            ],
        )
        .await;
    oauth_error(wrong_verifier, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        t.permission(&app, "m1").await["status"],
        "none",
        "a refused exchange changes nothing"
    );

    let no_verifier = t
        .token_form(
            &app,
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await;
    oauth_error(no_verifier, StatusCode::BAD_REQUEST, "invalid_request").await;
    let password = t
        .token_form(&app, &[("grant_type", "password"), ("username", "u")])
        .await;
    oauth_error(password, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    let no_grant = t.token_form(&app, &[("code", &code)]).await;
    oauth_error(no_grant, StatusCode::BAD_REQUEST, "invalid_request").await;
    let as_text = t
        .cms(&app, Method::POST, "/v1/cms/oauth/token")
        .header("content-type", "text/plain")
        .body("grant_type=refresh_token")
        .send()
        .await
        .unwrap();
    oauth_error(as_text, StatusCode::BAD_REQUEST, "invalid_request").await;
    let forged = App {
        api_secret: "psk_nope_nope".into(),
        ..app.clone()
    };
    let bad_client = t
        .token_form(
            &forged,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert!(bad_client.headers().contains_key("www-authenticate"));
    oauth_error(bad_client, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let unknown_code = t
        .token_form(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", "ac_unknown"),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    oauth_error(unknown_code, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", pkce.verifier.as_str()),
        ("ignored_extension", "1"),
    ];
    json_of(t.token_form(&app, &exchange).await, StatusCode::OK).await;
    let replayed = t.token_form(&app, &exchange).await;
    oauth_error(replayed, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        t.permission(&app, "m1").await["status"],
        "revoked",
        "a replayed code revokes what it gave"
    );
}

#[tokio::test]
async fn bad_consent_requests_get_their_code_and_change_nothing() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "m1").await;
    let pkce = Pkce::generate();
    let ask = |body: Value| {
        t.cms(&app, Method::POST, "/v1/cms/members/m1/consent-requests")
            .json(&body)
            .send()
    };
    let valid = json!({"return_url": RETURN_URL, "state": "s", "code_challenge": pkce.challenge, "code_challenge_method": "S256"});
    let mut elsewhere = valid.clone();
    elsewhere["return_url"] = json!("https://evil.example/steal");
    let body = problem(
        ask(elsewhere).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "return_url");
    let mut plain = valid.clone();
    plain["code_challenge_method"] = json!("plain");
    problem(
        ask(plain).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    let unknown_member = t
        .cms(
            &app,
            Method::POST,
            "/v1/cms/members/nobody/consent-requests",
        )
        .json(&valid)
        .send()
        .await
        .unwrap();
    problem(unknown_member, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(t.count("consent_requests").await, 0);

    let no_policy = t.create_app_with(json!({"privacy_url": ""})).await;
    t.create_member(&no_policy, "m1").await;
    let refused = t
        .cms(
            &no_policy,
            Method::POST,
            "/v1/cms/members/m1/consent-requests",
        )
        .json(&valid)
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::CONFLICT, "consent_unavailable").await;
    assert_eq!(t.count("consent_requests").await, 0);
}

#[tokio::test]
async fn a_denied_consent_gives_no_permission() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "m1").await;
    let consent_url = t.consent_url(&app, "m1", &Pkce::generate()).await;
    let back = t.decide(&consent_url, false).await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(t.permission(&app, "m1").await["status"], "none");
    problem(
        t.request(Method::GET, "/v1/me")
            .bearer_auth("pt_made_up")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}
