//! The demo site's pages and forms: home, sign-in, My Account (the permission token,
//! the "Enable chat on my profile" checkbox, revoking, the messenger), the members'
//! public profiles with their chat boxes, the contact page with the owner's chat box,
//! and the privacy page.
//!
//! Every form is a POST carrying the session's CSRF token; every form that changes
//! something answers with a redirect (303), so reloading a page never repeats an
//! action. Every value put into a page is escaped.
//!
//! One file per page or area: `home` (home and privacy), `signin`, `account` (My
//! Account), `permission` (the consent flow, refreshing, revoking), `members` (the list
//! and the profiles), `contact`, and `chat_box`, which profiles and the contact page
//! share. The answers every page shares (a failure page, a form's CSRF check) are here.

mod account;
mod chat_box;
mod contact;
mod home;
mod members;
mod permission;
mod signin;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};

use crate::demo::cms::CmsError;
use crate::demo::html::{self, csrf_field, esc};
use crate::demo::state::MemberSettings;
use crate::demo::{DemoUser, Site, Visit};
use account::{account, messenger, save_chat};
use contact::{contact, contact_sent};
use home::{home, privacy};
use members::{members, profile};
use permission::{acquire, consent_return, refresh, revoke};
use signin::{signin, signin_page, signout};

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

async fn settings_of(site: &Site, member: &DemoUser) -> MemberSettings {
    site.store
        .read(|saved| saved.members.get(member.external_id).cloned())
        .await
        .unwrap_or_default()
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

async fn not_found(State(site): State<Arc<Site>>, visit: Visit) -> Failure {
    visit.fail(&site, StatusCode::NOT_FOUND, "There is no such page.")
}
