//! What an operator does to one of their conversations from the console, with an
//! operator access token: closes it, blocks its visitor from starting chats with them,
//! lifts the block.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ConversationId, not_taking_part_is_not_found};
use crate::clients::call;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, Operator, SignedInMember};
use crate::http::model::ConversationView;
use crate::state::AppState;

/// The operator's conversation routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(close_my_conversation))
        .routes(routes!(block_visitor, unblock_visitor))
}

/// Closes one of the member's conversations (closing a closed one changes nothing).
/// An addition to the contract, for the console.
#[utoipa::path(
    post,
    path = "/v1/me/conversations/{id}/close",
    tag = "operator",
    params(("id" = String, Path, description = "The conversation")),
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The closed conversation.", body = ConversationView),
        (status = 404, description = "The member takes no part in such a conversation (`not_found`).",
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn close_my_conversation(
    operator: Operator,
    State(state): State<AppState>,
    ApiPath(ConversationId { id }): ApiPath<ConversationId>,
) -> ApiResult<Json<ConversationView>> {
    let member = SignedInMember::from(operator);
    let conversation = call(state.conversation().close(conv::CloseRequest {
        caller: Some(member.caller()),
        conversation_id: id,
    }))
    .await
    .map_err(not_taking_part_is_not_found)?;
    Ok(Json(conversation.into()))
}

/// What blocking did.
#[derive(Serialize, ToSchema)]
struct BlockedVisitor {
    /// The visitor who can no longer start chats with the member.
    visitor_id: String,
    /// The visitor's open conversations with the member that the block closed.
    closed_conversations: u64,
}

/// The visitor of one of the member's conversations in which the member is the one
/// chatted with (a conversation the member started on another member's chat box has
/// no visitor of theirs to block).
async fn visitor_to_block(
    state: &AppState,
    member: &SignedInMember,
    id: String,
) -> ApiResult<String> {
    let conversation = call(
        state
            .conversation()
            .get_conversation(conv::GetConversationRequest {
                caller: Some(member.caller()),
                conversation_id: id,
            }),
    )
    .await
    .map_err(not_taking_part_is_not_found)?;
    if conversation.member_id != member.member_id {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "the member started this conversation on another member's chat box; only that member may block",
        )
        .into());
    }
    Ok(conversation.visitor.unwrap_or_default().visitor_id)
}

/// Blocks the visitor of one of the member's conversations from starting chats with
/// the member, and closes the visitor's open conversations with them. An addition to
/// the contract, for the console.
#[utoipa::path(
    post,
    path = "/v1/me/conversations/{id}/block",
    tag = "operator",
    params(("id" = String, Path, description = "A conversation with the visitor")),
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The visitor is blocked.", body = BlockedVisitor),
        (status = 403, description = "The member is the visitor of this conversation (`permission_denied`).",
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "The member takes no part in such a conversation (`not_found`).",
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn block_visitor(
    operator: Operator,
    State(state): State<AppState>,
    ApiPath(ConversationId { id }): ApiPath<ConversationId>,
) -> ApiResult<Json<BlockedVisitor>> {
    let member = SignedInMember::from(operator);
    let visitor_id = visitor_to_block(&state, &member, id).await?;
    let blocked = call(
        state
            .conversation()
            .block_visitor(conv::BlockVisitorRequest {
                app_id: member.app_id,
                member_id: member.member_id,
                visitor_id: visitor_id.clone(),
            }),
    )
    .await?;
    Ok(Json(BlockedVisitor {
        visitor_id,
        closed_conversations: blocked.closed_conversations,
    }))
}

/// Lifts the block on the visitor of one of the member's conversations. An addition
/// to the contract, for the console.
#[utoipa::path(
    delete,
    path = "/v1/me/conversations/{id}/block",
    tag = "operator",
    params(("id" = String, Path, description = "A conversation with the visitor")),
    security(("operator_token" = [])),
    responses(
        (status = 204, description = "The visitor may start chats again."),
        (status = 404, description = "No such conversation of the member's, or its visitor is not blocked (`not_found`).",
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn unblock_visitor(
    operator: Operator,
    State(state): State<AppState>,
    ApiPath(ConversationId { id }): ApiPath<ConversationId>,
) -> ApiResult<StatusCode> {
    let member = SignedInMember::from(operator);
    let visitor_id = visitor_to_block(&state, &member, id).await?;
    call(
        state
            .conversation()
            .unblock_visitor(conv::UnblockVisitorRequest {
                app_id: member.app_id,
                member_id: member.member_id,
                visitor_id,
            }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
