//! Chat endpoints and visitor sessions.
//!
//! A visitor is anonymous (a name they chose) or verified: the CMS vouches for them
//! with an identity assertion, a compact HS256 JWT signed with one of the app's identity
//! keys. Either way the visitor gets an access token (see [`super::keys`]).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use palaver_kit::random::new_id;
use palaver_kit::tokens::{Claims, TokenKind};
use palaver_kit::{Error, ErrorCode};
use serde::Deserialize;

use super::consent::PermissionStatus;
use super::members::Member;
use super::{Identity, validate};
use crate::store::NewVisitorSession;

/// How far in the future an assertion's `iat` may be (clock skew), in seconds.
const ASSERTION_SKEW: i64 = 60;
/// The longest an assertion may be valid for, in seconds.
const ASSERTION_MAX_LIFETIME: i64 = 86_400;

/// A member's public chat handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEndpoint {
    pub endpoint: String,
    pub app_id: String,
    pub member_id: String,
    pub external_id: String,
    pub display_name: String,
    /// True while the member holds a valid permission token.
    pub open: bool,
}

/// How a visitor says who they are.
#[derive(Debug, Clone)]
pub enum VisitorIdentity {
    Anonymous { display_name: String },
    Asserted { assertion: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    pub visitor_id: String,
    pub display_name: String,
    pub verified: bool,
    pub external_id: Option<String>,
    pub member_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VisitorSession {
    pub session_token: String,
    pub visitor: Visitor,
    pub expires_in: u64,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    sub: String,
    name: String,
    iat: i64,
    exp: i64,
}

fn invalid_assertion(why: &str) -> Error {
    Error::new(
        ErrorCode::InvalidAssertion,
        format!("identity assertion rejected: {why}"),
    )
}

impl Identity {
    fn chat_endpoint(&self, member: Member, status: PermissionStatus) -> Option<ChatEndpoint> {
        Some(ChatEndpoint {
            endpoint: member.endpoint?,
            app_id: member.app_id,
            member_id: member.member_id,
            external_id: member.external_id,
            display_name: member.display_name,
            open: status == PermissionStatus::Valid,
        })
    }

    /// The known endpoints among `endpoints`, open or closed.
    pub async fn resolve_endpoints(
        &self,
        endpoints: &[String],
    ) -> Result<Vec<ChatEndpoint>, Error> {
        let members = self.store.members_by_endpoints(endpoints).await?;
        let ids: Vec<String> = members.iter().map(|m| m.member_id.clone()).collect();
        let grants = self.store.latest_grants(&ids).await?;
        Ok(members
            .into_iter()
            .filter_map(|member| {
                let grant = grants.iter().find(|g| g.member_id == member.member_id);
                let status = self.grant_status(grant);
                self.chat_endpoint(member, status)
            })
            .collect())
    }

    pub async fn resolve_endpoint(&self, endpoint: &str) -> Result<ChatEndpoint, Error> {
        self.resolve_endpoints(&[endpoint.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("no chat endpoint {endpoint:?}")))
    }

    /// Starts a visitor session on an open chat endpoint of the app.
    #[tracing::instrument(skip_all, fields(app_id, endpoint))]
    pub async fn create_visitor_session(
        &self,
        app_id: &str,
        endpoint: &str,
        who: VisitorIdentity,
    ) -> Result<VisitorSession, Error> {
        let chat = self
            .resolve_endpoint(endpoint)
            .await
            .ok()
            .filter(|c| c.app_id == app_id);
        let chat = chat.ok_or_else(|| {
            Error::not_found(format!("no chat endpoint {endpoint:?} in this app"))
        })?;
        if !chat.open {
            return Err(Error::new(
                ErrorCode::EndpointClosed,
                "this chat is not available",
            ));
        }
        let now = self.now();
        let session_id = new_id("vs_", 20);
        let expires_at = now + self.policy.visitor_token_ttl;
        let visitor = match who {
            VisitorIdentity::Anonymous { display_name } => {
                let display_name = validate::display_name("display_name", &display_name)?;
                let visitor_id = new_id("v_", 16);
                self.store
                    .insert_visitor_session(&NewVisitorSession {
                        session_id: &session_id,
                        visitor_id: &visitor_id,
                        anonymous_name: Some(&display_name),
                        app_id,
                        endpoint,
                        now,
                        expires_at,
                    })
                    .await?;
                Visitor {
                    visitor_id,
                    display_name,
                    verified: false,
                    external_id: None,
                    member_id: None,
                }
            }
            VisitorIdentity::Asserted { assertion } => {
                let claims = self.verify_assertion(app_id, &assertion).await?;
                let display_name = validate::display_name("name", &claims.name)
                    .map_err(|e| invalid_assertion(&e.message))?;
                let external_id = validate::external_id(&claims.sub)
                    .map_err(|e| invalid_assertion(&e.message))?;
                let visitor_id = self
                    .store
                    .upsert_verified_visitor(
                        &new_id("v_", 16),
                        app_id,
                        &external_id,
                        &display_name,
                        now,
                    )
                    .await?;
                self.store
                    .insert_visitor_session(&NewVisitorSession {
                        session_id: &session_id,
                        visitor_id: &visitor_id,
                        anonymous_name: None,
                        app_id,
                        endpoint,
                        now,
                        expires_at,
                    })
                    .await?;
                let member_id = self
                    .store
                    .member_by_external_id(app_id, &external_id)
                    .await?
                    .map(|m| m.member_id);
                Visitor {
                    visitor_id,
                    display_name,
                    verified: true,
                    external_id: Some(external_id),
                    member_id,
                }
            }
        };
        let claims = Claims {
            iss: palaver_kit::tokens::ISSUER.to_owned(),
            aud: palaver_kit::tokens::AUDIENCE.to_owned(),
            sub: visitor.visitor_id.clone(),
            app: app_id.to_owned(),
            kind: TokenKind::Visitor,
            name: visitor.display_name.clone(),
            verified: visitor.verified,
            ext: visitor.external_id.clone(),
            member: visitor.member_id.clone(),
            iat: now,
            exp: expires_at,
            jti: session_id,
        };
        let session_token = self.sign_access_token(&claims).await?;
        Ok(VisitorSession {
            session_token,
            visitor,
            expires_in: u64::try_from(expires_at - now).unwrap_or_default(),
        })
    }

    /// Checks an identity assertion: HS256 with one of the app's active identity keys
    /// (the one its `kid` names, else each in turn), `aud` the app, `exp` at most 24 h
    /// after `iat`, and neither expired nor issued in the future beyond the skew.
    async fn verify_assertion(
        &self,
        app_id: &str,
        assertion: &str,
    ) -> Result<AssertionClaims, Error> {
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|_| invalid_assertion("not a JWT"))?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid_assertion("the algorithm must be HS256"));
        }
        let keys = self.store.active_identity_keys(app_id).await?;
        let candidates: Vec<_> = match header.kid.as_deref() {
            Some(kid) => keys.iter().filter(|k| k.key_id == kid).collect(),
            None => keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(invalid_assertion("unknown or retired identity key"));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[app_id]);
        validation.set_required_spec_claims(&["sub", "aud", "exp"]);
        // Time is checked below against this service's clock.
        validation.validate_exp = false;
        let mut last_error = invalid_assertion("bad signature");
        for key in candidates {
            match jsonwebtoken::decode::<AssertionClaims>(
                assertion,
                &DecodingKey::from_secret(key.secret.as_bytes()),
                &validation,
            ) {
                Ok(data) => return self.check_assertion_times(data.claims),
                Err(e) => {
                    last_error = match e.kind() {
                        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                            invalid_assertion("bad signature")
                        }
                        jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                            invalid_assertion("aud is not this app")
                        }
                        _ => invalid_assertion(&e.to_string()),
                    };
                    if !matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) {
                        return Err(last_error);
                    }
                }
            }
        }
        Err(last_error)
    }

    fn check_assertion_times(&self, claims: AssertionClaims) -> Result<AssertionClaims, Error> {
        let now = self.now();
        if claims.iat > now + ASSERTION_SKEW {
            return Err(invalid_assertion("iat is in the future"));
        }
        if claims.exp - claims.iat > ASSERTION_MAX_LIFETIME {
            return Err(invalid_assertion("exp must be at most 24 hours after iat"));
        }
        if now >= claims.exp + ASSERTION_SKEW {
            return Err(invalid_assertion("it has expired"));
        }
        Ok(claims)
    }
}
