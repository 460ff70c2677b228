use palaver_kit::ErrorCode;
use palaver_kit::tokens::TokenKind;
use palaver_proto::identity::v1 as pb;

use crate::helpers::{TestIdentity, code_of};
use crate::on_both_backends;

on_both_backends!(
    a_login_link_signs_an_operator_in_once,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        let member = t.member(&app_id, "42").await;
        let link = t
            .client()
            .create_login_link(pb::CreateLoginLinkRequest {
                app_id: app_id.clone(),
                external_id: "42".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let exchange = |token: &str| {
            let mut client = t.client();
            let request = pb::ExchangeLoginLinkRequest {
                login_token: token.into(),
            };
            async move { client.exchange_login_link(request).await }
        };
        let session = exchange(&link.login_token).await.unwrap().into_inner();
        assert_eq!(session.member.unwrap().member_id, member.member_id);
        assert_eq!(session.expires_in, 12 * 3600);
        let claims = t.verifier().verify(&session.access_token).await.unwrap();
        assert_eq!(claims.kind, TokenKind::Operator);
        assert_eq!(claims.sub, member.member_id);
        assert_eq!(claims.app, app_id);

        assert_eq!(
            code_of(exchange(&link.login_token).await),
            ErrorCode::Unauthenticated,
            "one use only"
        );
        assert_eq!(
            code_of(exchange("ll_unknown").await),
            ErrorCode::Unauthenticated
        );

        let late = t
            .client()
            .create_login_link(pb::CreateLoginLinkRequest {
                app_id: app_id.clone(),
                external_id: "42".into(),
            })
            .await
            .unwrap()
            .into_inner();
        t.clock.shift_ms(601_000);
        assert_eq!(
            code_of(exchange(&late.login_token).await),
            ErrorCode::Unauthenticated,
            "ten minutes only"
        );
        let nobody = t
            .client()
            .create_login_link(pb::CreateLoginLinkRequest {
                app_id,
                external_id: "nobody".into(),
            })
            .await;
        assert_eq!(code_of(nobody), ErrorCode::NotFound);
    }
);

on_both_backends!(
    personal_access_tokens_are_listed_used_and_revoked,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        let member = t.member(&app_id, "42").await;
        let create = |name: &str| pb::CreatePersonalAccessTokenRequest {
            app_id: app_id.clone(),
            member_id: member.member_id.clone(),
            name: name.into(),
        };
        let laptop = t
            .client()
            .create_personal_access_token(create("laptop"))
            .await
            .unwrap()
            .into_inner();
        let phone = t
            .client()
            .create_personal_access_token(create("phone"))
            .await
            .unwrap()
            .into_inner();
        assert!(laptop.token.starts_with("pat_"));
        assert_eq!(
            code_of(t.client().create_personal_access_token(create("")).await),
            ErrorCode::InvalidArgument
        );

        let list = || {
            let mut client = t.client();
            let request = pb::ListPersonalAccessTokensRequest {
                app_id: app_id.clone(),
                member_id: member.member_id.clone(),
            };
            async move {
                client
                    .list_personal_access_tokens(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .tokens
            }
        };
        let names: Vec<String> = list().await.into_iter().map(|p| p.name).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"laptop".to_owned()) && names.contains(&"phone".to_owned()));

        let session = t
            .client()
            .exchange_personal_access_token(pb::ExchangePersonalAccessTokenRequest {
                token: laptop.token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            t.verifier()
                .verify(&session.access_token)
                .await
                .unwrap()
                .kind,
            TokenKind::Operator
        );
        let used = list()
            .await
            .into_iter()
            .find(|p| p.name == "laptop")
            .unwrap();
        assert!(used.last_used_at.is_some());

        let laptop_id = laptop.personal_access_token.unwrap().id;
        t.client()
            .revoke_personal_access_token(pb::RevokePersonalAccessTokenRequest {
                app_id: app_id.clone(),
                member_id: member.member_id.clone(),
                id: laptop_id.clone(),
            })
            .await
            .unwrap();
        let revoked = t
            .client()
            .exchange_personal_access_token(pb::ExchangePersonalAccessTokenRequest {
                token: laptop.token,
            })
            .await;
        assert_eq!(code_of(revoked), ErrorCode::Unauthenticated);
        assert_eq!(list().await.len(), 1);
        assert!(
            t.client()
                .exchange_personal_access_token(pb::ExchangePersonalAccessTokenRequest {
                    token: phone.token
                })
                .await
                .is_ok()
        );
        let again = t
            .client()
            .revoke_personal_access_token(pb::RevokePersonalAccessTokenRequest {
                app_id,
                member_id: member.member_id,
                id: laptop_id,
            })
            .await;
        assert_eq!(code_of(again), ErrorCode::NotFound);
    }
);
