//! What describes the gateway to others: the public keys that sign Palaver's access
//! tokens (a JWKS, RFC 7517, for CMSs and other verifiers) and the OpenAPI 3.1 document
//! of the whole HTTP API.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use palaver_proto::identity::v1 as pb;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::http::error::ApiResult;
use crate::state::AppState;

/// The discovery routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(openapi))
}

/// One public key (RFC 7517; an Ed25519 key, RFC 8037).
#[derive(Serialize, ToSchema)]
struct Jwk {
    kid: String,
    /// `OKP`.
    kty: String,
    /// `Ed25519`.
    crv: String,
    /// The public key, base64url.
    x: String,
    /// `EdDSA`.
    alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    key_use: String,
}

/// The keys that sign Palaver's access tokens.
#[derive(Serialize, ToSchema)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// The public keys of Palaver's access tokens (visitor sessions, operator sessions):
/// the newest signs, older ones stay listed while tokens they signed may be in use.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "discovery",
    responses((status = 200, description = "The JWKS.", body = Jwks, content_type = "application/jwk-set+json"))
)]
async fn jwks(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let jwks = call(state.identity().get_jwks(pb::GetJwksRequest {})).await?;
    let keys = jwks
        .keys
        .into_iter()
        .map(|key| Jwk {
            kid: key.kid,
            kty: key.kty,
            crv: key.crv,
            x: key.x,
            alg: key.alg,
            key_use: key.r#use,
        })
        .collect();
    Ok((
        [
            (CONTENT_TYPE, "application/jwk-set+json"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        Json(Jwks { keys }),
    ))
}

/// The OpenAPI document, rendered once when the router is built.
#[derive(Clone)]
pub struct OpenApiDocument(pub Arc<str>);

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "discovery",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
async fn openapi(Extension(document): Extension<OpenApiDocument>) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        document.0.to_string(),
    )
}
