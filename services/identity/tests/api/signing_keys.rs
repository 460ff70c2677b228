use palaver_kit::ErrorCode;
use palaver_proto::identity::v1 as pb;

use crate::helpers::TestIdentity;
use crate::on_both_backends;

on_both_backends!(
    rotating_the_signing_key_logs_nobody_out,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "owner").await;
        let endpoint = t.grant(&app_id, "owner").await.endpoint;
        let verifier = t.verifier().with_intervals(
            std::time::Duration::from_secs(300),
            std::time::Duration::ZERO,
        );

        let before = t
            .anonymous_session(&app_id, &endpoint, "Before")
            .await
            .unwrap()
            .session_token;
        assert_eq!(verifier.verify(&before).await.unwrap().name, "Before");
        let jwks = t
            .client()
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys;
        assert_eq!(jwks.len(), 1);
        assert_eq!(
            (
                jwks[0].kty.as_str(),
                jwks[0].crv.as_str(),
                jwks[0].alg.as_str()
            ),
            ("OKP", "Ed25519", "EdDSA")
        );

        let kid = t
            .client()
            .rotate_signing_key(pb::RotateSigningKeyRequest {})
            .await
            .unwrap()
            .into_inner()
            .kid;
        let after = t
            .anonymous_session(&app_id, &endpoint, "After")
            .await
            .unwrap()
            .session_token;
        assert_eq!(
            jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(),
            Some(kid.as_str()),
            "the new key signs"
        );
        // The verifier has never seen the new key: it fetches the JWKS again.
        assert_eq!(verifier.verify(&after).await.unwrap().name, "After");
        assert_eq!(
            verifier.verify(&before).await.unwrap().name,
            "Before",
            "tokens of the previous key stay valid"
        );
        let kids: Vec<String> = t
            .client()
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0], kid);
    }
);

on_both_backends!(
    forged_and_expired_access_tokens_are_refused,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "owner").await;
        let endpoint = t.grant(&app_id, "owner").await.endpoint;
        let verifier = t.verifier();
        let token = t
            .anonymous_session(&app_id, &endpoint, "V")
            .await
            .unwrap()
            .session_token;

        let mut tampered = token.clone();
        tampered.insert(token.len() - 5, 'x');
        assert_eq!(
            verifier.verify(&tampered).await.unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            verifier.verify("not.a.jwt").await.unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        let hs256 = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "x", "exp": 9_999_999_999i64}),
            &jsonwebtoken::EncodingKey::from_secret(b"guess"),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&hs256).await.unwrap_err().code,
            ErrorCode::Unauthenticated
        );

        // A token issued two days ago has expired.
        t.clock.shift_ms(-2 * 86_400_000);
        let old = t.anonymous_session(&app_id, &endpoint, "Old").await;
        t.clock.shift_ms(2 * 86_400_000);
        assert_eq!(
            verifier
                .verify(&old.unwrap().session_token)
                .await
                .unwrap_err()
                .code,
            ErrorCode::TokenExpired
        );
    }
);
