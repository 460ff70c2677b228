use palaver_kit::ErrorCode;
use palaver_proto::identity::v1 as pb;

use crate::helpers::{Pkce, TestIdentity, code_of, query_param};
use crate::on_both_backends;

const DAY: i64 = 86_400;

fn status(p: &pb::Permission) -> pb::PermissionStatus {
    pb::PermissionStatus::try_from(p.status).unwrap()
}

on_both_backends!(
    consent_gives_a_permission_token_and_opens_the_endpoint,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "42").await;
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::None
        );

        let pkce = Pkce::generate();
        let request = t.consent_request(&app_id, "42", &pkce).await;
        let page = t
            .client()
            .get_consent_request(pb::GetConsentRequestRequest {
                request: request.request.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.app_name, "Example Site");
        assert_eq!(page.privacy_url, "https://example.org/privacy");
        assert_eq!(page.member_display_name, "Member 42");
        assert_eq!(page.scope, "presence chat");

        let redirect = t
            .client()
            .decide_consent(pb::DecideConsentRequest {
                request: request.request.clone(),
                approve: true,
                csrf_token: request.csrf_token.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .redirect_url;
        assert!(
            redirect.starts_with("https://example.org/account/palaver?"),
            "{redirect}"
        );
        assert_eq!(
            query_param(&redirect, "state").as_deref(),
            Some("xyz-state")
        );
        let code = query_param(&redirect, "code").unwrap();

        let token = t
            .client()
            .exchange_authorization_code(pb::ExchangeAuthorizationCodeRequest {
                app_id: app_id.clone(),
                code,
                code_verifier: pkce.verifier,
                redirect_uri: "https://example.org/account/palaver".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.scope, "presence chat");
        assert!(token.endpoint.starts_with("ce_"));
        assert_eq!(
            token.expires_in,
            (365 * DAY - 300) as u64,
            "expires 365 days out, reported 300 s early"
        );

        let permission = t.permission(&app_id, "42").await;
        assert_eq!(status(&permission), pb::PermissionStatus::Valid);
        assert_eq!(permission.endpoint, token.endpoint);
        let endpoint = t.endpoint(&token.endpoint).await.unwrap();
        assert!(endpoint.open);
        assert_eq!(endpoint.external_id, "42");
        assert_eq!(endpoint.app_id, app_id);

        let info = t
            .client()
            .authenticate_permission_token(pb::AuthenticatePermissionTokenRequest {
                permission_token: token.access_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.member.unwrap().external_id, "42");
        assert_eq!(info.endpoint, token.endpoint);

        // A second consent keeps the endpoint and supersedes the first token.
        let again = t.grant(&app_id, "42").await;
        assert_eq!(again.endpoint, token.endpoint);
        let old = t
            .client()
            .authenticate_permission_token(pb::AuthenticatePermissionTokenRequest {
                permission_token: token.access_token,
            })
            .await;
        assert_eq!(code_of(old), ErrorCode::Unauthenticated);
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::Valid
        );
    }
);

on_both_backends!(
    deny_sends_access_denied_and_grants_nothing,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "42").await;
        let request = t.consent_request(&app_id, "42", &Pkce::generate()).await;
        let stale = t
            .client()
            .decide_consent(pb::DecideConsentRequest {
                request: request.request.clone(),
                approve: true,
                csrf_token: "forged".into(),
            })
            .await;
        assert_eq!(code_of(stale), ErrorCode::PermissionDenied);
        let redirect = t
            .client()
            .decide_consent(pb::DecideConsentRequest {
                request: request.request.clone(),
                approve: false,
                csrf_token: request.csrf_token.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .redirect_url;
        assert_eq!(
            query_param(&redirect, "error").as_deref(),
            Some("access_denied")
        );
        assert_eq!(
            query_param(&redirect, "state").as_deref(),
            Some("xyz-state")
        );
        assert_eq!(query_param(&redirect, "code"), None);
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::None
        );
        let twice = t
            .client()
            .decide_consent(pb::DecideConsentRequest {
                request: request.request,
                approve: true,
                csrf_token: request.csrf_token,
            })
            .await;
        assert_eq!(
            code_of(twice),
            ErrorCode::FailedPrecondition,
            "a decision is final"
        );
    }
);

on_both_backends!(
    bad_consent_requests_are_refused,
    |t: TestIdentity| async move {
        let app = t.app().await.app.unwrap();
        t.member(&app.app_id, "42").await;
        let pkce = Pkce::generate();
        let request = |return_url: &str, challenge: &str, method: &str, external_id: &str| {
            pb::CreateConsentRequestRequest {
                app_id: app.app_id.clone(),
                external_id: external_id.into(),
                return_url: return_url.into(),
                state: "s".into(),
                code_challenge: challenge.into(),
                code_challenge_method: method.into(),
            }
        };
        let good_url = "https://example.org/account/palaver";
        let cases = [
            (
                request("https://evil.example/steal", &pkce.challenge, "S256", "42"),
                ErrorCode::InvalidArgument,
            ),
            (
                request(good_url, &pkce.verifier, "plain", "42"),
                ErrorCode::InvalidArgument,
            ),
            (
                request(good_url, "too-short", "S256", "42"),
                ErrorCode::InvalidArgument,
            ),
            (
                request(good_url, &pkce.challenge, "S256", "nobody"),
                ErrorCode::NotFound,
            ),
        ];
        for (req, code) in cases {
            assert_eq!(code_of(t.client().create_consent_request(req).await), code);
        }
        let unknown = t
            .client()
            .get_consent_request(pb::GetConsentRequestRequest {
                request: "cr_nope".into(),
            })
            .await;
        assert_eq!(code_of(unknown), ErrorCode::NotFound);

        // Without a privacy-policy URL an app cannot ask for consent.
        t.client()
            .update_app(pb::UpdateAppRequest {
                app_id: app.app_id.clone(),
                privacy_url: Some(String::new()),
                ..Default::default()
            })
            .await
            .unwrap();
        let refused = t
            .client()
            .create_consent_request(request(good_url, &pkce.challenge, "S256", "42"))
            .await;
        assert_eq!(code_of(refused), ErrorCode::ConsentUnavailable);
    }
);

on_both_backends!(
    a_code_is_checked_and_spent_once,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "42").await;
        let approved = t.approved_code(&app_id, "42").await;
        let exchange = |code: &str, verifier: &str, redirect_uri: &str, app: &str| {
            pb::ExchangeAuthorizationCodeRequest {
                app_id: app.into(),
                code: code.into(),
                code_verifier: verifier.into(),
                redirect_uri: redirect_uri.into(),
            }
        };
        let other_app = t.app().await.app.unwrap().app_id;
        let refused = [
            exchange(&approved.code, &Pkce::generate().verifier, "", &app_id),
            exchange(
                &approved.code,
                &approved.verifier,
                "https://example.org/elsewhere",
                &app_id,
            ),
            exchange(&approved.code, &approved.verifier, "", &other_app),
            exchange("ac_unknown", &approved.verifier, "", &app_id),
        ];
        for request in refused {
            assert_eq!(
                code_of(t.client().exchange_authorization_code(request).await),
                ErrorCode::InvalidGrant
            );
        }
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::None,
            "refusals change nothing"
        );

        let token = t
            .client()
            .exchange_authorization_code(exchange(&approved.code, &approved.verifier, "", &app_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::Valid
        );

        let replay = t
            .client()
            .exchange_authorization_code(exchange(&approved.code, &approved.verifier, "", &app_id))
            .await;
        assert_eq!(code_of(replay), ErrorCode::InvalidGrant);
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::Revoked,
            "a replayed code revokes its grant"
        );
        assert!(!t.endpoint(&token.endpoint).await.unwrap().open);
    }
);

on_both_backends!(
    an_expired_code_or_request_is_refused,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "42").await;
        let approved = t.approved_code(&app_id, "42").await;
        let pending = t.consent_request(&app_id, "42", &Pkce::generate()).await;
        t.clock.shift_ms(601_000);
        let late = t
            .client()
            .exchange_authorization_code(pb::ExchangeAuthorizationCodeRequest {
                app_id: app_id.clone(),
                code: approved.code,
                code_verifier: approved.verifier,
                redirect_uri: String::new(),
            })
            .await;
        assert_eq!(code_of(late), ErrorCode::InvalidGrant);
        let late_page = t
            .client()
            .get_consent_request(pb::GetConsentRequestRequest {
                request: pending.request,
            })
            .await;
        assert_eq!(code_of(late_page), ErrorCode::ConsentExpired);
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::None
        );
    }
);

on_both_backends!(
    tokens_expire_early_refresh_rotates_and_revoke_closes,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "42").await;
        let first = t.grant(&app_id, "42").await;

        // 300 s before the real expiry the token already counts as expired.
        t.clock.shift_ms((365 * DAY - 299) * 1000);
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::Expired
        );
        assert!(
            !t.endpoint(&first.endpoint).await.unwrap().open,
            "an expired token closes the endpoint"
        );
        let expired = t
            .client()
            .authenticate_permission_token(pb::AuthenticatePermissionTokenRequest {
                permission_token: first.access_token.clone(),
            })
            .await;
        assert_eq!(code_of(expired), ErrorCode::TokenExpired);

        let refresh = |token: &str| pb::RefreshPermissionTokenRequest {
            app_id: app_id.clone(),
            refresh_token: token.into(),
        };
        let second = t
            .client()
            .refresh_permission_token(refresh(&first.refresh_token))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(second.endpoint, first.endpoint);
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::Valid
        );
        assert!(t.endpoint(&first.endpoint).await.unwrap().open);
        let old_access = t
            .client()
            .authenticate_permission_token(pb::AuthenticatePermissionTokenRequest {
                permission_token: first.access_token.clone(),
            })
            .await;
        assert_eq!(
            code_of(old_access),
            ErrorCode::Unauthenticated,
            "the refreshed-away token stops working"
        );

        let third = t
            .client()
            .refresh_permission_token(refresh(&second.refresh_token))
            .await
            .unwrap()
            .into_inner();
        // Presenting a spent refresh token again revokes the grant.
        assert_eq!(
            code_of(
                t.client()
                    .refresh_permission_token(refresh(&first.refresh_token))
                    .await
            ),
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            status(&t.permission(&app_id, "42").await),
            pb::PermissionStatus::Revoked
        );
        assert_eq!(
            code_of(
                t.client()
                    .refresh_permission_token(refresh(&third.refresh_token))
                    .await
            ),
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            code_of(
                t.client()
                    .refresh_permission_token(refresh("rt_unknown"))
                    .await
            ),
            ErrorCode::InvalidGrant
        );

        let renewed = t.grant(&app_id, "42").await;
        assert_eq!(
            renewed.endpoint, first.endpoint,
            "the endpoint is the member's for good"
        );
        let revoked = t
            .client()
            .revoke_permission(pb::RevokePermissionRequest {
                app_id: app_id.clone(),
                external_id: "42".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status(&revoked), pb::PermissionStatus::Revoked);
        assert!(!t.endpoint(&renewed.endpoint).await.unwrap().open);
        assert_eq!(
            t.anonymous_session(&app_id, &renewed.endpoint, "Visitor")
                .await
                .unwrap_err()
                .code,
            ErrorCode::EndpointClosed
        );
        let other_app = t.app().await.app.unwrap().app_id;
        let cross = t
            .client()
            .refresh_permission_token(pb::RefreshPermissionTokenRequest {
                app_id: other_app,
                refresh_token: renewed.refresh_token,
            })
            .await;
        assert_eq!(code_of(cross), ErrorCode::InvalidGrant);
    }
);
