//! Operator sign-in: one-time login links (the console) and personal access tokens
//! (the command-line messenger), each exchanged for an operator access token.

use palaver_kit::random::new_id;
use palaver_kit::tokens::{AUDIENCE, Claims, ISSUER, TokenKind};
use palaver_kit::{Error, ErrorCode};

use super::members::Member;
use super::{Identity, secrets, validate};
use crate::store::PatRow;

#[derive(Debug, Clone)]
pub struct LoginLink {
    pub login_token: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct OperatorSession {
    pub access_token: String,
    pub expires_in: u64,
    pub member: Member,
}

pub use crate::store::PatRow as PersonalAccessToken;

impl Identity {
    pub async fn create_login_link(
        &self,
        app_id: &str,
        external_id: &str,
    ) -> Result<LoginLink, Error> {
        let member = self.member(app_id, external_id).await?;
        let login_token = secrets::new_token("ll_");
        let expires_at = self.now() + self.policy.login_link_ttl;
        self.store
            .insert_login_link(
                &secrets::token_hash(&login_token),
                app_id,
                &member.member_id,
                expires_at,
            )
            .await?;
        Ok(LoginLink {
            login_token,
            expires_at,
        })
    }

    /// Spends a login link for an operator session.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_login_link(&self, login_token: &str) -> Result<OperatorSession, Error> {
        let invalid = || {
            Error::new(
                ErrorCode::Unauthenticated,
                "the login link is invalid, used or expired; ask the site for a new one",
            )
        };
        let hash = secrets::token_hash(login_token);
        let link = self.store.login_link(&hash).await?.ok_or_else(invalid)?;
        let now = self.now();
        if link.used_at.is_some() || now >= link.expires_at {
            return Err(invalid());
        }
        let member = self.member_by_id(&link.app_id, &link.member_id).await?;
        if !self.store.use_login_link(&hash, now).await? {
            return Err(invalid());
        }
        self.operator_session(member).await
    }

    pub async fn create_personal_access_token(
        &self,
        app_id: &str,
        member_id: &str,
        name: &str,
    ) -> Result<(String, PersonalAccessToken), Error> {
        let member = self.member_by_id(app_id, member_id).await?;
        let token = secrets::new_token("pat_");
        let pat = PatRow {
            id: new_id("pat_", 12),
            app_id: app_id.to_owned(),
            member_id: member.member_id,
            name: validate::display_name("name", name)?,
            created_at: self.now(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store
            .insert_pat(&pat, &secrets::token_hash(&token))
            .await?;
        Ok((token, pat))
    }

    pub async fn personal_access_tokens(
        &self,
        app_id: &str,
        member_id: &str,
    ) -> Result<Vec<PersonalAccessToken>, Error> {
        let member = self.member_by_id(app_id, member_id).await?;
        self.store.pats(&member.member_id).await
    }

    pub async fn revoke_personal_access_token(
        &self,
        app_id: &str,
        member_id: &str,
        id: &str,
    ) -> Result<(), Error> {
        let member = self.member_by_id(app_id, member_id).await?;
        if self
            .store
            .revoke_pat(&member.member_id, id, self.now())
            .await?
        {
            Ok(())
        } else {
            Err(Error::not_found(format!("no personal access token {id:?}")))
        }
    }

    /// A personal access token for an operator session (what the CLI does on start).
    #[tracing::instrument(skip_all)]
    pub async fn exchange_personal_access_token(
        &self,
        token: &str,
    ) -> Result<OperatorSession, Error> {
        let invalid = || {
            Error::new(
                ErrorCode::Unauthenticated,
                "invalid or revoked personal access token",
            )
        };
        let pat = self
            .store
            .pat_by_token(&secrets::token_hash(token))
            .await?
            .ok_or_else(invalid)?;
        if pat.revoked_at.is_some() {
            return Err(invalid());
        }
        let member = self.member_by_id(&pat.app_id, &pat.member_id).await?;
        self.store.touch_pat(&pat.id, self.now()).await?;
        self.operator_session(member).await
    }

    async fn operator_session(&self, member: Member) -> Result<OperatorSession, Error> {
        let now = self.now();
        let expires_at = now + self.policy.operator_token_ttl;
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: member.member_id.clone(),
            app: member.app_id.clone(),
            kind: TokenKind::Operator,
            name: member.display_name.clone(),
            verified: true,
            ext: Some(member.external_id.clone()),
            member: Some(member.member_id.clone()),
            iat: now,
            exp: expires_at,
            jti: new_id("os_", 20),
        };
        let access_token = self.sign_access_token(&claims).await?;
        Ok(OperatorSession {
            access_token,
            expires_in: u64::try_from(expires_at - now).unwrap_or_default(),
            member,
        })
    }
}
