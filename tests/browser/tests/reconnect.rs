//! A widget whose connection drops reconnects by itself and resumes its conversation from
//! the last message it holds: what the member wrote while it was away arrives, once.

use palaver_browser_tests::{Scene, console, demo, eventually};

/// Puts the page's WebSocket behind a switch, so the test can cut the widget off as a
/// network would: `palaverCut(true)` closes its sockets, and new ones fail until
/// `palaverCut(false)`.
const NETWORK_SWITCH: &str = r#"
    const Native = window.WebSocket;
    const sockets = [];
    let cut = false;
    window.WebSocket = function (url) {
        const socket = new Native(cut ? "ws://127.0.0.1:9/" : url);
        sockets.push(socket);
        return socket;
    };
    window.palaverCut = (on) => {
        cut = on;
        if (on) for (const socket of sockets) socket.close();
    };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_that_lost_its_connection_gets_what_was_written_meanwhile() {
    let scene = Scene::start().await;
    demo::open_console(&scene.member, &scene.palaver).await;

    scene.visitor.goto(&scene.profile).await;
    scene.visitor.script(NETWORK_SWITCH, vec![]).await;
    // A widget that opens its sockets through the switch.
    scene.visitor.embed_widget_again(&[], "switched").await;
    let widget = scene.visitor.widget();
    widget.click("open").await;
    widget.type_into("name-input", "Robin").await;
    widget.click("start").await;
    widget
        .type_into("message-input", "Hello before the cut")
        .await;
    widget.click("send").await;
    console::open_conversation(&scene.member, "Robin").await;
    console::wait_for_message(&scene.member, "Hello before the cut").await;

    scene
        .visitor
        .script("window.palaverCut(true);", vec![])
        .await;
    widget
        .wait_for_text("notice", "that the connection is lost", |t| {
            !t.trim().is_empty()
        })
        .await;
    let meanwhile = "Written while you were away";
    console::send(&scene.member, meanwhile).await;
    console::wait_for_message(&scene.member, meanwhile).await;
    let before = widget
        .try_part("messages")
        .await
        .expect("the messages")
        .text()
        .await
        .expect("their text");
    assert!(
        !before.contains(meanwhile),
        "the widget is cut off: {before}"
    );

    scene
        .visitor
        .script("window.palaverCut(false);", vec![])
        .await;
    let after = widget
        .wait_for_text("messages", "the message written meanwhile", |t| {
            t.contains(meanwhile)
        })
        .await;
    assert_eq!(after.matches(meanwhile).count(), 1, "once: {after}");
    assert!(
        after.find("Hello before the cut") < after.find(meanwhile),
        "in order: {after}"
    );
    eventually("the notice to go once connected again", || async {
        if widget.shows("notice").await {
            Err("the notice is still shown".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    scene.close().await;
}
