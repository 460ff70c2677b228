//! Conversations as a CMS reads them (`/v1/cms/conversations…`, with the API secret:
//! every conversation of the app, read-only) and as a member sees their own
//! (`/v1/me/conversations…` and `/v1/me/offline-messages`): listed and transcribed with
//! a permission token or an operator access token (their messages paged too), closed
//! and their visitors blocked
//! with an operator access token (the console). The conversation service stores them;
//! the gateway maps its answers and the member's CMS id to Palaver's.
//!
//! A member asking for a conversation of the app they take no part in learns only
//! that there is no such conversation (`not_found`), as another app's caller does.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, ApiQuery, CmsApp, Operator, SignedInMember};
use crate::http::model::{
    ConversationPage, ConversationView, VisitorView, non_empty, sender_name, timestamp,
};
use crate::state::AppState;

/// The conversation routes of the CMS and member APIs.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(get_transcript))
        .routes(routes!(my_conversations))
        .routes(routes!(my_messages))
        .routes(routes!(my_transcript))
        .routes(routes!(close_my_conversation))
        .routes(routes!(block_visitor, unblock_visitor))
        .routes(routes!(my_offline_messages))
}

/// Whose conversations, and where to go on from.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CmsListQuery {
    /// The member (the CMS's user id).
    member: String,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// At most 200; 50 by default.
    limit: Option<u32>,
}

/// Where to go on from.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// At most 200; 50 by default.
    limit: Option<u32>,
}

/// The `{id}` of a path.
#[derive(Deserialize)]
struct ConversationId {
    id: String,
}

/// The app itself as a caller: reads every conversation of the app, changes none.
fn app_caller(app_id: &str) -> conv::Caller {
    conv::Caller {
        app_id: app_id.to_owned(),
        ..conv::Caller::default()
    }
}

/// A member's conversations, newest first.
#[utoipa::path(
    get,
    path = "/v1/cms/conversations",
    tag = "cms",
    params(CmsListQuery),
    security(("api_secret" = [])),
    responses(
        (status = 200, description = "One page of the member's conversations.", body = ConversationPage),
        (status = 404, description = "No such member (`not_found`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn list_conversations(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CmsListQuery>,
) -> ApiResult<Json<ConversationPage>> {
    let member = call(state.identity().get_member(pb::GetMemberRequest {
        app_id: app.app_id.clone(),
        key: Some(pb::get_member_request::Key::ExternalId(query.member)),
    }))
    .await?;
    let page = call(
        state
            .conversation()
            .list_conversations(conv::ListConversationsRequest {
                app_id: app.app_id,
                member_id: member.member_id,
                cursor: query.cursor.unwrap_or_default(),
                limit: query.limit.unwrap_or_default(),
            }),
    )
    .await?;
    Ok(Json(page.into()))
}

/// One conversation of the app.
#[utoipa::path(
    get,
    path = "/v1/cms/conversations/{id}",
    tag = "cms",
    params(("id" = String, Path, description = "The conversation")),
    security(("api_secret" = [])),
    responses(
        (status = 200, description = "The conversation.", body = ConversationView),
        (status = 404, description = "No such conversation in the app (`not_found`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn get_conversation(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ConversationId { id }): ApiPath<ConversationId>,
) -> ApiResult<Json<ConversationView>> {
    let conversation = call(
        state
            .conversation()
            .get_conversation(conv::GetConversationRequest {
                caller: Some(app_caller(&app.app_id)),
                conversation_id: id,
            }),
    )
    .await?;
    Ok(Json(conversation.into()))
}

/// The whole conversation: `text/plain` when the `Accept` header prefers it, else a
/// JSON document.
#[utoipa::path(
    get,
    path = "/v1/cms/conversations/{id}/transcript",
    tag = "cms",
    params(("id" = String, Path, description = "The conversation")),
    security(("api_secret" = [])),
    responses(
        (status = 200, description = "The transcript.",
            content(
                (String = "application/json"),
                (String = "text/plain"),
            )),
        (status = 404, description = "No such conversation in the app (`not_found`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn get_transcript(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ConversationId { id }): ApiPath<ConversationId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    transcript(&state, app_caller(&app.app_id), id, &headers).await
}

/// The transcript of conversation `id` as `caller` may read it, in the format the
/// `Accept` header prefers.
async fn transcript(
    state: &AppState,
    caller: conv::Caller,
    id: String,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let transcript = call(
        state
            .conversation()
            .get_transcript(conv::GetTranscriptRequest {
                caller: Some(caller),
                conversation_id: id,
            }),
    )
    .await
    .map_err(not_taking_part_is_not_found)?;
    let (content_type, body) = if prefers_text(headers) {
        ("text/plain; charset=utf-8", transcript.text)
    } else {
        ("application/json", transcript.json)
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response.into_response())
}

/// True when `Accept` names `text/plain` before any JSON type.
fn prefers_text(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim();
        match media {
            "text/plain" | "text/*" => return true,
            "application/json" | "application/*" | "*/*" => return false,
            _ => {}
        }
    }
    false
}

/// The member's own conversations, newest first, with their unread counts. Takes a
/// permission token or (an addition to the contract, for the console) an operator
/// access token.
#[utoipa::path(
    get,
    path = "/v1/me/conversations",
    tag = "member",
    params(PageQuery),
    security(("permission_token" = []), ("operator_token" = [])),
    responses((status = 200, description = "One page of the member's conversations.", body = ConversationPage))
)]
async fn my_conversations(
    member: SignedInMember,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<ConversationPage>> {
    let page = call(
        state
            .conversation()
            .list_conversations(conv::ListConversationsRequest {
                app_id: member.app_id,
                member_id: member.member_id,
                cursor: query.cursor.unwrap_or_default(),
                limit: query.limit.unwrap_or_default(),
            }),
    )
    .await?;
    Ok(Json(page.into()))
}

/// A conversation of the app the caller takes no part in reads as none at all.
fn not_taking_part_is_not_found(error: Error) -> Error {
    if error.code == ErrorCode::PermissionDenied {
        Error::not_found("no such conversation")
    } else {
        error
    }
}

/// A message of a conversation, as the WebSocket's `message` frame carries it.
#[derive(Serialize, ToSchema)]
struct MessageView {
    id: String,
    seq: u64,
    /// The sender's own id of the message.
    client_id: String,
    /// `visitor` or `member`.
    from: &'static str,
    text: String,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
}

impl From<conv::Message> for MessageView {
    fn from(m: conv::Message) -> Self {
        MessageView {
            from: sender_name(m.from()),
            id: m.id,
            seq: m.seq,
            client_id: m.client_id,
            text: m.text,
            sent_at: timestamp(m.sent_at),
        }
    }
}

/// A page of messages, in sequence order.
#[derive(Serialize, ToSchema)]
struct MessagePage {
    messages: Vec<MessageView>,
    /// True when there are more in the page's direction (older for `before_seq`,
    /// newer otherwise).
    more: bool,
}

/// Which messages: the newest, those just before `before_seq`, or those after
/// `after_seq`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MessagesQuery {
    /// The messages just before this sequence number (history, going back).
    before_seq: Option<u64>,
    /// The messages after this sequence number (what the WebSocket's `resume` sends).
    after_seq: Option<u64>,
    /// At most 200; 50 by default.
    limit: Option<u32>,
}

/// A page of one of the member's conversations' messages, oldest first: the newest
/// ones, or, going back through the history, those before `before_seq`. An addition to
/// the contract, for the console.
#[utoipa::path(
    get,
    path = "/v1/me/conversations/{id}/messages",
    tag = "member",
    params(("id" = String, Path, description = "The conversation"), MessagesQuery),
    security(("permission_token" = []), ("operator_token" = [])),
    responses(
        (status = 200, description = "The messages, in sequence order.", body = MessagePage),
        (status = 404, description = "The member takes no part in such a conversation (`not_found`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn my_messages(
    member: SignedInMember,
    State(state): State<AppState>,
    ApiPath(ConversationId { id }): ApiPath<ConversationId>,
    ApiQuery(query): ApiQuery<MessagesQuery>,
) -> ApiResult<Json<MessagePage>> {
    use conv::list_messages_request::Page;
    let page = match (query.before_seq, query.after_seq) {
        (Some(before), None) => Some(Page::BeforeSeq(before)),
        (None, Some(after)) => Some(Page::AfterSeq(after)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "before_seq",
                "give at most one of before_seq and after_seq",
            )
            .into());
        }
    };
    let listed = call(
        state
            .conversation()
            .list_messages(conv::ListMessagesRequest {
                caller: Some(member.caller()),
                conversation_id: id,
                page,
                limit: query.limit.unwrap_or_default(),
            }),
    )
    .await
    .map_err(not_taking_part_is_not_found)?;
    Ok(Json(MessagePage {
        messages: listed.messages.into_iter().map(Into::into).collect(),
        more: listed.more,
    }))
}

/// The whole conversation, as the CMS's transcript: `text/plain` when the `Accept`
/// header prefers it, else a JSON document. An addition to the contract, for the
/// console; only the member's own conversations.
#[utoipa::path(
    get,
    path = "/v1/me/conversations/{id}/transcript",
    tag = "member",
    params(("id" = String, Path, description = "The conversation")),
    security(("permission_token" = []), ("operator_token" = [])),
    responses(
        (status = 200, description = "The transcript.",
            content(
                (String = "application/json"),
                (String = "text/plain"),
            )),
        (status = 404, description = "The member takes no part in such a conversation (`not_found`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn my_transcript(
    member: SignedInMember,
    State(state): State<AppState>,
    ApiPath(ConversationId { id }): ApiPath<ConversationId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    transcript(&state, member.caller(), id, &headers).await
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
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
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
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "The member takes no part in such a conversation (`not_found`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
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
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
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

/// A message a visitor left while the member was offline ("leave a message").
#[derive(Serialize, ToSchema)]
struct ReceivedOfflineMessage {
    id: String,
    endpoint: String,
    visitor: VisitorView,
    text: String,
    /// Where the visitor asked to be answered, when they gave an address.
    email: Option<String>,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
}

impl From<conv::OfflineMessage> for ReceivedOfflineMessage {
    fn from(m: conv::OfflineMessage) -> Self {
        ReceivedOfflineMessage {
            id: m.id,
            endpoint: m.endpoint,
            visitor: m.visitor.unwrap_or_default().into(),
            text: m.text,
            email: non_empty(m.email),
            sent_at: timestamp(m.sent_at),
        }
    }
}

/// One page of offline messages, newest first.
#[derive(Serialize, ToSchema)]
struct OfflineMessagePage {
    offline_messages: Vec<ReceivedOfflineMessage>,
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
}

/// The messages visitors left for the member while they were offline, newest first.
/// An addition to the contract, for the console.
#[utoipa::path(
    get,
    path = "/v1/me/offline-messages",
    tag = "member",
    params(PageQuery),
    security(("permission_token" = []), ("operator_token" = [])),
    responses((status = 200, description = "One page of the member's offline messages.", body = OfflineMessagePage))
)]
async fn my_offline_messages(
    member: SignedInMember,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<OfflineMessagePage>> {
    let page = call(
        state
            .conversation()
            .list_offline_messages(conv::ListOfflineMessagesRequest {
                app_id: member.app_id,
                member_id: member.member_id,
                cursor: query.cursor.unwrap_or_default(),
                limit: query.limit.unwrap_or_default(),
            }),
    )
    .await?;
    Ok(Json(OfflineMessagePage {
        offline_messages: page.offline_messages.into_iter().map(Into::into).collect(),
        next_cursor: non_empty(page.next_cursor),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_accept_header_picks_the_transcript_format() {
        assert!(prefers_text(&accept("text/plain")));
        assert!(prefers_text(&accept(
            "text/*;q=0.9, application/json;q=0.5"
        )));
        assert!(!prefers_text(&accept("application/json, text/plain")));
        assert!(!prefers_text(&accept("*/*")));
        assert!(!prefers_text(&HeaderMap::new()));
    }
}
