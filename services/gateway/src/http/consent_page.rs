//! The consent page (`/consent?request=…`): where a CMS sends a member to approve or deny
//! its consent request. It shows the app (name, logo, privacy policy), the member and
//! what Approve grants; its form posts the decision back to `/consent`, and the member
//! goes back to the app's return URL with `code` and `state`, or `error=access_denied`
//! and `state`. Identity keeps the request, checks the decision and builds that URL from
//! the return URL it validated when the request was made.
//!
//! The page is server-rendered HTML without scripts, from the askama templates in
//! `templates/consent/` (checked when the gateway is compiled), which escape every
//! value they are given (with [`Entities`], as `askama.toml` says). A decision is only
//! taken when:
//! - the POST has no `Origin`, or the gateway's own (a form on another site cannot post);
//! - the form's `csrf` field equals the request's cookie (double submit: the cookie is
//!   `HttpOnly`, `SameSite=Strict` and scoped to `/consent`, so another site can neither
//!   read it nor have it sent), and identity finds it to be the request's own token.
//!
//! Pages are never framed, cached or shown to other sites through `Referer`. The form
//! page itself uses `Referrer-Policy: same-origin` rather than `no-referrer`: under
//! `no-referrer`, browsers send `Origin: null` with the form's POST, which the origin
//! check above refuses. Links and redirects to other sites still carry no referrer.

use std::fmt;

use askama::Template;
use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN,
    REFERRER_POLICY, SET_COOKIE, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clients::call;
use crate::domain::origins;
use crate::http::extract::{media_type, read_body};
use crate::state::AppState;

/// What every consent page may load: the gateway's stylesheet; each page adds `img-src`
/// (its icon, and the app's logo) and `form-action`.
const BASE_CSP: &str = "default-src 'none'; style-src 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The consent page's routes (not in the OpenAPI document: a page, not API).
pub fn routes() -> Router<AppState> {
    Router::new().route("/consent", get(show).post(decide))
}

/// Shows the consent request named in the query, and sets its CSRF cookie.
#[tracing::instrument(skip_all)]
async fn show(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let request = query
        .as_deref()
        .and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "request")
                .map(|(_, value)| value.into_owned())
        })
        .unwrap_or_default();
    if request.is_empty() {
        return refusal(
            &state,
            &Error::not_found("no consent request in the link"),
            "",
        );
    }
    let consent = match call(
        state
            .identity()
            .get_consent_request(pb::GetConsentRequestRequest {
                request: request.clone(),
            }),
    )
    .await
    {
        Ok(consent) => consent,
        Err(error) => return refusal(&state, &error, ""),
    };
    // The form's POST redirects to the return URL, and form-action covers redirects.
    let logo_origin = origins::canonical(&consent.app_logo_url);
    let sources = |origin: Option<&str>| match origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "{BASE_CSP}; img-src {}; form-action {}",
        sources(logo_origin.as_deref()),
        sources(origins::canonical(&consent.return_url).as_deref()),
    );
    let until = consent.permission_expires_at.map(|at| at.to_string());
    let page = ConsentPage {
        layout: Layout::of(&state),
        title: format!("Allow {} to show your availability?", consent.app_name),
        consent: &consent,
        show_logo: logo_origin.is_some(),
        until: until.as_deref().and_then(long_date),
        show_privacy: origins::canonical(&consent.privacy_url).is_some(),
        action: state.public_link("/consent", &[]),
    };
    let mut response = html(StatusCode::OK, &csp, "same-origin", &page);
    let cookie = format!(
        "{}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        cookie_name(&request),
        consent.csrf_token,
        consent_path(&state),
        consent
            .expires_at
            .map_or(0, |at| (at.seconds - now()).max(0)),
        secure_attribute(&state),
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// The consent form's fields.
#[derive(Deserialize)]
struct DecisionForm {
    request: String,
    csrf: String,
    /// `approve` or `deny`: the button the member pressed.
    decision: String,
}

/// Records the member's decision and sends them back to the app.
#[tracing::instrument(skip_all)]
async fn decide(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let from_elsewhere = headers.get(ORIGIN).is_some_and(|origin| {
        origin.to_str().ok().and_then(origins::canonical).as_deref() != Some(state.public_origin())
    });
    if from_elsewhere {
        return page_error(
            &state,
            StatusCode::FORBIDDEN,
            "This form was sent from another site",
            "Nothing was decided. Only the consent page itself can approve or deny a request.",
            "",
        );
    }
    if media_type(&headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return unreadable_form(&state);
    }
    let form = read_body(request, &state)
        .await
        .ok()
        .and_then(|body| serde_urlencoded::from_bytes::<DecisionForm>(&body).ok());
    let Some(form) = form else {
        return unreadable_form(&state);
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return unreadable_form(&state),
    };
    let cookie = cookie_value(&headers, &cookie_name(&form.request));
    let matches = cookie.is_some_and(|cookie| {
        !form.csrf.is_empty() && bool::from(cookie.as_bytes().ct_eq(form.csrf.as_bytes()))
    });
    if !matches {
        return refusal(
            &state,
            &Error::new(ErrorCode::PermissionDenied, "the form's check failed"),
            &form.request,
        );
    }
    let decided = call(state.identity().decide_consent(pb::DecideConsentRequest {
        request: form.request.clone(),
        approve,
        csrf_token: form.csrf,
    }))
    .await;
    let redirect_url = match decided {
        Ok(decided) => decided.redirect_url,
        Err(error) => return refusal(&state, &error, &form.request),
    };
    let Ok(location) = HeaderValue::from_str(&redirect_url) else {
        let error = Error::new(
            ErrorCode::Internal,
            format!("identity answered an unusable return URL {redirect_url:?}"),
        );
        return refusal(&state, &error, "");
    };
    let mut response = (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, location),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
    )
        .into_response();
    let spent = format!(
        "{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Strict{}",
        cookie_name(&form.request),
        consent_path(&state),
        secure_attribute(&state),
    );
    if let Ok(spent) = HeaderValue::from_str(&spent) {
        response.headers_mut().insert(SET_COOKIE, spent);
    }
    response
}

/// What every consent page links to.
struct Layout {
    stylesheet: String,
    icon: String,
}

impl Layout {
    fn of(state: &AppState) -> Layout {
        Layout {
            stylesheet: state.public_link("/pages.css", &[]),
            icon: state.public_link("/console/icon.svg", &[]),
        }
    }
}

/// The consent page: the app, the member and what Approve grants, and the form.
#[derive(Template)]
#[template(path = "consent/form.html")]
struct ConsentPage<'a> {
    layout: Layout,
    title: String,
    consent: &'a pb::ConsentRequest,
    show_logo: bool,
    /// Until when the permission lasts, as `2027-11-24` and in words.
    until: Option<(&'a str, String)>,
    show_privacy: bool,
    /// Where the form posts.
    action: String,
}

/// A page that says why nothing was decided.
#[derive(Template)]
#[template(path = "consent/error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    title: &'a str,
    explanation: &'a str,
    /// A link to the consent page again.
    again: Option<String>,
}

/// The escaper of the gateway's templates (`askama.toml`): `& < > " '` become the
/// entities `&amp; &lt; &gt; &quot; &#39;`, safe in element content and in quoted
/// attributes alike.
#[derive(Clone, Copy)]
struct Entities;

impl askama::filters::Escaper for Entities {
    fn write_escaped_str<W: fmt::Write>(&self, mut dest: W, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            dest.write_str(&rest[..at])?;
            dest.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        dest.write_str(rest)
    }
}

/// The page for a request that cannot be shown or decided, with the status its error
/// calls for. `request`, when known, is offered again as a link (a stale form's fix).
fn refusal(state: &AppState, error: &Error, request: &str) -> Response {
    let (status, title, explanation) = match error.code {
        ErrorCode::NotFound => (
            StatusCode::NOT_FOUND,
            "This consent link is not valid",
            "Check that you opened the whole link, or go back to the site and ask again.",
        ),
        ErrorCode::ConsentExpired => (
            StatusCode::GONE,
            "This consent link has expired",
            "Consent links work for a few minutes only. Go back to the site and ask again.",
        ),
        ErrorCode::FailedPrecondition => (
            StatusCode::CONFLICT,
            "This request was already answered",
            "Nothing changed. Go back to the site: it shows whether it holds your permission.",
        ),
        ErrorCode::PermissionDenied => (
            StatusCode::FORBIDDEN,
            "This form could not be checked",
            "Nothing was decided. Open the consent page again and choose once more.",
        ),
        ErrorCode::InvalidArgument | ErrorCode::PayloadTooLarge => {
            return unreadable_form(state);
        }
        ErrorCode::Unavailable => {
            tracing::warn!(error = %error.message, "the consent page cannot reach identity");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The consent page is unavailable",
                "Nothing was decided. Try again in a moment.",
            )
        }
        _ => {
            tracing::error!(code = %error.code, error = %error.message, "the consent page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Nothing was decided. Try again in a moment.",
            )
        }
    };
    let retry = if status == StatusCode::FORBIDDEN {
        request
    } else {
        ""
    };
    page_error(state, status, title, explanation, retry)
}

/// The page for a POST that is not the consent form.
fn unreadable_form(state: &AppState) -> Response {
    page_error(
        state,
        StatusCode::BAD_REQUEST,
        "This is not the consent form",
        "Nothing was decided. Open the consent page from the site and press Approve or Deny.",
        "",
    )
}

/// An error page; with a link back to the consent page of `request` when it is not empty.
fn page_error(
    state: &AppState,
    status: StatusCode,
    title: &str,
    explanation: &str,
    request: &str,
) -> Response {
    let page = ErrorPage {
        layout: Layout::of(state),
        title,
        explanation,
        again: (!request.is_empty())
            .then(|| state.public_link("/consent", &[("request", request)])),
    };
    let csp = format!("{BASE_CSP}; img-src 'self'; form-action 'none'");
    html(status, &csp, "no-referrer", &page)
}

/// `page` as an HTML answer with the headers every consent page carries.
fn html(
    status: StatusCode,
    csp: &str,
    referrer_policy: &'static str,
    page: &impl Template,
) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "a consent page could not be rendered");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut response = (
        status,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (REFERRER_POLICY, HeaderValue::from_static(referrer_policy)),
        ],
        body,
    )
        .into_response();
    if let Ok(csp) = HeaderValue::from_str(csp) {
        response.headers_mut().insert(CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The CSRF cookie of one consent request: each request has its own, so a member with
/// two consent pages open can answer both.
fn cookie_name(request: &str) -> String {
    let digest = Sha256::digest(request.as_bytes());
    let id: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("palaver_consent_{id}")
}

/// The value of the cookie `name` the browser sent.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The path of the consent page under the public URL (the cookie's scope).
fn consent_path(state: &AppState) -> String {
    url::Url::parse(&state.public_link("/consent", &[]))
        .map_or_else(|_| "/consent".to_owned(), |url| url.path().to_owned())
}

/// `; Secure` when the gateway is served over https.
fn secure_attribute(state: &AppState) -> &'static str {
    if state.public_origin().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// The date of an RFC 3339 time, as `2027-11-24` and as `24 November 2027` (UTC).
fn long_date(rfc3339: &str) -> Option<(&str, String)> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let date = rfc3339.get(..10)?;
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    let month = MONTHS.get(month.parse::<usize>().ok()?.checked_sub(1)?)?;
    let day = day.parse::<u8>().ok()?;
    Some((date, format!("{day} {month} {year}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_escape_text_and_attributes() {
        let page = ErrorPage {
            layout: Layout {
                stylesheet: "/pages.css?a=1&b=\"2\"".to_owned(),
                icon: "/icon.svg".to_owned(),
            },
            title: r#"<script>alert("x") & 'y'</script>"#,
            explanation: "Olivia Ünal's <b>page</b>",
            again: None,
        };
        let html = page.render().unwrap();
        assert!(
            html.contains(
                "<h1>&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;</h1>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<p>Olivia Ünal&#39;s &lt;b&gt;page&lt;/b&gt;</p>"),
            "{html}"
        );
        assert!(
            html.contains(r#"<link rel="stylesheet" href="/pages.css?a=1&amp;b=&quot;2&quot;">"#),
            "{html}"
        );
        assert!(!html.contains("Open the consent page again"), "{html}");
    }

    #[test]
    fn a_page_without_logo_privacy_policy_or_expiry_shows_none_of_them() {
        let consent = pb::ConsentRequest {
            app_name: "Site".to_owned(),
            member_display_name: "Ann".to_owned(),
            ..Default::default()
        };
        let page = ConsentPage {
            layout: Layout {
                stylesheet: "/pages.css".to_owned(),
                icon: "/icon.svg".to_owned(),
            },
            title: "Allow Site to show your availability?".to_owned(),
            consent: &consent,
            show_logo: false,
            until: None,
            show_privacy: false,
            action: "/consent".to_owned(),
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("<header class=\"app\"><p class=\"app-name\">Site</p></header>\n"),
            "{html}"
        );
        assert!(
            html.contains(concat!(
                "chats with you</strong>.</p>\n",
                "<p>You can withdraw this permission at any time on Site.</p>\n",
                "<form method=\"post\" action=\"/consent\""
            )),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("privacy"), "{html}");
        assert!(html.ends_with("</main>\n</body>\n</html>\n"), "{html}");
    }

    #[test]
    fn dates_read_in_words() {
        assert_eq!(
            long_date("2027-11-04T12:00:00Z"),
            Some(("2027-11-04", "4 November 2027".to_owned()))
        );
        assert_eq!(long_date("2027-13-04T12:00:00Z"), None);
        assert_eq!(long_date("soon"), None);
    }

    #[test]
    fn the_cookie_of_a_request_is_found_among_others() {
        let mut headers = HeaderMap::new();
        let name = cookie_name("cr_abc");
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {name}=token; last=2")).unwrap(),
        );
        assert_eq!(cookie_value(&headers, &name), Some("token"));
        assert_eq!(cookie_value(&headers, &cookie_name("cr_other")), None);
    }
}
