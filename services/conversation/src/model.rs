//! The conversation service's nouns, the leaf every other module builds on:
//! conversations, messages, offline messages, callers and their role in a conversation,
//! what the store is asked to write and what it answers, and events as the outbox keeps
//! them. Plain values and their own small rules; no SQL, no protobuf.

use palaver_kit::{Error, ErrorCode};

/// Which side of a conversation wrote a message or read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    Visitor,
    Member,
}

impl Sender {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::Visitor => "visitor",
            Sender::Member => "member",
        }
    }

    /// The sender a stored name stands for.
    pub fn parse(value: &str) -> Option<Sender> {
        match value {
            "visitor" => Some(Sender::Visitor),
            "member" => Some(Sender::Member),
            _ => None,
        }
    }
}

/// Whether a conversation takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    Open,
    Closed,
}

impl ConversationState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Open => "open",
            ConversationState::Closed => "closed",
        }
    }
}

/// A visitor as a conversation remembers them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visitor {
    pub visitor_id: String,
    pub display_name: String,
    /// The CMS vouched for them.
    pub verified: bool,
    /// The CMS's user id of a verified visitor; empty otherwise.
    pub external_id: String,
    /// Set when a verified visitor is also a member of the app; empty otherwise.
    pub member_id: String,
}

/// A chat between one visitor and one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub conversation_id: String,
    pub app_id: String,
    pub endpoint: String,
    pub member_id: String,
    pub member_name: String,
    pub visitor: Visitor,
    pub state: ConversationState,
    /// Unix milliseconds.
    pub started_at: i64,
    pub closed_at: Option<i64>,
    /// The newest message's sequence number (0 before the first).
    pub last_seq: i64,
    pub last_activity_at: i64,
    pub member_read_seq: i64,
    pub visitor_read_seq: i64,
}

impl Conversation {
    /// The messages after the read mark of `side`.
    pub fn unread_for(&self, side: Sender) -> i64 {
        let read = match side {
            Sender::Visitor => self.visitor_read_seq,
            Sender::Member => self.member_read_seq,
        };
        (self.last_seq - read).max(0)
    }

    /// Which side `member_id` is on: the conversation's member, or a verified visitor
    /// who is also a member.
    pub fn side_of_member(&self, member_id: &str) -> Option<Sender> {
        if self.member_id == member_id {
            Some(Sender::Member)
        } else if !self.visitor.member_id.is_empty() && self.visitor.member_id == member_id {
            Some(Sender::Visitor)
        } else {
            None
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub conversation_id: String,
    /// 1, 2, 3… within the conversation, without gaps.
    pub seq: i64,
    /// The sender's own id of the message.
    pub client_id: String,
    pub sender: Sender,
    pub text: String,
    /// Unix milliseconds.
    pub sent_at: i64,
}

/// A message left for a member who was offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    pub offline_message_id: String,
    pub app_id: String,
    pub member_id: String,
    pub endpoint: String,
    pub visitor: Visitor,
    pub text: String,
    /// Where the member may answer; may be empty.
    pub email: String,
    /// Unix milliseconds.
    pub sent_at: i64,
}

/// Who is calling, as the gateway learned it from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub app_id: String,
    pub who: Who,
}

/// The person behind a call, or the app itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Visitor(Visitor),
    Member(String),
    /// The CMS, through its API secret: reads anything of its app, changes nothing.
    App,
}

/// What a caller may do in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A participant, on this side.
    Participant(Sender),
    /// The app: read only.
    App,
}

impl Caller {
    /// The caller's role in `conversation`: `not_found` for another app's conversation
    /// (its existence is not revealed), `permission_denied` for one of the same app that
    /// the caller does not take part in.
    pub fn role_in(&self, conversation: &Conversation) -> Result<Role, Error> {
        if self.app_id != conversation.app_id {
            return Err(Error::not_found("no such conversation"));
        }
        let side = match &self.who {
            Who::App => return Ok(Role::App),
            Who::Visitor(visitor) if visitor.visitor_id == conversation.visitor.visitor_id => {
                Some(Sender::Visitor)
            }
            Who::Visitor(_) => None,
            Who::Member(member_id) => conversation.side_of_member(member_id),
        };
        side.map(Role::Participant).ok_or_else(|| {
            Error::new(
                ErrorCode::PermissionDenied,
                "the caller does not take part in this conversation",
            )
        })
    }

    /// The caller's side in `conversation`, refusing the app (which changes nothing).
    pub fn participant_in(&self, conversation: &Conversation) -> Result<Sender, Error> {
        match self.role_in(conversation)? {
            Role::Participant(side) => Ok(side),
            Role::App => Err(Error::new(
                ErrorCode::PermissionDenied,
                "only a participant may change a conversation",
            )),
        }
    }

    /// The visitor behind the call, or `permission_denied`.
    pub fn visitor(&self) -> Result<&Visitor, Error> {
        match &self.who {
            Who::Visitor(visitor) => Ok(visitor),
            _ => Err(Error::new(
                ErrorCode::PermissionDenied,
                "only a visitor may do this",
            )),
        }
    }
}

/// How much an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub conversations: u64,
    pub messages: u64,
    pub offline_messages: u64,
}

/// Which messages of a conversation to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest ones.
    Newest,
    /// Those after this sequence number.
    After(i64),
    /// Those just before this sequence number.
    Before(i64),
}

/// A position in a list ordered by time, newest first: `<unix ms>.<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub id: String,
}

impl Cursor {
    /// The cursor's text form, which [`crate::domain::validate::cursor`] reads back.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at, self.id)
    }
}

/// A conversation with the unread count of whoever asked, and whether its member has
/// blocked its visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub unread: i64,
    pub visitor_blocked: bool,
}

/// A whole conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub conversation: ConversationView,
    pub messages: Vec<Message>,
    pub text: String,
    pub json: String,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    pub messages: u64,
    pub offline_messages: u64,
    pub conversations: u64,
}

/// A conversation to open.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub app_id: String,
    pub endpoint: String,
    pub member_id: String,
    pub member_name: String,
    pub visitor: Visitor,
}

/// What starting a conversation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new conversation.
    Created(Conversation),
    /// The visitor's open conversation with the endpoint, returned instead.
    Existing(Conversation),
}

/// A message to append, as the caller sent it (validated).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: String,
    pub caller: Caller,
    pub client_id: String,
    pub text: String,
    /// The W3C `traceparent` of the sending request, which its event carries on.
    pub traceparent: Option<String>,
}

/// An appended message: new, or stored before under the same client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: Message,
    pub created: bool,
}

/// An event as the outbox keeps it until the relay has published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// Also the `Nats-Msg-Id`, so JetStream drops a publish the relay repeats.
    pub event_id: String,
    /// Events of one stream are published in the order they were committed.
    pub stream: String,
    /// The subject, without the bus prefix.
    pub subject: String,
    /// The encoded event, as the bus carries it.
    pub payload: Vec<u8>,
    /// The order key: strictly increasing within a stream, in commit order.
    pub event_at: i64,
    /// When the change was committed (Unix milliseconds).
    pub created_at: i64,
    /// The W3C `traceparent` of the request that caused the event, so that publishing
    /// it continues that trace.
    pub traceparent: Option<String>,
}
