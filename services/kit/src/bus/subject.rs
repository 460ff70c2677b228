//! The rules every subject, pattern and name on the bus follows, and the [`Prefix`] a bus
//! roots subjects under on the wire (`palaver.app1.conv.c1.msg`, `PALAVER_BUS_PREFIX`)
//! and strips from what it delivers.

use super::BusError;

/// Subjects (after the prefix) that durable events may use: the stream's subjects.
/// Exact shapes rather than `>`, so that core-only events beside them (typing on
/// `<app>.conv.<id>.typing`) are not stored.
pub(super) const DURABLE_SUBJECTS: [&str; 4] = [
    "*.conv.*.msg",
    "*.conv.*.state",
    "*.member.*.inbox",
    "*.member.*.permission",
];

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

/// Checks the subject of a durable publish: a valid subject the stream stores.
pub(super) fn check_durable_subject(subject: &str) -> Result<(), BusError> {
    check_subject(subject, false)?;
    if DURABLE_SUBJECTS
        .iter()
        .any(|pattern| subject_matches(pattern, subject))
    {
        Ok(())
    } else {
        Err(BusError::NotDurable(subject.to_owned()))
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
