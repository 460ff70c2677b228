//! Validation of the values apps, members and visitors send.

use palaver_kit::Error;
use url::Url;

/// The longest display name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 64;

/// A display name: 1–64 characters after trimming, without control characters or
/// bidirectional overrides and isolates (which let a name disguise itself).
pub fn display_name(field: &str, name: &str) -> Result<String, Error> {
    bounded_name(field, name, MAX_NAME_CHARS)
}

/// An app name: the rules of a display name, up to 100 characters.
pub fn app_name(name: &str) -> Result<String, Error> {
    bounded_name("name", name, 100)
}

fn bounded_name(field: &str, name: &str, max_chars: usize) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.chars().count() > max_chars {
        return Err(Error::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if let Some(c) = name.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        return Err(Error::invalid(
            field,
            format!("must not contain the control character U+{:04X}", c as u32),
        ));
    }
    Ok(name.to_owned())
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// An absolute `https://` (or `http://`) URL.
pub fn http_url(field: &str, value: &str) -> Result<String, Error> {
    let url = Url::parse(value.trim())
        .map_err(|e| Error::invalid(field, format!("must be an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(field, "must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(field, "must not contain credentials"));
    }
    Ok(url.to_string())
}

/// A URL or nothing.
pub fn optional_http_url(field: &str, value: &str) -> Result<String, Error> {
    if value.trim().is_empty() {
        Ok(String::new())
    } else {
        http_url(field, value)
    }
}

/// A web origin, `scheme://host[:port]`, without path, query or fragment.
pub fn origin(field: &str, value: &str) -> Result<String, Error> {
    let url = Url::parse(value.trim()).map_err(|e| {
        Error::invalid(
            field,
            format!("must be an origin like https://example.org ({e})"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(
            field,
            "must be an http:// or https:// origin",
        ));
    }
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(Error::invalid(
            field,
            "must be an origin: scheme, host and port only",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// A list of values, each validated, without duplicates.
pub fn list(
    field: &str,
    values: &[String],
    each: impl Fn(&str, &str) -> Result<String, Error>,
) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let value = each(&format!("{field}[{i}]"), value)?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

/// A CMS user id: 1–255 characters, no control characters.
pub fn external_id(value: &str) -> Result<String, Error> {
    if value.is_empty() || value.len() > 255 {
        return Err(Error::invalid("external_id", "must be 1 to 255 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "external_id",
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// An email address, loosely: something@something, or empty.
pub fn optional_email(value: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let valid = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(value.to_owned())
    } else {
        Err(Error::invalid("email", "must be an email address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(display_name("n", "  Ada  ").unwrap(), "Ada");
        assert!(display_name("n", "   ").is_err());
        assert!(display_name("n", &"é".repeat(64)).is_ok());
        assert!(display_name("n", &"é".repeat(65)).is_err());
        assert!(display_name("n", "Ada\u{0007}").is_err());
        assert!(display_name("n", "evil\u{202E}gnp.exe").is_err());
        assert!(display_name("n", "a\u{2066}b").is_err());
    }

    #[test]
    fn origins_are_normalised_and_must_not_have_paths() {
        assert_eq!(
            origin("o", "https://Example.org").unwrap(),
            "https://example.org"
        );
        assert_eq!(
            origin("o", "http://localhost:8090").unwrap(),
            "http://localhost:8090"
        );
        assert!(origin("o", "https://example.org/path").is_err());
        assert!(origin("o", "ftp://example.org").is_err());
        assert!(origin("o", "example.org").is_err());
    }

    #[test]
    fn urls_must_be_http() {
        assert!(http_url("u", "https://example.org/privacy").is_ok());
        assert!(http_url("u", "javascript:alert(1)").is_err());
        assert!(http_url("u", "https://user:pw@example.org/").is_err());
        assert_eq!(optional_http_url("u", "").unwrap(), "");
    }
}
