//! Erasing a member wherever Palaver keeps their data (`DELETE
//! /v1/cms/members/{external_id}`): every service that holds some of it is called from
//! [`erase_member`]. The conversation service goes first (their conversations,
//! messages and offline messages), then identity (the member with their grants, chat
//! endpoint, sessions and tokens): identity is what names the member, so a failure in
//! between leaves a member that can be erased again, never conversations nobody can
//! find.

use palaver_kit::Error;
use palaver_proto::conversation::v1 as conv;
use palaver_proto::identity::v1 as pb;

use crate::clients::call;
use crate::state::AppState;

/// Erases the member `external_id` of `app_id`; answers the member as they were.
pub async fn erase_member(
    state: &AppState,
    app_id: &str,
    external_id: &str,
) -> Result<pb::Member, Error> {
    let member = call(state.identity().get_member(pb::GetMemberRequest {
        app_id: app_id.to_owned(),
        key: Some(pb::get_member_request::Key::ExternalId(
            external_id.to_owned(),
        )),
    }))
    .await?;
    call(state.conversation().erase_member(conv::EraseMemberRequest {
        app_id: app_id.to_owned(),
        member_id: member.member_id.clone(),
    }))
    .await?;
    call(state.identity().delete_member(pb::DeleteMemberRequest {
        app_id: app_id.to_owned(),
        external_id: external_id.to_owned(),
    }))
    .await?;
    Ok(member)
}
