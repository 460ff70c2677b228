//! Validation of what callers send: message text, client ids, emails, ids, page sizes
//! and cursors. Every failure is an `invalid_argument` naming the field.

use palaver_kit::Error;

use crate::model::Cursor;

/// The longest message or offline message, in characters after trimming.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// The longest client message id.
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// The most items one page returns.
pub const MAX_PAGE: u32 = 200;
/// The page size when the caller asks for none.
pub const DEFAULT_PAGE: u32 = 50;

/// Message text: `\r\n` becomes `\n`, then 1–4,000 characters after trimming, without
/// control characters other than newline and tab.
pub fn text(field: &str, text: &str) -> Result<String, Error> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(
            field,
            format!("must not contain the control character U+{:04X}", c as u32),
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A client message id: 1–64 printable ASCII characters without spaces.
pub fn client_id(value: &str) -> Result<String, Error> {
    if value.is_empty() || value.len() > MAX_CLIENT_ID_CHARS {
        return Err(Error::invalid(
            "client_id",
            format!("must be 1 to {MAX_CLIENT_ID_CHARS} characters"),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "client_id",
            "must be printable ASCII without spaces",
        ));
    }
    Ok(value.to_owned())
}

/// An id Palaver issued (app, member, visitor, conversation, endpoint): ASCII letters,
/// digits, `_` and `-`, at most 64 characters. Ids go into NATS subjects, so
/// nothing else may pass.
pub fn id(field: &str, value: &str) -> Result<String, Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    let valid = value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(Error::invalid(
            field,
            "must be a Palaver id (letters, digits, '_' and '-')",
        ))
    }
}

/// An optional email address: empty, or one `@` between non-empty parts, at most 254
/// characters, without spaces or control characters.
pub fn optional_email(value: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let valid = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(value.to_owned())
    } else {
        Err(Error::invalid("email", "must be an email address"))
    }
}

/// A page size: 0 means [`DEFAULT_PAGE`]; more than [`MAX_PAGE`] is refused.
pub fn page_size(limit: u32) -> Result<u32, Error> {
    match limit {
        0 => Ok(DEFAULT_PAGE),
        1..=MAX_PAGE => Ok(limit),
        _ => Err(Error::invalid(
            "limit",
            format!("must be at most {MAX_PAGE}"),
        )),
    }
}

/// Reads a cursor a previous page handed out; empty means the first page.
pub fn cursor(value: &str) -> Result<Option<Cursor>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("cursor", "is not a cursor this service handed out");
    let (at, id_part) = value.split_once('.').ok_or_else(invalid)?;
    let at = at.parse::<i64>().map_err(|_| invalid())?;
    let id = id("cursor", id_part).map_err(|_| invalid())?;
    Ok(Some(Cursor { at, id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("text", "  hi\r\nthere\t ").unwrap(), "hi\nthere");
        assert!(text("text", " \n\t ").is_err());
        assert!(text("text", &"é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(text("text", &"é".repeat(MAX_TEXT_CHARS + 1)).is_err());
        let padded = format!("  {}  ", "a".repeat(MAX_TEXT_CHARS));
        assert!(text("text", &padded).is_ok(), "spaces around do not count");
        for bad in ["a\u{0}b", "a\rb", "a\u{1b}[31mb", "a\u{7f}"] {
            let error = text("text", bad).unwrap_err();
            assert_eq!(error.violations[0].field, "text", "{bad:?}");
        }
    }

    #[test]
    fn client_ids_are_printable_ascii() {
        assert!(client_id("3f2a-01").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert!(client_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_subject_safe() {
        assert!(id("id", "ce_3k9QvT2x7m").is_ok());
        for bad in ["", "a.b", "a*", "é", "a b", ">"] {
            assert!(id("id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_optional() {
        assert_eq!(optional_email("  ").unwrap(), "");
        assert_eq!(optional_email(" a@b.org ").unwrap(), "a@b.org");
        for bad in ["a", "@b", "a@", "a@b@c", "a b@c"] {
            assert!(optional_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let position = Cursor {
            at: 1_700_000_000_000,
            id: "c_abc".into(),
        };
        assert_eq!(cursor(&position.encode()).unwrap(), Some(position));
        assert_eq!(cursor("").unwrap(), None);
        for bad in ["x", "1", "x.c_a", "1.c.d"] {
            assert!(cursor(bad).is_err(), "{bad:?}");
        }
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE);
        assert!(page_size(MAX_PAGE + 1).is_err());
    }
}
