//! "Leave a message" while the member is offline (issue 6, item 5d): the widget offers
//! it, the console shows it, and the demo site's webhook receiver gets `message.offline`
//! with a valid signature.

use fantoccini::Locator;
use palaver_browser_tests::{Scene, demo, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_gets_the_message_in_the_console_and_the_site_a_signed_webhook() {
    // The member has a chat box but no console open: offline.
    let scene = Scene::start().await;

    scene.visitor.goto(&scene.profile).await;
    let widget = scene.visitor.widget();
    if !widget.shows("offline-form").await {
        widget.click("open").await;
    }
    widget.visible_part("offline-form").await;
    assert!(
        !widget.shows("message-input").await,
        "no live chat while offline"
    );
    widget.type_into("offline-name", "Casey").await;
    let text_left = "Please call me back about the order.";
    widget.type_into("offline-text", text_left).await;
    widget.type_into("offline-email", "casey@example.org").await;
    widget.click("offline-send").await;
    widget
        .wait_for_text("offline-done", "that the message was left", |t| {
            !t.trim().is_empty()
        })
        .await;

    demo::open_console(&scene.member, &scene.palaver).await;
    scene
        .member
        .wait_for_text(
            "[data-part=\"offline-messages\"]",
            "the message left",
            |t| t.contains(text_left) && t.contains("casey@example.org"),
        )
        .await;

    // The demo site lists only deliveries whose signature verified.
    scene
        .member
        .goto(&scene.palaver.demo_page("/webhooks"))
        .await;
    eventually(
        "the demo site to list a verified message.offline webhook",
        || async {
            scene.member.reload().await;
            let delivery = scene
                .member
                .client
                .find(Locator::Css("li.webhook[data-type=\"message.offline\"]"))
                .await
                .map_err(|e| e.to_string())?;
            let text = delivery.text().await.map_err(|e| e.to_string())?;
            if text.contains("signature verified") && text.contains(text_left) {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
    scene.close().await;
}
