//! The admin API (`Authorization: Bearer <admin token>`): registering apps, reading and
//! changing their settings and limits, deleting them. The `palaver` CLI wraps it.

use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use http::header::LOCATION;
use palaver_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::http::error::ApiResult;
use crate::http::extract::{Admin, ApiJson, ApiPath};
use crate::http::model::{non_empty, overrides, timestamp};
use crate::state::AppState;

/// The admin API's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app))
        .routes(routes!(get_app, update_app, delete_app))
}

/// What registers an app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApp {
    /// The site's name, shown on the consent page (1–100 characters).
    name: String,
    /// The origins the site's pages are served from (`https://example.org`): the only
    /// ones whose browsers may start visitor sessions.
    origins: Vec<String>,
    /// The site's privacy policy, linked from the consent page; consent cannot be asked
    /// for without one.
    privacy_url: String,
    /// A logo shown on the consent page.
    logo_url: Option<String>,
    /// Where the consent page may send the member back to (exact URLs).
    return_urls: Vec<String>,
    /// Days conversations are kept; 0 or absent keeps them until erased.
    retention_days: Option<u32>,
    /// The app's own abuse limits; the deployment's defaults apply to the rest.
    limits: Option<LimitsView>,
}

/// An app's own abuse limits. When an app is created, a field that is absent, null or 0
/// takes the deployment's default; in a PATCH, absent or null leaves a field as it is and
/// 0 puts it back to the default; in answers, null means the default applies.
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Limits)]
struct LimitsView {
    /// New visitor sessions per minute per client IP.
    sessions_per_ip_per_minute: Option<u32>,
    /// Messages per second per visitor session.
    messages_per_second: Option<u32>,
    /// Messages a visitor session may send at once before the rate applies.
    message_burst: Option<u32>,
    /// Offline messages per hour per client IP.
    offline_messages_per_ip_per_hour: Option<u32>,
    /// Open conversations per visitor.
    open_conversations_per_visitor: Option<u32>,
}

impl LimitsView {
    fn from_pb(limits: pb::Limits) -> Self {
        let own = |v: u32| (v != 0).then_some(v);
        LimitsView {
            sessions_per_ip_per_minute: own(limits.sessions_per_ip_per_minute),
            messages_per_second: own(limits.messages_per_second),
            message_burst: own(limits.message_burst),
            offline_messages_per_ip_per_hour: own(limits.offline_messages_per_ip_per_hour),
            open_conversations_per_visitor: own(limits.open_conversations_per_visitor),
        }
    }

    /// These limits over `current`: each field given replaces the current one.
    fn over(self, current: pb::Limits) -> pb::Limits {
        pb::Limits {
            sessions_per_ip_per_minute: self
                .sessions_per_ip_per_minute
                .unwrap_or(current.sessions_per_ip_per_minute),
            messages_per_second: self
                .messages_per_second
                .unwrap_or(current.messages_per_second),
            message_burst: self.message_burst.unwrap_or(current.message_burst),
            offline_messages_per_ip_per_hour: self
                .offline_messages_per_ip_per_hour
                .unwrap_or(current.offline_messages_per_ip_per_hour),
            open_conversations_per_visitor: self
                .open_conversations_per_visitor
                .unwrap_or(current.open_conversations_per_visitor),
        }
    }
}

/// The limits in force for an app: its own where it has them, else the deployment's.
#[derive(Serialize, ToSchema)]
struct EffectiveLimits {
    sessions_per_ip_per_minute: u32,
    messages_per_second: u32,
    message_burst: u32,
    offline_messages_per_ip_per_hour: u32,
    open_conversations_per_visitor: u32,
}

/// A new app and its secrets. They are shown this once: Palaver keeps only the API
/// secret's hash.
#[derive(Serialize, ToSchema)]
struct CreatedApp {
    /// Public: it goes into pages (`data-app`).
    app_id: String,
    /// The CMS's server-side key (`Authorization: Bearer …` on the CMS API).
    api_secret: String,
    /// The HMAC key the CMS signs visitor identity assertions with.
    identity_key: String,
    /// The identity key's id, for the assertion header's `kid`.
    identity_key_id: String,
}

/// An app's webhook settings (the signing secret only the CMS API shows).
#[derive(Serialize, ToSchema)]
struct AppWebhook {
    url: Option<String>,
    events: Vec<String>,
}

/// An app's settings.
#[derive(Serialize, ToSchema)]
#[schema(as = App)]
struct AppView {
    app_id: String,
    name: String,
    origins: Vec<String>,
    privacy_url: Option<String>,
    logo_url: Option<String>,
    return_urls: Vec<String>,
    /// Days conversations are kept; 0 keeps them until erased.
    retention_days: u32,
    webhook: AppWebhook,
    /// The app's own limits (null: the deployment's default).
    limits: LimitsView,
    /// The limits in force.
    effective_limits: EffectiveLimits,
    /// The identity keys currently accepted (two during a rotation).
    identity_key_ids: Vec<String>,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: Option<String>,
}

impl AppView {
    fn new(app: pb::App, state: &AppState) -> Self {
        let effective = state.limits_for(&overrides(app.limits));
        AppView {
            app_id: app.app_id,
            name: app.name,
            origins: app.origins,
            privacy_url: non_empty(app.privacy_url),
            logo_url: non_empty(app.logo_url),
            return_urls: app.return_urls,
            retention_days: app.retention_days,
            webhook: AppWebhook {
                url: non_empty(app.webhook_url),
                events: app.webhook_events,
            },
            limits: LimitsView::from_pb(app.limits.unwrap_or_default()),
            effective_limits: EffectiveLimits {
                sessions_per_ip_per_minute: effective.sessions_per_ip_per_minute.get(),
                messages_per_second: effective.messages_per_second.get(),
                message_burst: effective.message_burst.get(),
                offline_messages_per_ip_per_hour: effective.offline_messages_per_ip_per_hour.get(),
                open_conversations_per_visitor: effective.open_conversations_per_visitor.get(),
            },
            identity_key_ids: app.identity_key_ids,
            created_at: timestamp(app.created_at),
            updated_at: timestamp(app.updated_at),
        }
    }
}

/// Changes to an app's settings (JSON merge patch): what is absent stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AppPatch {
    name: Option<String>,
    origins: Option<Vec<String>>,
    privacy_url: Option<String>,
    /// The empty string removes the logo.
    logo_url: Option<String>,
    return_urls: Option<Vec<String>>,
    retention_days: Option<u32>,
    /// Merged field by field into the app's limits; 0 puts a field back to the
    /// deployment's default.
    limits: Option<LimitsView>,
}

/// The `{app_id}` of a path.
#[derive(Deserialize)]
struct AppId {
    app_id: String,
}

/// Registers an app.
#[utoipa::path(
    post,
    path = "/v1/admin/apps",
    tag = "admin",
    request_body = NewApp,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The app and its secrets, shown this once.", body = CreatedApp,
            headers(("location" = String, description = "The app's URL in the admin API"))),
    )
)]
async fn create_app(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewApp>,
) -> ApiResult<impl IntoResponse> {
    let created = call(state.identity().create_app(pb::CreateAppRequest {
        name: new.name,
        origins: new.origins,
        privacy_url: new.privacy_url,
        logo_url: new.logo_url.unwrap_or_default(),
        return_urls: new.return_urls,
        retention_days: new.retention_days.unwrap_or_default(),
        limits: new.limits.map(|l| l.over(pb::Limits::default())),
    }))
    .await?;
    let app_id = created.app.map(|app| app.app_id).unwrap_or_default();
    let location = format!("/v1/admin/apps/{app_id}");
    Ok((
        StatusCode::CREATED,
        [(LOCATION, location)],
        axum::Json(CreatedApp {
            app_id,
            api_secret: created.api_secret,
            identity_key: created.identity_key,
            identity_key_id: created.identity_key_id,
        }),
    ))
}

/// Reads an app's settings.
#[utoipa::path(
    get,
    path = "/v1/admin/apps/{app_id}",
    tag = "admin",
    params(("app_id" = String, Path, description = "The app's id")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The app's settings.", body = AppView))
)]
async fn get_app(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(AppId { app_id }): ApiPath<AppId>,
) -> ApiResult<axum::Json<AppView>> {
    let app = call(state.identity().get_app(pb::GetAppRequest { app_id })).await?;
    Ok(axum::Json(AppView::new(app, &state)))
}

/// Changes an app's settings and limits.
#[utoipa::path(
    patch,
    path = "/v1/admin/apps/{app_id}",
    tag = "admin",
    params(("app_id" = String, Path, description = "The app's id")),
    request_body(content(
        (AppPatch = "application/merge-patch+json"),
        (AppPatch = "application/json"),
    )),
    security(("admin_token" = [])),
    responses((status = 200, description = "The app's settings after the change.", body = AppView))
)]
async fn update_app(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(AppId { app_id }): ApiPath<AppId>,
    ApiJson(patch): ApiJson<AppPatch>,
) -> ApiResult<axum::Json<AppView>> {
    let limits = match patch.limits {
        Some(limits) => {
            let current = call(state.identity().get_app(pb::GetAppRequest {
                app_id: app_id.clone(),
            }))
            .await?;
            Some(limits.over(current.limits.unwrap_or_default()))
        }
        None => None,
    };
    let list = |values: Option<Vec<String>>| values.map(|values| pb::StringList { values });
    let app = call(state.identity().update_app(pb::UpdateAppRequest {
        app_id,
        name: patch.name,
        origins: list(patch.origins),
        privacy_url: patch.privacy_url,
        logo_url: patch.logo_url,
        return_urls: list(patch.return_urls),
        retention_days: patch.retention_days,
        limits,
    }))
    .await?;
    Ok(axum::Json(AppView::new(app, &state)))
}

/// Deletes an app with its members, grants and sessions.
#[utoipa::path(
    delete,
    path = "/v1/admin/apps/{app_id}",
    tag = "admin",
    params(("app_id" = String, Path, description = "The app's id")),
    security(("admin_token" = [])),
    responses((status = 204, description = "The app is gone."))
)]
async fn delete_app(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(AppId { app_id }): ApiPath<AppId>,
) -> ApiResult<StatusCode> {
    let deleted = call(state.identity().delete_app(pb::DeleteAppRequest {
        app_id: app_id.clone(),
    }))
    .await;
    state.webhook_cache().forget(&app_id);
    deleted?;
    Ok(StatusCode::NO_CONTENT)
}
