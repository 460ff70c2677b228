//! The CMS's read-only view of the app's conversations (`/v1/cms/conversations…`, with
//! the API secret): a member's conversations, one conversation, its transcript.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use palaver_proto::conversation::v1 as conv;
use palaver_proto::identity::v1 as pb;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ConversationId, transcript};
use crate::clients::call;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, ApiQuery, CmsApp};
use crate::http::model::{ConversationPage, ConversationView};
use crate::state::AppState;

/// The CMS's conversation routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(get_transcript))
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
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
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
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
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
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
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
