//! The operator console (`/console`) as a member uses it: the status select, the list of
//! conversations, the open conversation's messages, typing line and composer.

use fantoccini::Locator;
use fantoccini::elements::Element;

use crate::{Page, eventually};

/// Chooses `status` (a value of the `#status` select, e.g. `busy`).
pub async fn set_status(page: &Page, status: &str) {
    let select = page.find("#status").await;
    select
        .select_by_value(status)
        .await
        .unwrap_or_else(|e| panic!("cannot choose the status {status:?}: {e}"));
}

/// Waits for the conversation list to show an entry whose text contains `name`.
pub async fn conversation_with(page: &Page, name: &str) -> Element {
    eventually(
        &format!("a conversation with {name:?} in the list"),
        || async {
            let items = page
                .client
                .find_all(Locator::Css(
                    "[data-part=\"conversation-list\"] [data-conversation]",
                ))
                .await
                .map_err(|e| e.to_string())?;
            let mut seen = Vec::new();
            for item in items {
                let text = item.text().await.map_err(|e| e.to_string())?;
                if text.contains(name) {
                    return Ok(item);
                }
                seen.push(text);
            }
            Err(format!("the list shows {seen:?}"))
        },
    )
    .await
}

/// Opens the conversation with `name` from the list.
pub async fn open_conversation(page: &Page, name: &str) {
    let item = conversation_with(page, name).await;
    // The entry is a list item holding the button that opens it.
    let target = item.find(Locator::Css("button")).await.unwrap_or(item);
    target
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot open the conversation with {name:?}: {e}"));
}

/// The marker beside `name` in the conversation list: `verified` or `unverified` (its
/// `data-verified`), checked against its text. The list is drawn anew as events arrive,
/// so this looks again until it reads a whole entry.
pub async fn verified_marker(page: &Page, name: &str) -> String {
    eventually(&format!("the verified marker of {name:?}"), || async {
        let item = conversation_with(page, name).await;
        let marker = item
            .find(Locator::Css("[data-verified]"))
            .await
            .map_err(|e| e.to_string())?;
        let value = marker
            .attr("data-verified")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no data-verified")?;
        let text = marker.text().await.map_err(|e| e.to_string())?;
        if text == value {
            Ok(value)
        } else {
            Err(format!(
                "data-verified {value:?} but the text says {text:?}"
            ))
        }
    })
    .await
}

/// Writes `text` in the open conversation and sends it.
pub async fn send(page: &Page, text: &str) {
    page.type_into("[data-part=\"message-input\"]", text).await;
    page.find("[data-part=\"send\"]")
        .await
        .click()
        .await
        .expect("clicking send");
}

/// Waits until the open conversation's messages contain `text`.
pub async fn wait_for_message(page: &Page, text: &str) -> String {
    page.wait_for_text(
        "[data-part=\"messages\"]",
        &format!("the message {text:?}"),
        |shown| shown.contains(text),
    )
    .await
}
