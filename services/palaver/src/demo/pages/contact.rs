//! The contact page: a form that goes nowhere, beside the site owner's chat box.

use std::sync::Arc;

use axum::extract::{Form, State};
use http::StatusCode;

use super::chat_box::chat_box;
use super::{Fields, PageResult};
use crate::demo::html::{csrf_field, esc};
use crate::demo::{OWNER, Site, Visit, user};

pub(super) async fn contact(State(site): State<Arc<Site>>, visit: Visit) -> PageResult {
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

pub(super) async fn contact_sent(
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
