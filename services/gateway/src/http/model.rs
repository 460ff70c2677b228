//! JSON representations that several API areas share, and their conversion from the
//! identity service's messages. Times are RFC 3339 strings in UTC.

use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use serde::Serialize;
use utoipa::ToSchema;

/// A member of a site: someone who can receive chats.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Member)]
pub struct MemberView {
    /// Palaver's own id of the member.
    member_id: String,
    /// The CMS's user id.
    external_id: String,
    display_name: String,
    email: Option<String>,
    /// The member's chat endpoint (`ce_…`), once they have held a permission token.
    endpoint: Option<String>,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: Option<String>,
}

impl From<pb::Member> for MemberView {
    fn from(member: pb::Member) -> Self {
        MemberView {
            member_id: member.member_id,
            external_id: member.external_id,
            display_name: member.display_name,
            email: non_empty(member.email),
            endpoint: non_empty(member.endpoint),
            created_at: timestamp(member.created_at),
            updated_at: timestamp(member.updated_at),
        }
    }
}

/// Whether the member holds a permission token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionStatus {
    /// Never granted.
    None,
    Valid,
    Expired,
    Revoked,
}

impl PermissionStatus {
    /// The status of `permission`; identity never sends an unspecified one.
    pub fn of(permission: &pb::Permission) -> Result<Self, Error> {
        match pb::PermissionStatus::try_from(permission.status) {
            Ok(pb::PermissionStatus::None) => Ok(PermissionStatus::None),
            Ok(pb::PermissionStatus::Valid) => Ok(PermissionStatus::Valid),
            Ok(pb::PermissionStatus::Expired) => Ok(PermissionStatus::Expired),
            Ok(pb::PermissionStatus::Revoked) => Ok(PermissionStatus::Revoked),
            Ok(pb::PermissionStatus::Unspecified) | Err(_) => Err(Error::new(
                ErrorCode::Internal,
                format!("identity sent permission status {}", permission.status),
            )),
        }
    }

    /// The name the API and the `member.permission_changed` webhook use.
    pub fn as_str(&self) -> &'static str {
        match self {
            PermissionStatus::None => "none",
            PermissionStatus::Valid => "valid",
            PermissionStatus::Expired => "expired",
            PermissionStatus::Revoked => "revoked",
        }
    }
}

/// A member's permission: what the profile checkbox reads.
#[derive(Serialize, ToSchema)]
pub struct Permission {
    status: PermissionStatus,
    /// When the token expires (already 300 s early, as the CMS should treat it).
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// The member's chat endpoint, once they have held a permission token.
    endpoint: Option<String>,
}

impl TryFrom<pb::Permission> for Permission {
    type Error = Error;

    fn try_from(permission: pb::Permission) -> Result<Self, Error> {
        Ok(Permission {
            status: PermissionStatus::of(&permission)?,
            expires_at: timestamp(permission.expires_at),
            endpoint: non_empty(permission.endpoint),
        })
    }
}

/// A proto timestamp as RFC 3339 (`2025-01-31T12:00:00Z`).
pub fn timestamp(timestamp: Option<prost_types::Timestamp>) -> Option<String> {
    timestamp.map(|t| t.to_string())
}

/// `None` for the empty string proto uses for "unset".
pub fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let at = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        };
        assert_eq!(timestamp(Some(at)).as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(timestamp(None), None);
    }
}
