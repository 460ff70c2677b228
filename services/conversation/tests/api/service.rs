//! The service as a process runs it: health, readiness, metrics, shutdown.

use std::time::Duration;

use crate::helpers::{Backend, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_serves_metrics_and_drains_on_shutdown() {
    let t = spawn(Backend::Sqlite).await;
    let chat = t.chat().await;
    t.send(&chat.visitor, &chat.conversation.id, "c1", "hello")
        .await
        .unwrap();
    let admin = format!("http://{}", t.admin);
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("palaver_conversation_messages_persisted_total"),
        "{metrics}"
    );
    let mut client = t.client();
    let caller = chat.visitor.clone();
    let id = chat.conversation.id.clone();
    t.stop().await;
    let after = tokio::time::timeout(
        Duration::from_secs(10),
        crate::helpers::send(&mut client, &caller, &id, "c2", "too late"),
    )
    .await
    .expect("an answer, not a hang");
    assert!(after.is_err(), "a stopped service takes nothing");
}
