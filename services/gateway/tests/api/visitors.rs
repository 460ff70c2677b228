//! Visitor sessions: allowed origins and CORS, identity assertions, rate limits and the
//! client IP behind trusted proxies.

use std::num::NonZeroU32;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{App, SITE, TestGateway, json_of, problem, spawn, spawn_with};

/// An app with one member holding a valid permission token: the app and the endpoint.
async fn open_chat(t: &TestGateway, limits: Value) -> (App, String) {
    let app = t.create_app_with(json!({ "limits": limits })).await;
    let granted = t.granted_member(&app, "owner").await;
    (app, granted["endpoint"].as_str().unwrap().to_owned())
}

fn anonymous(app: &App, endpoint: &str) -> Value {
    json!({"app_id": app.app_id, "endpoint": endpoint, "display_name": "Guest"})
}

#[tokio::test]
async fn an_allowed_origin_gets_a_session_it_can_read() {
    let t = spawn().await;
    let (app, endpoint) = open_chat(&t, json!({})).await;
    let response = t
        .visitor_session(Some(SITE), anonymous(&app, &endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], SITE);
    assert!(
        response
            .headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("origin")),
        "{:?}",
        response.headers()
    );
    let session = json_of(response, StatusCode::CREATED).await;
    assert_eq!(session["visitor"]["display_name"], "Guest");
    assert_eq!(session["visitor"]["verified"], false);
    assert!(session["visitor"]["id"].as_str().unwrap().starts_with("v_"));
    let claims = t
        .verifier()
        .verify(session["session_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.kind, palaver_kit::tokens::TokenKind::Visitor);
    assert_eq!(claims.app, app.app_id);

    let unreadable_error = t
        .visitor_session(
            Some(SITE),
            json!({"app_id": app.app_id, "endpoint": endpoint}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        unreadable_error.headers()["access-control-allow-origin"],
        SITE,
        "the page can read errors too"
    );
    problem(
        unreadable_error,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    )
    .await;
    assert_eq!(t.count("visitor_sessions").await, 1);
}

#[tokio::test]
async fn a_disallowed_origin_is_refused_and_nothing_is_stored() {
    let t = spawn().await;
    let (app, endpoint) = open_chat(&t, json!({})).await;
    for origin in [
        Some("https://evil.example"),
        Some("http://example.org"),
        Some("null"),
        None,
    ] {
        let response = t
            .visitor_session(origin, anonymous(&app, &endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin:?}"
        );
        problem(response, StatusCode::FORBIDDEN, "origin_not_allowed").await;
    }
    assert_eq!(t.count("visitor_sessions").await, 0);
    assert_eq!(t.count("visitors").await, 0);
}

#[tokio::test]
async fn preflights_work_for_web_pages() {
    let t = spawn().await;
    let preflight = t
        .request(Method::OPTIONS, "/v1/visitor-sessions")
        .header("origin", SITE)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], SITE);
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type")
    );
    assert!(headers.get("access-control-allow-credentials").is_none());

    let opaque = t
        .request(Method::OPTIONS, "/v1/visitor-sessions")
        .header("origin", "null")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    problem(opaque, StatusCode::FORBIDDEN, "origin_not_allowed").await;
}

fn assertion(app: &App, key: &str, kid: Option<&str>, sub: &str, iat_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    let claims = json!({"sub": sub, "name": "Grace", "aud": app.app_id, "iat": now + iat_offset, "exp": now + iat_offset + 600});
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

#[tokio::test]
async fn an_identity_assertion_verifies_or_is_refused_clearly() {
    let t = spawn().await;
    let (app, endpoint) = open_chat(&t, json!({})).await;
    let with = |assertion: String| json!({"app_id": app.app_id, "endpoint": endpoint, "assertion": assertion});

    let good = assertion(
        &app,
        &app.identity_key,
        Some(&app.identity_key_id),
        "cms-user-7",
        0,
    );
    let verified = t
        .visitor_session(Some(SITE), with(good))
        .send()
        .await
        .unwrap();
    let verified = json_of(verified, StatusCode::CREATED).await;
    assert_eq!(verified["visitor"]["verified"], true);
    assert_eq!(verified["visitor"]["display_name"], "Grace");

    let forged = assertion(&app, "idk_not_the_key", None, "cms-user-7", 0);
    let future = assertion(&app, &app.identity_key, None, "cms-user-7", 3_600);
    for refused in [forged, future, "not-a-jwt".to_owned()] {
        let response = t
            .visitor_session(Some(SITE), with(refused))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            SITE,
            "the widget reads it and falls back"
        );
        let body = problem(response, StatusCode::UNAUTHORIZED, "invalid_assertion").await;
        assert!(
            body["detail"].as_str().unwrap().contains("assertion"),
            "{body}"
        );
    }
    let fallback = t
        .visitor_session(Some(SITE), anonymous(&app, &endpoint))
        .send()
        .await
        .unwrap();
    json_of(fallback, StatusCode::CREATED).await;
    assert_eq!(t.count("visitor_sessions").await, 2);
}

#[tokio::test]
async fn past_the_apps_limit_429_with_retry_after_and_nothing_stored() {
    let t = spawn().await;
    let (app, endpoint) = open_chat(&t, json!({"sessions_per_ip_per_minute": 2})).await;
    for _ in 0..2 {
        let ok = t
            .visitor_session(Some(SITE), anonymous(&app, &endpoint))
            .send()
            .await
            .unwrap();
        json_of(ok, StatusCode::CREATED).await;
    }
    let limited = t
        .visitor_session(Some(SITE), anonymous(&app, &endpoint))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.headers()["access-control-allow-origin"], SITE);
    assert!(
        limited.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("retry-after")
    );
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(
        t.count("visitor_sessions").await,
        2,
        "the refused request stored nothing"
    );

    let (other, other_endpoint) = {
        let other = t.create_app().await;
        let granted = t.granted_member(&other, "owner").await;
        (other, granted["endpoint"].as_str().unwrap().to_owned())
    };
    let elsewhere = t
        .visitor_session(Some(SITE), anonymous(&other, &other_endpoint))
        .send()
        .await
        .unwrap();
    json_of(elsewhere, StatusCode::CREATED).await;

    let metrics = reqwest::get(format!("http://{}/metrics", t.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("palaver_gateway_rate_limited_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_deployments_default_limit_applies_without_an_own_one() {
    let t = spawn_with(|config| {
        config.limits.sessions_per_ip_per_minute = NonZeroU32::new(1).unwrap();
    })
    .await;
    let (app, endpoint) = open_chat(&t, json!({})).await;
    json_of(
        t.visitor_session(Some(SITE), anonymous(&app, &endpoint))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let limited = t
        .visitor_session(Some(SITE), anonymous(&app, &endpoint))
        .send()
        .await
        .unwrap();
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(t.count("visitor_sessions").await, 1);
}

async fn from(t: &TestGateway, app: &App, endpoint: &str, forwarded_for: &str) -> StatusCode {
    t.visitor_session(Some(SITE), anonymous(app, endpoint))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn x_forwarded_for_counts_only_behind_a_trusted_proxy() {
    let trusting = spawn_with(|config| {
        config.limits.sessions_per_ip_per_minute = NonZeroU32::new(1).unwrap();
        config.trusted_proxies = "127.0.0.1/32".parse().unwrap();
    })
    .await;
    let (app, endpoint) = open_chat(&trusting, json!({})).await;
    assert_eq!(
        from(&trusting, &app, &endpoint, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        from(&trusting, &app, &endpoint, "198.51.100.2").await,
        StatusCode::CREATED
    );
    assert_eq!(
        from(&trusting, &app, &endpoint, "6.6.6.6, 198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a hop the client wrote does not make it someone else"
    );

    let direct = spawn_with(|config| {
        config.limits.sessions_per_ip_per_minute = NonZeroU32::new(1).unwrap();
    })
    .await;
    let (app, endpoint) = open_chat(&direct, json!({})).await;
    assert_eq!(
        from(&direct, &app, &endpoint, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        from(&direct, &app, &endpoint, "198.51.100.2").await,
        StatusCode::TOO_MANY_REQUESTS,
        "without trusted proxies the header is ignored"
    );
}

#[tokio::test]
async fn unknown_apps_and_closed_endpoints_are_refused() {
    let t = spawn().await;
    let (app, endpoint) = open_chat(&t, json!({})).await;
    let no_app = t
        .visitor_session(
            Some(SITE),
            json!({"app_id": "app_nope", "endpoint": endpoint, "display_name": "G"}),
        )
        .send()
        .await
        .unwrap();
    problem(no_app, StatusCode::NOT_FOUND, "not_found").await;
    t.cms(&app, Method::DELETE, "/v1/cms/members/owner/permission")
        .send()
        .await
        .unwrap();
    let closed = t
        .visitor_session(Some(SITE), anonymous(&app, &endpoint))
        .send()
        .await
        .unwrap();
    problem(closed, StatusCode::NOT_FOUND, "endpoint_closed").await;
    assert_eq!(t.count("visitor_sessions").await, 0);
}
