//! Members: the people who answer chats, found by their CMS id, their member id or
//! their chat endpoint.

use palaver_kit::Error;
use palaver_kit::db::placeholders;
use sqlx::FromRow;

use super::{Store, db_error};

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub member_id: String,
    pub app_id: String,
    pub external_id: String,
    pub display_name: String,
    pub email: String,
    pub endpoint: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const MEMBER_COLUMNS: &str =
    "member_id, app_id, external_id, display_name, email, endpoint, created_at, updated_at";

impl Store {
    pub async fn insert_member(&self, member: &MemberRow) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO members ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&member.member_id)
        .bind(&member.app_id)
        .bind(&member.external_id)
        .bind(&member.display_name)
        .bind(&member.email)
        .bind(&member.endpoint)
        .bind(member.created_at)
        .bind(member.updated_at)
        .execute(self.db.pool())
        .await
        .map_err(db_error("a member with this external_id"))?;
        Ok(())
    }

    pub async fn member_by_external_id(
        &self,
        app_id: &str,
        external_id: &str,
    ) -> Result<Option<MemberRow>, Error> {
        sqlx::query_as::<_, MemberRow>(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE app_id = $1 AND external_id = $2"
        ))
        .bind(app_id)
        .bind(external_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn member_by_id(&self, member_id: &str) -> Result<Option<MemberRow>, Error> {
        sqlx::query_as::<_, MemberRow>(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE member_id = $1"
        ))
        .bind(member_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| Error::internal(&e))
    }

    pub async fn members_by_endpoints(
        &self,
        endpoints: &[String],
    ) -> Result<Vec<MemberRow>, Error> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE endpoint IN ({})",
            placeholders(1, endpoints.len())
        );
        let mut query = sqlx::query_as::<_, MemberRow>(&sql);
        for endpoint in endpoints {
            query = query.bind(endpoint);
        }
        query
            .fetch_all(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))
    }

    pub async fn update_member(&self, member: &MemberRow) -> Result<bool, Error> {
        let done = sqlx::query("UPDATE members SET display_name = $2, email = $3, updated_at = $4 WHERE member_id = $1")
            .bind(&member.member_id)
            .bind(&member.display_name)
            .bind(&member.email)
            .bind(member.updated_at)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the member and, through the schema's cascades, their grants, tokens,
    /// consent requests, login links and personal access tokens.
    pub async fn delete_member(&self, member_id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM members WHERE member_id = $1")
            .bind(member_id)
            .execute(self.db.pool())
            .await
            .map_err(|e| Error::internal(&e))?;
        Ok(done.rows_affected() == 1)
    }
}
