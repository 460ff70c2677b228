use jsonwebtoken::{EncodingKey, Header};
use palaver_kit::ErrorCode;
use palaver_kit::tokens::TokenKind;
use palaver_proto::identity::v1 as pb;
use serde_json::json;

use crate::helpers::TestIdentity;
use crate::on_both_backends;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assertion(key: &str, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

async fn verified_session(
    t: &TestIdentity,
    app_id: &str,
    endpoint: &str,
    assertion: String,
) -> Result<pb::VisitorSession, palaver_kit::Error> {
    t.client()
        .create_visitor_session(pb::CreateVisitorSessionRequest {
            app_id: app_id.into(),
            endpoint: endpoint.into(),
            who: Some(pb::create_visitor_session_request::Who::Assertion(
                assertion,
            )),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| palaver_kit::Error::from_status(&s))
}

on_both_backends!(
    an_anonymous_visitor_gets_a_session_token,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "owner").await;
        let endpoint = t.grant(&app_id, "owner").await.endpoint;
        let session = t
            .anonymous_session(&app_id, &endpoint, "  Curious Visitor ")
            .await
            .unwrap();
        let visitor = session.visitor.unwrap();
        assert_eq!(visitor.display_name, "Curious Visitor");
        assert!(!visitor.verified);
        assert_eq!(session.expires_in, 86_400);

        let claims = t.verifier().verify(&session.session_token).await.unwrap();
        assert_eq!(claims.kind, TokenKind::Visitor);
        assert_eq!(claims.sub, visitor.visitor_id);
        assert_eq!(claims.app, app_id);
        assert_eq!(claims.name, "Curious Visitor");
        assert!(!claims.verified);

        let again = t
            .anonymous_session(&app_id, &endpoint, "Curious Visitor")
            .await
            .unwrap();
        assert_ne!(
            again.visitor.unwrap().visitor_id,
            visitor.visitor_id,
            "anonymous visitors are not linked"
        );
    }
);

on_both_backends!(
    bad_visitor_sessions_are_refused,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "owner").await;
        let endpoint = t.grant(&app_id, "owner").await.endpoint;
        for name in [
            "",
            "   ",
            &"n".repeat(65),
            "bell\u{0007}",
            "rtl\u{202E}override",
            "isolate\u{2067}x",
        ] {
            assert_eq!(
                t.anonymous_session(&app_id, &endpoint, name)
                    .await
                    .unwrap_err()
                    .code,
                ErrorCode::InvalidArgument,
                "{name:?}"
            );
        }
        assert!(
            t.anonymous_session(&app_id, &endpoint, &"n".repeat(64))
                .await
                .is_ok()
        );
        assert_eq!(
            t.anonymous_session(&app_id, "ce_unknown", "V")
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        let other_app = t.app().await.app.unwrap().app_id;
        assert_eq!(
            t.anonymous_session(&other_app, &endpoint, "V")
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        t.member(&app_id, "no-token").await;
        let missing = t
            .client()
            .create_visitor_session(pb::CreateVisitorSessionRequest {
                app_id: app_id.clone(),
                endpoint: endpoint.clone(),
                who: None,
            })
            .await;
        assert_eq!(crate::helpers::code_of(missing), ErrorCode::InvalidArgument);
    }
);

on_both_backends!(
    a_verified_visitor_is_vouched_for_by_the_cms,
    |t: TestIdentity| async move {
        let created = t.app().await;
        let app_id = created.app.unwrap().app_id;
        t.member(&app_id, "owner").await;
        t.member(&app_id, "member-7").await;
        let endpoint = t.grant(&app_id, "owner").await.endpoint;
        let key = created.identity_key.clone();
        let claims = |sub: &str| json!({"sub": sub, "name": "Grace H.", "aud": app_id, "iat": now(), "exp": now() + 3600});

        let session = verified_session(
            &t,
            &app_id,
            &endpoint,
            assertion(&key, None, claims("cms-user-1")),
        )
        .await
        .unwrap();
        let visitor = session.visitor.unwrap();
        assert!(visitor.verified);
        assert_eq!(visitor.display_name, "Grace H.");
        assert_eq!(visitor.external_id, "cms-user-1");
        assert_eq!(visitor.member_id, "", "not a member");
        let token = t.verifier().verify(&session.session_token).await.unwrap();
        assert!(token.verified);
        assert_eq!(token.ext.as_deref(), Some("cms-user-1"));

        let again = verified_session(
            &t,
            &app_id,
            &endpoint,
            assertion(&key, Some(&created.identity_key_id), claims("cms-user-1")),
        )
        .await
        .unwrap();
        assert_eq!(
            again.visitor.unwrap().visitor_id,
            visitor.visitor_id,
            "the same CMS user is the same visitor"
        );

        let member_visitor = verified_session(
            &t,
            &app_id,
            &endpoint,
            assertion(&key, None, claims("member-7")),
        )
        .await
        .unwrap();
        let member_7 = t
            .client()
            .get_member(pb::GetMemberRequest {
                app_id: app_id.clone(),
                key: Some(pb::get_member_request::Key::ExternalId("member-7".into())),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            member_visitor.visitor.unwrap().member_id,
            member_7.member_id,
            "a member chatting from a profile page is known"
        );
    }
);

on_both_backends!(bad_assertions_are_rejected, |t: TestIdentity| async move {
    let created = t.app().await;
    let app_id = created.app.unwrap().app_id;
    t.member(&app_id, "owner").await;
    let endpoint = t.grant(&app_id, "owner").await.endpoint;
    let key = created.identity_key.clone();
    let n = now();
    let cases = [
        (
            "wrong key",
            assertion(
                "idk_wrong",
                None,
                json!({"sub":"u","name":"U","aud":app_id,"iat":n,"exp":n+60}),
            ),
        ),
        (
            "wrong kid",
            assertion(
                &key,
                Some("ik_unknown"),
                json!({"sub":"u","name":"U","aud":app_id,"iat":n,"exp":n+60}),
            ),
        ),
        (
            "wrong audience",
            assertion(
                &key,
                None,
                json!({"sub":"u","name":"U","aud":"app_other","iat":n,"exp":n+60}),
            ),
        ),
        (
            "expired",
            assertion(
                &key,
                None,
                json!({"sub":"u","name":"U","aud":app_id,"iat":n-7200,"exp":n-3600}),
            ),
        ),
        (
            "issued in the future",
            assertion(
                &key,
                None,
                json!({"sub":"u","name":"U","aud":app_id,"iat":n+600,"exp":n+1200}),
            ),
        ),
        (
            "valid too long",
            assertion(
                &key,
                None,
                json!({"sub":"u","name":"U","aud":app_id,"iat":n,"exp":n+86_401}),
            ),
        ),
        (
            "no name",
            assertion(
                &key,
                None,
                json!({"sub":"u","aud":app_id,"iat":n,"exp":n+60}),
            ),
        ),
        (
            "bidi name",
            assertion(
                &key,
                None,
                json!({"sub":"u","name":"a\u{202E}b","aud":app_id,"iat":n,"exp":n+60}),
            ),
        ),
        ("not a jwt", "garbage".to_owned()),
    ];
    for (why, bad) in cases {
        let error = verified_session(&t, &app_id, &endpoint, bad)
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidAssertion, "{why}: {error}");
    }
    // Within the 60 s skew is fine.
    let skewed = assertion(
        &key,
        None,
        json!({"sub":"u","name":"U","aud":app_id,"iat":n+30,"exp":n+600}),
    );
    assert!(
        verified_session(&t, &app_id, &endpoint, skewed)
            .await
            .is_ok()
    );
});

on_both_backends!(
    identity_key_rotation_keeps_the_previous_key,
    |t: TestIdentity| async move {
        let created = t.app().await;
        let app_id = created.app.unwrap().app_id;
        t.member(&app_id, "owner").await;
        let endpoint = t.grant(&app_id, "owner").await.endpoint;
        let claims =
            json!({"sub": "u", "name": "U", "aud": app_id, "iat": now(), "exp": now() + 600});
        let rotate = || {
            let mut client = t.client();
            let app_id = app_id.clone();
            async move {
                client
                    .rotate_identity_key(pb::RotateIdentityKeyRequest { app_id })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        let second = rotate().await;
        assert_eq!(second.previous_identity_key_id, created.identity_key_id);
        assert!(
            verified_session(
                &t,
                &app_id,
                &endpoint,
                assertion(&created.identity_key, None, claims.clone())
            )
            .await
            .is_ok()
        );
        assert!(
            verified_session(
                &t,
                &app_id,
                &endpoint,
                assertion(
                    &second.identity_key,
                    Some(&second.identity_key_id),
                    claims.clone()
                )
            )
            .await
            .is_ok()
        );
        let app = t
            .client()
            .get_app(pb::GetAppRequest {
                app_id: app_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            app.identity_key_ids,
            vec![
                second.identity_key_id.clone(),
                created.identity_key_id.clone()
            ]
        );

        let third = rotate().await;
        let retired = verified_session(
            &t,
            &app_id,
            &endpoint,
            assertion(&created.identity_key, None, claims.clone()),
        )
        .await;
        assert_eq!(
            retired.unwrap_err().code,
            ErrorCode::InvalidAssertion,
            "two rotations retire a key"
        );
        assert!(
            verified_session(
                &t,
                &app_id,
                &endpoint,
                assertion(&second.identity_key, None, claims.clone())
            )
            .await
            .is_ok()
        );
        assert!(
            verified_session(
                &t,
                &app_id,
                &endpoint,
                assertion(&third.identity_key, None, claims)
            )
            .await
            .is_ok()
        );
    }
);
