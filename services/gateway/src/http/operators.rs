//! Operator sign-in: the console exchanges a one-time login link's token, the `palaver`
//! CLI a personal access token, for an operator session (a short-lived access token).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use palaver_kit::Error;
use palaver_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::model::MemberView;
use crate::state::AppState;

/// The operator sign-in routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_operator_session))
}

/// One of the two ways to sign in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOperatorSession {
    /// The `token` of a login link (`/console/login?token=…`); works once.
    login_token: Option<String>,
    /// A personal access token (`pat_…`), for the CLI.
    personal_access_token: Option<String>,
}

/// An operator session.
#[derive(Serialize, ToSchema)]
struct OperatorSession {
    /// The operator access token: `Authorization: Bearer …`, and the WebSocket `hello`.
    access_token: String,
    /// Seconds until it expires.
    expires_in: u64,
    member: Option<MemberView>,
}

/// Signs a member in to an operator client: give exactly one of `login_token` and
/// `personal_access_token`.
#[utoipa::path(
    post,
    path = "/v1/operator-sessions",
    tag = "operator",
    request_body = NewOperatorSession,
    responses(
        (status = 201, description = "The operator session.", body = OperatorSession),
        (status = 401, description = "The login link is invalid, used or expired, or the personal access token is invalid or revoked.",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn create_operator_session(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewOperatorSession>,
) -> ApiResult<impl IntoResponse> {
    let session =
        match (new.login_token, new.personal_access_token) {
            (Some(login_token), None) => {
                call(
                    state
                        .identity()
                        .exchange_login_link(pb::ExchangeLoginLinkRequest { login_token }),
                )
                .await?
            }
            (None, Some(token)) => {
                call(state.identity().exchange_personal_access_token(
                    pb::ExchangePersonalAccessTokenRequest { token },
                ))
                .await?
            }
            _ => {
                return Err(Error::invalid(
                    "login_token",
                    "give exactly one of login_token and personal_access_token",
                )
                .into());
            }
        };
    Ok((
        StatusCode::CREATED,
        Json(OperatorSession {
            access_token: session.access_token,
            expires_in: session.expires_in,
            member: session.member.map(MemberView::from),
        }),
    ))
}
