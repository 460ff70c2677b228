//! Web origins: what a browser sends in `Origin`, compared with an app's allowed
//! origins in the form the identity service stores them (`scheme://host[:port]`, ASCII,
//! lowercase, default port left out).

use url::Url;

/// The origin in its canonical form, or `None` when it is not an http(s) origin (for
/// example `null`, sent by sandboxed frames and local files).
pub fn canonical(origin: &str) -> Option<String> {
    let url = Url::parse(origin.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// True when `origin` is one of `allowed`.
pub fn is_allowed(origin: &str, allowed: &[String]) -> bool {
    canonical(origin).is_some_and(|origin| {
        allowed
            .iter()
            .any(|a| canonical(a).is_some_and(|a| a == origin))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_in_canonical_form() {
        let allowed = vec![
            "https://example.org".to_owned(),
            "http://localhost:8090".to_owned(),
        ];
        assert!(is_allowed("https://example.org", &allowed));
        assert!(is_allowed("https://EXAMPLE.org:443", &allowed));
        assert!(is_allowed("http://localhost:8090", &allowed));
        assert!(!is_allowed("http://example.org", &allowed));
        assert!(!is_allowed("https://example.org.evil.test", &allowed));
        assert!(!is_allowed("https://sub.example.org", &allowed));
        assert!(!is_allowed("null", &allowed));
        assert!(!is_allowed("", &allowed));
    }

    #[test]
    fn only_http_origins_are_canonical() {
        assert_eq!(
            canonical("https://Chat.Example.org:443").as_deref(),
            Some("https://chat.example.org")
        );
        assert_eq!(canonical("file:///etc/passwd"), None);
        assert_eq!(canonical("null"), None);
    }
}
