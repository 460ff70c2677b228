//! A member's chat box, as their profile and the contact page show it.

use http::StatusCode;

use super::{Failure, settings_of};
use crate::demo::cms::Permission;
use crate::demo::html::esc;
use crate::demo::{DemoUser, Site, Visit};

/// The member's chat box, when they enabled chat and hold a valid permission: the
/// widget's script tag, with an identity assertion when someone else is signed in.
pub(super) async fn chat_box(
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
