//! The tonic service: one handler per RPC, each checking its required fields, calling
//! the domain and answering with the converted result.

use std::sync::Arc;

use palaver_kit::Error;
use palaver_proto::identity::v1 as pb;
use pb::identity_server::Identity as IdentityRpc;
use tonic::{Request, Response, Status};

use super::convert::{
    app_to, consent_to, endpoint_to, jwk_to, limits_from, member_to, operator_session_to, pat_to,
    permission_to, timestamp, token_to, webhook_to,
};
use crate::domain::Identity;
use crate::domain::apps::{AppUpdate, NewApp};
use crate::domain::visitors::VisitorIdentity;

/// The tonic service over the domain.
pub struct IdentityServer {
    identity: Arc<Identity>,
}

impl IdentityServer {
    pub fn new(identity: Arc<Identity>) -> pb::identity_server::IdentityServer<IdentityServer> {
        pb::identity_server::IdentityServer::new(IdentityServer { identity })
    }
}

type Rpc<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Rpc<T> {
    Ok(Response::new(value))
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        Err(Error::invalid(field, "is required").into())
    } else {
        Ok(value)
    }
}

#[tonic::async_trait]
impl IdentityRpc for IdentityServer {
    async fn create_app(
        &self,
        request: Request<pb::CreateAppRequest>,
    ) -> Rpc<pb::CreateAppResponse> {
        let r = request.into_inner();
        let created = self
            .identity
            .create_app(NewApp {
                name: r.name,
                origins: r.origins,
                privacy_url: r.privacy_url,
                logo_url: r.logo_url,
                return_urls: r.return_urls,
                retention_days: r.retention_days,
                limits: limits_from(r.limits),
            })
            .await?;
        ok(pb::CreateAppResponse {
            app: Some(app_to(created.app)),
            api_secret: created.api_secret,
            identity_key: created.identity_key,
            identity_key_id: created.identity_key_id,
        })
    }

    async fn get_app(&self, request: Request<pb::GetAppRequest>) -> Rpc<pb::App> {
        let r = request.into_inner();
        ok(app_to(
            self.identity.app(required("app_id", &r.app_id)?).await?,
        ))
    }

    async fn update_app(&self, request: Request<pb::UpdateAppRequest>) -> Rpc<pb::App> {
        let r = request.into_inner();
        let update = AppUpdate {
            name: r.name,
            origins: r.origins.map(|l| l.values),
            privacy_url: r.privacy_url,
            logo_url: r.logo_url,
            return_urls: r.return_urls.map(|l| l.values),
            retention_days: r.retention_days,
            limits: r.limits.map(|l| limits_from(Some(l))),
        };
        ok(app_to(
            self.identity
                .update_app(required("app_id", &r.app_id)?, update)
                .await?,
        ))
    }

    async fn delete_app(
        &self,
        request: Request<pb::DeleteAppRequest>,
    ) -> Rpc<pb::DeleteAppResponse> {
        self.identity
            .delete_app(required("app_id", &request.into_inner().app_id)?)
            .await?;
        ok(pb::DeleteAppResponse {})
    }

    async fn authenticate_app(&self, request: Request<pb::AuthenticateAppRequest>) -> Rpc<pb::App> {
        ok(app_to(
            self.identity
                .authenticate_app(&request.into_inner().api_secret)
                .await?,
        ))
    }

    async fn rotate_api_secret(
        &self,
        request: Request<pb::RotateApiSecretRequest>,
    ) -> Rpc<pb::RotateApiSecretResponse> {
        let api_secret = self
            .identity
            .rotate_api_secret(required("app_id", &request.into_inner().app_id)?)
            .await?;
        ok(pb::RotateApiSecretResponse { api_secret })
    }

    async fn rotate_identity_key(
        &self,
        request: Request<pb::RotateIdentityKeyRequest>,
    ) -> Rpc<pb::RotateIdentityKeyResponse> {
        let (key, previous) = self
            .identity
            .rotate_identity_key(required("app_id", &request.into_inner().app_id)?)
            .await?;
        ok(pb::RotateIdentityKeyResponse {
            identity_key: key.secret,
            identity_key_id: key.key_id,
            previous_identity_key_id: previous.unwrap_or_default(),
        })
    }

    async fn set_webhook(&self, request: Request<pb::SetWebhookRequest>) -> Rpc<pb::Webhook> {
        let r = request.into_inner();
        ok(webhook_to(
            self.identity
                .set_webhook(required("app_id", &r.app_id)?, &r.url, &r.events)
                .await?,
        ))
    }

    async fn get_webhook(&self, request: Request<pb::GetWebhookRequest>) -> Rpc<pb::Webhook> {
        ok(webhook_to(
            self.identity
                .webhook(required("app_id", &request.into_inner().app_id)?)
                .await?,
        ))
    }

    async fn create_member(&self, request: Request<pb::CreateMemberRequest>) -> Rpc<pb::Member> {
        let r = request.into_inner();
        ok(member_to(
            self.identity
                .create_member(
                    required("app_id", &r.app_id)?,
                    &r.external_id,
                    &r.display_name,
                    &r.email,
                )
                .await?,
        ))
    }

    async fn get_member(&self, request: Request<pb::GetMemberRequest>) -> Rpc<pb::Member> {
        let r = request.into_inner();
        let app_id = required("app_id", &r.app_id)?;
        let member = match r.key {
            Some(pb::get_member_request::Key::ExternalId(external_id)) => {
                self.identity.member(app_id, &external_id).await?
            }
            Some(pb::get_member_request::Key::MemberId(member_id)) => {
                self.identity.member_by_id(app_id, &member_id).await?
            }
            None => {
                return Err(
                    Error::invalid("key", "name the member by external_id or member_id").into(),
                );
            }
        };
        ok(member_to(member))
    }

    async fn update_member(&self, request: Request<pb::UpdateMemberRequest>) -> Rpc<pb::Member> {
        let r = request.into_inner();
        let member = self
            .identity
            .update_member(
                required("app_id", &r.app_id)?,
                &r.external_id,
                r.display_name.as_deref(),
                r.email.as_deref(),
            )
            .await?;
        ok(member_to(member))
    }

    async fn delete_member(
        &self,
        request: Request<pb::DeleteMemberRequest>,
    ) -> Rpc<pb::DeleteMemberResponse> {
        let r = request.into_inner();
        let member_id = self
            .identity
            .delete_member(required("app_id", &r.app_id)?, &r.external_id)
            .await?;
        ok(pb::DeleteMemberResponse { member_id })
    }

    async fn create_consent_request(
        &self,
        request: Request<pb::CreateConsentRequestRequest>,
    ) -> Rpc<pb::ConsentRequest> {
        let r = request.into_inner();
        let consent = self
            .identity
            .create_consent_request(
                required("app_id", &r.app_id)?,
                &r.external_id,
                &r.return_url,
                &r.state,
                &r.code_challenge,
                &r.code_challenge_method,
            )
            .await?;
        ok(consent_to(consent))
    }

    async fn get_consent_request(
        &self,
        request: Request<pb::GetConsentRequestRequest>,
    ) -> Rpc<pb::ConsentRequest> {
        ok(consent_to(
            self.identity
                .consent_request(required("request", &request.into_inner().request)?)
                .await?,
        ))
    }

    async fn decide_consent(
        &self,
        request: Request<pb::DecideConsentRequest>,
    ) -> Rpc<pb::DecideConsentResponse> {
        let r = request.into_inner();
        let redirect_url = self
            .identity
            .decide_consent(required("request", &r.request)?, r.approve, &r.csrf_token)
            .await?;
        ok(pb::DecideConsentResponse { redirect_url })
    }

    async fn exchange_authorization_code(
        &self,
        request: Request<pb::ExchangeAuthorizationCodeRequest>,
    ) -> Rpc<pb::PermissionTokenResponse> {
        let r = request.into_inner();
        let token = self
            .identity
            .exchange_code(
                required("app_id", &r.app_id)?,
                required("code", &r.code)?,
                &r.code_verifier,
                &r.redirect_uri,
            )
            .await?;
        ok(token_to(token))
    }

    async fn refresh_permission_token(
        &self,
        request: Request<pb::RefreshPermissionTokenRequest>,
    ) -> Rpc<pb::PermissionTokenResponse> {
        let r = request.into_inner();
        ok(token_to(
            self.identity
                .refresh(
                    required("app_id", &r.app_id)?,
                    required("refresh_token", &r.refresh_token)?,
                )
                .await?,
        ))
    }

    async fn get_permission(
        &self,
        request: Request<pb::GetPermissionRequest>,
    ) -> Rpc<pb::Permission> {
        let r = request.into_inner();
        ok(permission_to(
            self.identity
                .permission(required("app_id", &r.app_id)?, &r.external_id)
                .await?,
        ))
    }

    async fn revoke_permission(
        &self,
        request: Request<pb::RevokePermissionRequest>,
    ) -> Rpc<pb::Permission> {
        let r = request.into_inner();
        ok(permission_to(
            self.identity
                .revoke_permission(required("app_id", &r.app_id)?, &r.external_id)
                .await?,
        ))
    }

    async fn authenticate_permission_token(
        &self,
        request: Request<pb::AuthenticatePermissionTokenRequest>,
    ) -> Rpc<pb::PermissionTokenInfo> {
        let info = self
            .identity
            .authenticate_permission_token(&request.into_inner().permission_token)
            .await?;
        ok(pb::PermissionTokenInfo {
            member: Some(member_to(info.member)),
            endpoint: info.endpoint,
            expires_at: timestamp(info.expires_at),
            scope: crate::domain::consent::SCOPE.to_owned(),
        })
    }

    async fn resolve_endpoint(
        &self,
        request: Request<pb::ResolveEndpointRequest>,
    ) -> Rpc<pb::ChatEndpoint> {
        ok(endpoint_to(
            self.identity
                .resolve_endpoint(required("endpoint", &request.into_inner().endpoint)?)
                .await?,
        ))
    }

    async fn resolve_endpoints(
        &self,
        request: Request<pb::ResolveEndpointsRequest>,
    ) -> Rpc<pb::ResolveEndpointsResponse> {
        let r = request.into_inner();
        if r.endpoints.len() > 1000 {
            return Err(Error::invalid("endpoints", "at most 1000 at once").into());
        }
        let endpoints = self.identity.resolve_endpoints(&r.endpoints).await?;
        ok(pb::ResolveEndpointsResponse {
            endpoints: endpoints.into_iter().map(endpoint_to).collect(),
        })
    }

    async fn create_visitor_session(
        &self,
        request: Request<pb::CreateVisitorSessionRequest>,
    ) -> Rpc<pb::VisitorSession> {
        let r = request.into_inner();
        let who = match r.who {
            Some(pb::create_visitor_session_request::Who::DisplayName(display_name)) => {
                VisitorIdentity::Anonymous { display_name }
            }
            Some(pb::create_visitor_session_request::Who::Assertion(assertion)) => {
                VisitorIdentity::Asserted { assertion }
            }
            None => {
                return Err(
                    Error::invalid("display_name", "give a display_name or an assertion").into(),
                );
            }
        };
        let session = self
            .identity
            .create_visitor_session(
                required("app_id", &r.app_id)?,
                required("endpoint", &r.endpoint)?,
                who,
            )
            .await?;
        ok(pb::VisitorSession {
            session_token: session.session_token,
            visitor: Some(pb::Visitor {
                visitor_id: session.visitor.visitor_id,
                display_name: session.visitor.display_name,
                verified: session.visitor.verified,
                external_id: session.visitor.external_id.unwrap_or_default(),
                member_id: session.visitor.member_id.unwrap_or_default(),
            }),
            expires_in: session.expires_in,
        })
    }

    async fn create_login_link(
        &self,
        request: Request<pb::CreateLoginLinkRequest>,
    ) -> Rpc<pb::LoginLink> {
        let r = request.into_inner();
        let link = self
            .identity
            .create_login_link(required("app_id", &r.app_id)?, &r.external_id)
            .await?;
        ok(pb::LoginLink {
            login_token: link.login_token,
            expires_at: timestamp(link.expires_at),
        })
    }

    async fn exchange_login_link(
        &self,
        request: Request<pb::ExchangeLoginLinkRequest>,
    ) -> Rpc<pb::OperatorSession> {
        let session = self
            .identity
            .exchange_login_link(required("login_token", &request.into_inner().login_token)?)
            .await?;
        ok(operator_session_to(session))
    }

    async fn create_personal_access_token(
        &self,
        request: Request<pb::CreatePersonalAccessTokenRequest>,
    ) -> Rpc<pb::CreatePersonalAccessTokenResponse> {
        let r = request.into_inner();
        let (token, pat) = self
            .identity
            .create_personal_access_token(
                required("app_id", &r.app_id)?,
                required("member_id", &r.member_id)?,
                &r.name,
            )
            .await?;
        ok(pb::CreatePersonalAccessTokenResponse {
            token,
            personal_access_token: Some(pat_to(pat)),
        })
    }

    async fn list_personal_access_tokens(
        &self,
        request: Request<pb::ListPersonalAccessTokensRequest>,
    ) -> Rpc<pb::ListPersonalAccessTokensResponse> {
        let r = request.into_inner();
        let pats = self
            .identity
            .personal_access_tokens(
                required("app_id", &r.app_id)?,
                required("member_id", &r.member_id)?,
            )
            .await?;
        ok(pb::ListPersonalAccessTokensResponse {
            tokens: pats.into_iter().map(pat_to).collect(),
        })
    }

    async fn revoke_personal_access_token(
        &self,
        request: Request<pb::RevokePersonalAccessTokenRequest>,
    ) -> Rpc<pb::RevokePersonalAccessTokenResponse> {
        let r = request.into_inner();
        self.identity
            .revoke_personal_access_token(
                required("app_id", &r.app_id)?,
                required("member_id", &r.member_id)?,
                required("id", &r.id)?,
            )
            .await?;
        ok(pb::RevokePersonalAccessTokenResponse {})
    }

    async fn exchange_personal_access_token(
        &self,
        request: Request<pb::ExchangePersonalAccessTokenRequest>,
    ) -> Rpc<pb::OperatorSession> {
        let session = self
            .identity
            .exchange_personal_access_token(required("token", &request.into_inner().token)?)
            .await?;
        ok(operator_session_to(session))
    }

    async fn get_jwks(&self, _request: Request<pb::GetJwksRequest>) -> Rpc<pb::Jwks> {
        ok(pb::Jwks {
            keys: self
                .identity
                .jwks()
                .await?
                .into_iter()
                .map(jwk_to)
                .collect(),
        })
    }

    async fn rotate_signing_key(
        &self,
        _request: Request<pb::RotateSigningKeyRequest>,
    ) -> Rpc<pb::RotateSigningKeyResponse> {
        ok(pb::RotateSigningKeyResponse {
            kid: self.identity.rotate_signing_key().await?,
        })
    }
}
