//! Signing in as one of the demo users (no passwords), and signing out.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use http::header::SET_COOKIE;

use super::{Fields, PageResult, store_failed};
use crate::demo::html::{csrf_field, esc};
use crate::demo::state::{self, SignedIn};
use crate::demo::{OWNER, Session, Site, USERS, Visit, new_session_id, session_cookie, user};

pub(super) async fn signin_page(State(site): State<Arc<Site>>, visit: Visit) -> Response {
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
pub(super) async fn signin(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
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

pub(super) async fn signout(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
    visit.check(&site, &fields).await?;
    site.store
        .update(|saved| saved.sessions.remove(&visit.session))
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to("/").into_response())
}
