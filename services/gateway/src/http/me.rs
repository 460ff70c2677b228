//! The member's own API: `GET /v1/me` with a permission token (what a CMS, or anything
//! the member gave their token to, learns about the grant), and the personal access
//! tokens of a member signed in to an operator client (the `palaver` CLI signs in with
//! one), with an operator access token.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use palaver_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiPath, Operator, PermissionHolder};
use crate::http::model::{MemberView, timestamp};
use crate::state::AppState;

/// The member API's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The member a permission token belongs to, and the grant.
#[derive(Serialize, ToSchema)]
struct Me {
    member: Option<MemberView>,
    /// The member's chat endpoint.
    endpoint: String,
    /// `presence chat`.
    scope: String,
    /// When the permission token expires (already 300 s early).
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Who the permission token belongs to.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "member",
    security(("permission_token" = [])),
    responses((status = 200, description = "The member and their grant.", body = Me))
)]
async fn me(PermissionHolder(info): PermissionHolder) -> Json<Me> {
    Json(Me {
        member: info.member.map(MemberView::from),
        endpoint: info.endpoint,
        scope: info.scope,
        expires_at: timestamp(info.expires_at),
    })
}

/// A personal access token, without its secret.
#[derive(Serialize, ToSchema)]
struct PersonalAccessToken {
    id: String,
    name: String,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
}

impl From<pb::PersonalAccessToken> for PersonalAccessToken {
    fn from(pat: pb::PersonalAccessToken) -> Self {
        PersonalAccessToken {
            id: pat.id,
            name: pat.name,
            created_at: timestamp(pat.created_at),
            last_used_at: timestamp(pat.last_used_at),
        }
    }
}

/// The member's personal access tokens.
#[derive(Serialize, ToSchema)]
struct PersonalAccessTokens {
    tokens: Vec<PersonalAccessToken>,
}

/// Lists the signed-in member's personal access tokens (not revoked ones).
#[utoipa::path(
    get,
    path = "/v1/me/tokens",
    tag = "operator",
    security(("operator_token" = [])),
    responses((status = 200, description = "The tokens.", body = PersonalAccessTokens))
)]
async fn list_tokens(
    Operator(claims): Operator,
    State(state): State<AppState>,
) -> ApiResult<Json<PersonalAccessTokens>> {
    let list = call(state.identity().list_personal_access_tokens(
        pb::ListPersonalAccessTokensRequest {
            app_id: claims.app,
            member_id: claims.sub,
        },
    ))
    .await?;
    Ok(Json(PersonalAccessTokens {
        tokens: list.tokens.into_iter().map(Into::into).collect(),
    }))
}

/// A new personal access token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// What the token is for ("laptop CLI"), 1–64 characters.
    name: String,
}

/// A new personal access token and its secret.
#[derive(Serialize, ToSchema)]
struct CreatedToken {
    /// Shown this once; exchanged for an operator session with
    /// `POST /v1/operator-sessions {"personal_access_token"}`.
    token: String,
    personal_access_token: Option<PersonalAccessToken>,
}

/// Makes a personal access token for the signed-in member.
#[utoipa::path(
    post,
    path = "/v1/me/tokens",
    tag = "operator",
    request_body = NewToken,
    security(("operator_token" = [])),
    responses((status = 201, description = "The token, shown this once.", body = CreatedToken))
)]
async fn create_token(
    Operator(claims): Operator,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewToken>,
) -> ApiResult<impl IntoResponse> {
    let created = call(state.identity().create_personal_access_token(
        pb::CreatePersonalAccessTokenRequest {
            app_id: claims.app,
            member_id: claims.sub,
            name: new.name,
        },
    ))
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: created.token,
            personal_access_token: created.personal_access_token.map(Into::into),
        }),
    ))
}

/// The `{id}` of a path.
#[derive(Deserialize)]
struct TokenId {
    id: String,
}

/// Revokes one of the signed-in member's personal access tokens.
#[utoipa::path(
    delete,
    path = "/v1/me/tokens/{id}",
    tag = "operator",
    params(("id" = String, Path, description = "The token's id (`pat_…`)")),
    security(("operator_token" = [])),
    responses((status = 204, description = "The token no longer works."))
)]
async fn revoke_token(
    Operator(claims): Operator,
    State(state): State<AppState>,
    ApiPath(TokenId { id }): ApiPath<TokenId>,
) -> ApiResult<StatusCode> {
    call(
        state
            .identity()
            .revoke_personal_access_token(pb::RevokePersonalAccessTokenRequest {
                app_id: claims.app,
                member_id: claims.sub,
                id,
            }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
