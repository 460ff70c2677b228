//! A member's own conversations (`/v1/me/conversations…`) and the messages visitors
//! left while they were offline (`/v1/me/offline-messages`), with a permission token or
//! an operator access token: listed, their messages paged, transcribed.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use palaver_kit::Error;
use palaver_proto::conversation::v1 as conv;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ConversationId, PageQuery, not_taking_part_is_not_found, transcript};
use crate::clients::call;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, ApiQuery, SignedInMember};
use crate::http::model::{ConversationPage, VisitorView, non_empty, sender_name, timestamp};
use crate::state::AppState;

/// The member's conversation and offline-message routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_conversations))
        .routes(routes!(my_messages))
        .routes(routes!(my_transcript))
        .routes(routes!(my_offline_messages))
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
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
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
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
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
