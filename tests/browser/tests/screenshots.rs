//! Screenshots of the widget in each of its seven themes and of the console, written to
//! `<target>/browser-artifacts/` (one PNG per shot) for people to look at; the test
//! checks that each themed widget rendered and opened before its shot is taken.

use palaver_browser_tests::demo::{self, MEMBER};
use palaver_browser_tests::{Chromium, Palaver, console};

const THEMES: [&str; 7] = ["none", "blue", "green", "orange", "pink", "purple", "gray"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_in_every_theme_and_the_console() {
    let Some(chromium) = Chromium::start().await else {
        return;
    };
    let palaver = Palaver::up().await;
    let member = chromium.session().await;
    let visitor = chromium.session().await;
    let profile = demo::member_with_chat_box(&member, &palaver, MEMBER).await;
    demo::open_console(&member, &palaver).await;

    for theme in THEMES {
        visitor.goto(&profile).await;
        visitor.embed_widget_again(&[("theme", theme)], theme).await;
        let widget = visitor.widget();
        widget.visible_part("badge").await;
        widget.click("open").await;
        widget.visible_part("name-input").await;
        let shown = widget.attr_of("[data-theme]", "data-theme").await;
        assert_eq!(shown.as_deref(), Some(theme), "the widget took the theme");
        // The open panel floats over the page (position: fixed): the window shows it all.
        visitor.screenshot(&format!("widget-theme-{theme}")).await;
    }

    let widget = visitor.widget();
    widget.type_into("name-input", "Robin").await;
    widget.click("start").await;
    widget
        .type_into("message-input", "Hello from the screenshot test")
        .await;
    widget.click("send").await;
    console::open_conversation(&member, "Robin").await;
    console::wait_for_message(&member, "Hello from the screenshot test").await;
    console::send(&member, "Hello Robin!").await;
    widget
        .wait_for_text("messages", "the member's answer", |t| {
            t.contains("Hello Robin!")
        })
        .await;
    visitor.screenshot("widget-conversation").await;
    member.screenshot("console").await;
    visitor.close().await;
    member.close().await;
}
