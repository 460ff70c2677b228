//! Members: the people of a site who can receive chats, keyed by the CMS's user id.

use palaver_kit::Error;
use palaver_kit::random::new_id;

use super::{Identity, validate};
pub use crate::store::MemberRow as Member;

impl Identity {
    #[tracing::instrument(skip_all, fields(app_id))]
    pub async fn create_member(
        &self,
        app_id: &str,
        external_id: &str,
        display_name: &str,
        email: &str,
    ) -> Result<Member, Error> {
        self.app(app_id).await?;
        let now = self.now();
        let member = Member {
            member_id: new_id("m_", 16),
            app_id: app_id.to_owned(),
            external_id: validate::external_id(external_id)?,
            display_name: validate::display_name("display_name", display_name)?,
            email: validate::optional_email(email)?,
            endpoint: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_member(&member).await?;
        Ok(member)
    }

    pub async fn member(&self, app_id: &str, external_id: &str) -> Result<Member, Error> {
        self.store
            .member_by_external_id(app_id, external_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no member {external_id:?}")))
    }

    pub async fn member_by_id(&self, app_id: &str, member_id: &str) -> Result<Member, Error> {
        self.store
            .member_by_id(member_id)
            .await?
            .filter(|m| m.app_id == app_id)
            .ok_or_else(|| Error::not_found(format!("no member with id {member_id:?}")))
    }

    pub async fn update_member(
        &self,
        app_id: &str,
        external_id: &str,
        display_name: Option<&str>,
        email: Option<&str>,
    ) -> Result<Member, Error> {
        let mut member = self.member(app_id, external_id).await?;
        if let Some(name) = display_name {
            member.display_name = validate::display_name("display_name", name)?;
        }
        if let Some(email) = email {
            member.email = validate::optional_email(email)?;
        }
        member.updated_at = self.now();
        if !self.store.update_member(&member).await? {
            return Err(Error::not_found(format!("no member {external_id:?}")));
        }
        Ok(member)
    }

    /// Erases the member with their grants, endpoint and tokens; answers their id so
    /// the caller can erase their conversations too.
    #[tracing::instrument(skip_all, fields(app_id))]
    pub async fn delete_member(&self, app_id: &str, external_id: &str) -> Result<String, Error> {
        let member = self.member(app_id, external_id).await?;
        if !self.store.delete_member(&member.member_id).await? {
            return Err(Error::not_found(format!("no member {external_id:?}")));
        }
        Ok(member.member_id)
    }
}
