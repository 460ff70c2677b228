//! The bus subjects the gateway publishes on, watches and tells events apart by
//! (DESIGN.md, "Events on NATS"), named without the bus prefix:
//!
//! | subject | what |
//! | --- | --- |
//! | `<app>.presence.<member>` | a member's status changed |
//! | `<app>.conv.<conversation>.msg` | a message created, edited or deleted |
//! | `<app>.conv.<conversation>.state` | a conversation opened, closed, read up to |
//! | `<app>.conv.<conversation>.typing` | someone is typing (core NATS only) |
//! | `<app>.member.<member>.inbox` | a conversation started with the member, an offline message |
//! | `<app>.member.<member>.permission` | the member's permission changed |
//!
//! Every subject the gateway uses is made and read here, nowhere else.

const PRESENCE: &str = "presence";
const CONVERSATION: &str = "conv";
const MEMBER: &str = "member";
const INBOX: &str = "inbox";
const PERMISSION: &str = "permission";

/// One of a conversation's three subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationSubject {
    /// Messages created, edited or deleted.
    Messages,
    /// Opened, closed, read up to.
    State,
    /// Typing.
    Typing,
}

impl ConversationSubject {
    /// The three, which a socket that may see the conversation watches.
    pub const ALL: [ConversationSubject; 3] = [
        ConversationSubject::Messages,
        ConversationSubject::State,
        ConversationSubject::Typing,
    ];

    /// The subject's last token.
    fn leaf(self) -> &'static str {
        match self {
            ConversationSubject::Messages => "msg",
            ConversationSubject::State => "state",
            ConversationSubject::Typing => "typing",
        }
    }
}

/// What the events on a subject are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// A member's presence.
    Presence,
    /// One of a conversation's subjects.
    Conversation(ConversationSubject),
    /// A member's inbox.
    Inbox,
    /// A member's permission.
    Permission,
}

/// `<app>.presence.<member>`.
pub fn presence(app: &str, member: &str) -> String {
    format!("{app}.{PRESENCE}.{member}")
}

/// `<app>.conv.<conversation>.msg`, `.state` or `.typing`.
pub fn conversation(app: &str, conversation: &str, subject: ConversationSubject) -> String {
    format!("{app}.{CONVERSATION}.{conversation}.{}", subject.leaf())
}

/// `<app>.member.<member>.inbox`.
pub fn inbox(app: &str, member: &str) -> String {
    format!("{app}.{MEMBER}.{member}.{INBOX}")
}

/// `<app>.member.<member>.permission`.
pub fn permission(app: &str, member: &str) -> String {
    format!("{app}.{MEMBER}.{member}.{PERMISSION}")
}

/// The app and the topic of `subject`; `None` for a subject of any other shape.
pub fn topic(subject: &str) -> Option<(&str, Topic)> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let topic = match tokens[..] {
        [_, PRESENCE, _] => Topic::Presence,
        [_, CONVERSATION, _, leaf] => Topic::Conversation(
            ConversationSubject::ALL
                .into_iter()
                .find(|subject| subject.leaf() == leaf)?,
        ),
        [_, MEMBER, _, INBOX] => Topic::Inbox,
        [_, MEMBER, _, PERMISSION] => Topic::Permission,
        _ => return None,
    };
    Some((tokens[0], topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_made_is_read_back() {
        let made = [
            (
                presence("app_1", "mem_1"),
                "app_1.presence.mem_1",
                Topic::Presence,
            ),
            (
                conversation("app_1", "c1", ConversationSubject::Messages),
                "app_1.conv.c1.msg",
                Topic::Conversation(ConversationSubject::Messages),
            ),
            (
                conversation("app_1", "c1", ConversationSubject::State),
                "app_1.conv.c1.state",
                Topic::Conversation(ConversationSubject::State),
            ),
            (
                conversation("app_1", "c1", ConversationSubject::Typing),
                "app_1.conv.c1.typing",
                Topic::Conversation(ConversationSubject::Typing),
            ),
            (
                inbox("app_1", "mem_1"),
                "app_1.member.mem_1.inbox",
                Topic::Inbox,
            ),
            (
                permission("app_1", "mem_1"),
                "app_1.member.mem_1.permission",
                Topic::Permission,
            ),
        ];
        for (subject, expected, read) in made {
            assert_eq!(subject, expected);
            assert_eq!(topic(&subject), Some(("app_1", read)), "{subject}");
        }
    }

    #[test]
    fn subjects_of_other_shapes_have_no_topic() {
        for other in [
            "app_1",
            "app_1.presence",
            "app_1.presence.mem_1.extra",
            "app_1.conv.c1",
            "app_1.conv.c1.edited",
            "app_1.member.mem_1.outbox",
            "app_1.other.x.inbox",
        ] {
            assert_eq!(topic(other), None, "{other}");
        }
    }
}
