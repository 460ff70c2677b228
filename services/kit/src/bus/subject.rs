//! Subjects: what an event is about, in the shapes of DESIGN.md's "Events on NATS", and
//! the rules every subject, pattern and name on the bus follows.
//!
//! A [`Subject`] never carries the bus prefix: callers build one from its parts and hand
//! the bus its `Display` form (`app1.conv.c1.msg`), and read an incoming event's subject
//! back with `FromStr` to route it by its kind. The bus roots subjects under its
//! [`Prefix`] on the wire (`palaver.app1.conv.c1.msg`, `PALAVER_BUS_PREFIX`) and strips
//! it from what it delivers.

use std::fmt;
use std::str::FromStr;

use super::BusError;

/// A subject of Palaver's events, without the bus prefix.
///
/// ```
/// use palaver_kit::bus::{ConversationKind, MemberKind, Subject};
///
/// let msg = Subject::conversation("app1", "c1", ConversationKind::Msg);
/// assert_eq!(msg.to_string(), "app1.conv.c1.msg");
/// assert_eq!(Subject::member("app1", "m1", MemberKind::Inbox).to_string(), "app1.member.m1.inbox");
/// assert_eq!(Subject::presence("app1", "m1").to_string(), "app1.presence.m1");
/// assert_eq!("app1.conv.c1.msg".parse::<Subject>(), Ok(msg));
/// ```
///
/// Its parts are written as given: they must be subject tokens (no `.`, `*`, `>` or
/// whitespace), as Palaver's ids are; the bus refuses a subject that is not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `<app>.presence.<member>`: a member's status changed (core NATS only).
    Presence { app: String, member: String },
    /// `<app>.conv.<conversation>.msg|state|typing`: a conversation's messages, state
    /// and typing.
    Conversation {
        app: String,
        conversation: String,
        kind: ConversationKind,
    },
    /// `<app>.member.<member>.inbox|permission`: what a member hears of new chats and
    /// offline messages, and changes of their permission.
    Member {
        app: String,
        member: String,
        kind: MemberKind,
    },
}

/// The last token of a conversation's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationKind {
    /// `msg`: a message created, edited or deleted (durable).
    Msg,
    /// `state`: opened, closed, read up to (durable).
    State,
    /// `typing`: someone is typing (core NATS only).
    Typing,
}

/// The last token of a member's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    /// `inbox`: a conversation for this member started, or an offline message arrived
    /// (durable).
    Inbox,
    /// `permission`: the member's permission token was granted or revoked (durable).
    Permission,
}

impl ConversationKind {
    /// Every kind, in the order a conversation's subjects are watched.
    pub const ALL: [ConversationKind; 3] = [
        ConversationKind::Msg,
        ConversationKind::State,
        ConversationKind::Typing,
    ];

    /// The token: `msg`, `state` or `typing`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Msg => "msg",
            ConversationKind::State => "state",
            ConversationKind::Typing => "typing",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        ConversationKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == token)
    }

    fn is_durable(self) -> bool {
        self != ConversationKind::Typing
    }
}

impl MemberKind {
    /// Every kind.
    pub const ALL: [MemberKind; 2] = [MemberKind::Inbox, MemberKind::Permission];

    /// The token: `inbox` or `permission`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::Inbox => "inbox",
            MemberKind::Permission => "permission",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        MemberKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == token)
    }
}

impl Subject {
    /// `<app>.presence.<member>`.
    pub fn presence(app: impl Into<String>, member: impl Into<String>) -> Subject {
        Subject::Presence {
            app: app.into(),
            member: member.into(),
        }
    }

    /// `<app>.conv.<conversation>.<kind>`.
    pub fn conversation(
        app: impl Into<String>,
        conversation: impl Into<String>,
        kind: ConversationKind,
    ) -> Subject {
        Subject::Conversation {
            app: app.into(),
            conversation: conversation.into(),
            kind,
        }
    }

    /// `<app>.member.<member>.<kind>`.
    pub fn member(app: impl Into<String>, member: impl Into<String>, kind: MemberKind) -> Subject {
        Subject::Member {
            app: app.into(),
            member: member.into(),
            kind,
        }
    }

    /// The app the event belongs to.
    pub fn app(&self) -> &str {
        match self {
            Subject::Presence { app, .. }
            | Subject::Conversation { app, .. }
            | Subject::Member { app, .. } => app,
        }
    }

    /// Whether its events are durable: stored in the JetStream stream and published with
    /// [`EventBus::publish_durable`](super::EventBus::publish_durable).
    pub fn is_durable(&self) -> bool {
        match self {
            Subject::Presence { .. } => false,
            Subject::Conversation { kind, .. } => kind.is_durable(),
            Subject::Member { .. } => true,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Presence { app, member } => write!(f, "{app}.presence.{member}"),
            Subject::Conversation {
                app,
                conversation,
                kind,
            } => write!(f, "{app}.conv.{conversation}.{}", kind.as_str()),
            Subject::Member { app, member, kind } => {
                write!(f, "{app}.member.{member}.{}", kind.as_str())
            }
        }
    }
}

/// A string that is not a [`Subject`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an event subject (<app>.presence.<member>, <app>.conv.<conversation>.msg|state|typing or <app>.member.<member>.inbox|permission)"
)]
pub struct SubjectError(pub String);

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(subject: &str) -> Result<Subject, SubjectError> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let parsed = if tokens.iter().all(|token| is_token(token)) {
            match tokens[..] {
                [app, "presence", member] => Some(Subject::presence(app, member)),
                [app, "conv", conversation, kind] => ConversationKind::from_token(kind)
                    .map(|kind| Subject::conversation(app, conversation, kind)),
                [app, "member", member, kind] => {
                    MemberKind::from_token(kind).map(|kind| Subject::member(app, member, kind))
                }
                _ => None,
            }
        } else {
            None
        };
        parsed.ok_or_else(|| SubjectError(subject.to_owned()))
    }
}

/// The subjects (after the prefix) of durable events, which the JetStream stream stores:
/// the durable shapes with `*` for the app and the id. Exact shapes rather than `>`, so
/// that core-only events beside them (typing on `<app>.conv.<id>.typing`) are not stored.
pub(super) fn durable_patterns() -> Vec<String> {
    let conversations = ConversationKind::ALL
        .into_iter()
        .map(|kind| Subject::conversation("*", "*", kind));
    let members = MemberKind::ALL
        .into_iter()
        .map(|kind| Subject::member("*", "*", kind));
    conversations
        .chain(members)
        .filter(Subject::is_durable)
        .map(|subject| subject.to_string())
        .collect()
}

/// The prefix a bus roots its subjects under on the wire: one token of letters, digits,
/// '-' or '_'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Prefix(String);

impl Prefix {
    pub(super) fn new(prefix: &str) -> Result<Prefix, BusError> {
        check_prefix(prefix)?;
        Ok(Prefix(prefix.to_owned()))
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// `subject` (or a pattern) as it goes on the wire: `<prefix>.<subject>`.
    pub(super) fn root(&self, subject: &str) -> String {
        format!("{}.{subject}", self.0)
    }

    /// A subject from the wire without this prefix.
    pub(super) fn strip<'a>(&self, wire: &'a str) -> &'a str {
        wire.get(self.0.len() + 1..).unwrap_or_default()
    }
}

/// Whether `subject` matches `pattern`, where the pattern's `*` token matches any one
/// token and a final `>` matches one or more tokens (NATS semantics).
pub(super) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// A subject token: not empty, without wildcards or whitespace.
fn is_token(token: &str) -> bool {
    !token.is_empty() && !token.contains(|c: char| c == '*' || c == '>' || c.is_whitespace())
}

/// Checks a subject given by a caller: dot-separated non-empty tokens without
/// whitespace; with `wildcards`, a token may be `*`, and the last one `>`.
pub(super) fn check_subject(subject: &str, wildcards: bool) -> Result<(), BusError> {
    let last = subject.split('.').count() - 1;
    let valid = subject
        .split('.')
        .enumerate()
        .all(|(i, token)| match token {
            "*" => wildcards,
            ">" => wildcards && i == last,
            _ => is_token(token),
        });
    if valid {
        Ok(())
    } else {
        Err(BusError::InvalidSubject(subject.to_owned()))
    }
}

/// Checks the subject of a durable publish: a valid subject of a durable [`Subject`].
pub(super) fn check_durable_subject(subject: &str) -> Result<(), BusError> {
    check_subject(subject, false)?;
    match subject.parse::<Subject>() {
        Ok(parsed) if parsed.is_durable() => Ok(()),
        _ => Err(BusError::NotDurable(subject.to_owned())),
    }
}

/// Checks the name of a durable consumer or a journal.
pub(super) fn check_name(name: &str) -> Result<(), BusError> {
    check_prefix(name).map_err(|_| BusError::InvalidName(name.to_owned()))
}

/// Checks a bus prefix: one token of letters, digits, '-' or '_'.
pub(super) fn check_prefix(prefix: &str) -> Result<(), BusError> {
    if !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(BusError::InvalidPrefix(prefix.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        let cases = [
            ("a.b.c", "a.b.c", true),
            ("a.b.c", "a.b", false),
            ("a.b", "a.b.c", false),
            ("a.*.c", "a.x.c", true),
            ("a.*.c", "a.x.y.c", false),
            ("a.*", "a", false),
            ("*.*", "a.b", true),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c.d", true),
            ("a.>", "a", false),
            (">", "a", true),
            ("a.*.>", "a.b", false),
            ("a.*.>", "a.b.c", true),
            ("a.b", "a.bc", false),
        ];
        for (pattern, subject, expected) in cases {
            assert_eq!(
                subject_matches(pattern, subject),
                expected,
                "{pattern} ~ {subject}"
            );
        }
    }

    #[test]
    fn subjects_are_checked() {
        for valid in ["a", "a.b.c", "app-1.conv.c_1.msg"] {
            assert!(check_subject(valid, false).is_ok(), "{valid}");
        }
        for invalid in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a*.b"] {
            assert!(
                matches!(
                    check_subject(invalid, false),
                    Err(BusError::InvalidSubject(_))
                ),
                "{invalid}"
            );
        }
        for pattern in ["a.*", "*.b.>", ">"] {
            assert!(check_subject(pattern, true).is_ok(), "{pattern}");
        }
        for invalid in ["a.>.b", "a.b>", "a.**"] {
            assert!(check_subject(invalid, true).is_err(), "{invalid}");
        }
        assert!(check_durable_subject("app1.conv.c1.msg").is_ok());
        assert!(check_durable_subject("app1.conv.c1.state").is_ok());
        assert!(check_durable_subject("app1.member.m1.inbox").is_ok());
        assert!(check_durable_subject("app1.member.m1.permission").is_ok());
        for core_only in [
            "app1.presence.m1",
            "app1.conv.c1.typing",
            "app1.member.m1.x",
        ] {
            assert!(
                matches!(
                    check_durable_subject(core_only),
                    Err(BusError::NotDurable(_))
                ),
                "{core_only}"
            );
        }
        assert!(check_prefix("t1-a_b").is_ok());
        assert!(
            check_prefix("a.b").is_err()
                && check_prefix("").is_err()
                && check_prefix("a*").is_err()
        );
    }

    #[test]
    fn subjects_go_round_trip() {
        let mut subjects = vec![Subject::presence("app_1", "m_1")];
        subjects
            .extend(ConversationKind::ALL.map(|kind| Subject::conversation("app_1", "c_1", kind)));
        subjects.extend(MemberKind::ALL.map(|kind| Subject::member("app_1", "m_1", kind)));
        let written: Vec<String> = subjects.iter().map(Subject::to_string).collect();
        assert_eq!(
            written,
            [
                "app_1.presence.m_1",
                "app_1.conv.c_1.msg",
                "app_1.conv.c_1.state",
                "app_1.conv.c_1.typing",
                "app_1.member.m_1.inbox",
                "app_1.member.m_1.permission",
            ]
        );
        for (subject, text) in subjects.iter().zip(&written) {
            assert_eq!(text.parse::<Subject>().as_ref(), Ok(subject), "{text}");
            assert_eq!(subject.app(), "app_1");
            assert!(check_subject(text, false).is_ok(), "{text}");
        }
        let durable: Vec<bool> = subjects.iter().map(Subject::is_durable).collect();
        assert_eq!(durable, [false, true, true, false, true, true]);
    }

    #[test]
    fn other_strings_are_not_subjects() {
        for text in [
            "",
            "app1",
            "app1.presence",
            "app1.presence.m1.x",
            "app1.conv.c1",
            "app1.conv.c1.msg.x",
            "app1.conv.c1.read",
            "app1.member.m1.x",
            "app1.member.m1",
            "app1.journal.hooks.app1",
            "app1.conv..msg",
            ".conv.c1.msg",
            "app1.conv.*.msg",
            "app1.member.>",
            "app1.presence.m 1",
            "app1.Conv.c1.msg",
        ] {
            assert_eq!(
                text.parse::<Subject>(),
                Err(SubjectError(text.to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_stream_stores_the_durable_shapes() {
        assert_eq!(
            durable_patterns(),
            [
                "*.conv.*.msg",
                "*.conv.*.state",
                "*.member.*.inbox",
                "*.member.*.permission"
            ]
        );
    }

    #[test]
    fn a_prefix_roots_and_strips() {
        let prefix = Prefix::new("t1-a_b").unwrap();
        let wire = prefix.root("app1.presence.m1");
        assert_eq!(wire, "t1-a_b.app1.presence.m1");
        assert_eq!(prefix.strip(&wire), "app1.presence.m1");
        assert!(matches!(
            Prefix::new("a.b"),
            Err(BusError::InvalidPrefix(_))
        ));
    }
}
