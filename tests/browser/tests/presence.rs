//! A status change in the console reaches the badge on a page that is already open
//! (issue 6, item 5e): the test waits for the change to arrive, without timing it.

use palaver_browser_tests::{Scene, Widget, console, demo, eventually};

/// Waits until the widget's host says `status` (`data-status`), and its status line says
/// something (the status text in the page's language).
async fn wait_for_status(widget: &Widget<'_>, status: &str) {
    eventually(&format!("the badge to say {status}"), || async {
        let shown = widget.host_attr("data-status").await;
        let text = widget
            .try_part("status")
            .await?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        if shown.as_deref() == Some(status) && !text.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("data-status {shown:?}, text {text:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_in_the_console_updates_the_badge_on_an_open_page() {
    let scene = Scene::start().await;

    scene.visitor.goto(&scene.profile).await;
    let widget = scene.visitor.widget();
    wait_for_status(&widget, "offline").await;

    demo::open_console(&scene.member, &scene.palaver).await;
    wait_for_status(&widget, "online").await;
    console::set_status(&scene.member, "busy").await;
    wait_for_status(&widget, "busy").await;
    console::set_status(&scene.member, "be_right_back").await;
    wait_for_status(&widget, "be_right_back").await;
    // Invisible is offline to visitors.
    console::set_status(&scene.member, "invisible").await;
    wait_for_status(&widget, "offline").await;
    scene.close().await;
}
