//! JSON representations that several API areas (and the WebSocket's frames) share, and
//! their conversion from the services' messages. Times are RFC 3339 strings in UTC.

use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::identity::v1 as pb;
use palaver_proto::presence::v1 as presence;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::limits::LimitOverrides;
use crate::domain::status::Status;

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

/// The visitor of a conversation.
#[derive(Serialize, ToSchema)]
pub struct VisitorView {
    pub id: String,
    pub display_name: String,
    /// True when the CMS vouched for the visitor.
    pub verified: bool,
    /// The CMS's user id of a verified visitor.
    pub external_id: Option<String>,
    /// Set when a verified visitor is also a member of the app.
    pub member_id: Option<String>,
}

impl From<conv::Participant> for VisitorView {
    fn from(p: conv::Participant) -> Self {
        VisitorView {
            id: p.visitor_id,
            display_name: p.display_name,
            verified: p.verified,
            external_id: non_empty(p.external_id),
            member_id: non_empty(p.member_id),
        }
    }
}

/// A conversation between a visitor and a member.
#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    id: String,
    endpoint: String,
    /// Palaver's id of the member.
    member_id: String,
    /// The member's display name when the conversation started.
    member_display_name: String,
    visitor: VisitorView,
    /// `open` or `closed`.
    state: String,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    closed_at: Option<String>,
    /// The sequence number of the newest message (0 when there is none).
    last_seq: u64,
    /// For a member listing their own: messages after their read mark.
    unread: u64,
    member_read_seq: u64,
    visitor_read_seq: u64,
    /// Whether the member has blocked this visitor (they cannot start new chats).
    visitor_blocked: bool,
}

/// The wire name of a conversation's state.
pub fn state_name(state: conv::ConversationState) -> &'static str {
    match state {
        conv::ConversationState::Closed => "closed",
        conv::ConversationState::Open | conv::ConversationState::Unspecified => "open",
    }
}

impl From<conv::Conversation> for ConversationView {
    fn from(c: conv::Conversation) -> Self {
        ConversationView {
            state: state_name(c.state()).to_owned(),
            id: c.id,
            endpoint: c.endpoint,
            member_id: c.member_id,
            member_display_name: c.member_display_name,
            visitor: c.visitor.unwrap_or_default().into(),
            started_at: timestamp(c.started_at),
            closed_at: timestamp(c.closed_at),
            last_seq: c.last_seq,
            unread: c.unread,
            member_read_seq: c.member_read_seq,
            visitor_read_seq: c.visitor_read_seq,
            visitor_blocked: c.visitor_blocked,
        }
    }
}

/// One page of conversations, newest first.
#[derive(Serialize, ToSchema)]
pub struct ConversationPage {
    conversations: Vec<ConversationView>,
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
}

impl From<conv::ListConversationsResponse> for ConversationPage {
    fn from(page: conv::ListConversationsResponse) -> Self {
        ConversationPage {
            conversations: page.conversations.into_iter().map(Into::into).collect(),
            next_cursor: non_empty(page.next_cursor),
        }
    }
}

/// The wire name of a message's sender.
pub fn sender_name(sender: conv::Sender) -> &'static str {
    match sender {
        conv::Sender::Member => "member",
        conv::Sender::Visitor | conv::Sender::Unspecified => "visitor",
    }
}

/// A status from presence as visitors see it; presence never answers an unspecified
/// one, which would read offline.
pub fn status_of(status: presence::Status) -> Status {
    Status::try_from(status).unwrap_or(Status::Offline)
}

/// The overrides an app's stored limits hold (0: the deployment's default).
pub fn overrides(limits: Option<pb::Limits>) -> LimitOverrides {
    let limits = limits.unwrap_or_default();
    LimitOverrides {
        sessions_per_ip_per_minute: limits.sessions_per_ip_per_minute,
        messages_per_second: limits.messages_per_second,
        message_burst: limits.message_burst,
        offline_messages_per_ip_per_hour: limits.offline_messages_per_ip_per_hour,
        open_conversations_per_visitor: limits.open_conversations_per_visitor,
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
