//! Visitor sessions: a web page's visitor, anonymous (a name they chose) or verified
//! (the CMS's identity assertion), gets a session token for one app's chat endpoint.
//!
//! Browser-facing: only the app's origins may ask (see [`super::cors`]), and each client
//! IP may start a limited number of sessions per minute per app (the app's own limit or
//! the deployment's). A refused request stores nothing.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use palaver_kit::Error;
use palaver_proto::identity::v1 as pb;
use pb::create_visitor_session_request::Who;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::http::cors::{self, check_origin, request_origin};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ClientIp};
use crate::http::model::overrides;
use crate::state::AppState;

/// The visitor routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_visitor_session))
}

/// Who is visiting, and which chat they are on. Give `display_name` (anonymous) or
/// `assertion` (verified), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewVisitorSession {
    /// The app (`data-app`).
    app_id: String,
    /// The chat endpoint (`data-endpoint`).
    endpoint: String,
    /// An anonymous visitor's chosen name, 1–64 characters; shown as unverified.
    display_name: Option<String>,
    /// The CMS's identity assertion (an HS256 JWT): a verified visitor. When it is
    /// refused (`invalid_assertion`), the visitor may still chat anonymously.
    assertion: Option<String>,
}

/// The visitor as the member sees them.
#[derive(Serialize, ToSchema)]
struct Visitor {
    id: String,
    display_name: String,
    /// True when the CMS vouched for the visitor.
    verified: bool,
}

/// A visitor session.
#[derive(Serialize, ToSchema)]
struct VisitorSession {
    /// The visitor's access token, for the WebSocket `hello`.
    session_token: String,
    visitor: Visitor,
    /// Seconds until the session token expires.
    expires_in: u64,
}

/// Starts a visitor session on a chat endpoint.
#[utoipa::path(
    post,
    path = "/v1/visitor-sessions",
    tag = "visitor",
    request_body = NewVisitorSession,
    responses(
        (status = 201, description = "The session.", body = VisitorSession),
        (status = 401, description = "The identity assertion is refused (`invalid_assertion`); the visitor may still chat anonymously.",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "The request's Origin is not one of the app's (`origin_not_allowed`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "No such app or chat endpoint (`not_found`), or the endpoint is closed (`endpoint_closed`).",
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "Too many new sessions from this address (`rate_limited`); see `Retry-After`.",
            body = super::error::ProblemSchema, content_type = "application/problem+json",
            headers(("retry-after" = u64, description = "Seconds to wait"))),
    )
)]
async fn create_visitor_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewVisitorSession>,
) -> ApiResult<Response> {
    let app = call(state.identity().get_app(pb::GetAppRequest {
        app_id: new.app_id.clone(),
    }))
    .await?;
    let origin = check_origin(
        state.public_origin(),
        request_origin(&headers),
        &app.origins,
    )?;
    let answer = async {
        let who = match (new.display_name, new.assertion) {
            (Some(name), None) => Who::DisplayName(name),
            (None, Some(assertion)) => Who::Assertion(assertion),
            _ => {
                return Err(ApiError::from(Error::invalid(
                    "display_name",
                    "give exactly one of display_name and assertion",
                )));
            }
        };
        let rate = state
            .limits_for(&overrides(app.limits))
            .visitor_session_rate();
        if let Err(limited) = state.visitor_sessions().check(rate, &(app.app_id, ip)) {
            metrics::counter!("palaver_gateway_rate_limited_total", "limit" => "visitor_sessions")
                .increment(1);
            return Err(ApiError::from(limited));
        }
        let session = call(state.identity().create_visitor_session(
            pb::CreateVisitorSessionRequest {
                app_id: new.app_id,
                endpoint: new.endpoint,
                who: Some(who),
            },
        ))
        .await?;
        let visitor = session.visitor.unwrap_or_default();
        Ok((
            StatusCode::CREATED,
            Json(VisitorSession {
                session_token: session.session_token,
                visitor: Visitor {
                    id: visitor.visitor_id,
                    display_name: visitor.display_name,
                    verified: visitor.verified,
                },
                expires_in: session.expires_in,
            }),
        ))
    }
    .await;
    Ok(cors::allow(&origin, answer.into_response()))
}
