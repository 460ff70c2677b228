//! Extractors whose rejections are problem+json: JSON bodies, path parameters, query
//! strings, the caller's credentials and the client's IP address.
//!
//! Credentials are bearer tokens of four kinds, one per API: the admin token (compared
//! here in constant time), an app's API secret and a member's permission token (both
//! checked by identity on every request, so a rotation or a revocation takes effect at
//! once), and an operator access token (a JWT verified locally against identity's keys).
//! The member's own conversations take either of the member's two ([`SignedInMember`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use palaver_kit::tokens::{Claims, TokenKind};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::identity::v1 as pb;
use serde::de::DeserializeOwned;

use crate::clients::call;
use crate::http::error::ApiError;
use crate::state::AppState;

/// A JSON body (`application/json` or any `application/*+json`), parsed strictly: a
/// malformed document, a missing field, a field of the wrong type or an unknown field
/// is `invalid_argument` naming the field.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if media_type(request.headers()).is_none_or(|m| !is_json(&m)) {
            return Err(ApiError::unsupported_media_type("application/json"));
        }
        let body = read_body(request, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// The essence of the `Content-Type` (`application/json` of
/// `application/json; charset=utf-8`), lowercase.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// True for `application/json` and the `+json` types (`application/merge-patch+json`).
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || media_type
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// The whole body, within the configured size limit.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::new(ErrorCode::PayloadTooLarge, "the request body is too large").into()
            } else {
                Error::invalid("body", "cannot be read").into()
            }
        })
}

/// A JSON document into `T`, errors naming the offending field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::invalid("body", format!("is not valid JSON ({inner})"))
        } else if path == "." {
            Error::invalid("body", inner.to_string())
        } else {
            Error::invalid(&path, inner.to_string())
        }
    })?;
    deserializer
        .end()
        .map_err(|error| Error::invalid("body", format!("is not valid JSON ({error})")))?;
    Ok(value)
}

/// Path parameters; a malformed one (bad percent-encoding) is `invalid_argument`.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(Error::invalid("path", rejection.body_text()).into()),
        }
    }
}

/// The query string, parsed strictly as a form; a malformed one is `invalid_argument`.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|error| Error::invalid("query", error.to_string()).into())
    }
}

/// The bearer token of the `Authorization` header; `what` names the credential expected.
fn bearer<'a>(parts: &'a Parts, what: &str) -> Result<&'a str, ApiError> {
    let missing = || -> ApiError {
        Error::new(
            ErrorCode::Unauthenticated,
            format!("send {what} as Authorization: Bearer …"),
        )
        .into()
    };
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// A caller holding the admin token (`PALAVER_ADMIN_TOKEN`).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.is_admin_token(bearer(parts, "the admin token")?) {
            Ok(Admin)
        } else {
            Err(Error::new(ErrorCode::Unauthenticated, "invalid admin token").into())
        }
    }
}

/// A CMS: the app its API secret belongs to.
pub struct CmsApp(pub pb::App);

impl FromRequestParts<AppState> for CmsApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let api_secret = bearer(parts, "the app's API secret")?.to_owned();
        let app = call(
            state
                .identity()
                .authenticate_app(pb::AuthenticateAppRequest { api_secret }),
        )
        .await?;
        Ok(CmsApp(app))
    }
}

/// A member holding a valid permission token (the member API).
pub struct PermissionHolder(pub pb::PermissionTokenInfo);

impl FromRequestParts<AppState> for PermissionHolder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let permission_token = bearer(parts, "a permission token")?.to_owned();
        let info = call(state.identity().authenticate_permission_token(
            pb::AuthenticatePermissionTokenRequest { permission_token },
        ))
        .await?;
        Ok(PermissionHolder(info))
    }
}

/// A member signed in to an operator client: the claims of their access token.
pub struct Operator(pub Claims);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts, "an operator access token")?;
        let claims = state.verifier().verify(token).await?;
        if claims.kind != TokenKind::Operator {
            return Err(Error::new(
                ErrorCode::Unauthenticated,
                "this needs an operator access token (POST /v1/operator-sessions)",
            )
            .into());
        }
        Ok(Operator(claims))
    }
}

/// A member by either of their credentials: a permission token (`pt_…`, the member
/// API) or an operator access token (the console, the CLI). A visitor's access token
/// is refused.
pub struct SignedInMember {
    pub app_id: String,
    pub member_id: String,
    pub display_name: String,
}

/// How permission tokens begin, which tells them from access tokens (JWTs).
const PERMISSION_TOKEN_PREFIX: &str = "pt_";

impl SignedInMember {
    /// The member as the conversation service knows a caller.
    pub fn caller(&self) -> conv::Caller {
        conv::Caller {
            app_id: self.app_id.clone(),
            who: Some(conv::caller::Who::MemberId(self.member_id.clone())),
            display_name: self.display_name.clone(),
            ..conv::Caller::default()
        }
    }
}

impl FromRequestParts<AppState> for SignedInMember {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts, "a permission token or an operator access token")?;
        if token.starts_with(PERMISSION_TOKEN_PREFIX) {
            let PermissionHolder(info) = PermissionHolder::from_request_parts(parts, state).await?;
            let member = info.member.unwrap_or_default();
            return Ok(SignedInMember {
                app_id: member.app_id,
                member_id: member.member_id,
                display_name: member.display_name,
            });
        }
        Ok(Operator::from_request_parts(parts, state).await?.into())
    }
}

impl From<Operator> for SignedInMember {
    fn from(Operator(claims): Operator) -> Self {
        SignedInMember {
            app_id: claims.app,
            member_id: claims.sub,
            display_name: claims.name,
        }
    }
}

/// The conversation service's view of a visitor's verified access token.
pub fn visitor_caller(claims: &Claims) -> conv::Caller {
    conv::Caller {
        app_id: claims.app.clone(),
        who: Some(conv::caller::Who::VisitorId(claims.sub.clone())),
        display_name: claims.name.clone(),
        verified: claims.verified,
        external_id: claims.ext.clone().unwrap_or_default(),
        visitor_member_id: claims.member.clone().unwrap_or_default(),
    }
}

/// The client's IP address: the socket peer, or behind trusted proxies the nearest
/// untrusted `X-Forwarded-For` hop.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(Error::new(ErrorCode::Internal, "the peer address is unknown").into());
        };
        let forwarded_for = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(ClientIp(state.client_ip(peer.ip(), forwarded_for)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        limits: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        burst: u32,
    }

    fn field_of(body: &str) -> (String, String) {
        let error = parse_json::<Body>(body.as_bytes()).unwrap_err();
        assert_eq!(error.code(), "invalid_argument");
        let problem = serde_json::to_value(error.problem()).unwrap();
        (
            problem["errors"][0]["field"].as_str().unwrap().to_owned(),
            error.detail().to_owned(),
        )
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"name": "x", "limits": {"burst": -1}}"#).0,
            "limits.burst"
        );
        assert_eq!(field_of(r#"{"name": 7}"#).0, "name");
        assert_eq!(field_of(r#"{"name": "x", "nmae": 1}"#).0, "nmae");
        assert_eq!(field_of(r#"{}"#).0, "body");
        let (field, detail) = field_of(r#"{"name": "#);
        assert_eq!(field, "body");
        assert!(detail.contains("not valid JSON"), "{detail}");
        assert_eq!(field_of(r#"{"name": "x"} trailing"#).0, "body");
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
