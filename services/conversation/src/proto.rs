//! The model as the protobuf messages of `conversation.proto`, for the gRPC server, and
//! events as those of `events.proto`, for the bus ([`encode_event`], the store's
//! encoder).

use palaver_proto::conversation::v1 as pb;
use palaver_proto::events::v1 as events_pb;
use prost::Message as _;

use crate::domain::events::{Event, EventKind};
use crate::model::{Conversation, ConversationState, Message, OfflineMessage, Sender, Visitor};

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

/// `event` as its `events.proto` message, encoded (a [`crate::domain::events::Encode`]).
pub fn encode_event(event_id: &str, event: &Event) -> Vec<u8> {
    use events_pb::conversation_state_event::Kind as State;
    let event_id = event_id.to_owned();
    let at = Some(timestamp(event.at));
    let state = |c: &Conversation, kind: State| events_pb::ConversationStateEvent {
        event_id: event_id.clone(),
        at,
        conversation_id: c.conversation_id.clone(),
        kind: Some(kind),
    };
    match &event.kind {
        EventKind::Opened(c) => state(c, State::Opened(conversation(c, 0))).encode_to_vec(),
        EventKind::Closed(c) => state(c, State::Closed(conversation(c, 0))).encode_to_vec(),
        EventKind::Read {
            conversation: c,
            by,
            seq,
        } => state(
            c,
            State::Read(events_pb::ReadUpTo {
                seq: *seq as u64,
                by: sender(*by) as i32,
            }),
        )
        .encode_to_vec(),
        EventKind::MessageCreated { message: m, .. } => events_pb::MessageEvent {
            event_id,
            at,
            kind: Some(events_pb::message_event::Kind::Created(message(m))),
        }
        .encode_to_vec(),
        EventKind::ConversationStarted(c) => events_pb::InboxEvent {
            event_id,
            at,
            member_id: c.member_id.clone(),
            kind: Some(events_pb::inbox_event::Kind::ConversationStarted(
                conversation(c, 0),
            )),
        }
        .encode_to_vec(),
        EventKind::OfflineMessage(m) => events_pb::InboxEvent {
            event_id,
            at,
            member_id: m.member_id.clone(),
            kind: Some(events_pb::inbox_event::Kind::OfflineMessage(
                offline_message(m),
            )),
        }
        .encode_to_vec(),
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
