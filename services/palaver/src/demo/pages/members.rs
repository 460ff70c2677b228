//! The members: their list, and each one's public profile with their chat box.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;

use super::PageResult;
use super::chat_box::chat_box;
use crate::demo::html::esc;
use crate::demo::{Site, USERS, Visit, user};

pub(super) async fn members(State(site): State<Arc<Site>>, visit: Visit) -> Response {
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

pub(super) async fn profile(
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
