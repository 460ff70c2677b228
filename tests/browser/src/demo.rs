//! The demo site's flows, done as a person does them in the browser: sign in as one of
//! its people, acquire a permission token through the consent page, tick the chat box
//! checkbox, open the messenger.

use fantoccini::Locator;
use url::Url;

use crate::{Page, Palaver, eventually};

/// The member whose profile the scenarios use.
pub const MEMBER: &str = "Sam Member";

/// What the member answers on the consent page.
#[derive(Clone, Copy, Debug)]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    fn label(self) -> &'static str {
        match self {
            Decision::Approve => "Approve",
            Decision::Deny => "Deny",
        }
    }
}

/// Signs in on the demo site as `who` (e.g. [`MEMBER`]) and lands on their account page.
pub async fn sign_in(page: &Page, palaver: &Palaver, who: &str) {
    page.goto(&palaver.demo_page("/signin")).await;
    page.click_button(&format!("Sign in as {who}")).await;
    page.wait_until_at(&palaver.demo, "/account").await;
}

/// Whether the "enable chat" checkbox on the account page can be ticked now.
pub async fn checkbox_enabled(page: &Page) -> bool {
    page.find("#enable-chat")
        .await
        .is_enabled()
        .await
        .expect("the checkbox's state")
}

/// From the account page: "Acquire a permission token" (or "Refresh …"), then the
/// decision on the gateway's consent page, then back on My Account.
pub async fn decide_consent(page: &Page, palaver: &Palaver, decision: Decision) {
    page.goto(&palaver.demo_page("/account")).await;
    let acquire = eventually(
        "a button to acquire or refresh the permission token",
        || async {
            match page.try_button("Acquire a permission token").await {
                Ok(button) => Ok(button),
                Err(_) => page.try_button("Refresh the permission token").await,
            }
        },
    )
    .await;
    acquire
        .click()
        .await
        .expect("clicking to acquire the token");
    page.wait_until_at(&palaver.api, "/consent").await;
    page.click_button(decision.label()).await;
    // Back through the demo site's return URL (which exchanges the code) to My Account;
    // leaving earlier could cut that exchange off.
    page.wait_until_at(&palaver.demo, "/account").await;
}

/// Ticks "enable chat" (once it can be ticked) and saves.
pub async fn enable_chat(page: &Page, palaver: &Palaver) {
    page.goto(&palaver.demo_page("/account")).await;
    let checkbox = eventually("the enable-chat checkbox to be enabled", || async {
        let checkbox = page
            .client
            .find(Locator::Css("#enable-chat"))
            .await
            .map_err(|e| e.to_string())?;
        match checkbox.is_enabled().await {
            Ok(true) => Ok(checkbox),
            Ok(false) => Err("disabled".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    if !checkbox.is_selected().await.expect("the checkbox's state") {
        checkbox.click().await.expect("ticking the checkbox");
    }
    page.click_button("Save").await;
    page.wait_for_url("My Account after saving", |now| {
        now.path() == "/account" && now.query().is_some_and(|q| q.contains("result=saved"))
    })
    .await;
    assert!(
        page.find("#enable-chat")
            .await
            .is_selected()
            .await
            .expect("the checkbox's state"),
        "the saved account page shows the chat box enabled"
    );
}

/// The signed-in member's public profile page, as the account page links to it.
pub async fn own_profile(page: &Page, palaver: &Palaver) -> Url {
    page.goto(&palaver.demo_page("/account")).await;
    let link = page.find("a[href*='/members/']").await;
    let href = link
        .attr("href")
        .await
        .expect("the profile link's href")
        .expect("an href");
    palaver.demo_page(&href)
}

/// Signs `who` in, acquires their permission token (Approve) and enables their chat box;
/// returns their public profile page.
pub async fn member_with_chat_box(page: &Page, palaver: &Palaver, who: &str) -> Url {
    sign_in(page, palaver, who).await;
    decide_consent(page, palaver, Decision::Approve).await;
    enable_chat(page, palaver).await;
    own_profile(page, palaver).await
}

/// From the account page, "Open my messenger": the console, signed in as the member.
pub async fn open_console(page: &Page, palaver: &Palaver) {
    page.goto(&palaver.demo_page("/account")).await;
    let before = page.client.windows().await.expect("the windows");
    page.click_button("Open my messenger").await;
    // The console may open in this window or in a new one.
    eventually("the console to open", || async {
        let windows = page.client.windows().await.map_err(|e| e.to_string())?;
        if let Some(new) = windows.into_iter().find(|w| !before.contains(w)) {
            page.client
                .switch_to_window(new)
                .await
                .map_err(|e| e.to_string())?;
        }
        let now = page.url().await;
        if now.origin() == palaver.api.origin() && now.path().starts_with("/console") {
            Ok(())
        } else {
            Err(now.to_string())
        }
    })
    .await;
    page.find("#status").await;
}
