//! The consent flow and permission tokens.
//!
//! A CMS asks for a consent request (OAuth 2.0 authorization code with PKCE S256); the
//! member approves or denies it on the consent page; the CMS exchanges the one-use code
//! for a permission token and a refresh token. Each refresh rotates the refresh token,
//! and presenting a spent one revokes the grant (it was stolen, or replayed). The
//! member's newest grant decides their permission status and whether their chat
//! endpoint is open.

use palaver_kit::random::{new_id, random_string};
use palaver_kit::{Error, ErrorCode};

use super::members::Member;
use super::{Identity, secrets};
use crate::store::{ConsentRow, GrantRow, NewGrant};

/// The scope of every permission token.
pub const SCOPE: &str = "presence chat";

/// A consent request as the consent page shows it.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    pub request: String,
    pub expires_at: i64,
    pub app_name: String,
    pub app_logo_url: String,
    pub privacy_url: String,
    pub member_display_name: String,
    pub return_url: String,
    pub csrf_token: String,
    /// When a permission approved now would expire.
    pub permission_expires_at: i64,
}

/// What the CMS receives for a code or a refresh token.
#[derive(Debug, Clone)]
pub struct PermissionToken {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub endpoint: String,
    pub external_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionStatus {
    None,
    Valid,
    Expired,
    Revoked,
}

impl PermissionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionStatus::None => "none",
            PermissionStatus::Valid => "valid",
            PermissionStatus::Expired => "expired",
            PermissionStatus::Revoked => "revoked",
        }
    }
}

/// A member's permission: what the CMS's profile checkbox reads.
#[derive(Debug, Clone)]
pub struct Permission {
    pub status: PermissionStatus,
    /// When the token expires (as the CMS should treat it: early by the policy's margin).
    pub expires_at: Option<i64>,
    pub endpoint: Option<String>,
}

/// The member behind a valid permission token.
#[derive(Debug, Clone)]
pub struct PermissionTokenInfo {
    pub member: Member,
    pub endpoint: String,
    pub expires_at: i64,
}

fn invalid_grant(why: &str) -> Error {
    Error::new(ErrorCode::InvalidGrant, why)
}

/// The URL with query parameters appended (keeping any it already has).
fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

impl Identity {
    /// The status of a grant now, counting a token as expired early by the margin.
    pub(crate) fn grant_status(&self, grant: Option<&GrantRow>) -> PermissionStatus {
        match grant {
            None => PermissionStatus::None,
            Some(g) if g.revoked_at.is_some() => PermissionStatus::Revoked,
            Some(g) if self.now() >= self.effective_expiry(g) => PermissionStatus::Expired,
            Some(_) => PermissionStatus::Valid,
        }
    }

    fn effective_expiry(&self, grant: &GrantRow) -> i64 {
        grant.expires_at - self.policy.permission_early_expiry
    }

    #[tracing::instrument(skip_all, fields(app_id))]
    pub async fn create_consent_request(
        &self,
        app_id: &str,
        external_id: &str,
        return_url: &str,
        state: &str,
        code_challenge: &str,
        code_challenge_method: &str,
    ) -> Result<ConsentRequest, Error> {
        let app = self.app(app_id).await?;
        if app.privacy_url.is_empty() {
            return Err(Error::new(
                ErrorCode::ConsentUnavailable,
                "the app has no privacy-policy URL; set privacy_url before asking members for consent",
            ));
        }
        let member = self.member(app_id, external_id).await?;
        if !app.return_urls.iter().any(|u| u == return_url) {
            return Err(Error::invalid(
                "return_url",
                "is not one of the app's registered return URLs",
            ));
        }
        if state.is_empty() || state.len() > 512 {
            return Err(Error::invalid("state", "must be 1 to 512 bytes"));
        }
        if code_challenge_method != "S256" {
            return Err(Error::invalid("code_challenge_method", "must be S256"));
        }
        if code_challenge.len() != 43 || !secrets::is_pkce_value(code_challenge) {
            return Err(Error::invalid(
                "code_challenge",
                "must be the base64url SHA-256 of the code verifier (43 characters)",
            ));
        }
        let request = secrets::new_token("cr_");
        let row = ConsentRow {
            request_hash: secrets::token_hash(&request),
            app_id: app_id.to_owned(),
            member_id: member.member_id,
            return_url: return_url.to_owned(),
            state: state.to_owned(),
            code_challenge: code_challenge.to_owned(),
            csrf_token: random_string(32),
            expires_at: self.now() + self.policy.consent_ttl,
            decided_at: None,
            code_expires_at: None,
            code_used_at: None,
        };
        self.store.insert_consent_request(&row).await?;
        Ok(ConsentRequest {
            request,
            expires_at: row.expires_at,
            app_name: app.name,
            app_logo_url: app.logo_url,
            privacy_url: app.privacy_url,
            member_display_name: member.display_name,
            return_url: row.return_url,
            csrf_token: row.csrf_token,
            permission_expires_at: self.now() + self.policy.permission_token_ttl,
        })
    }

    /// A consent request that is still waiting for the member's decision.
    async fn pending_consent(&self, request: &str) -> Result<ConsentRow, Error> {
        let row = self
            .store
            .consent_request(&secrets::token_hash(request))
            .await?
            .ok_or_else(|| Error::not_found("no such consent request"))?;
        if row.decided_at.is_some() {
            return Err(Error::new(
                ErrorCode::FailedPrecondition,
                "this consent request was already answered",
            ));
        }
        if self.now() >= row.expires_at {
            return Err(Error::new(
                ErrorCode::ConsentExpired,
                "this consent request has expired; ask the site for a new one",
            ));
        }
        Ok(row)
    }

    pub async fn consent_request(&self, request: &str) -> Result<ConsentRequest, Error> {
        let row = self.pending_consent(request).await?;
        let app = self.app(&row.app_id).await?;
        let member = self.member_by_id(&row.app_id, &row.member_id).await?;
        Ok(ConsentRequest {
            request: request.to_owned(),
            expires_at: row.expires_at,
            app_name: app.name,
            app_logo_url: app.logo_url,
            privacy_url: app.privacy_url,
            member_display_name: member.display_name,
            return_url: row.return_url,
            csrf_token: row.csrf_token,
            permission_expires_at: self.now() + self.policy.permission_token_ttl,
        })
    }

    /// Records Approve or Deny and answers the URL to send the member back to.
    #[tracing::instrument(skip_all, fields(approve))]
    pub async fn decide_consent(
        &self,
        request: &str,
        approve: bool,
        csrf_token: &str,
    ) -> Result<String, Error> {
        let row = self.pending_consent(request).await?;
        if !secrets::same(csrf_token, &row.csrf_token) {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                "the consent form is stale or forged; reload the page",
            ));
        }
        let now = self.now();
        let code = approve.then(|| secrets::new_token("ac_"));
        let code_hash = code.as_deref().map(secrets::token_hash);
        let stored = code_hash
            .as_deref()
            .map(|hash| (hash, now + self.policy.consent_ttl));
        if !self
            .store
            .decide_consent(&row.request_hash, now, stored)
            .await?
        {
            return Err(Error::new(
                ErrorCode::FailedPrecondition,
                "this consent request was already answered",
            ));
        }
        Ok(match code {
            Some(code) => with_query(&row.return_url, &[("code", &code), ("state", &row.state)]),
            None => with_query(
                &row.return_url,
                &[("error", "access_denied"), ("state", &row.state)],
            ),
        })
    }

    /// Exchanges an authorization code for a permission token (RFC 6749 §4.1.3 with
    /// RFC 7636). Every failure is `invalid_grant` and changes nothing, except a code
    /// presented again after it was spent, which revokes the grant it produced.
    #[tracing::instrument(skip_all, fields(app_id))]
    pub async fn exchange_code(
        &self,
        app_id: &str,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<PermissionToken, Error> {
        let code_hash = secrets::token_hash(code);
        let row = self
            .store
            .consent_request_by_code(&code_hash)
            .await?
            .filter(|row| row.app_id == app_id)
            .ok_or_else(|| invalid_grant("unknown authorization code"))?;
        let now = self.now();
        if row.code_used_at.is_some() {
            self.store
                .revoke_grants_of_request(&row.request_hash, now)
                .await?;
            return Err(invalid_grant(
                "the authorization code was already used; the permission it gave is revoked",
            ));
        }
        if row.code_expires_at.is_none_or(|at| now >= at) {
            return Err(invalid_grant("the authorization code has expired"));
        }
        if !redirect_uri.is_empty() && redirect_uri != row.return_url {
            return Err(invalid_grant(
                "redirect_uri does not match the consent request's return URL",
            ));
        }
        if !secrets::pkce_s256_matches(code_verifier, &row.code_challenge) {
            return Err(invalid_grant(
                "code_verifier does not match the code challenge",
            ));
        }
        let member = self.member_by_id(app_id, &row.member_id).await?;
        let access_token = secrets::new_token("pt_");
        let refresh_token = secrets::new_token("rt_");
        let endpoint_if_new = random_string(10);
        let grant_id = new_id("g_", 16);
        let expires_at = now + self.policy.permission_token_ttl;
        let grant = NewGrant {
            grant_id: &grant_id,
            app_id,
            member_id: &member.member_id,
            request_hash: &row.request_hash,
            scope: SCOPE,
            access_token_hash: &secrets::token_hash(&access_token),
            refresh_token_hash: &secrets::token_hash(&refresh_token),
            expires_at,
            now,
            endpoint_if_new: &format!("ce_{endpoint_if_new}"),
        };
        if !self.store.redeem_code(&code_hash, &grant).await? {
            return Err(invalid_grant("the authorization code was already used"));
        }
        let member = self.member_by_id(app_id, &member.member_id).await?;
        Ok(PermissionToken {
            access_token,
            expires_in: self.expires_in(expires_at),
            refresh_token,
            endpoint: member.endpoint.unwrap_or_default(),
            external_id: member.external_id,
        })
    }

    fn expires_in(&self, expires_at: i64) -> u64 {
        u64::try_from(expires_at - self.policy.permission_early_expiry - self.now())
            .unwrap_or_default()
    }

    /// Rotates a grant's tokens for a refresh token.
    #[tracing::instrument(skip_all, fields(app_id))]
    pub async fn refresh(
        &self,
        app_id: &str,
        refresh_token: &str,
    ) -> Result<PermissionToken, Error> {
        let refresh_hash = secrets::token_hash(refresh_token);
        let stored = self
            .store
            .refresh_token(&refresh_hash)
            .await?
            .ok_or_else(|| invalid_grant("unknown refresh token"))?;
        let grant = self
            .store
            .grant(&stored.grant_id)
            .await?
            .filter(|g| g.app_id == app_id)
            .ok_or_else(|| invalid_grant("unknown refresh token"))?;
        let now = self.now();
        if stored.used_at.is_some() {
            self.store.revoke_grant(&grant.grant_id, now).await?;
            return Err(invalid_grant(
                "the refresh token was already used; the permission is revoked",
            ));
        }
        if grant.revoked_at.is_some() {
            return Err(invalid_grant("the permission was revoked"));
        }
        let access_token = secrets::new_token("pt_");
        let new_refresh = secrets::new_token("rt_");
        let expires_at = now + self.policy.permission_token_ttl;
        let rotated = self
            .store
            .rotate_grant(
                &grant.grant_id,
                &refresh_hash,
                &secrets::token_hash(&access_token),
                &secrets::token_hash(&new_refresh),
                expires_at,
                now,
            )
            .await?;
        if !rotated {
            return Err(invalid_grant("the refresh token was already used"));
        }
        let member = self.member_by_id(app_id, &grant.member_id).await?;
        Ok(PermissionToken {
            access_token,
            expires_in: self.expires_in(expires_at),
            refresh_token: new_refresh,
            endpoint: member.endpoint.unwrap_or_default(),
            external_id: member.external_id,
        })
    }

    pub async fn permission(&self, app_id: &str, external_id: &str) -> Result<Permission, Error> {
        let member = self.member(app_id, external_id).await?;
        let grant = self.store.latest_grant(&member.member_id).await?;
        Ok(Permission {
            status: self.grant_status(grant.as_ref()),
            expires_at: grant.as_ref().map(|g| self.effective_expiry(g)),
            endpoint: member.endpoint,
        })
    }

    /// Revokes the member's permission; their chat endpoint closes at once.
    #[tracing::instrument(skip_all, fields(app_id))]
    pub async fn revoke_permission(
        &self,
        app_id: &str,
        external_id: &str,
    ) -> Result<Permission, Error> {
        let member = self.member(app_id, external_id).await?;
        self.store
            .revoke_member_grants(&member.member_id, self.now())
            .await?;
        self.permission(app_id, external_id).await
    }

    /// The member behind a valid permission token (the member API).
    pub async fn authenticate_permission_token(
        &self,
        token: &str,
    ) -> Result<PermissionTokenInfo, Error> {
        let grant = self
            .store
            .grant_by_access_token(&secrets::token_hash(token))
            .await?
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "invalid permission token"))?;
        match self.grant_status(Some(&grant)) {
            PermissionStatus::Valid => {}
            PermissionStatus::Expired => {
                return Err(Error::new(
                    ErrorCode::TokenExpired,
                    "the permission token has expired",
                ));
            }
            _ => {
                return Err(Error::new(
                    ErrorCode::Unauthenticated,
                    "the permission token was revoked",
                ));
            }
        }
        let member = self.member_by_id(&grant.app_id, &grant.member_id).await?;
        Ok(PermissionTokenInfo {
            endpoint: member.endpoint.clone().unwrap_or_default(),
            expires_at: self.effective_expiry(&grant),
            member,
        })
    }
}
