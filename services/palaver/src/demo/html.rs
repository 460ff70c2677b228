//! The pages' HTML: escaping, the layout every page shares, and the headers every page
//! carries (its CSP lets in the gateway's widget and nothing else from elsewhere).

use axum::response::{Html, IntoResponse, Response};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::{HeaderValue, StatusCode};
use url::Url;

use super::DemoUser;

/// `text` with `& < > " '` replaced by entities: safe in element content and in quoted
/// attributes alike.
pub fn esc(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The CSP of the demo pages: their own stylesheet, and from the gateway the widget's
/// script, its connections (HTTP and WebSocket), images, sounds and frame. Styles may
/// be inline because the widget styles the shadow root it renders into; scripts may
/// not. Forms post to the site itself, and the consent and messenger buttons redirect
/// to the gateway, which `form-action` covers too.
pub fn content_security_policy(gateway: &Url) -> String {
    let origin = gateway.origin().ascii_serialization();
    let socket = match gateway.scheme() {
        "https" => origin.replacen("https://", "wss://", 1),
        _ => origin.replacen("http://", "ws://", 1),
    };
    format!(
        "default-src 'none'; script-src {origin}; style-src 'self' 'unsafe-inline' {origin}; \
         img-src 'self' data: {origin}; connect-src {origin} {socket}; frame-src {origin}; \
         media-src {origin} data:; font-src {origin}; form-action 'self' {origin}; \
         base-uri 'none'; frame-ancestors 'none'"
    )
}

/// What the layout needs to know about the person looking.
pub struct Chrome<'a> {
    pub csp: &'a HeaderValue,
    pub viewer: Option<&'static DemoUser>,
    pub csrf: &'a str,
}

/// A page in the site's layout: the navigation, who is signed in (with a sign-out
/// button), the content and the footer.
pub fn page(chrome: &Chrome<'_>, status: StatusCode, title: &str, content: &str) -> Response {
    let who = match chrome.viewer {
        Some(user) => format!(
            r#"<span class="who">Signed in as <strong id="signed-in-as">{name}</strong></span>
        <form method="post" action="/signout" class="inline">{csrf}<button type="submit">Sign out</button></form>"#,
            name = esc(user.display_name),
            csrf = csrf_field(chrome.csrf),
        ),
        None => r#"<a href="/signin" class="button">Sign in</a>"#.to_owned(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Palaver demo site</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header>
  <a href="/" class="brand">Palaver demo site</a>
  <nav>
    <a href="/">Home</a>
    <a href="/members">Members</a>
    <a href="/contact">Contact</a>
    <a href="/account">My Account</a>
    <a href="/webhooks">Webhooks</a>
  </nav>
  <div class="session">
    {who}
  </div>
</header>
<main>
<h1>{title}</h1>
{content}
</main>
<footer>
  A demo of Palaver: this site plays the CMS through Palaver's public API.
  <a href="/privacy">Privacy</a>
</footer>
</body>
</html>
"#,
        title = esc(title),
    );
    with_headers(chrome.csp, (status, Html(html)).into_response())
}

/// The hidden field that proves a form came from this site's own page.
pub fn csrf_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(token)
    )
}

/// The headers of every page.
pub fn with_headers(csp: &HeaderValue, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, csp.clone());
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The stylesheet.
pub const STYLE: &str = include_str!("style.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_become_entities() {
        assert_eq!(
            esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("Olivia Ünal"), "Olivia Ünal");
    }
}
