//! Operator sign-in (login links, personal access tokens) and token management.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{SITE, json_of, problem, query_param, spawn};

#[tokio::test]
async fn a_login_link_signs_an_operator_in_once() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    let link = t
        .cms(&app, Method::POST, "/v1/cms/members/owner/login-links")
        .send()
        .await
        .unwrap();
    let link = json_of(link, StatusCode::CREATED).await;
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/console/login?token=ll_", t.base)),
        "{url}"
    );
    assert!(link["expires_at"].as_str().is_some());
    let token = query_param(url, "token").unwrap();

    let session = t
        .request(Method::POST, "/v1/operator-sessions")
        .header("origin", &t.base)
        .json(&json!({"login_token": token}))
        .send()
        .await
        .unwrap();
    let session = json_of(session, StatusCode::CREATED).await;
    assert_eq!(session["member"]["external_id"], "owner");
    assert!(session["expires_in"].as_u64().unwrap() > 0);
    let claims = t
        .verifier()
        .verify(session["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.kind, palaver_kit::tokens::TokenKind::Operator);
    assert_eq!(claims.app, app.app_id);

    let again = t
        .request(Method::POST, "/v1/operator-sessions")
        .json(&json!({"login_token": token}))
        .send()
        .await
        .unwrap();
    problem(again, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let both = t
        .request(Method::POST, "/v1/operator-sessions")
        .json(&json!({"login_token": "ll_x", "personal_access_token": "pat_x"}))
        .send()
        .await
        .unwrap();
    problem(both, StatusCode::BAD_REQUEST, "invalid_argument").await;
    let from_a_site = t
        .request(Method::POST, "/v1/operator-sessions")
        .header("origin", SITE)
        .json(&json!({"login_token": "ll_x"}))
        .send()
        .await
        .unwrap();
    problem(from_a_site, StatusCode::FORBIDDEN, "origin_not_allowed").await;
}

#[tokio::test]
async fn personal_access_tokens_sign_the_cli_in_until_revoked() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    let operator = t.operator_token(&app, "owner").await;

    let created = t
        .request(Method::POST, "/v1/me/tokens")
        .bearer_auth(&operator)
        .json(&json!({"name": "laptop CLI"}))
        .send()
        .await
        .unwrap();
    let created = json_of(created, StatusCode::CREATED).await;
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["personal_access_token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created["personal_access_token"]["name"], "laptop CLI");

    let listed = t
        .request(Method::GET, "/v1/me/tokens")
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    let listed = json_of(listed, StatusCode::OK).await;
    assert_eq!(listed["tokens"][0]["id"], id.as_str());
    assert!(
        listed["tokens"][0].get("token").is_none(),
        "the secret is shown once"
    );

    let cli = t
        .request(Method::POST, "/v1/operator-sessions")
        .json(&json!({"personal_access_token": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(cli, StatusCode::CREATED).await["member"]["external_id"],
        "owner"
    );

    let revoked = t
        .request(Method::DELETE, &format!("/v1/me/tokens/{id}"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = t
        .request(Method::POST, "/v1/operator-sessions")
        .json(&json!({"personal_access_token": secret}))
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    problem(
        t.request(Method::DELETE, "/v1/me/tokens/pat_unknown")
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let bad_name = t
        .request(Method::POST, "/v1/me/tokens")
        .bearer_auth(&operator)
        .json(&json!({"name": ""}))
        .send()
        .await
        .unwrap();
    problem(bad_name, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert_eq!(t.count("personal_access_tokens").await, 1);
}

#[tokio::test]
async fn token_management_needs_an_operator_access_token() {
    let t = spawn().await;
    let app = t.create_app().await;
    let granted = t.granted_member(&app, "owner").await;
    let visitor = t
        .visitor_session(
            Some(SITE),
            json!({"app_id": app.app_id, "endpoint": granted["endpoint"], "display_name": "Guest"}),
        )
        .send()
        .await
        .unwrap();
    let visitor_token = json_of(visitor, StatusCode::CREATED).await["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [
        visitor_token.as_str(),
        granted["access_token"].as_str().unwrap(),
        app.api_secret.as_str(),
        "not.a.jwt",
    ] {
        let response = t
            .request(Method::GET, "/v1/me/tokens")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    problem(
        t.request(Method::GET, "/v1/me/tokens")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}
