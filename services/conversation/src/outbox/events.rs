//! The events a change writes to the outbox: their subjects (without the bus prefix),
//! streams (what their order is kept within) and protobuf payloads from `events.proto`.

use palaver_proto::events::v1 as pb;
use prost::Message as _;

use crate::domain::{Conversation, Message, OfflineMessage, Sender, new_id};
use crate::proto;

/// An event to write in the same transaction as the change it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Also the `Nats-Msg-Id`, so JetStream drops a publish the relay repeats.
    pub event_id: String,
    /// Events of one stream are published in the order they were committed.
    pub stream: String,
    pub subject: String,
    pub payload: Vec<u8>,
    /// The W3C `traceparent` of the request that caused the event, so that publishing
    /// it continues that trace.
    pub traceparent: Option<String>,
}

/// The W3C `traceparent` of the current span; `None` outside a traced span.
pub fn current_traceparent() -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    palaver_kit::telemetry::inject(&mut carrier);
    carrier.remove("traceparent")
}

fn event_id() -> String {
    new_id("ev_", 24)
}

fn conversation_subject(conversation: &Conversation, kind: &str) -> String {
    format!(
        "{}.conv.{}.{kind}",
        conversation.app_id, conversation.conversation_id
    )
}

fn inbox_subject(app_id: &str, member_id: &str) -> String {
    format!("{app_id}.member.{member_id}.inbox")
}

fn state_event(
    conversation: &Conversation,
    at: i64,
    kind: pb::conversation_state_event::Kind,
) -> OutboxEvent {
    let event_id = event_id();
    let payload = pb::ConversationStateEvent {
        event_id: event_id.clone(),
        at: Some(proto::timestamp(at)),
        conversation_id: conversation.conversation_id.clone(),
        kind: Some(kind),
    };
    OutboxEvent {
        event_id,
        stream: conversation.conversation_id.clone(),
        subject: conversation_subject(conversation, "state"),
        payload: payload.encode_to_vec(),
        traceparent: current_traceparent(),
    }
}

/// `<app>.conv.<id>.msg`: a message was created, by a request traced as `traceparent`
/// (messages are stored away from their requests, by the group commit).
pub fn message_created(
    conversation: &Conversation,
    message: &Message,
    at: i64,
    traceparent: Option<String>,
) -> OutboxEvent {
    let event_id = event_id();
    let payload = pb::MessageEvent {
        event_id: event_id.clone(),
        at: Some(proto::timestamp(at)),
        kind: Some(pb::message_event::Kind::Created(proto::message(message))),
    };
    OutboxEvent {
        event_id,
        stream: conversation.conversation_id.clone(),
        subject: conversation_subject(conversation, "msg"),
        payload: payload.encode_to_vec(),
        traceparent,
    }
}

/// `<app>.conv.<id>.state`: the conversation opened.
pub fn opened(conversation: &Conversation, at: i64) -> OutboxEvent {
    state_event(
        conversation,
        at,
        pb::conversation_state_event::Kind::Opened(proto::conversation(conversation, 0)),
    )
}

/// `<app>.conv.<id>.state`: the conversation closed.
pub fn closed(conversation: &Conversation, at: i64) -> OutboxEvent {
    state_event(
        conversation,
        at,
        pb::conversation_state_event::Kind::Closed(proto::conversation(conversation, 0)),
    )
}

/// `<app>.conv.<id>.state`: one side has read up to `seq`.
pub fn read(conversation: &Conversation, by: Sender, seq: i64, at: i64) -> OutboxEvent {
    state_event(
        conversation,
        at,
        pb::conversation_state_event::Kind::Read(pb::ReadUpTo {
            seq: seq as u64,
            by: proto::sender(by) as i32,
        }),
    )
}

/// `<app>.member.<member>.inbox`: a conversation with the member started. In the
/// conversation's stream, so it is published after nothing of the conversation it
/// announces.
pub fn conversation_started(conversation: &Conversation, at: i64) -> OutboxEvent {
    let event_id = event_id();
    let payload = pb::InboxEvent {
        event_id: event_id.clone(),
        at: Some(proto::timestamp(at)),
        member_id: conversation.member_id.clone(),
        kind: Some(pb::inbox_event::Kind::ConversationStarted(
            proto::conversation(conversation, 0),
        )),
    };
    OutboxEvent {
        event_id,
        stream: conversation.conversation_id.clone(),
        subject: inbox_subject(&conversation.app_id, &conversation.member_id),
        payload: payload.encode_to_vec(),
        traceparent: current_traceparent(),
    }
}

/// `<app>.member.<member>.inbox`: an offline message arrived (a stream of its own).
pub fn offline_message(message: &OfflineMessage, at: i64) -> OutboxEvent {
    let event_id = event_id();
    let payload = pb::InboxEvent {
        event_id: event_id.clone(),
        at: Some(proto::timestamp(at)),
        member_id: message.member_id.clone(),
        kind: Some(pb::inbox_event::Kind::OfflineMessage(
            proto::offline_message(message),
        )),
    };
    OutboxEvent {
        event_id,
        stream: message.offline_message_id.clone(),
        subject: inbox_subject(&message.app_id, &message.member_id),
        payload: payload.encode_to_vec(),
        traceparent: current_traceparent(),
    }
}
