use palaver_kit::ErrorCode;
use palaver_proto::identity::v1 as pb;

use crate::helpers::{TestIdentity, code_of};
use crate::on_both_backends;

on_both_backends!(
    an_app_is_created_read_updated_and_deleted,
    |t: TestIdentity| async move {
        let created = t.app().await;
        let app = created.app.clone().unwrap();
        assert!(app.app_id.starts_with("app_"));
        assert!(
            created
                .api_secret
                .starts_with(&format!("psk_{}_", app.app_id))
        );
        assert_eq!(app.identity_key_ids, vec![created.identity_key_id.clone()]);
        assert_eq!(app.origins, vec!["https://example.org"]);

        let read = t
            .client()
            .get_app(pb::GetAppRequest {
                app_id: app.app_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.name, "Example Site");
        assert_eq!(read.retention_days, 90);

        let updated = t
            .client()
            .update_app(pb::UpdateAppRequest {
                app_id: app.app_id.clone(),
                name: Some("Renamed".into()),
                origins: Some(pb::StringList {
                    values: vec!["https://a.example".into(), "http://localhost:8090".into()],
                }),
                limits: Some(pb::Limits {
                    messages_per_second: 5,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.name, "Renamed");
        assert_eq!(
            updated.origins,
            vec!["https://a.example", "http://localhost:8090"]
        );
        assert_eq!(
            updated.privacy_url, "https://example.org/privacy",
            "unset fields stay"
        );
        assert_eq!(updated.limits.unwrap().messages_per_second, 5);

        t.client()
            .delete_app(pb::DeleteAppRequest {
                app_id: app.app_id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            code_of(
                t.client()
                    .get_app(pb::GetAppRequest {
                        app_id: app.app_id.clone()
                    })
                    .await
            ),
            ErrorCode::NotFound
        );
        assert_eq!(
            code_of(
                t.client()
                    .delete_app(pb::DeleteAppRequest { app_id: app.app_id })
                    .await
            ),
            ErrorCode::NotFound
        );
    }
);

on_both_backends!(
    bad_app_settings_are_rejected_and_change_nothing,
    |t: TestIdentity| async move {
        let bad = |f: fn(&mut pb::CreateAppRequest)| {
            let mut request = pb::CreateAppRequest {
                name: "Site".into(),
                origins: vec!["https://example.org".into()],
                privacy_url: "https://example.org/privacy".into(),
                return_urls: vec!["https://example.org/back".into()],
                ..Default::default()
            };
            f(&mut request);
            request
        };
        for request in [
            bad(|r| r.name = "  ".into()),
            bad(|r| r.origins = vec!["https://example.org/with/path".into()]),
            bad(|r| r.privacy_url = "javascript:alert(1)".into()),
            bad(|r| r.return_urls = vec!["not a url".into()]),
            bad(|r| r.retention_days = 100_000),
        ] {
            assert_eq!(
                code_of(t.client().create_app(request).await),
                ErrorCode::InvalidArgument
            );
        }

        let app = t.app().await.app.unwrap();
        let refused = t
            .client()
            .update_app(pb::UpdateAppRequest {
                app_id: app.app_id.clone(),
                name: Some("New name".into()),
                origins: Some(pb::StringList {
                    values: vec!["nope".into()],
                }),
                ..Default::default()
            })
            .await;
        assert_eq!(code_of(refused), ErrorCode::InvalidArgument);
        let read = t
            .client()
            .get_app(pb::GetAppRequest { app_id: app.app_id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            read.name, "Example Site",
            "a refused update changes nothing"
        );
        assert_eq!(read.origins, vec!["https://example.org"]);
    }
);

on_both_backends!(
    the_api_secret_authenticates_and_rotates,
    |t: TestIdentity| async move {
        let created = t.app().await;
        let app_id = created.app.unwrap().app_id;
        let auth = |secret: String| {
            let mut client = t.client();
            async move {
                client
                    .authenticate_app(pb::AuthenticateAppRequest { api_secret: secret })
                    .await
            }
        };
        assert_eq!(
            auth(created.api_secret.clone())
                .await
                .unwrap()
                .into_inner()
                .app_id,
            app_id
        );
        // Again, now from the verification cache.
        assert_eq!(
            auth(created.api_secret.clone())
                .await
                .unwrap()
                .into_inner()
                .app_id,
            app_id
        );
        assert_eq!(
            code_of(auth(format!("{}x", created.api_secret)).await),
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            code_of(auth("garbage".into()).await),
            ErrorCode::Unauthenticated
        );

        let rotated = t
            .client()
            .rotate_api_secret(pb::RotateApiSecretRequest {
                app_id: app_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_ne!(rotated.api_secret, created.api_secret);
        assert_eq!(
            code_of(auth(created.api_secret).await),
            ErrorCode::Unauthenticated,
            "the old secret stops at once"
        );
        assert_eq!(
            auth(rotated.api_secret).await.unwrap().into_inner().app_id,
            app_id
        );
    }
);

on_both_backends!(
    the_webhook_keeps_its_secret_and_checks_events,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        let set = |url: &str, events: &[&str]| {
            let mut client = t.client();
            let request = pb::SetWebhookRequest {
                app_id: app_id.clone(),
                url: url.into(),
                events: events.iter().map(|e| e.to_string()).collect(),
            };
            async move { client.set_webhook(request).await }
        };
        let first = set(
            "https://example.org/hooks",
            &["message.created", "conversation.started"],
        )
        .await
        .unwrap()
        .into_inner();
        assert!(first.secret.starts_with("whsec_"));
        let second = set("https://example.org/hooks2", &["message.offline"])
            .await
            .unwrap()
            .into_inner();
        assert_eq!(second.secret, first.secret);
        assert_eq!(
            code_of(set("https://example.org/hooks", &["message.exploded"]).await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code_of(set("ftp://example.org", &["message.created"]).await),
            ErrorCode::InvalidArgument
        );
        let read = t
            .client()
            .get_webhook(pb::GetWebhookRequest {
                app_id: app_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.url, "https://example.org/hooks2");
        assert_eq!(read.events, vec!["message.offline"]);
    }
);

on_both_backends!(the_admin_port_reports_ready, |t: TestIdentity| async move {
    let base = format!("http://{}", t.admin());
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
});
