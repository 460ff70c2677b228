//! My Account: the permission token's status and its buttons, the "Enable chat on my
//! profile" checkbox, and the way to the member's messenger.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use http::StatusCode;
use serde::Deserialize;

use super::{Fields, PageResult, settings_of, store_failed};
use crate::demo::html::{csrf_field, esc};
use crate::demo::{Site, Visit};

/// What My Account says after an action.
#[derive(Deserialize)]
pub(super) struct AccountQuery {
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

pub(super) async fn account(
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

/// Saves the checkbox; enabling needs a valid permission, as the disabled checkbox says.
pub(super) async fn save_chat(
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
pub(super) async fn messenger(
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
