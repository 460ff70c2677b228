//! Screenshots of the widget in each of its seven themes and of the console, written to
//! `<target>/browser-artifacts/` (one PNG per shot) for people to look at; the test
//! checks that each themed widget rendered and opened before its shot is taken.

use palaver_browser_tests::{Scene, console, demo};

const THEMES: [&str; 7] = ["none", "blue", "green", "orange", "pink", "purple", "gray"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_in_every_theme_and_the_console() {
    let scene = Scene::start().await;
    demo::open_console(&scene.member, &scene.palaver).await;

    for theme in THEMES {
        scene.visitor.goto(&scene.profile).await;
        scene
            .visitor
            .embed_widget_again(&[("theme", theme)], theme)
            .await;
        let widget = scene.visitor.widget();
        widget.visible_part("badge").await;
        widget.click("open").await;
        widget.visible_part("name-input").await;
        let shown = widget.attr_of("[data-theme]", "data-theme").await;
        assert_eq!(shown.as_deref(), Some(theme), "the widget took the theme");
        // The open panel floats over the page (position: fixed): the window shows it all.
        scene
            .visitor
            .screenshot(&format!("widget-theme-{theme}"))
            .await;
    }

    let widget = scene.visitor.widget();
    widget.type_into("name-input", "Robin").await;
    widget.click("start").await;
    widget
        .type_into("message-input", "Hello from the screenshot test")
        .await;
    widget.click("send").await;
    console::open_conversation(&scene.member, "Robin").await;
    console::wait_for_message(&scene.member, "Hello from the screenshot test").await;
    console::send(&scene.member, "Hello Robin!").await;
    widget
        .wait_for_text("messages", "the member's answer", |t| {
            t.contains("Hello Robin!")
        })
        .await;
    scene.visitor.screenshot("widget-conversation").await;
    scene.member.screenshot("console").await;
    scene.close().await;
}
