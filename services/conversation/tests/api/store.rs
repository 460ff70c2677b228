//! The repository contract, run against PostgreSQL and SQLite alike: batches with mixed
//! outcomes, idempotency, sequence numbers under concurrent appends, and the outbox
//! written with every change.

use std::collections::HashSet;

use palaver_conversation::domain::Clock;
use palaver_conversation::model::{
    Caller, ConversationState, NewConversation, NewMessage, Started, Visitor, Who,
};
use palaver_conversation::store::Store;
use palaver_conversation::store::group_commit::{GroupCommit, GroupCommitConfig};
use palaver_kit::ErrorCode;
use palaver_kit::shutdown::Shutdown;

use crate::helpers::{Backend, database_only};

fn visitor(id: &str) -> Visitor {
    Visitor {
        visitor_id: id.into(),
        display_name: format!("Visitor {id}"),
        ..Visitor::default()
    }
}

fn caller(who: Who) -> Caller {
    Caller {
        app_id: "app_1".into(),
        who,
    }
}

async fn open(store: &Store, visitor_id: &str, endpoint: &str) -> String {
    let new = NewConversation {
        app_id: "app_1".into(),
        endpoint: endpoint.into(),
        member_id: "m_1".into(),
        member_name: "Owner".into(),
        visitor: visitor(visitor_id),
    };
    match store.start_conversation(&new, 10, 1_000).await.unwrap() {
        Started::Created(c) => c.conversation_id,
        Started::Existing(_) => panic!("expected a new conversation"),
    }
}

fn message(conversation_id: &str, who: Who, client_id: &str) -> NewMessage {
    NewMessage {
        conversation_id: conversation_id.into(),
        caller: caller(who),
        client_id: client_id.into(),
        text: format!("text {client_id}"),
        traceparent: None,
    }
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::helpers::Backend::Postgres).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::helpers::Backend::Sqlite).await;
            }
        }
    };
}

on_both!(one_failing_message_does_not_fail_its_batch);
async fn one_failing_message_does_not_fail_its_batch(backend: Backend) {
    let (_db, store) = database_only(backend).await;
    let a = open(&store, "v_a", "ce_a").await;
    let b = open(&store, "v_b", "ce_b").await;
    store.close(&b, 2_000).await.unwrap();
    let va = Who::Visitor(visitor("v_a"));
    let member = Who::Member("m_1".into());
    let batch = [
        message(&a, va.clone(), "1"),
        message(&a, Who::Visitor(visitor("v_b")), "x"),
        message(&b, Who::Visitor(visitor("v_b")), "closed"),
        message("c_missing", va.clone(), "gone"),
        message(&a, member.clone(), "1"),
        message(&a, va.clone(), "1"),
        message(&a, Who::App, "app"),
        message(&a, va.clone(), "2"),
    ];
    let events_before = store.pending_events(1000).await.unwrap().len();
    let results = store.append_messages(&batch, 3_000).await.unwrap();
    let codes: Vec<Result<(u64, bool), ErrorCode>> = results
        .iter()
        .map(|r| match r {
            Ok(appended) => Ok((appended.message.seq as u64, appended.created)),
            Err(error) => Err(error.code),
        })
        .collect();
    assert_eq!(
        codes,
        [
            Ok((1, true)),
            Err(ErrorCode::PermissionDenied),
            Err(ErrorCode::FailedPrecondition),
            Err(ErrorCode::NotFound),
            Ok((2, true)),
            Ok((1, false)),
            Err(ErrorCode::PermissionDenied),
            Ok((3, true)),
        ]
    );
    let first = results[0].as_ref().unwrap();
    assert_eq!(results[5].as_ref().unwrap().message, first.message);
    let events = store.pending_events(1000).await.unwrap();
    assert_eq!(events.len(), events_before + 3, "one event per new message");
    let stored = store.all_messages(&a).await.unwrap();
    assert_eq!(stored.len(), 3);
    let conversation = store.conversation(&a).await.unwrap().unwrap();
    assert_eq!(conversation.last_seq, 3);
    assert_eq!(
        (conversation.visitor_read_seq, conversation.member_read_seq),
        (3, 2)
    );

    let again = store.append_messages(&batch[..1], 4_000).await.unwrap();
    assert!(!again[0].as_ref().unwrap().created);
    assert_eq!(store.all_messages(&a).await.unwrap().len(), 3);
}

on_both!(a_commit_hands_its_events_over_each_naming_the_one_before_it);
async fn a_commit_hands_its_events_over_each_naming_the_one_before_it(backend: Backend) {
    let (_db, store) = database_only(backend).await;
    let handoff = store.handoff();
    let a = open(&store, "v_a", "ce_a").await;
    let (opened, dropped) = handoff.take();
    assert!(!dropped);
    assert_eq!(
        opened.len(),
        2,
        "opened and the inbox's started: {opened:?}"
    );
    assert_eq!(opened[0].after, None, "the first event of its stream");
    assert_eq!(opened[1].after, Some(opened[0].event.event_at));

    let batch = [
        message(&a, Who::Visitor(visitor("v_a")), "1"),
        message(&a, Who::Visitor(visitor("v_b")), "refused"),
        message(&a, Who::Member("m_1".into()), "2"),
    ];
    store.append_messages(&batch, 2_000).await.unwrap();
    let (messages, _) = handoff.take();
    assert_eq!(messages.len(), 2, "one event per new message");
    assert_eq!(messages[0].after, Some(opened[1].event.event_at));
    assert_eq!(messages[1].after, Some(messages[0].event.event_at));

    store.close(&a, 3_000).await.unwrap();
    let (closed, _) = handoff.take();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].after, Some(messages[1].event.event_at));

    // What was handed over is what the table holds, in the relay's order.
    let handed: Vec<_> = [opened, messages, closed]
        .concat()
        .into_iter()
        .map(|handed| handed.event)
        .collect();
    assert_eq!(store.pending_events(1000).await.unwrap(), handed);

    store.close(&a, 4_000).await.unwrap();
    assert_eq!(handoff.take(), (Vec::new(), false), "no change, no event");
}

on_both!(a_messages_event_keeps_the_trace_of_its_request);
async fn a_messages_event_keeps_the_trace_of_its_request(backend: Backend) {
    let (_db, store) = database_only(backend).await;
    let a = open(&store, "v_a", "ce_a").await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = NewMessage {
        traceparent: Some(traceparent.into()),
        ..message(&a, Who::Visitor(visitor("v_a")), "1")
    };
    store.append_messages(&[traced], 3_000).await.unwrap();
    let events = store.pending_events(1000).await.unwrap();
    let event = events.last().unwrap();
    assert!(event.subject.ends_with(".msg"), "{event:?}");
    assert_eq!(event.traceparent.as_deref(), Some(traceparent));
}

on_both!(group_commit_numbers_concurrent_appends_without_gaps);
async fn group_commit_numbers_concurrent_appends_without_gaps(backend: Backend) {
    let (_db, store) = database_only(backend).await;
    let conversation = open(&store, "v_a", "ce_a").await;
    let stop = Shutdown::new();
    let (group_commit, task) = GroupCommit::start(
        store.clone(),
        GroupCommitConfig::default(),
        Clock::default(),
        stop.clone(),
    );
    let mut tasks = Vec::new();
    for sender in 0..64 {
        let group_commit = group_commit.clone();
        let conversation = conversation.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..10 {
                let who = if sender % 2 == 0 {
                    Who::Visitor(visitor("v_a"))
                } else {
                    Who::Member("m_1".into())
                };
                let appended = group_commit
                    .append(message(&conversation, who, &format!("{sender}-{i}")))
                    .await
                    .unwrap();
                seqs.push(appended.message.seq);
            }
            seqs
        }));
    }
    let mut seqs = HashSet::new();
    for task in tasks {
        for seq in task.await.unwrap() {
            assert!(seqs.insert(seq), "seq {seq} given twice");
        }
    }
    assert_eq!(seqs, (1..=640).collect::<HashSet<i64>>());
    stop.trigger();
    task.await.unwrap();
    let refused = group_commit
        .append(message(&conversation, Who::Member("m_1".into()), "late"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::Unavailable,
        "stopped: nothing taken"
    );
    assert_eq!(store.all_messages(&conversation).await.unwrap().len(), 640);
}

on_both!(starting_is_serialised_per_visitor);
async fn starting_is_serialised_per_visitor(backend: Backend) {
    let (_db, store) = database_only(backend).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let new = NewConversation {
                app_id: "app_1".into(),
                endpoint: format!("ce_{}", i % 4),
                member_id: format!("m_{}", i % 4),
                member_name: "Owner".into(),
                visitor: visitor("v_a"),
            };
            store.start_conversation(&new, 2, 1_000).await
        }));
    }
    let mut created = HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(Started::Created(c)) | Ok(Started::Existing(c)) => {
                assert_eq!(c.state, ConversationState::Open);
                created.insert(c.conversation_id);
            }
            Err(error) => assert_eq!(error.code, ErrorCode::RateLimited),
        }
    }
    assert_eq!(
        created.len(),
        2,
        "the limit of 2 holds under concurrent starts"
    );
}
