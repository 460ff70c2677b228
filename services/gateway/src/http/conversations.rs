//! Conversations as a CMS reads them (`/v1/cms/conversations…`, with the API secret:
//! every conversation of the app, read-only) and as a member lists their own
//! (`GET /v1/me/conversations`, with a permission token). The conversation service
//! stores them; the gateway maps its answers and the member's CMS id to Palaver's.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, ApiQuery, CmsApp, PermissionHolder};
use crate::http::model::{non_empty, timestamp};
use crate::identity::call;
use crate::state::AppState;

/// The conversation routes of the CMS and member APIs.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(get_transcript))
        .routes(routes!(my_conversations))
}

/// The visitor of a conversation.
#[derive(Serialize, ToSchema)]
pub struct VisitorView {
    pub id: String,
    pub display_name: String,
    /// True when the CMS vouched for the visitor.
    pub verified: bool,
    /// The CMS's user id of a verified visitor.
    pub external_id: Option<String>,
    /// Set when a verified visitor is also a member of the app.
    pub member_id: Option<String>,
}

impl From<conv::Participant> for VisitorView {
    fn from(p: conv::Participant) -> Self {
        VisitorView {
            id: p.visitor_id,
            display_name: p.display_name,
            verified: p.verified,
            external_id: non_empty(p.external_id),
            member_id: non_empty(p.member_id),
        }
    }
}

/// A conversation between a visitor and a member.
#[derive(Serialize, ToSchema)]
struct ConversationView {
    id: String,
    endpoint: String,
    /// Palaver's id of the member.
    member_id: String,
    /// The member's display name when the conversation started.
    member_display_name: String,
    visitor: VisitorView,
    /// `open` or `closed`.
    state: String,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    closed_at: Option<String>,
    /// The sequence number of the newest message (0 when there is none).
    last_seq: u64,
    /// For a member listing their own: messages after their read mark.
    unread: u64,
    member_read_seq: u64,
    visitor_read_seq: u64,
}

/// The wire name of a conversation's state.
pub fn state_name(state: conv::ConversationState) -> &'static str {
    match state {
        conv::ConversationState::Closed => "closed",
        conv::ConversationState::Open | conv::ConversationState::Unspecified => "open",
    }
}

impl From<conv::Conversation> for ConversationView {
    fn from(c: conv::Conversation) -> Self {
        ConversationView {
            state: state_name(c.state()).to_owned(),
            id: c.id,
            endpoint: c.endpoint,
            member_id: c.member_id,
            member_display_name: c.member_display_name,
            visitor: c.visitor.unwrap_or_default().into(),
            started_at: timestamp(c.started_at),
            closed_at: timestamp(c.closed_at),
            last_seq: c.last_seq,
            unread: c.unread,
            member_read_seq: c.member_read_seq,
            visitor_read_seq: c.visitor_read_seq,
        }
    }
}

/// One page of conversations, newest first.
#[derive(Serialize, ToSchema)]
struct ConversationPage {
    conversations: Vec<ConversationView>,
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
}

impl From<conv::ListConversationsResponse> for ConversationPage {
    fn from(page: conv::ListConversationsResponse) -> Self {
        ConversationPage {
            conversations: page.conversations.into_iter().map(Into::into).collect(),
            next_cursor: non_empty(page.next_cursor),
        }
    }
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
    let transcript = call(
        state
            .conversation()
            .get_transcript(conv::GetTranscriptRequest {
                caller: Some(app_caller(&app.app_id)),
                conversation_id: id,
            }),
    )
    .await?;
    let (content_type, body) = if prefers_text(&headers) {
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

/// The member's own conversations, newest first, with their unread counts.
#[utoipa::path(
    get,
    path = "/v1/me/conversations",
    tag = "member",
    params(PageQuery),
    security(("permission_token" = [])),
    responses((status = 200, description = "One page of the member's conversations.", body = ConversationPage))
)]
async fn my_conversations(
    PermissionHolder(info): PermissionHolder,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<ConversationPage>> {
    let member = info.member.unwrap_or_default();
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
