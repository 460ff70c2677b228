//! The demo site's pages and forms: home, sign-in, My Account (the permission token,
//! the "Enable chat on my profile" checkbox, revoking, the messenger), the members'
//! public profiles with their chat boxes, the contact page with the owner's chat box,
//! and the privacy page.
//!
//! Every form is a POST carrying the session's CSRF token; every form that changes
//! something answers with a redirect (303), so reloading a page never repeats an
//! action. Every value put into a page is escaped.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderValue, StatusCode};
use palaver_kit::random::random_string;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::demo::cms::{CmsError, Permission};
use crate::demo::html::{self, csrf_field, esc};
use crate::demo::state::{self, MemberSettings, PendingConsent, SignedIn};
use crate::demo::{
    CONSENT_RETURN_PATH, DemoUser, OWNER, Session, Site, USERS, Visit, new_session_id,
    session_cookie, user,
};

/// The pages' routes.
pub fn router() -> Router<Arc<Site>> {
    Router::new()
        .route("/", get(home))
        .route("/style.css", get(style))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/account", get(account))
        .route("/account/permission", post(acquire))
        .route("/account/permission/refresh", post(refresh))
        .route("/account/permission/revoke", post(revoke))
        .route("/account/consent", get(consent_return))
        .route("/account/chat", post(save_chat))
        .route("/account/messenger", post(messenger))
        .route("/members", get(members))
        .route("/members/{external_id}", get(profile))
        .route("/contact", get(contact).post(contact_sent))
        .route("/privacy", get(privacy))
        .fallback(not_found)
}

/// A page that explains what went wrong (or a redirect to where to go first), as the
/// answer of a handler.
pub struct Failure(Box<Response>);

impl From<Response> for Failure {
    fn from(response: Response) -> Self {
        Failure(Box::new(response))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        *self.0
    }
}

type PageResult = Result<Response, Failure>;

/// A form's fields.
type Fields = Form<HashMap<String, String>>;

impl Visit {
    pub(super) fn page(&self, site: &Site, title: &str, content: &str) -> Response {
        html::page(&self.chrome(site), StatusCode::OK, title, content)
    }

    fn fail(&self, site: &Site, status: StatusCode, message: &str) -> Failure {
        let title = status.canonical_reason().unwrap_or("Error");
        let content = format!(
            r#"<p class="notice bad" id="error">{}</p><p><a href="/">Back to the home page</a></p>"#,
            esc(message)
        );
        html::page(&self.chrome(site), status, title, &content).into()
    }

    fn api_failed(&self, site: &Site, error: &CmsError) -> Failure {
        tracing::warn!(%error, "the demo site's call to the CMS API failed");
        self.fail(
            site,
            StatusCode::BAD_GATEWAY,
            &format!("Palaver's API did not do it: {error}"),
        )
    }

    /// The signed-in user, or a redirect to the sign-in page.
    fn member(&self) -> Result<&'static DemoUser, Failure> {
        self.viewer
            .ok_or_else(|| Redirect::to("/signin").into_response().into())
    }

    /// Refuses a form that does not carry this session's CSRF token.
    async fn check(&self, site: &Site, fields: &HashMap<String, String>) -> Result<(), Failure> {
        let token = fields.get("csrf").map_or("", String::as_str);
        if site.csrf_matches(&self.session, token).await {
            Ok(())
        } else {
            Err(self.fail(
                site,
                StatusCode::FORBIDDEN,
                "This form is stale or came from another site: reload the page and try again.",
            ))
        }
    }

    /// A form of one button, posting to `action`.
    fn button(&self, action: &str, label: &str, class: &str) -> String {
        format!(
            r#"<form method="post" action="{action}" class="inline">{csrf}<button type="submit" class="{class}">{label}</button></form>"#,
            action = esc(action),
            csrf = csrf_field(&self.csrf),
            class = esc(class),
            label = esc(label),
        )
    }
}

/// Saving failed: the site's own state file could not be written.
fn store_failed(visit: &Visit, site: &Site, error: &anyhow::Error) -> Failure {
    tracing::error!(
        error = format!("{error:#}"),
        "the demo site could not save its state"
    );
    visit.fail(
        site,
        StatusCode::INTERNAL_SERVER_ERROR,
        "The demo site could not save its state; see the log.",
    )
}

async fn home(State(site): State<Arc<Site>>, visit: Visit) -> Response {
    let content = r#"<p>This is a small website, as a CMS would make one, with Palaver's chat and
presence in it. It talks to Palaver only through Palaver's public CMS API, as a CMS plugin
would. No passwords: pick who you are.</p>
<ol class="steps">
  <li><a href="/signin">Sign in</a> as Sam Member.</li>
  <li>On <a href="/account">My Account</a>, click <em>Acquire a permission token</em> and
      approve on Palaver's consent page.</li>
  <li>Tick <em>Enable chat on my profile</em> and click <em>Save</em>.</li>
  <li>Click <em>Open my messenger</em>: that is Sam's console, where he answers chats.</li>
  <li>In a private window, open <a href="/members/sam">Sam's profile</a> and start a chat;
      sign in there as Rita Reader to chat as a verified visitor.</li>
  <li>Do the same as Olivia Owner, and her chat box appears on the
      <a href="/contact">Contact</a> page.</li>
  <li>Watch <a href="/webhooks">Webhooks</a>: leave a message while the member is offline
      and <code>message.offline</code> arrives.</li>
</ol>"#;
    visit.page(&site, "Welcome", content)
}

async fn style() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        html::STYLE,
    )
        .into_response()
}

async fn signin_page(State(site): State<Arc<Site>>, visit: Visit) -> Response {
    let mut content = String::new();
    if let Some(viewer) = visit.viewer {
        content.push_str(&format!(
            r#"<p class="notice">You are signed in as {}. Sign in as someone else, or sign out at the top.</p>"#,
            esc(viewer.display_name)
        ));
    }
    content.push_str(r#"<p>No passwords: this is a demo. Pick a person.</p><ul class="people">"#);
    for user in &USERS {
        let role = if user.external_id == OWNER {
            "the site owner"
        } else {
            "a member"
        };
        content.push_str(&format!(
            r#"<li><strong>{name}</strong>, {role}<br>
<form method="post" action="/signin">{csrf}<input type="hidden" name="user" value="{id}"><button type="submit" id="signin-{id}">Sign in as {name}</button></form></li>"#,
            name = esc(user.display_name),
            id = esc(user.external_id),
            csrf = csrf_field(&visit.csrf),
        ));
    }
    content.push_str("</ul>");
    visit.page(&site, "Sign in", &content)
}

/// Signs in under a new session id, so an id known before signing in is worth nothing.
async fn signin(State(site): State<Arc<Site>>, visit: Visit, Form(fields): Fields) -> PageResult {
    visit.check(&site, &fields).await?;
    let wanted = fields.get("user").map_or("", String::as_str);
    let Some(user) = user(wanted) else {
        return Err(visit.fail(
            &site,
            StatusCode::BAD_REQUEST,
            &format!("There is no demo user {wanted:?}."),
        ));
    };
    let session = new_session_id();
    let signed_in = SignedIn {
        external_id: user.external_id.to_owned(),
        since: state::now(),
    };
    site.store
        .update(|saved| {
            saved.sessions.remove(&visit.session);
            saved.sessions.insert(session.clone(), signed_in);
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    let mut response = Redirect::to("/account").into_response();
    response
        .headers_mut()
        .append(SET_COOKIE, session_cookie(&session));
    response.extensions_mut().insert(Session {
        id: session,
        fresh: true,
    });
    Ok(response)
}

async fn signout(State(site): State<Arc<Site>>, visit: Visit, Form(fields): Fields) -> PageResult {
    visit.check(&site, &fields).await?;
    site.store
        .update(|saved| saved.sessions.remove(&visit.session))
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to("/").into_response())
}

/// What My Account says after an action.
#[derive(Deserialize)]
struct AccountQuery {
    result: Option<String>,
}

fn notice(result: &str) -> Option<(&'static str, &'static str)> {
    Some(match result {
        "granted" => (
            "",
            "The permission token is stored: you can enable chat on your profile.",
        ),
        "denied" => ("bad", "You denied the request. Nothing changed."),
        "failed" => (
            "bad",
            "The consent request did not go through. Nothing changed.",
        ),
        "refreshed" => ("", "The permission token was refreshed."),
        "refresh_failed" => (
            "bad",
            "The refresh token no longer works: acquire a new permission token.",
        ),
        "revoked" => ("", "The permission is revoked: your chat box is closed."),
        "saved" => ("", "Saved."),
        _ => return None,
    })
}

async fn account(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Query(query): Query<AccountQuery>,
) -> PageResult {
    let member = visit.member()?;
    let permission = site
        .cms
        .permission(member.external_id)
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    let settings = settings_of(&site, member).await;
    let mut content = format!(
        r#"<p>Signed in as <strong>{name}</strong> (user id <code>{id}</code>). Your public profile: <a href="/members/{id}">/members/{id}</a>.</p>"#,
        name = esc(member.display_name),
        id = esc(member.external_id),
    );
    if let Some((class, text)) = query.result.as_deref().and_then(notice) {
        content.push_str(&format!(
            r#"<p class="notice {class}" id="notice" role="status">{}</p>"#,
            esc(text)
        ));
    }
    let expiry = match (&permission.expires_at, permission.status.as_str()) {
        (Some(at), "valid") => {
            format!(r#" until <span id="permission-expires">{}</span>"#, esc(at))
        }
        (Some(at), "expired") => {
            format!(r#" since <span id="permission-expires">{}</span>"#, esc(at))
        }
        _ => String::new(),
    };
    content.push_str(&format!(
        r#"<section id="permission">
<h2>Chat permission</h2>
<p>Palaver shows your availability on this site and lets visitors start chats with you only with your permission, given on Palaver's own consent page.</p>
<p>Permission token: <span id="permission-status" class="status status-{status}" data-status="{status}">{status}</span>{expiry}</p>
<div class="actions">"#,
        status = esc(&permission.status),
    ));
    let refreshable = settings.refresh_token.is_some()
        && matches!(permission.status.as_str(), "valid" | "expired");
    if refreshable {
        content.push_str(&visit.button(
            "/account/permission/refresh",
            "Refresh the permission token",
            "",
        ));
    } else {
        content.push_str(&visit.button("/account/permission", "Acquire a permission token", ""));
    }
    if permission.is_valid() {
        content.push_str(&visit.button("/account/permission/revoke", "Revoke", "danger"));
    }
    content.push_str("</div></section>");
    let disabled = if permission.is_valid() {
        ""
    } else {
        " disabled"
    };
    let checked = if settings.chat_enabled {
        " checked"
    } else {
        ""
    };
    let hint = if permission.is_valid() {
        "Visitors of your profile see your availability and can start a chat with you."
    } else {
        "Acquire a permission token first: until then chat cannot be enabled."
    };
    content.push_str(&format!(
        r#"<section id="chat-settings">
<h2>Chat on my profile</h2>
<form method="post" action="/account/chat">{csrf}
<label class="check" for="enable-chat"><input type="checkbox" id="enable-chat" name="enable-chat" value="on"{checked}{disabled}> Enable chat on my profile</label>
<p class="hint">{hint}</p>
<button type="submit" id="save-chat"{disabled}>Save</button>
</form>
</section>
<section id="messenger">
<h2>My messenger</h2>
<p>You answer chats in Palaver's console: set your status there and keep it open.</p>
<div class="actions">{open}</div>
</section>"#,
        csrf = csrf_field(&visit.csrf),
        hint = esc(hint),
        open = visit.button("/account/messenger", "Open my messenger", "secondary"),
    ));
    Ok(visit.page(&site, "My Account", &content))
}

async fn settings_of(site: &Site, member: &DemoUser) -> MemberSettings {
    site.store
        .read(|saved| saved.members.get(member.external_id).cloned())
        .await
        .unwrap_or_default()
}

/// Starts the consent flow: a PKCE verifier and a random state kept here, the member's
/// browser sent to Palaver's consent page.
async fn acquire(State(site): State<Arc<Site>>, visit: Visit, Form(fields): Fields) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    let code_verifier = random_string(64);
    let code_challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()));
    let consent_state = random_string(32);
    let consent_url = site
        .cms
        .consent_url(
            member.external_id,
            &site.link(CONSENT_RETURN_PATH),
            &consent_state,
            &code_challenge,
        )
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    let pending = PendingConsent {
        session: visit.session.clone(),
        external_id: member.external_id.to_owned(),
        code_verifier,
        created_at: state::now(),
    };
    site.store
        .update(|saved| saved.consents.insert(consent_state, pending))
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to(&consent_url).into_response())
}

/// Where the consent page sends the member back.
#[derive(Deserialize)]
struct ConsentAnswer {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// The return URL: checks the state against this browser's request, then exchanges the
/// code (with the PKCE verifier) for the permission and refresh tokens.
async fn consent_return(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Query(answer): Query<ConsentAnswer>,
) -> PageResult {
    let consent_state = answer.state.unwrap_or_default();
    let session = visit.session.clone();
    let pending = site
        .store
        .update(|saved| match saved.consents.get(&consent_state) {
            Some(pending) if pending.session == session => saved.consents.remove(&consent_state),
            _ => None,
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    let Some(pending) = pending else {
        return Err(visit.fail(
            &site,
            StatusCode::BAD_REQUEST,
            "This answer does not belong to a consent request made in this browser, or it came too late. Nothing changed: start again on My Account.",
        ));
    };
    let code = match (answer.error.as_deref(), answer.code) {
        (Some("access_denied"), _) => {
            return Ok(Redirect::to("/account?result=denied").into_response());
        }
        (None, Some(code)) if !code.is_empty() => code,
        _ => return Ok(Redirect::to("/account?result=failed").into_response()),
    };
    let return_url = site.link(CONSENT_RETURN_PATH);
    let tokens = site
        .cms
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pending.code_verifier),
            ("redirect_uri", &return_url),
        ])
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    site.store
        .update(|saved| {
            let settings = saved.members.entry(pending.external_id).or_default();
            settings.permission_token = Some(tokens.access_token);
            settings.refresh_token = Some(tokens.refresh_token);
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to("/account?result=granted").into_response())
}

async fn refresh(State(site): State<Arc<Site>>, visit: Visit, Form(fields): Fields) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    let Some(refresh_token) = settings_of(&site, member).await.refresh_token else {
        return Err(visit.fail(
            &site,
            StatusCode::CONFLICT,
            "There is no permission token to refresh: acquire one on My Account.",
        ));
    };
    let tokens = match site
        .cms
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ])
        .await
    {
        Ok(tokens) => Some(tokens),
        Err(e) if e.code() == Some("invalid_grant") => None,
        Err(e) => return Err(visit.api_failed(&site, &e)),
    };
    let result = if tokens.is_some() {
        "refreshed"
    } else {
        "refresh_failed"
    };
    site.store
        .update(|saved| {
            let settings = saved
                .members
                .entry(member.external_id.to_owned())
                .or_default();
            settings.permission_token = tokens.as_ref().map(|t| t.access_token.clone());
            settings.refresh_token = tokens.map(|t| t.refresh_token);
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to(&format!("/account?result={result}")).into_response())
}

async fn revoke(State(site): State<Arc<Site>>, visit: Visit, Form(fields): Fields) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    site.cms
        .revoke(member.external_id)
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    site.store
        .update(|saved| {
            if let Some(settings) = saved.members.get_mut(member.external_id) {
                settings.permission_token = None;
                settings.refresh_token = None;
            }
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to("/account?result=revoked").into_response())
}

/// Saves the checkbox; enabling needs a valid permission, as the disabled checkbox says.
async fn save_chat(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    let enable = fields.get("enable-chat").is_some_and(|v| v == "on");
    if enable {
        let permission = site
            .cms
            .permission(member.external_id)
            .await
            .map_err(|e| visit.api_failed(&site, &e))?;
        if !permission.is_valid() {
            return Err(visit.fail(
                &site,
                StatusCode::CONFLICT,
                "Chat can be enabled only with a valid permission token: acquire one on My Account first.",
            ));
        }
    }
    site.store
        .update(|saved| {
            saved
                .members
                .entry(member.external_id.to_owned())
                .or_default()
                .chat_enabled = enable;
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to("/account?result=saved").into_response())
}

/// Sends the member to their console with a fresh one-time login link.
async fn messenger(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    let link = site
        .cms
        .login_link(member.external_id)
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    Ok(Redirect::to(&link).into_response())
}

async fn members(State(site): State<Arc<Site>>, visit: Visit) -> Response {
    let mut content = String::from(r#"<ul class="people">"#);
    for user in &USERS {
        content.push_str(&format!(
            r#"<li><a href="/members/{id}"><strong>{name}</strong></a><br><span class="hint">{bio}</span></li>"#,
            id = esc(user.external_id),
            name = esc(user.display_name),
            bio = esc(user.bio),
        ));
    }
    content.push_str("</ul>");
    visit.page(&site, "Members", &content)
}

/// The member's chat box, when they enabled chat and hold a valid permission: the
/// widget's script tag, with an identity assertion when someone else is signed in.
async fn chat_box(
    site: &Site,
    visit: &Visit,
    member: &DemoUser,
) -> Result<Option<String>, Failure> {
    if !settings_of(site, member).await.chat_enabled {
        return Ok(None);
    }
    let permission: Permission = site
        .cms
        .permission(member.external_id)
        .await
        .map_err(|e| visit.api_failed(site, &e))?;
    let (true, Some(endpoint)) = (permission.is_valid(), permission.endpoint) else {
        return Ok(None);
    };
    // A member looking at their own chat box sees it as an anonymous visitor would:
    // vouching for them to themselves would only open a chat with themselves.
    let assertion = match visit.viewer {
        Some(viewer) if viewer.external_id != member.external_id => {
            let assertion = site.assertion(viewer).map_err(|e| {
                tracing::error!(error = format!("{e:#}"), "no identity assertion");
                visit.fail(
                    site,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The identity assertion could not be signed.",
                )
            })?;
            format!(r#" data-visitor-assertion="{}""#, esc(&assertion))
        }
        _ => String::new(),
    };
    Ok(Some(format!(
        r#"<div class="chat-box" id="chat-box" data-member="{member}"><script src="{src}" data-app="{app}" data-endpoint="{endpoint}"{assertion} async></script></div>"#,
        member = esc(member.external_id),
        src = esc(&format!("{}widget.js", site.gateway)),
        app = esc(&site.app.app_id),
        endpoint = esc(&endpoint),
    )))
}

async fn profile(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Path(external_id): Path<String>,
) -> PageResult {
    let Some(member) = user(&external_id) else {
        return Err(visit.fail(&site, StatusCode::NOT_FOUND, "There is no such member."));
    };
    let own = visit
        .viewer
        .is_some_and(|v| v.external_id == member.external_id);
    let mut content = format!(
        r#"<p class="bio" id="bio">{}</p><h2>Chat</h2>"#,
        esc(member.bio)
    );
    match chat_box(&site, &visit, member).await? {
        Some(chat_box) => {
            if own {
                content.push_str(r#"<p class="hint">This is your chat box as visitors see it; you answer in your messenger (My Account → Open my messenger).</p>"#);
            }
            content.push_str(&chat_box);
        }
        None if own => content.push_str(r#"<p id="no-chat">Chat is not enabled on your profile: acquire a permission token and enable it on <a href="/account">My Account</a>.</p>"#),
        None => content.push_str(&format!(
            r#"<p id="no-chat">{} has not enabled chat on this profile.</p>"#,
            esc(member.display_name)
        )),
    }
    Ok(visit.page(&site, member.display_name, &content))
}

async fn contact(State(site): State<Arc<Site>>, visit: Visit) -> PageResult {
    let owner = user(OWNER).expect("the owner is a demo user");
    let chat = match chat_box(&site, &visit, owner).await? {
        Some(chat_box) => format!(
            "<p>Chat with {} now, or leave a message when she is away.</p>{chat_box}",
            esc(owner.display_name)
        ),
        None => format!(
            r#"<p id="no-chat">{name} has not enabled chat yet. To see her chat box here: <a href="/signin">sign in</a> as {name}, open <a href="/account">My Account</a>, acquire a permission token, tick <em>Enable chat on my profile</em> and click <em>Save</em>.</p>"#,
            name = esc(owner.display_name)
        ),
    };
    let content = format!(
        r#"<div class="columns">
<section id="contact-form">
<h2>Write to us</h2>
<form method="post" action="/contact">{csrf}
<label for="contact-name">Your name</label><input type="text" id="contact-name" name="name" maxlength="100">
<label for="contact-email">Your email</label><input type="email" id="contact-email" name="email" maxlength="200">
<label for="contact-message">Message</label><textarea id="contact-message" name="message" rows="5" maxlength="4000" required></textarea>
<p><button type="submit">Send</button></p>
</form>
</section>
<section id="contact-chat">
<h2>Chat</h2>
{chat}
</section>
</div>"#,
        csrf = csrf_field(&visit.csrf),
    );
    Ok(visit.page(&site, "Contact", &content))
}

async fn contact_sent(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
    visit.check(&site, &fields).await?;
    if fields.get("message").is_none_or(|m| m.trim().is_empty()) {
        return Err(visit.fail(&site, StatusCode::BAD_REQUEST, "Write a message first."));
    }
    let name = fields
        .get("name")
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .unwrap_or("stranger");
    let content = format!(
        r#"<p class="notice" id="thanks">Thanks, {}. This is a demo: your message went nowhere. Try the chat box instead.</p><p><a href="/contact">Back to Contact</a></p>"#,
        esc(name)
    );
    Ok(visit.page(&site, "Thank you", &content))
}

async fn privacy(State(site): State<Arc<Site>>, visit: Visit) -> Response {
    let content = r#"<p>This demo site runs on your own machine. It keeps who is signed in (by a
cookie holding a random session id), each demo member's Palaver tokens and chat setting, and
the webhook events it received, in a file in Palaver's data directory. Nothing leaves your
machine.</p>
<p>When you chat, Palaver stores the conversation for the app's retention period so the member
can read it in their messenger; the member can see the name you give and, when you are signed
in here, that this site vouched for who you are.</p>"#;
    visit.page(&site, "Privacy", content)
}

async fn not_found(State(site): State<Arc<Site>>, visit: Visit) -> Failure {
    visit.fail(&site, StatusCode::NOT_FOUND, "There is no such page.")
}
