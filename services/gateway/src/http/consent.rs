//! The consent flow, from the CMS's side (`Authorization: Bearer <API secret>`): asking a
//! member for consent, the OAuth 2.0 token endpoint that turns the member's approval
//! into a permission token (RFC 6749 authorization code with PKCE, RFC 7636; and
//! refresh), and the member's permission status, which the profile checkbox reads.
//!
//! Each permission change made here (a code exchanged, a token refreshed, a permission
//! revoked) is published through `publish` once identity confirmed it, for the
//! `member.permission_changed` webhook.
//!
//! The token endpoint follows OAuth rather than the rest of the API: it reads form or
//! JSON bodies, answers errors as RFC 6749 §5.2 `{"error","error_description"}`, and also
//! takes the API secret as HTTP Basic client credentials (`app_id:api_secret`), so
//! ordinary OAuth client libraries work against it.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::http::cms::ExternalId;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, CmsApp, is_json, media_type, parse_json, read_body};
use crate::http::model::{Permission, timestamp};
use crate::publish;
use crate::state::AppState;

/// The consent flow's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_consent_request))
        .routes(routes!(token))
        .routes(routes!(get_permission, revoke_permission))
}

/// What the member is asked to approve, and where they go afterwards.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewConsentRequest {
    /// One of the app's return URLs; the member comes back to it with `code` and
    /// `state`, or `error=access_denied` and `state`.
    return_url: String,
    /// An opaque value the CMS checks when the member comes back (1–512 bytes).
    state: String,
    /// The base64url SHA-256 of the code verifier (43 characters).
    code_challenge: String,
    /// Only `S256`.
    code_challenge_method: String,
}

/// Where to send the member.
#[derive(Serialize, ToSchema)]
struct ConsentRequest {
    /// `<public URL>/consent?request=…`: the consent page, with Approve and Deny.
    consent_url: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Asks a member for consent: the CMS sends the member's browser to `consent_url`.
#[utoipa::path(
    post,
    path = "/v1/cms/members/{external_id}/consent-requests",
    tag = "consent",
    params(("external_id" = String, Path, description = "The CMS's user id")),
    request_body = NewConsentRequest,
    security(("api_secret" = [])),
    responses(
        (status = 201, description = "The consent page to send the member to (valid 10 minutes).", body = ConsentRequest),
        (status = 409, description = "The app has no privacy-policy URL (`consent_unavailable`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn create_consent_request(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ExternalId { external_id }): ApiPath<ExternalId>,
    ApiJson(new): ApiJson<NewConsentRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = call(
        state
            .identity()
            .create_consent_request(pb::CreateConsentRequestRequest {
                app_id: app.app_id,
                external_id,
                return_url: new.return_url,
                state: new.state,
                code_challenge: new.code_challenge,
                code_challenge_method: new.code_challenge_method,
            }),
    )
    .await?;
    let consent_url = state.public_link("/consent", &[("request", &request.request)]);
    Ok((
        StatusCode::CREATED,
        Json(ConsentRequest {
            consent_url,
            expires_at: timestamp(request.expires_at),
        }),
    ))
}

/// A token request (RFC 6749 §4.1.3 and §6), as a form or as JSON. Unknown parameters
/// are ignored, as RFC 6749 asks.
#[derive(Deserialize, ToSchema)]
struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    grant_type: String,
    /// The code the member's approval sent to the return URL (`authorization_code`).
    code: Option<String>,
    /// The PKCE verifier of the consent request's challenge (`authorization_code`).
    code_verifier: Option<String>,
    /// When given, it must be the consent request's return URL (`authorization_code`).
    redirect_uri: Option<String>,
    /// The refresh token (`refresh_token`).
    refresh_token: Option<String>,
}

/// A permission token (RFC 6749 §5.1, with the member's chat endpoint).
#[derive(Serialize, ToSchema)]
struct TokenResponse {
    /// The permission token: the member API's bearer token.
    access_token: String,
    /// `Bearer`.
    token_type: String,
    /// Seconds until the permission token expires.
    expires_in: u64,
    /// Exchanged for a new pair by `grant_type=refresh_token`; each works once.
    refresh_token: String,
    /// `presence chat`.
    scope: String,
    /// The member's chat endpoint, what pages embed (`data-endpoint`).
    endpoint: String,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Serialize, ToSchema)]
struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`,
    /// `server_error` or `temporarily_unavailable`.
    error: &'static str,
    error_description: String,
    #[serde(skip)]
    status: StatusCode,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            error_description: description.into(),
            status,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
}

impl From<ApiError> for OAuthError {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        if status.is_server_error() {
            // Logged and made opaque the same way as any other server error.
            let detail = error.problem().detail;
            let kind = if status == StatusCode::SERVICE_UNAVAILABLE {
                "temporarily_unavailable"
            } else {
                "server_error"
            };
            return OAuthError::new(status, kind, detail);
        }
        let description = error.detail().to_owned();
        match ErrorCode::from_name(error.code()) {
            Some(ErrorCode::Unauthenticated | ErrorCode::TokenExpired) => {
                OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
            }
            Some(ErrorCode::InvalidGrant | ErrorCode::NotFound | ErrorCode::FailedPrecondition) => {
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
            }
            _ => OAuthError::invalid_request(description),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (self.status, no_store(), Json(&self)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"palaver\""),
            );
        }
        response
    }
}

/// RFC 6749 §5.1: token responses are never cached.
fn no_store() -> [(http::HeaderName, HeaderValue); 2] {
    [
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// The API secret of a token request, and the `client_id` that came with it in HTTP
/// Basic credentials.
fn client_credentials(headers: &HeaderMap) -> Result<(String, Option<String>), OAuthError> {
    let invalid = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "send the API secret as Authorization: Bearer <API secret>, or Basic with the app id and API secret",
        )
    };
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid)?;
    let (scheme, credentials) = value.trim().split_once(' ').ok_or_else(invalid)?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty() {
        return Ok((credentials.to_owned(), None));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid());
    }
    let decoded = STANDARD.decode(credentials).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (client_id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    if secret.is_empty() {
        return Err(invalid());
    }
    Ok((secret.to_owned(), Some(client_id.to_owned())))
}

/// Exchanges an authorization code (with its PKCE verifier) or a refresh token for a
/// permission token.
///
/// This endpoint follows OAuth 2.0 (RFC 6749) rather than the rest of this API: the body
/// is `application/x-www-form-urlencoded` or JSON, the API secret may also come as HTTP
/// Basic credentials (`app_id:api_secret`), and errors are RFC 6749 §5.2 JSON
/// (`{"error":"invalid_grant","error_description":"…"}`), status 400 (401 for
/// `invalid_client`). A code works once: presenting it again revokes the permission it
/// gave; likewise a refresh token.
#[utoipa::path(
    post,
    path = "/v1/cms/oauth/token",
    tag = "consent",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    security(("api_secret" = []), ("client_basic" = [])),
    responses(
        (status = 200, description = "The permission token.", body = TokenResponse,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "`invalid_request`, `invalid_grant` or `unsupported_grant_type`.", body = OAuthError),
        (status = 401, description = "`invalid_client`: a missing or wrong API secret.", body = OAuthError),
        (status = "5XX", description = "`server_error` or `temporarily_unavailable`.", body = OAuthError),
    )
)]
async fn token(State(state): State<AppState>, request: Request) -> Result<Response, OAuthError> {
    let (api_secret, client_id) = client_credentials(request.headers())?;
    let app = call(
        state
            .identity()
            .authenticate_app(pb::AuthenticateAppRequest { api_secret }),
    )
    .await
    .map_err(ApiError::from)?;
    if client_id.is_some_and(|id| id != app.app_id) {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client_id is not the API secret's app",
        ));
    }
    let media_type = media_type(request.headers());
    let body = read_body(request, &state).await?;
    let form: TokenRequest = match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(&body)
            .map_err(|e| OAuthError::invalid_request(format!("malformed form: {e}")))?,
        Some(m) if is_json(m) => parse_json(&body)?,
        _ => {
            return Err(OAuthError::invalid_request(
                "send the body as application/x-www-form-urlencoded or application/json",
            ));
        }
    };
    let required = |value: Option<String>, name: &str| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    };
    let issued = match form.grant_type.as_str() {
        "authorization_code" => {
            call(state.identity().exchange_authorization_code(
                pb::ExchangeAuthorizationCodeRequest {
                    app_id: app.app_id.clone(),
                    code: required(form.code, "code")?,
                    code_verifier: required(form.code_verifier, "code_verifier")?,
                    redirect_uri: form.redirect_uri.unwrap_or_default(),
                },
            ))
            .await
        }
        "refresh_token" => {
            call(
                state
                    .identity()
                    .refresh_permission_token(pb::RefreshPermissionTokenRequest {
                        app_id: app.app_id.clone(),
                        refresh_token: required(form.refresh_token, "refresh_token")?,
                    }),
            )
            .await
        }
        other => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!(
                    "grant_type {other:?} is not supported; use authorization_code or refresh_token"
                ),
            ));
        }
    }
    .map_err(ApiError::from)?;
    let reason = if form.grant_type == "refresh_token" {
        "refreshed"
    } else {
        "granted"
    };
    publish_current_permission(&state, &app.app_id, &issued.external_id, reason).await;
    let token = TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".to_owned(),
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token,
        scope: issued.scope,
        endpoint: issued.endpoint,
    };
    Ok((StatusCode::OK, no_store(), Json(token)).into_response())
}

/// Reads a member's permission status.
#[utoipa::path(
    get,
    path = "/v1/cms/members/{external_id}/permission",
    tag = "consent",
    params(("external_id" = String, Path, description = "The CMS's user id")),
    security(("api_secret" = [])),
    responses((status = 200, description = "The member's permission.", body = Permission))
)]
async fn get_permission(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ExternalId { external_id }): ApiPath<ExternalId>,
) -> ApiResult<Json<Permission>> {
    let permission = call(state.identity().get_permission(pb::GetPermissionRequest {
        app_id: app.app_id,
        external_id,
    }))
    .await?;
    Ok(Json(permission.try_into()?))
}

/// Revokes a member's permission: their chat endpoint closes at once.
#[utoipa::path(
    delete,
    path = "/v1/cms/members/{external_id}/permission",
    tag = "consent",
    params(("external_id" = String, Path, description = "The CMS's user id")),
    security(("api_secret" = [])),
    responses((status = 200, description = "The member's permission, now revoked.", body = Permission))
)]
async fn revoke_permission(
    CmsApp(app): CmsApp,
    State(state): State<AppState>,
    ApiPath(ExternalId { external_id }): ApiPath<ExternalId>,
) -> ApiResult<Json<Permission>> {
    let permission = call(
        state
            .identity()
            .revoke_permission(pb::RevokePermissionRequest {
                app_id: app.app_id.clone(),
                external_id: external_id.clone(),
            }),
    )
    .await?;
    // A member who never held a permission had nothing revoked: nothing changed.
    if permission.status != i32::from(pb::PermissionStatus::None) {
        match member(&state, &app.app_id, &external_id).await {
            Ok(member) => {
                state
                    .publisher()
                    .permission_changed(&member, &permission, "revoked")
                    .await;
            }
            Err(error) => publish::unpublished(&app.app_id, &external_id, &error),
        }
    }
    Ok(Json(permission.try_into()?))
}

async fn member(state: &AppState, app_id: &str, external_id: &str) -> Result<pb::Member, Error> {
    call(state.identity().get_member(pb::GetMemberRequest {
        app_id: app_id.to_owned(),
        key: Some(pb::get_member_request::Key::ExternalId(
            external_id.to_owned(),
        )),
    }))
    .await
}

/// Publishes the member's permission as identity has it now, after a change.
async fn publish_current_permission(
    state: &AppState,
    app_id: &str,
    external_id: &str,
    reason: &str,
) {
    let member = member(state, app_id, external_id).await;
    let permission = call(state.identity().get_permission(pb::GetPermissionRequest {
        app_id: app_id.to_owned(),
        external_id: external_id.to_owned(),
    }))
    .await;
    match (member, permission) {
        (Ok(member), Ok(permission)) => {
            state
                .publisher()
                .permission_changed(&member, &permission, reason)
                .await;
        }
        (Err(error), _) | (_, Err(error)) => publish::unpublished(app_id, external_id, &error),
    }
}
