//! Conversations as a CMS reads them (`cms`: `/v1/cms/conversations…`, with the API
//! secret: every conversation of the app, read-only) and as a member sees their own
//! (`member`: `/v1/me/conversations…` and `/v1/me/offline-messages`, listed and
//! transcribed with a permission token or an operator access token, their messages
//! paged too), closed and their visitors blocked with an operator access token
//! (`moderation`, for the console). The conversation service stores them; the gateway
//! maps its answers and the member's CMS id to Palaver's.
//!
//! A member asking for a conversation of the app they take no part in learns only
//! that there is no such conversation (`not_found`), as another app's caller does.

mod cms;
mod member;
mod moderation;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

use crate::clients::call;
use crate::http::error::ApiResult;
use crate::state::AppState;

/// The conversation routes of the CMS and member APIs.
pub fn routes() -> OpenApiRouter<AppState> {
    cms::routes()
        .merge(member::routes())
        .merge(moderation::routes())
}

/// Where to go on from.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// At most 200; 50 by default.
    pub limit: Option<u32>,
}

/// The `{id}` of a path.
#[derive(Deserialize)]
pub struct ConversationId {
    pub id: String,
}

/// The transcript of conversation `id` as `caller` may read it, in the format the
/// `Accept` header prefers.
pub async fn transcript(
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

/// A conversation of the app the caller takes no part in reads as none at all.
pub fn not_taking_part_is_not_found(error: Error) -> Error {
    if error.code == ErrorCode::PermissionDenied {
        Error::not_found("no such conversation")
    } else {
        error
    }
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
