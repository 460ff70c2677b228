//! Domain values as the protobuf messages of `conversation.proto`, for the gRPC server
//! and the events on NATS.

use palaver_proto::conversation::v1 as pb;

use crate::domain::{Conversation, ConversationState, Message, OfflineMessage, Sender, Visitor};

/// A Unix-milliseconds time as a protobuf timestamp.
pub fn timestamp(unix_ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_ms.div_euclid(1000),
        nanos: (unix_ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn sender(sender: Sender) -> pb::Sender {
    match sender {
        Sender::Visitor => pb::Sender::Visitor,
        Sender::Member => pb::Sender::Member,
    }
}

pub fn participant(visitor: &Visitor) -> pb::Participant {
    pb::Participant {
        visitor_id: visitor.visitor_id.clone(),
        display_name: visitor.display_name.clone(),
        verified: visitor.verified,
        external_id: visitor.external_id.clone(),
        member_id: visitor.member_id.clone(),
    }
}

/// A conversation with `unread` counted for whoever asked (`visitor_blocked` is only
/// looked up for answers, see `grpc`).
pub fn conversation(conversation: &Conversation, unread: i64) -> pb::Conversation {
    let state = match conversation.state {
        ConversationState::Open => pb::ConversationState::Open,
        ConversationState::Closed => pb::ConversationState::Closed,
    };
    pb::Conversation {
        id: conversation.conversation_id.clone(),
        app_id: conversation.app_id.clone(),
        endpoint: conversation.endpoint.clone(),
        member_id: conversation.member_id.clone(),
        visitor: Some(participant(&conversation.visitor)),
        state: state as i32,
        started_at: Some(timestamp(conversation.started_at)),
        closed_at: conversation.closed_at.map(timestamp),
        last_seq: conversation.last_seq as u64,
        unread: unread as u64,
        member_read_seq: conversation.member_read_seq as u64,
        visitor_read_seq: conversation.visitor_read_seq as u64,
        member_display_name: conversation.member_name.clone(),
        visitor_blocked: false,
    }
}

pub fn message(message: &Message) -> pb::Message {
    pb::Message {
        id: message.message_id.clone(),
        conversation_id: message.conversation_id.clone(),
        seq: message.seq as u64,
        client_id: message.client_id.clone(),
        from: sender(message.sender) as i32,
        text: message.text.clone(),
        sent_at: Some(timestamp(message.sent_at)),
    }
}

pub fn offline_message(message: &OfflineMessage) -> pb::OfflineMessage {
    pb::OfflineMessage {
        id: message.offline_message_id.clone(),
        app_id: message.app_id.clone(),
        member_id: message.member_id.clone(),
        endpoint: message.endpoint.clone(),
        visitor: Some(participant(&message.visitor)),
        text: message.text.clone(),
        email: message.email.clone(),
        sent_at: Some(timestamp(message.sent_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(
            timestamp(1_700_000_000_123),
            prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_000_000
            }
        );
    }
}
