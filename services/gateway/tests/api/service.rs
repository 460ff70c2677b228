//! What holds for the whole service: the OpenAPI document against the routes, errors
//! for unknown paths and methods, security headers, the JWKS, the admin server and
//! graceful shutdown, WebSockets included.

use std::collections::BTreeSet;
use std::time::Duration;

use palaver_kit::testing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SITE, TestGateway, json_of, problem, spawn, spawn_configured};

/// Every path and method of DESIGN.md's contract the gateway serves, plus the additions
/// (`GET /v1/cms/webhook`, personal access tokens, the console's conversation routes,
/// the JWKS).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/admin/apps"),
    ("get", "/v1/admin/apps/{app_id}"),
    ("patch", "/v1/admin/apps/{app_id}"),
    ("delete", "/v1/admin/apps/{app_id}"),
    ("post", "/v1/cms/members"),
    ("get", "/v1/cms/members/{external_id}"),
    ("patch", "/v1/cms/members/{external_id}"),
    ("delete", "/v1/cms/members/{external_id}"),
    ("post", "/v1/cms/members/{external_id}/consent-requests"),
    ("post", "/v1/cms/oauth/token"),
    ("get", "/v1/cms/members/{external_id}/permission"),
    ("delete", "/v1/cms/members/{external_id}/permission"),
    ("post", "/v1/cms/members/{external_id}/login-links"),
    ("put", "/v1/cms/webhook"),
    ("get", "/v1/cms/webhook"),
    ("get", "/v1/cms/webhook/deliveries"),
    ("post", "/v1/cms/keys/api-secret:rotate"),
    ("post", "/v1/cms/keys/identity-key:rotate"),
    ("get", "/v1/me"),
    ("get", "/v1/me/tokens"),
    ("post", "/v1/me/tokens"),
    ("delete", "/v1/me/tokens/{id}"),
    ("post", "/v1/visitor-sessions"),
    ("get", "/v1/endpoints/{endpoint}/presence"),
    ("get", "/v1/endpoints/{endpoint}/presence.svg"),
    ("post", "/v1/endpoints/{endpoint}/offline-messages"),
    ("get", "/v1/cms/conversations"),
    ("get", "/v1/cms/conversations/{id}"),
    ("get", "/v1/cms/conversations/{id}/transcript"),
    ("get", "/v1/me/conversations"),
    ("get", "/v1/me/conversations/{id}/messages"),
    ("get", "/v1/me/conversations/{id}/transcript"),
    ("post", "/v1/me/conversations/{id}/close"),
    ("post", "/v1/me/conversations/{id}/block"),
    ("delete", "/v1/me/conversations/{id}/block"),
    ("get", "/v1/me/offline-messages"),
    ("get", "/v1/ws"),
    ("post", "/v1/operator-sessions"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/v1/openapi.json"),
];

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `/v1/cms/members/{external_id}` with its parameters filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("x1");
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let t = spawn().await;
    let doc = json_of(
        t.request(Method::GET, "/v1/openapi.json")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in [
        "admin_token",
        "api_secret",
        "permission_token",
        "operator_token",
        "client_basic",
    ] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }

    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or(target);
        assert!(schemas.contains_key(name), "{target} does not resolve");
    }

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let url = concrete(path);
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = t.request(verb.clone(), &url).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match item.get(method) {
                Some(operation) => {
                    documented.insert((method.to_owned(), path.clone()));
                    assert_ne!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path}: {body}"
                    );
                    let unrouted = status == StatusCode::NOT_FOUND
                        && body["detail"]
                            .as_str()
                            .is_some_and(|d| d.starts_with("no route"));
                    assert!(
                        !unrouted,
                        "{method} {path} is documented but not routed: {body}"
                    );
                    assert!(
                        operation["responses"]["default"].is_object(),
                        "{method} {path}"
                    );
                    assert!(
                        operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
                        "{method} {path}"
                    );
                }
                None => {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{verb} {path} is routed but not documented: {body}"
                    );
                    assert_eq!(body["code"], "method_not_allowed", "{body}");
                }
            }
        }
    }
    let contract: BTreeSet<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, contract,
        "the document lists exactly the contract's routes"
    );
    assert!(
        doc["paths"]["/v1/cms/oauth/token"]["post"]["description"]
            .as_str()
            .unwrap()
            .contains("RFC 6749"),
        "the token endpoint says it follows OAuth"
    );
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_problem_json() {
    let t = spawn().await;
    let body = problem(
        t.request(Method::GET, "/v1/nothing-here")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing-here")
    );
    let wrong = t
        .request(Method::DELETE, "/v1/visitor-sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.headers()["allow"], "POST");
    problem(wrong, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let bad_escape = t
        .admin(Method::GET, "/v1/admin/apps/%FF")
        .send()
        .await
        .unwrap();
    problem(bad_escape, StatusCode::BAD_REQUEST, "invalid_argument").await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let t = spawn().await;
    let answers = [
        t.request(Method::GET, "/v1/openapi.json")
            .send()
            .await
            .unwrap(),
        t.request(Method::GET, "/nowhere").send().await.unwrap(),
        t.request(Method::GET, "/v1/me").send().await.unwrap(),
        t.admin(Method::POST, "/v1/admin/apps")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    ];
    for answer in answers {
        let headers = answer.headers();
        assert_eq!(
            headers["x-content-type-options"],
            "nosniff",
            "{}",
            answer.url()
        );
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert!(headers.contains_key("cache-control"));
    }
    let me = t.request(Method::GET, "/v1/me").send().await.unwrap();
    assert_eq!(me.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn the_jwks_lists_the_keys_that_sign_access_tokens() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    let operator = t.operator_token(&app, "owner").await;
    let kid = jsonwebtoken::decode_header(&operator).unwrap().kid.unwrap();

    let response = t
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/jwk-set+json"
    );
    let jwks = json_of(response, StatusCode::OK).await;
    let keys = jwks["keys"].as_array().unwrap();
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the signing key is listed");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key["x"].as_str().is_some_and(|x| !x.is_empty()));
}

#[tokio::test]
async fn the_admin_server_reports_health_metrics_and_readiness() {
    let mut t = spawn().await;
    let admin = format!("http://{}", t.admin);
    assert_eq!(
        reqwest::get(format!("{admin}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "{}",
        ready.text().await.unwrap()
    );
    json_of(
        t.request(Method::GET, "/v1/openapi.json")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |line| line.starts_with("palaver_gateway_http_requests_total")
                && line.contains("route=\"/v1/openapi.json\"")
                && line.contains("status=\"200\"")
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("palaver_gateway_http_request_duration_seconds"),
        "{metrics}"
    );

    t.identity.stop();
    let body: Value = testing::eventually("readiness to follow identity", || async {
        let response = reqwest::get(format!("{admin}/readyz")).await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            Ok(body)
        } else {
            Err(body.to_string())
        }
    })
    .await;
    assert!(body["failing"]["identity"].is_string(), "{body}");
    let body = problem(
        t.request(Method::GET, "/.well-known/jwks.json")
            .send()
            .await
            .unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    assert_eq!(
        body["detail"], "the service is unavailable; try again later",
        "5xx are opaque"
    );

    t.gateway_shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut t.gateway_task)
        .await
        .expect("the gateway stops once triggered");
    stopped.unwrap().unwrap();
    assert!(
        reqwest::get(t.url("/v1/openapi.json")).await.is_err(),
        "the listener is closed"
    );
}

/// The member's status as a page reads it, through the gateway at `base`.
async fn status_through(t: &TestGateway, base: &str, endpoint: &str) -> Value {
    let presence = json_of(
        t.http
            .get(format!("{base}/v1/endpoints/{endpoint}/presence"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    presence["status"].clone()
}

#[tokio::test]
async fn a_shutdown_closes_every_socket_and_takes_operators_offline_at_once() {
    // Presence keeps a device far longer than the test lasts: only a disconnect takes
    // the member offline.
    let mut t = spawn_configured(
        |_| {},
        |presence| presence.policy.ttl = Duration::from_secs(3600),
    )
    .await;
    let (app, endpoint, _) = t.open_chat(json!({})).await;
    let mut operator = t.ws(None).await;
    operator.hello(&t.operator_token(&app, "owner").await).await;
    let mut visitor = t.ws(Some(SITE)).await;
    visitor
        .hello(&t.visitor_token(&app, &endpoint, "Guest").await)
        .await;
    // Both sessions are in their loops.
    operator.drain().await;
    visitor.drain().await;
    let other = t.second_gateway().await;
    assert_eq!(status_through(&t, &other, &endpoint).await, "online");

    // What SIGTERM does (`palaver_kit::shutdown::trigger_on_signal`).
    t.gateway_shutdown.trigger();
    assert_eq!(operator.close_code().await, Some(1001), "going away");
    assert_eq!(visitor.close_code().await, Some(1001), "going away");
    let stopped = tokio::time::timeout(Duration::from_secs(20), &mut t.gateway_task)
        .await
        .expect("the gateway drains and stops");
    stopped.unwrap().unwrap();
    assert_eq!(
        status_through(&t, &other, &endpoint).await,
        "offline",
        "the operator's device left presence when its socket closed, not after the TTL"
    );
}
