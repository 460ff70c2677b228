//! The profile flow on the demo site (issue 6, item 5a and the Deny half of 5f): the chat
//! box checkbox is disabled until the member holds a permission token, acquired through
//! the consent page; once enabled, the chat box is on the member's public profile.

use fantoccini::Locator;
use palaver_browser_tests::Stage;
use palaver_browser_tests::demo::{self, Decision, MEMBER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_consent_enables_the_checkbox_that_puts_the_chat_box_on_the_profile() {
    let stage = Stage::start().await;
    let member = stage.person().await;

    demo::sign_in(&member, &stage.palaver, MEMBER).await;
    assert!(
        !demo::checkbox_enabled(&member).await,
        "without a permission token the checkbox is disabled"
    );
    let profile = demo::own_profile(&member, &stage.palaver).await;
    member.goto(&profile).await;
    member.find("#no-chat").await;
    assert!(
        member
            .client
            .find(Locator::Css(".palaver-widget"))
            .await
            .is_err(),
        "the profile has no chat box before it is enabled"
    );

    demo::decide_consent(&member, &stage.palaver, Decision::Approve).await;
    member.goto(&stage.palaver.demo_page("/account")).await;
    let status = member.find("#permission-status").await;
    assert_eq!(
        status.attr("data-status").await.expect("the status"),
        Some("valid".to_owned())
    );
    demo::enable_chat(&member, &stage.palaver).await;

    member.goto(&profile).await;
    let widget = member.widget();
    widget.visible_part("badge").await;
    widget
        .wait_for_text("status", "the member's status", |text| {
            !text.trim().is_empty()
        })
        .await;
    member.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denying_consent_leaves_the_checkbox_disabled() {
    let stage = Stage::start().await;
    let member = stage.person().await;

    demo::sign_in(&member, &stage.palaver, MEMBER).await;
    demo::decide_consent(&member, &stage.palaver, Decision::Deny).await;
    member
        .wait_for_text("#notice", "that the request was denied", |t| {
            t.contains("denied")
        })
        .await;
    member.goto(&stage.palaver.demo_page("/account")).await;
    assert!(
        !demo::checkbox_enabled(&member).await,
        "after Deny the checkbox is still disabled"
    );
    let status = member.find("#permission-status").await;
    assert_eq!(
        status.attr("data-status").await.expect("the status"),
        Some("none".to_owned())
    );
    member.button("Acquire a permission token").await;
    member.close().await;
}
