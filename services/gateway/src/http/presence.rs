//! A member's presence as web pages show it: `GET /v1/endpoints/{endpoint}/presence`
//! (JSON, with the status text in the visitor's language) and `…/presence.svg` (the
//! 16×16 badge), and "leave a message" for when the member is offline
//! (`POST /v1/endpoints/{endpoint}/offline-messages`).
//!
//! Presence answers are cacheable for a few seconds and carry an ETag (a digest of the
//! body), so a page polling with `If-None-Match` gets `304 Not Modified` until the
//! status changes. Images and simple GETs come from any page, so presence is answered
//! to every origin, but only the endpoint's app's origins may read it from script
//! (`Access-Control-Allow-Origin` only for them). An unknown endpoint, or one whose
//! member holds no valid permission token, is 404.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};
use palaver_kit::tokens::TokenKind;
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::identity::v1 as pb;
use palaver_proto::presence::v1 as presence;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::domain::origins;
use crate::domain::status::StatusText;
use crate::http::cors::{self, check_origin, request_origin};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, visitor_caller};
use crate::http::model::{overrides, status_of, timestamp};
use crate::state::AppState;

/// How long browsers and caches may reuse a presence answer.
const CACHE_CONTROL_VALUE: &str = "public, max-age=5";

/// The badge's size in pixels.
const BADGE_SIZE: u32 = 16;

/// The presence and offline-message routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(presence_json))
        .routes(routes!(presence_svg))
        .routes(routes!(leave_offline_message))
}

#[derive(Deserialize)]
struct EndpointPath {
    endpoint: String,
}

/// The language of `status_text`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PresenceQuery {
    /// `en` (the default), `de`, `fr`, `es` or `ru`; other languages read English.
    lang: Option<String>,
}

/// The badge image.
#[derive(Serialize, ToSchema)]
struct Icon {
    /// The SVG badge of this status (`…/presence.svg`).
    url: String,
    width: u32,
    height: u32,
}

/// A member's presence as visitors see it.
#[derive(Serialize, ToSchema)]
struct PresenceView {
    endpoint: String,
    /// `online`, `away`, `idle`, `be_right_back`, `busy`, `out_to_lunch`,
    /// `on_the_phone` or `offline` (visitors never see `invisible`).
    status: String,
    /// The status in the requested language.
    status_text: String,
    /// The member's display name.
    display_name: String,
    icon: Icon,
    /// False when offline: offer "leave a message" instead of a chat.
    accepts_chats: bool,
    /// When the status took its current value; null for a member never seen.
    #[schema(format = DateTime)]
    updated_at: Option<String>,
}

/// An open endpoint's app and its member's presence; 404 otherwise.
async fn lookup(
    state: &AppState,
    endpoint: &str,
) -> ApiResult<(pb::App, presence::MemberPresence)> {
    let resolved = call(
        state
            .identity()
            .resolve_endpoint(pb::ResolveEndpointRequest {
                endpoint: endpoint.to_owned(),
            }),
    )
    .await?;
    if !resolved.open {
        return Err(Error::new(
            ErrorCode::EndpointClosed,
            "the chat endpoint is not open (its member holds no valid permission token)",
        )
        .into());
    }
    let app = call(state.identity().get_app(pb::GetAppRequest {
        app_id: resolved.app_id.clone(),
    }))
    .await?;
    let member = call(state.presence().get(presence::GetRequest {
        app_id: resolved.app_id,
        target: Some(presence::Target {
            target: Some(presence::target::Target::Endpoint(endpoint.to_owned())),
        }),
    }))
    .await?;
    Ok((app, member))
}

/// A cacheable answer: `body` with an ETag, or 304 when the client has it; readable
/// from script by the app's origins only.
fn cacheable(
    headers: &HeaderMap,
    app: &pb::App,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response {
    let digest = Sha256::digest(&body);
    let etag = format!(
        "\"{}\"",
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(body));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(ETAG, etag);
    }
    out.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE));
    readable_by_app(headers, app, response)
}

/// `response` readable by the request's origin when it is one of the app's.
fn readable_by_app(headers: &HeaderMap, app: &pb::App, response: Response) -> Response {
    match request_origin(headers).and_then(origins::canonical) {
        Some(origin) if origins::is_allowed(&origin, &app.origins) => {
            cors::allow(&origin, response)
        }
        _ => response,
    }
}

/// A member's presence, by chat endpoint.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{endpoint}/presence",
    tag = "visitor",
    params(("endpoint" = String, Path, description = "The chat endpoint (`ce_…`)"), PresenceQuery),
    responses(
        (status = 200, description = "The presence; cacheable for a few seconds, with an ETag.", body = PresenceView,
            headers(("etag" = String), ("cache-control" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag."),
        (status = 404, description = "No such chat endpoint (`not_found`), or it is closed (`endpoint_closed`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn presence_json(
    State(state): State<AppState>,
    ApiPath(EndpointPath { endpoint }): ApiPath<EndpointPath>,
    ApiQuery(query): ApiQuery<PresenceQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (app, member) = lookup(&state, &endpoint).await?;
    let status = status_of(member.status()).visible();
    let lang = query.lang.unwrap_or_default();
    let view = PresenceView {
        icon: Icon {
            url: state.public_link(&format!("/v1/endpoints/{endpoint}/presence.svg"), &[]),
            width: BADGE_SIZE,
            height: BADGE_SIZE,
        },
        endpoint,
        status: status.as_str().to_owned(),
        status_text: status.text(&lang).to_owned(),
        display_name: member.display_name,
        accepts_chats: status.accepts_chats(),
        updated_at: timestamp(member.updated_at),
    };
    let body = serde_json::to_vec(&view).map_err(|e| ApiError::from(Error::internal(&e)))?;
    Ok(cacheable(&headers, &app, "application/json", body))
}

/// A member's presence badge (16×16 SVG), by chat endpoint.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{endpoint}/presence.svg",
    tag = "visitor",
    params(("endpoint" = String, Path, description = "The chat endpoint (`ce_…`)")),
    responses(
        (status = 200, description = "The badge; cacheable for a few seconds, with an ETag.",
            body = String, content_type = "image/svg+xml",
            headers(("etag" = String), ("cache-control" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag."),
        (status = 404, description = "No such chat endpoint (`not_found`), or it is closed (`endpoint_closed`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn presence_svg(
    State(state): State<AppState>,
    ApiPath(EndpointPath { endpoint }): ApiPath<EndpointPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (app, member) = lookup(&state, &endpoint).await?;
    let svg = status_of(member.status()).badge_svg();
    Ok(cacheable(&headers, &app, "image/svg+xml", svg.into_bytes()))
}

/// A message for a member who is offline.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOfflineMessage {
    /// The visitor's session token (`POST /v1/visitor-sessions`).
    session_token: String,
    /// 1–4,000 characters.
    text: String,
    /// Where the member may answer.
    email: Option<String>,
}

/// The stored offline message.
#[derive(Serialize, ToSchema)]
struct OfflineMessageView {
    id: String,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
}

/// Leaves a message for the member behind a chat endpoint ("leave a message").
#[utoipa::path(
    post,
    path = "/v1/endpoints/{endpoint}/offline-messages",
    tag = "visitor",
    params(("endpoint" = String, Path, description = "The chat endpoint (`ce_…`)")),
    request_body = NewOfflineMessage,
    responses(
        (status = 202, description = "The message is stored for the member.", body = OfflineMessageView),
        (status = 401, description = "The session token is not a valid visitor token of this app (`unauthenticated`, `token_expired`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "The request's Origin is not one of the app's (`origin_not_allowed`), or the visitor is blocked (`visitor_blocked`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "No such chat endpoint (`not_found`), or it is closed (`endpoint_closed`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "Too many offline messages from this address (`rate_limited`); see `Retry-After`.",
            body = super::error::ProblemSchema, content_type = "application/problem+json",
            headers(("retry-after" = u64, description = "Seconds to wait"))),
    )
)]
async fn leave_offline_message(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(EndpointPath { endpoint }): ApiPath<EndpointPath>,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewOfflineMessage>,
) -> ApiResult<Response> {
    let resolved = call(
        state
            .identity()
            .resolve_endpoint(pb::ResolveEndpointRequest {
                endpoint: endpoint.clone(),
            }),
    )
    .await?;
    let app = call(state.identity().get_app(pb::GetAppRequest {
        app_id: resolved.app_id.clone(),
    }))
    .await?;
    let origin = check_origin(
        state.public_origin(),
        request_origin(&headers),
        &app.origins,
    )?;
    let answer = async {
        let claims = state.verifier().verify(&new.session_token).await?;
        if claims.kind != TokenKind::Visitor || claims.app != app.app_id {
            return Err(ApiError::from(Error::new(
                ErrorCode::Unauthenticated,
                "session_token is not a visitor session of this chat endpoint's app",
            )));
        }
        let rate = state
            .limits_for(&overrides(app.limits))
            .offline_message_rate();
        if let Err(limited) = state
            .offline_messages()
            .check(rate, &(app.app_id.clone(), ip))
        {
            metrics::counter!("palaver_gateway_rate_limited_total", "limit" => "offline_messages")
                .increment(1);
            return Err(ApiError::from(limited));
        }
        let stored = call(state.conversation().leave_offline_message(
            conv::LeaveOfflineMessageRequest {
                caller: Some(visitor_caller(&claims)),
                endpoint,
                text: new.text,
                email: new.email.unwrap_or_default(),
            },
        ))
        .await?;
        Ok((
            StatusCode::ACCEPTED,
            Json(OfflineMessageView {
                id: stored.id,
                sent_at: timestamp(stored.sent_at),
            }),
        ))
    }
    .await;
    Ok(cors::allow(&origin, answer.into_response()))
}
