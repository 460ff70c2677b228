//! What the gateway publishes on the bus itself, beside what the services publish:
//! typing, which only the sockets watching the conversation hear (core NATS, never
//! stored), and permission changes, stored for the `member.permission_changed` webhook.
//!
//! Identity has no bus, so each permission change the gateway makes there (a code
//! exchanged, a token refreshed, a permission revoked, a member erased) is published
//! here as a durable `PermissionChanged` event once identity confirmed it. A permission
//! that expires by time publishes nothing.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use palaver_kit::bus::{BusError, ConversationKind, EventBus, MemberKind, Subject};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::events::v1 as ev;
use palaver_proto::identity::v1 as pb;
use prost::Message as _;

use crate::http::model::PermissionStatus;

/// Publishes the gateway's own events.
pub struct Publisher {
    bus: Arc<dyn EventBus>,
}

impl Publisher {
    /// A publisher on `bus`.
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Publisher { bus }
    }

    /// Tells the sockets watching the conversation `conversation` of `app_id` that
    /// `from` is typing in it.
    pub async fn typing(
        &self,
        app_id: &str,
        conversation: &str,
        from: conv::Sender,
    ) -> Result<(), BusError> {
        let event = ev::ConversationStateEvent {
            conversation_id: conversation.to_owned(),
            kind: Some(ev::conversation_state_event::Kind::Typing(ev::Typing {
                from: from.into(),
            })),
            ..ev::ConversationStateEvent::default()
        };
        let subject = Subject::conversation(app_id, conversation, ConversationKind::Typing);
        self.bus
            .publish(&subject.to_string(), Bytes::from(event.encode_to_vec()))
            .await
    }

    /// Publishes that `member`'s permission changed to `permission`, for `reason`
    /// (`granted`, `refreshed`, `revoked` or `member_deleted`). The change is made
    /// whatever happens here, so a failure is logged rather than answered.
    pub async fn permission_changed(
        &self,
        member: &pb::Member,
        permission: &pb::Permission,
        reason: &str,
    ) {
        let status = match PermissionStatus::of(permission) {
            Ok(status) => status.as_str(),
            Err(error) => return unpublished(&member.app_id, &member.external_id, &error),
        };
        let event_id = palaver_kit::bus::new_event_id();
        let event = ev::PermissionChanged {
            event_id: event_id.clone(),
            at: Some(SystemTime::now().into()),
            app_id: member.app_id.clone(),
            member_id: member.member_id.clone(),
            external_id: member.external_id.clone(),
            endpoint: if permission.endpoint.is_empty() {
                member.endpoint.clone()
            } else {
                permission.endpoint.clone()
            },
            status: status.to_owned(),
            expires_at: permission.expires_at,
            reason: reason.to_owned(),
        };
        let subject = Subject::member(&member.app_id, &member.member_id, MemberKind::Permission);
        if let Err(error) = self
            .bus
            .publish_durable(
                &subject.to_string(),
                &event_id,
                event.encode_to_vec().into(),
            )
            .await
        {
            unpublished(&member.app_id, &member.external_id, &error);
        }
    }
}

/// Logs a permission change identity made that cannot be published.
pub fn unpublished(app_id: &str, external_id: &str, error: &dyn std::fmt::Display) {
    tracing::error!(%error, app_id, external_id, "a permission change was made but cannot be published");
}
