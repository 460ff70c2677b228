use palaver_kit::ErrorCode;
use palaver_proto::identity::v1 as pb;

use crate::helpers::{TestIdentity, code_of};
use crate::on_both_backends;

on_both_backends!(
    a_member_is_created_read_updated_and_erased,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        let member = t
            .client()
            .create_member(pb::CreateMemberRequest {
                app_id: app_id.clone(),
                external_id: "42".into(),
                display_name: "  Ada Lovelace ".into(),
                email: "ada@example.org".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(member.display_name, "Ada Lovelace");
        assert_eq!(
            member.endpoint, "",
            "no endpoint before the first permission token"
        );

        let by_external = pb::GetMemberRequest {
            app_id: app_id.clone(),
            key: Some(pb::get_member_request::Key::ExternalId("42".into())),
        };
        let by_id = pb::GetMemberRequest {
            app_id: app_id.clone(),
            key: Some(pb::get_member_request::Key::MemberId(
                member.member_id.clone(),
            )),
        };
        assert_eq!(
            t.client()
                .get_member(by_external.clone())
                .await
                .unwrap()
                .into_inner()
                .member_id,
            member.member_id
        );
        assert_eq!(
            t.client()
                .get_member(by_id)
                .await
                .unwrap()
                .into_inner()
                .external_id,
            "42"
        );

        let updated = t
            .client()
            .update_member(pb::UpdateMemberRequest {
                app_id: app_id.clone(),
                external_id: "42".into(),
                display_name: Some("Ada".into()),
                email: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.display_name, "Ada");
        assert_eq!(updated.email, "ada@example.org");

        let token = t.grant(&app_id, "42").await;
        let erased = t
            .client()
            .delete_member(pb::DeleteMemberRequest {
                app_id: app_id.clone(),
                external_id: "42".into(),
            })
            .await
            .unwrap();
        assert_eq!(erased.into_inner().member_id, member.member_id);
        assert_eq!(
            code_of(t.client().get_member(by_external).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            t.endpoint(&token.endpoint).await.unwrap_err().code,
            ErrorCode::NotFound,
            "the endpoint goes with the member"
        );
        let auth = t
            .client()
            .authenticate_permission_token(pb::AuthenticatePermissionTokenRequest {
                permission_token: token.access_token,
            })
            .await;
        assert_eq!(code_of(auth), ErrorCode::Unauthenticated);
    }
);

on_both_backends!(
    bad_member_input_is_rejected_and_changes_nothing,
    |t: TestIdentity| async move {
        let app_id = t.app().await.app.unwrap().app_id;
        t.member(&app_id, "7").await;
        let create = |external_id: &str, name: &str, email: &str| pb::CreateMemberRequest {
            app_id: app_id.clone(),
            external_id: external_id.into(),
            display_name: name.into(),
            email: email.into(),
        };
        assert_eq!(
            code_of(t.client().create_member(create("7", "Dup", "")).await),
            ErrorCode::Conflict
        );
        assert_eq!(
            code_of(t.client().create_member(create("", "No id", "")).await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code_of(t.client().create_member(create("8", "", "")).await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code_of(
                t.client()
                    .create_member(create("8", &"x".repeat(65), ""))
                    .await
            ),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code_of(
                t.client()
                    .create_member(create("8", "Ok", "not-an-email"))
                    .await
            ),
            ErrorCode::InvalidArgument
        );
        let mut unknown_app = create("9", "Ok", "");
        unknown_app.app_id = "app_doesnotexist".into();
        assert_eq!(
            code_of(t.client().create_member(unknown_app).await),
            ErrorCode::NotFound
        );

        let refused = t
            .client()
            .update_member(pb::UpdateMemberRequest {
                app_id: app_id.clone(),
                external_id: "7".into(),
                display_name: Some("bad\u{202E}name".into()),
                email: None,
            })
            .await;
        assert_eq!(code_of(refused), ErrorCode::InvalidArgument);
        let read = t
            .client()
            .get_member(pb::GetMemberRequest {
                app_id: app_id.clone(),
                key: Some(pb::get_member_request::Key::ExternalId("7".into())),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.display_name, "Member 7");
        let missing = t
            .client()
            .get_member(pb::GetMemberRequest {
                app_id: app_id.clone(),
                key: Some(pb::get_member_request::Key::ExternalId("8".into())),
            })
            .await;
        assert_eq!(
            code_of(missing),
            ErrorCode::NotFound,
            "refused creates left nothing behind"
        );

        let other_app = t.app().await.app.unwrap().app_id;
        let cross = t
            .client()
            .get_member(pb::GetMemberRequest {
                app_id: other_app,
                key: Some(pb::get_member_request::Key::MemberId(read.member_id)),
            })
            .await;
        assert_eq!(
            code_of(cross),
            ErrorCode::NotFound,
            "a member of another app is invisible"
        );
    }
);
