//! The consent page as a browser uses it: the page, its CSRF cookie and form, Approve and
//! Deny back to the app's return URL, and the pages for requests that cannot be
//! decided, forged forms among them.

use std::time::{SystemTime, UNIX_EPOCH};

use palaver_proto::identity::v1 as pb;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::json;

use crate::helpers::{App, Pkce, RETURN_URL, TestGateway, json_of, query_param, spawn};

/// The consent page as a browser received it.
struct Shown {
    html: String,
    headers: HeaderMap,
    /// The form's hidden fields.
    request: String,
    csrf: String,
    /// `name=value` of the CSRF cookie, as the browser sends it back.
    cookie: String,
    /// The whole `Set-Cookie` header.
    set_cookie: String,
}

/// A browser that does not follow redirects, so a test sees where it is sent.
fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden field `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect(name) + marker.len();
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_owned()
}

async fn show(consent_url: &str) -> Shown {
    let response = browser().get(consent_url).send().await.unwrap();
    let headers = response.headers().clone();
    let status = response.status();
    let html = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{html}");
    let set_cookie = headers[SET_COOKIE].to_str().unwrap().to_owned();
    Shown {
        request: hidden(&html, "request"),
        csrf: hidden(&html, "csrf"),
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        set_cookie,
        html,
        headers,
    }
}

/// Posts the consent form to `t`'s `/consent`, with `Origin` and `Cookie` when given.
async fn post(
    t: &TestGateway,
    origin: Option<&str>,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut request = browser()
        .post(t.url("/consent"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// Presses `decision` (`approve` or `deny`) on a shown page, as a browser does.
async fn press(t: &TestGateway, shown: &Shown, decision: &str) -> Response {
    post(
        t,
        Some(&t.base),
        Some(&shown.cookie),
        &[
            ("request", &shown.request),
            ("csrf", &shown.csrf),
            ("decision", decision),
        ],
    )
    .await
}

/// Asserts an HTML page with `status` that says `says`; answers it.
async fn html_page(response: Response, status: StatusCode, says: &str) -> String {
    let actual = response.status();
    let headers = response.headers().clone();
    let html = response.text().await.unwrap();
    assert_eq!(actual, status, "{html}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(headers.get(LOCATION).is_none(), "no redirect");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains(says), "{html}");
    html
}

/// Where a 303 sends the member.
fn location(response: &Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// A consent request with its own return URL and state; answers the consent URL.
async fn ask(
    t: &TestGateway,
    app: &App,
    external_id: &str,
    return_url: &str,
    state: &str,
    pkce: &Pkce,
) -> String {
    let response = t
        .cms(
            app,
            Method::POST,
            &format!("/v1/cms/members/{external_id}/consent-requests"),
        )
        .json(&json!({
            "return_url": return_url,
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }))
        .send()
        .await
        .unwrap();
    json_of(response, StatusCode::CREATED).await["consent_url"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_page_shows_who_asks_what_for_whom_and_escapes_it() {
    let t = spawn().await;
    let app = t
        .create_app_with(json!({"name": "<script>alert('app')</script> & Co"}))
        .await;
    let response = t
        .cms(&app, Method::POST, "/v1/cms/members")
        .json(&json!({"external_id": "owner", "display_name": "<img src=x onerror=alert(1)> \"Ann\""}))
        .send()
        .await
        .unwrap();
    json_of(response, StatusCode::CREATED).await;
    let consent_url = t.consent_url(&app, "owner", &Pkce::generate()).await;

    let shown = show(&consent_url).await;
    let html = &shown.html;
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;app&#39;)&lt;/script&gt; &amp; Co"),
        "the app's name, escaped: {html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt; &quot;Ann&quot;"),
        "the member's name, escaped: {html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("show your availability on"), "{html}");
    assert!(
        html.contains("and let its visitors start chats with you"),
        "{html}"
    );
    let asked = t
        .identity
        .client()
        .get_consent_request(pb::GetConsentRequestRequest {
            request: shown.request.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let until = asked.permission_expires_at.expect("until when");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (until.seconds - now - 365 * 86_400).abs() < 600,
        "a permission lasts the token's lifetime: {until}"
    );
    let date = &until.to_string()[..10];
    assert!(
        html.contains(&format!("until <time datetime=\"{date}\">")),
        "until when: {html}"
    );
    assert!(
        html.contains("withdraw this permission at any time"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://example.org/privacy\">"),
        "the privacy policy: {html}"
    );
    assert!(
        html.contains("<img class=\"logo\" src=\"https://example.org/logo.png\""),
        "the logo: {html}"
    );
    assert!(html.contains(">Approve</button>"), "{html}");
    assert!(html.contains(">Deny</button>"), "{html}");
    assert!(
        html.contains("name=\"decision\" value=\"approve\""),
        "{html}"
    );
    assert!(html.contains("name=\"decision\" value=\"deny\""), "{html}");
    assert!(
        html.contains(&format!("action=\"{}/consent\"", t.base)),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "<link rel=\"stylesheet\" href=\"{}/pages.css\">",
            t.base
        )),
        "{html}"
    );
    assert_eq!(shown.csrf.len(), 32, "{html}");

    let headers = &shown.headers;
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' https://example.org",
        "form-action 'self' https://example.org",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");

    let set_cookie = &shown.set_cookie;
    assert!(
        shown.cookie.ends_with(&format!("={}", shown.csrf)),
        "the cookie holds the form's value: {set_cookie}"
    );
    for attribute in ["Path=/consent", "HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }

    let css = t.request(Method::GET, "/pages.css").send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains(".approve"));
}

#[tokio::test]
async fn approve_sends_the_member_back_with_a_code_that_becomes_a_permission_token() {
    let t = spawn().await;
    let return_url = "https://example.org/account?tab=chat";
    let app = t
        .create_app_with(json!({"return_urls": [RETURN_URL, return_url]}))
        .await;
    t.create_member(&app, "owner").await;
    let pkce = Pkce::generate();
    let state = "a b&c=d/é#?";
    let consent_url = ask(&t, &app, "owner", return_url, state, &pkce).await;

    let shown = show(&consent_url).await;
    let approved = press(&t, &shown, "approve").await;
    let back = location(&approved);
    assert_eq!(approved.headers()["cache-control"], "no-store");
    assert_eq!(approved.headers()["referrer-policy"], "no-referrer");
    let spent = approved.headers()[SET_COOKIE].to_str().unwrap();
    assert!(spent.contains("Max-Age=0"), "the cookie is spent: {spent}");
    assert!(
        back.starts_with("https://example.org/account?tab=chat&code="),
        "the code is appended to the return URL's query: {back}"
    );
    assert_eq!(query_param(&back, "tab").as_deref(), Some("chat"));
    assert_eq!(query_param(&back, "state").as_deref(), Some(state));
    assert!(
        url::Url::parse(&back).unwrap().fragment().is_none(),
        "{back}"
    );
    let code = query_param(&back, "code").expect("a code");

    let issued = t
        .token_form(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &pkce.verifier),
                ("redirect_uri", return_url),
            ],
        )
        .await;
    let issued = json_of(issued, StatusCode::OK).await;
    assert!(
        issued["access_token"].as_str().unwrap().starts_with("pt_"),
        "{issued}"
    );
    assert_eq!(issued["scope"], "presence chat");
    assert_eq!(t.permission(&app, "owner").await["status"], "valid");
}

#[tokio::test]
async fn deny_sends_the_member_back_with_access_denied_and_grants_nothing() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    let consent_url = t.consent_url(&app, "owner", &Pkce::generate()).await;

    let denied = press(&t, &show(&consent_url).await, "deny").await;
    let back = location(&denied);
    assert!(back.starts_with(RETURN_URL), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("state-123"));
    assert_eq!(query_param(&back, "code"), None);
    assert_eq!(t.permission(&app, "owner").await["status"], "none");
}

#[tokio::test]
async fn a_form_without_its_csrf_cookie_or_value_decides_nothing() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    let consent_url = t.consent_url(&app, "owner", &Pkce::generate()).await;
    let shown = show(&consent_url).await;
    let cookie_name = shown.cookie.split('=').next().unwrap();
    let forged = "A".repeat(32);
    let forged_cookie = format!("{cookie_name}={forged}");

    let attempts: [(Option<&str>, &str); 4] = [
        (None, &shown.csrf),
        (Some(&shown.cookie), &forged),
        (Some(&shown.cookie), ""),
        // An attacker who can set a cookie still does not know the request's token.
        (Some(&forged_cookie), &forged),
    ];
    for (cookie, csrf) in attempts {
        let refused = post(
            &t,
            Some(&t.base),
            cookie,
            &[
                ("request", &shown.request),
                ("csrf", csrf),
                ("decision", "approve"),
            ],
        )
        .await;
        let html = html_page(refused, StatusCode::FORBIDDEN, "Nothing was decided").await;
        assert!(
            html.contains(&format!("href=\"{}\"", consent_url)),
            "offers the page again: {html}"
        );
    }
    assert_eq!(t.permission(&app, "owner").await["status"], "none");

    let approved = press(&t, &shown, "approve").await;
    assert!(query_param(&location(&approved), "code").is_some());
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    let consent_url = t.consent_url(&app, "owner", &Pkce::generate()).await;
    let shown = show(&consent_url).await;
    let form = [
        ("request", shown.request.as_str()),
        ("csrf", shown.csrf.as_str()),
        ("decision", "approve"),
    ];

    for origin in ["https://evil.example", "null"] {
        let refused = post(&t, Some(origin), Some(&shown.cookie), &form).await;
        html_page(refused, StatusCode::FORBIDDEN, "sent from another site").await;
    }
    assert_eq!(t.permission(&app, "owner").await["status"], "none");

    let approved = post(&t, None, Some(&shown.cookie), &form).await;
    assert!(
        query_param(&location(&approved), "code").is_some(),
        "a POST without Origin (older browsers) is judged by its CSRF value"
    );
}

#[tokio::test]
async fn a_request_is_decided_once() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;
    let consent_url = t.consent_url(&app, "owner", &Pkce::generate()).await;
    let shown = show(&consent_url).await;
    location(&press(&t, &shown, "approve").await);

    let again = press(&t, &shown, "deny").await;
    html_page(again, StatusCode::CONFLICT, "already answered").await;
    let page = browser().get(&consent_url).send().await.unwrap();
    html_page(page, StatusCode::CONFLICT, "already answered").await;
    assert_eq!(
        t.permission(&app, "owner").await["status"],
        "none",
        "not exchanged yet"
    );
}

#[tokio::test]
async fn unknown_expired_and_malformed_requests_get_pages_not_redirects() {
    let t = spawn().await;
    let app = t.create_app().await;
    t.create_member(&app, "owner").await;

    for path in [
        "/consent?request=cr_unknown",
        "/consent",
        "/consent?request=",
    ] {
        let page = browser().get(t.url(path)).send().await.unwrap();
        html_page(page, StatusCode::NOT_FOUND, "not valid").await;
    }

    let consent_url = t.consent_url(&app, "owner", &Pkce::generate()).await;
    let shown = show(&consent_url).await;
    let not_the_form = post(
        &t,
        Some(&t.base),
        Some(&shown.cookie),
        &[
            ("request", &shown.request),
            ("csrf", &shown.csrf),
            ("decision", "maybe"),
        ],
    )
    .await;
    html_page(not_the_form, StatusCode::BAD_REQUEST, "Nothing was decided").await;

    t.identity.clock.shift_ms(601_000);
    let page = browser().get(&consent_url).send().await.unwrap();
    html_page(page, StatusCode::GONE, "expired").await;
    let late = press(&t, &shown, "approve").await;
    html_page(late, StatusCode::GONE, "expired").await;
    assert_eq!(t.permission(&app, "owner").await["status"], "none");
}
