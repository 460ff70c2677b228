//! Chats between a visitor on the member's profile and the member in the console (issue
//! 6, item 5b, 5c and the HTML half of 5f): each sees the other's messages and typing, a
//! reload keeps the visitor's history, a signed-in visitor shows as verified with their
//! screen name, and HTML in a name or message is shown as text.

use fantoccini::Locator;
use palaver_browser_tests::{Page, Scene, Widget, console, demo, eventually};

/// The other person of the demo site, who visits the member's profile signed in.
const VISITOR: &str = "Rita Reader";

/// Opens the chat panel unless it is already open.
async fn open_panel(widget: &Widget<'_>) {
    if !widget.shows("message-input").await && !widget.shows("name-input").await {
        widget.click("open").await;
    }
}

/// An anonymous visitor starts a chat on `profile` as `name` and writes `text`.
async fn start_anonymous_chat(visitor: &Page, profile: &url::Url, name: &str, text: &str) {
    visitor.goto(profile).await;
    let widget = visitor.widget();
    open_panel(&widget).await;
    widget.type_into("name-input", name).await;
    widget.click("start").await;
    widget.type_into("message-input", text).await;
    widget.click("send").await;
    widget
        .wait_for_text("messages", "the visitor's own message", |shown| {
            shown.contains(text)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_visitor_and_the_member_chat_and_a_reload_keeps_the_history() {
    let scene = Scene::start().await;
    demo::open_console(&scene.member, &scene.palaver).await;

    start_anonymous_chat(
        &scene.visitor,
        &scene.profile,
        "Robin",
        "Hello, are you there?",
    )
    .await;
    console::open_conversation(&scene.member, "Robin").await;
    assert_eq!(
        console::verified_marker(&scene.member, "Robin").await,
        "unverified",
        "an anonymous visitor is marked unverified"
    );
    console::wait_for_message(&scene.member, "Hello, are you there?").await;

    // The visitor types: the member sees it. The widget says "typing" at most every few
    // seconds, so the visitor goes on typing, as people do, until the member sees it.
    let widget = scene.visitor.widget();
    widget.type_into("message-input", "I have a question").await;
    eventually("the member to see that the visitor is typing", || async {
        let typing = scene
            .member
            .client
            .find(Locator::Css("[data-part=\"typing\"]"))
            .await
            .map_err(|e| e.to_string())?;
        if !typing
            .text()
            .await
            .map_err(|e| e.to_string())?
            .trim()
            .is_empty()
        {
            return Ok(());
        }
        widget.type_into("message-input", "?").await;
        Err("no typing line in the console".to_owned())
    })
    .await;

    // The member types: the visitor sees it; then the member's answer arrives.
    scene
        .member
        .type_into("[data-part=\"message-input\"]", "Yes, ")
        .await;
    widget
        .wait_for_text("typing", "that the member is typing", |t| {
            !t.trim().is_empty()
        })
        .await;
    scene
        .member
        .type_into("[data-part=\"message-input\"]", "how can I help?")
        .await;
    scene
        .member
        .find("[data-part=\"send\"]")
        .await
        .click()
        .await
        .expect("clicking send");
    widget
        .wait_for_text("messages", "the member's answer", |t| {
            t.contains("Yes, how can I help?")
        })
        .await;
    widget.click("send").await;
    console::wait_for_message(&scene.member, "I have a question").await;

    // A reload keeps the conversation.
    scene.visitor.reload().await;
    let widget = scene.visitor.widget();
    open_panel(&widget).await;
    let history = widget
        .wait_for_text("messages", "the whole conversation after a reload", |t| {
            t.contains("Hello, are you there?")
                && t.contains("Yes, how can I help?")
                && t.contains("I have a question")
        })
        .await;
    let first = history.find("Hello, are you there?").expect("first");
    let answer = history.find("Yes, how can I help?").expect("answer");
    let last = history.find("I have a question").expect("last");
    assert!(first < answer && answer < last, "in order: {history:?}");
    assert!(
        !widget.shows("name-input").await,
        "the visitor is not asked for a name again"
    );
    scene.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_visitor_shows_in_the_console_as_verified_with_their_screen_name() {
    let scene = Scene::start().await;
    demo::open_console(&scene.member, &scene.palaver).await;

    demo::sign_in(&scene.visitor, &scene.palaver, VISITOR).await;
    scene.visitor.goto(&scene.profile).await;
    let widget = scene.visitor.widget();
    open_panel(&widget).await;
    widget.type_into("message-input", "Hi from a member").await;
    assert!(
        !widget.shows("name-input").await,
        "a signed-in visitor is not asked for a name"
    );
    widget.click("send").await;

    console::open_conversation(&scene.member, VISITOR).await;
    assert_eq!(
        console::verified_marker(&scene.member, VISITOR).await,
        "verified",
        "a signed-in visitor shows with their screen name, marked verified"
    );
    console::wait_for_message(&scene.member, "Hi from a member").await;
    scene.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_a_name_or_a_message_shows_as_text() {
    let scene = Scene::start().await;
    demo::open_console(&scene.member, &scene.palaver).await;

    // Were any of these made into elements, the page's text would not show the tags
    // (and an inline handler could run where no CSP stops it).
    let name = "<b>Bold</b> <img src=x onerror=\"window.injected=1\">";
    let message = "<img src=y onerror=\"window.injected=2\"><i>not italic</i>";
    start_anonymous_chat(&scene.visitor, &scene.profile, name, message).await;
    console::open_conversation(&scene.member, name).await;
    console::wait_for_message(&scene.member, message).await;
    let answer = "<em>plain</em> & <u>text</u>";
    console::send(&scene.member, answer).await;
    let widget = scene.visitor.widget();
    widget
        .wait_for_text("messages", "the member's answer as text", |t| {
            t.contains(answer)
        })
        .await;
    for page in [&scene.visitor, &scene.member] {
        let injected = page.script("return window.injected ?? null;", vec![]).await;
        assert_eq!(
            injected,
            serde_json::Value::Null,
            "a handler from the text ran"
        );
    }
    scene.close().await;
}
