//! The CMS API (`Authorization: Bearer <API secret>`, server to server): members, their
//! one-time console login links, the app's webhook settings and the log of its delivery
//! attempts, and the rotation of its keys. The consent flow and permissions are in
//! [`super::consent`].
//!
//! The API secret is checked by identity on every request; the gateway keeps nothing.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use palaver_kit::Error;
use palaver_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::erasure::erase_member;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, CmsApp};
use crate::http::model::{MemberView, non_empty, timestamp};
use crate::state::AppState;
use crate::webhooks::attempts::WebhookAttempt;

/// The CMS API's routes, but for the consent flow.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_member))
        .routes(routes!(get_member, update_member, delete_member))
        .routes(routes!(create_login_link))
        .routes(routes!(get_webhook, set_webhook))
        .routes(routes!(list_webhook_deliveries))
        .routes(routes!(rotate_api_secret))
        .routes(routes!(rotate_identity_key))
}

/// The `{external_id}` of a path.
#[derive(Deserialize)]
pub struct ExternalId {
    pub external_id: String,
}

/// A new member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewMember {
    /// The CMS's own user id (1–255 bytes); the member's key in this API.
    external_id: String,
    /// 1–64 characters.
    display_name: String,
    email: Option<String>,
}

/// Changes to a member: what is absent stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberPatch {
    display_name: Option<String>,
    /// The empty string removes the address.
    email: Option<String>,
}

/// Creates a member.
#[utoipa::path(
    post,
    path = "/v1/cms/members",
    tag = "cms",
    request_body = NewMember,
    security(("api_secret" = [])),
    responses(
        (status = 201, description = "The new member.", body = MemberView),
        (status = 409, description = "A member with this external_id exists (`conflict`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn create_member(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewMember>,
) -> ApiResult<impl IntoResponse> {
    let member = call(state.identity().create_member(pb::CreateMemberRequest {
        app_id: app.app_id,
        external_id: new.external_id,
        display_name: new.display_name,
        email: new.email.unwrap_or_default(),
    }))
    .await?;
    Ok((StatusCode::CREATED, Json(MemberView::from(member))))
}

/// Reads a member.
#[utoipa::path(
    get,
    path = "/v1/cms/members/{external_id}",
    tag = "cms",
    params(("external_id" = String, Path, description = "The CMS's user id")),
    security(("api_secret" = [])),
    responses((status = 200, description = "The member.", body = MemberView))
)]
async fn get_member(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ExternalId { external_id }): ApiPath<ExternalId>,
) -> ApiResult<Json<MemberView>> {
    let member = call(state.identity().get_member(pb::GetMemberRequest {
        app_id: app.app_id,
        key: Some(pb::get_member_request::Key::ExternalId(external_id)),
    }))
    .await?;
    Ok(Json(member.into()))
}

/// Changes a member's display name or email.
#[utoipa::path(
    patch,
    path = "/v1/cms/members/{external_id}",
    tag = "cms",
    params(("external_id" = String, Path, description = "The CMS's user id")),
    request_body(content(
        (MemberPatch = "application/merge-patch+json"),
        (MemberPatch = "application/json"),
    )),
    security(("api_secret" = [])),
    responses((status = 200, description = "The member after the change.", body = MemberView))
)]
async fn update_member(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ExternalId { external_id }): ApiPath<ExternalId>,
    ApiJson(patch): ApiJson<MemberPatch>,
) -> ApiResult<Json<MemberView>> {
    let member = call(state.identity().update_member(pb::UpdateMemberRequest {
        app_id: app.app_id,
        external_id,
        display_name: patch.display_name,
        email: patch.email,
    }))
    .await?;
    Ok(Json(member.into()))
}

/// Erases a member: their conversations, messages and offline messages, then their
/// grants, chat endpoint, sessions and tokens. A member who had a chat endpoint sends
/// `member.permission_changed` (`revoked`, reason `member_deleted`).
#[utoipa::path(
    delete,
    path = "/v1/cms/members/{external_id}",
    tag = "cms",
    params(("external_id" = String, Path, description = "The CMS's user id")),
    security(("api_secret" = [])),
    responses((status = 204, description = "The member is erased."))
)]
async fn delete_member(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ExternalId { external_id }): ApiPath<ExternalId>,
) -> ApiResult<StatusCode> {
    let member = erase_member(&state, &app.app_id, &external_id).await?;
    if !member.endpoint.is_empty() {
        let permission = pb::Permission {
            status: pb::PermissionStatus::Revoked.into(),
            expires_at: None,
            endpoint: member.endpoint.clone(),
        };
        state
            .publisher()
            .permission_changed(&member, &permission, "member_deleted")
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A one-time link that signs the member in to the console.
#[derive(Serialize, ToSchema)]
struct LoginLink {
    /// `<public URL>/console/login?token=…`; one use.
    url: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Makes a one-time console login link for a member (valid 10 minutes).
#[utoipa::path(
    post,
    path = "/v1/cms/members/{external_id}/login-links",
    tag = "cms",
    params(("external_id" = String, Path, description = "The CMS's user id")),
    security(("api_secret" = [])),
    responses((status = 201, description = "The link.", body = LoginLink))
)]
async fn create_login_link(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ExternalId { external_id }): ApiPath<ExternalId>,
) -> ApiResult<impl IntoResponse> {
    let link = call(
        state
            .identity()
            .create_login_link(pb::CreateLoginLinkRequest {
                app_id: app.app_id,
                external_id,
            }),
    )
    .await?;
    let url = state.public_link("/console/login", &[("token", &link.login_token)]);
    Ok((
        StatusCode::CREATED,
        Json(LoginLink {
            url,
            expires_at: timestamp(link.expires_at),
        }),
    ))
}

/// Where to deliver webhook events, and which.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WebhookSettings {
    /// The endpoint events are POSTed to; the empty string removes the webhook.
    url: String,
    /// Any of `conversation.started`, `message.created`, `message.offline`,
    /// `conversation.closed`, `member.permission_changed`.
    events: Vec<String>,
}

/// The app's webhook.
#[derive(Serialize, ToSchema)]
struct Webhook {
    url: Option<String>,
    events: Vec<String>,
    /// The signing secret (`whsec_…`, as in Standard Webhooks); made once, kept across
    /// changes of URL and events.
    secret: Option<String>,
}

impl From<pb::Webhook> for Webhook {
    fn from(webhook: pb::Webhook) -> Self {
        Webhook {
            url: non_empty(webhook.url),
            events: webhook.events,
            secret: non_empty(webhook.secret),
        }
    }
}

/// Sets (or with an empty URL removes) the app's webhook.
#[utoipa::path(
    put,
    path = "/v1/cms/webhook",
    tag = "cms",
    request_body = WebhookSettings,
    security(("api_secret" = [])),
    responses((status = 200, description = "The webhook and its signing secret.", body = Webhook))
)]
async fn set_webhook(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiJson(settings): ApiJson<WebhookSettings>,
) -> ApiResult<Json<Webhook>> {
    let webhook = call(state.identity().set_webhook(pb::SetWebhookRequest {
        app_id: app.app_id.clone(),
        url: settings.url,
        events: settings.events,
    }))
    .await;
    // Even after a failed call: the webhook may have changed all the same.
    state.webhook_cache().forget(&app.app_id);
    Ok(Json(webhook?.into()))
}

/// Reads the app's webhook.
#[utoipa::path(
    get,
    path = "/v1/cms/webhook",
    tag = "cms",
    security(("api_secret" = [])),
    responses((status = 200, description = "The webhook and its signing secret.", body = Webhook))
)]
async fn get_webhook(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
) -> ApiResult<Json<Webhook>> {
    let webhook = call(
        state
            .identity()
            .get_webhook(pb::GetWebhookRequest { app_id: app.app_id }),
    )
    .await?;
    Ok(Json(webhook.into()))
}

/// Where to go on in the delivery log.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// 1–200; 50 by default.
    limit: Option<u32>,
}

/// One page of webhook attempts, newest first.
#[derive(Serialize, ToSchema)]
struct WebhookDeliveries {
    attempts: Vec<WebhookAttempt>,
    /// The `cursor` of the next, older page; null on the last.
    next_cursor: Option<String>,
}

/// Lists the app's webhook attempts, newest first: every attempt at every event, with
/// the receiver's status or the error, and whether the event was delivered, will be
/// tried again (when) or was given up. Attempts are kept 30 days.
#[utoipa::path(
    get,
    path = "/v1/cms/webhook/deliveries",
    tag = "cms",
    params(DeliveriesQuery),
    security(("api_secret" = [])),
    responses(
        (status = 200, description = "One page of attempts.", body = WebhookDeliveries),
        (status = 400, description = "A cursor this list did not make, or a limit out of range (`invalid_argument`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn list_webhook_deliveries(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<WebhookDeliveries>> {
    let before = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(
            cursor
                .parse::<u64>()
                .ok()
                .filter(|position| *position > 0)
                .ok_or_else(|| Error::invalid("cursor", "not a cursor this list made"))?,
        ),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::invalid("limit", "must be from 1 to 200").into());
    }
    let page = state
        .webhook_attempts()
        .page(&app.app_id, before, limit as usize)
        .await
        .map_err(|e| Error::internal(&e))?;
    let attempts = page
        .records
        .iter()
        .map(|record| serde_json::from_slice(record))
        .collect::<Result<Vec<WebhookAttempt>, _>>()
        .map_err(|e| Error::internal(&e))?;
    Ok(Json(WebhookDeliveries {
        attempts,
        next_cursor: page.next.map(|position| position.to_string()),
    }))
}

/// A new API secret.
#[derive(Serialize, ToSchema)]
struct RotatedApiSecret {
    /// Shown this once; the previous secret stopped working.
    api_secret: String,
}

/// Replaces the API secret; the one that made this call stops working at once.
#[utoipa::path(
    post,
    path = "/v1/cms/keys/api-secret:rotate",
    tag = "cms",
    security(("api_secret" = [])),
    responses((status = 200, description = "The new API secret.", body = RotatedApiSecret))
)]
async fn rotate_api_secret(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
) -> ApiResult<Json<RotatedApiSecret>> {
    let rotated = call(
        state
            .identity()
            .rotate_api_secret(pb::RotateApiSecretRequest { app_id: app.app_id }),
    )
    .await?;
    Ok(Json(RotatedApiSecret {
        api_secret: rotated.api_secret,
    }))
}

/// A new identity key.
#[derive(Serialize, ToSchema)]
struct RotatedIdentityKey {
    /// Shown this once.
    identity_key: String,
    identity_key_id: String,
    /// The key that stays accepted beside the new one until the next rotation, so
    /// assertions signed a moment ago still verify.
    previous_identity_key_id: Option<String>,
}

/// Starts signing visitor identity assertions with a new key.
#[utoipa::path(
    post,
    path = "/v1/cms/keys/identity-key:rotate",
    tag = "cms",
    security(("api_secret" = [])),
    responses((status = 200, description = "The new identity key.", body = RotatedIdentityKey))
)]
async fn rotate_identity_key(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
) -> ApiResult<Json<RotatedIdentityKey>> {
    let rotated = call(
        state
            .identity()
            .rotate_identity_key(pb::RotateIdentityKeyRequest { app_id: app.app_id }),
    )
    .await?;
    Ok(Json(RotatedIdentityKey {
        identity_key: rotated.identity_key,
        identity_key_id: rotated.identity_key_id,
        previous_identity_key_id: non_empty(rotated.previous_identity_key_id),
    }))
}
