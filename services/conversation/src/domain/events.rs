//! Which events a change emits, built from the model: their subjects (without the bus
//! prefix) and streams (what their order is kept within). How an event is encoded for
//! the bus is not decided here: the store writes each event through the [`Encode`]
//! function it was given (protobuf, in `crate::proto`).

use palaver_kit::bus::{ConversationKind, MemberKind, Subject};
use palaver_kit::telemetry::current_traceparent;

use crate::model::{Conversation, Message, OfflineMessage, Sender};

/// Encodes `event`, under its id `event_id`, as the bytes the outbox keeps and the bus
/// carries.
pub type Encode = fn(event_id: &str, event: &Event) -> Vec<u8>;

/// One event of a change, to be written in the change's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// When the change happened (Unix milliseconds).
    pub at: i64,
    /// The W3C `traceparent` of the request that caused the change, so that publishing
    /// the event continues that trace.
    pub traceparent: Option<String>,
}

/// What an [`Event`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `<app>.conv.<id>.state`: the conversation opened.
    Opened(Conversation),
    /// `<app>.conv.<id>.state`: the conversation closed.
    Closed(Conversation),
    /// `<app>.conv.<id>.state`: one side has read up to `seq`.
    Read {
        conversation: Conversation,
        by: Sender,
        seq: i64,
    },
    /// `<app>.member.<member>.inbox`: a conversation with the member started.
    ConversationStarted(Conversation),
    /// `<app>.conv.<id>.msg`: a message of the app's conversation was created.
    MessageCreated { app_id: String, message: Message },
    /// `<app>.member.<member>.inbox`: an offline message arrived.
    OfflineMessage(OfflineMessage),
}

impl Event {
    fn now(kind: EventKind, at: i64) -> Event {
        Event {
            kind,
            at,
            traceparent: current_traceparent(),
        }
    }

    /// The stream the event is ordered in: its conversation, or an offline message's
    /// own.
    pub fn stream(&self) -> &str {
        match &self.kind {
            EventKind::Opened(c)
            | EventKind::Closed(c)
            | EventKind::Read {
                conversation: c, ..
            }
            | EventKind::ConversationStarted(c) => &c.conversation_id,
            EventKind::MessageCreated { message, .. } => &message.conversation_id,
            EventKind::OfflineMessage(m) => &m.offline_message_id,
        }
    }

    /// The subject it is published on.
    pub fn subject(&self) -> Subject {
        match &self.kind {
            EventKind::Opened(c)
            | EventKind::Closed(c)
            | EventKind::Read {
                conversation: c, ..
            } => Subject::conversation(&c.app_id, &c.conversation_id, ConversationKind::State),
            EventKind::MessageCreated { app_id, message } => {
                Subject::conversation(app_id, &message.conversation_id, ConversationKind::Msg)
            }
            EventKind::ConversationStarted(c) => {
                Subject::member(&c.app_id, &c.member_id, MemberKind::Inbox)
            }
            EventKind::OfflineMessage(m) => {
                Subject::member(&m.app_id, &m.member_id, MemberKind::Inbox)
            }
        }
    }
}

/// A conversation started: it opened, and its member's inbox hears of it. Both in the
/// conversation's stream, so the announcement is published after nothing of the
/// conversation it announces.
pub fn started(conversation: &Conversation, at: i64) -> [Event; 2] {
    [
        Event::now(EventKind::Opened(conversation.clone()), at),
        Event::now(EventKind::ConversationStarted(conversation.clone()), at),
    ]
}

/// A conversation closed.
pub fn closed(conversation: &Conversation, at: i64) -> Event {
    Event::now(EventKind::Closed(conversation.clone()), at)
}

/// One side has read up to `seq`.
pub fn read(conversation: &Conversation, by: Sender, seq: i64, at: i64) -> Event {
    Event::now(
        EventKind::Read {
            conversation: conversation.clone(),
            by,
            seq,
        },
        at,
    )
}

/// A message was created, by a request traced as `traceparent` (messages are stored
/// away from their requests, by the group commit).
pub fn message_created(
    conversation: &Conversation,
    message: &Message,
    at: i64,
    traceparent: Option<String>,
) -> Event {
    Event {
        kind: EventKind::MessageCreated {
            app_id: conversation.app_id.clone(),
            message: message.clone(),
        },
        at,
        traceparent,
    }
}

/// An offline message arrived (the first and only event of its stream).
pub fn offline_message(message: &OfflineMessage, at: i64) -> Event {
    Event::now(EventKind::OfflineMessage(message.clone()), at)
}
