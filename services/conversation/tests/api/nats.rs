//! The outbox against a real NATS JetStream that the tests stop and start: a server of
//! their own on a free port, never the machine's shared one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use palaver_conversation::domain::Clock;
use palaver_conversation::model::{Caller, NewConversation, NewMessage, Started, Visitor, Who};
use palaver_conversation::outbox::Relay;
use palaver_kit::bus::NatsBus;
use palaver_kit::testing::{self, NatsServer};
use palaver_proto::events::v1 as ev;
use prost::Message as _;

use crate::helpers::{self, Backend};

/// Every event in the stream, in stream order: (subject, Nats-Msg-Id, payload).
async fn stream_contents(bus: &NatsBus) -> Vec<(String, String, bytes::Bytes)> {
    let mut stream = bus.jetstream().get_stream(bus.stream_name()).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut events = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned())
            .expect("a message id");
        events.push((message.subject.to_string(), id, message.payload));
    }
    events
}

/// Waits until the stream holds `count` events.
async fn until_stored(bus: &NatsBus, count: u64) {
    testing::eventually("the events to reach the stream", || async {
        let mut stream = bus.jetstream().get_stream(bus.stream_name()).await.unwrap();
        match stream.info().await.unwrap().state.messages {
            stored if stored >= count => Ok(()),
            stored => Err(format!("{stored} of {count} stored")),
        }
    })
    .await
}

/// The sequence numbers of the message events of each conversation, in stream order.
fn message_seqs(events: &[(String, String, bytes::Bytes)]) -> HashMap<String, Vec<u64>> {
    let mut seqs: HashMap<String, Vec<u64>> = HashMap::new();
    for (subject, _, payload) in events {
        if !subject.ends_with(".msg") {
            continue;
        }
        let event = ev::MessageEvent::decode(payload.clone()).unwrap();
        if let Some(ev::message_event::Kind::Created(message)) = event.kind {
            seqs.entry(message.conversation_id)
                .or_default()
                .push(message.seq);
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_succeed_while_nats_is_down_and_every_event_arrives_later() {
    let mut nats = NatsServer::start()
        .await
        .expect("a nats-server of the test's own");
    let prefix = testing::unique_prefix();
    let bus = NatsBus::connect(&nats.url(), &prefix).await.unwrap();
    let t = helpers::spawn_with(Backend::Postgres, Arc::new(bus.clone())).await;
    let app_id = t.app(90, 0).await;
    let (_, endpoint) = t.member(&app_id, "owner").await;
    let mut chats = Vec::new();
    for i in 0..3 {
        let visitor = t.visitor(&app_id, &endpoint, &format!("Visitor {i}")).await;
        let conversation = t.start(&visitor, &endpoint).await.unwrap();
        chats.push((visitor, conversation.id));
    }
    t.relayed().await;

    nats.stop();
    const EACH: u64 = 30;
    let mut senders = Vec::new();
    for (visitor, id) in chats.clone() {
        let mut client = t.client();
        senders.push(tokio::spawn(async move {
            for i in 0..EACH {
                let sent = helpers::send(&mut client, &visitor, &id, &format!("c{i}"), "offline?")
                    .await
                    .expect("acknowledged while NATS is down");
                assert_eq!(sent.message.unwrap().seq, i + 1);
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let (waiting, _) = t.store.outbox_backlog().await.unwrap();
    assert_eq!(waiting, 3 * EACH as i64, "the events wait in the outbox");

    nats.resume().await.expect("nats-server starts again");
    let expected = 3 * 2 + 3 * EACH;
    until_stored(&bus, expected).await;
    t.relayed().await;
    let events = stream_contents(&bus).await;
    assert_eq!(events.len() as u64, expected, "none lost, none twice");
    let ids: HashSet<&String> = events.iter().map(|(_, id, _)| id).collect();
    assert_eq!(ids.len(), events.len());
    let seqs = message_seqs(&events);
    for (_, id) in &chats {
        assert_eq!(
            seqs[id],
            (1..=EACH).collect::<Vec<_>>(),
            "in order within the conversation"
        );
    }
    t.stop().await;
    bus.jetstream()
        .delete_stream(bus.stream_name())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_publish_and_mark_publishes_again_without_duplicates() {
    let nats = NatsServer::start()
        .await
        .expect("a nats-server of the test's own");
    let prefix = testing::unique_prefix();
    let bus = NatsBus::connect(&nats.url(), &prefix).await.unwrap();
    let (db, store) = helpers::database_only(Backend::Postgres).await;

    let new = NewConversation {
        app_id: "app_1".into(),
        endpoint: "ce_1".into(),
        member_id: "m_1".into(),
        member_name: "Owner".into(),
        visitor: Visitor {
            visitor_id: "v_1".into(),
            display_name: "Visitor".into(),
            ..Visitor::default()
        },
    };
    let Started::Created(conversation) = store.start_conversation(&new, 3, 1_000).await.unwrap()
    else {
        panic!("a new conversation")
    };
    let caller = Caller {
        app_id: "app_1".into(),
        who: Who::Visitor(new.visitor.clone()),
    };
    let batch: Vec<NewMessage> = (0..10)
        .map(|i| NewMessage {
            conversation_id: conversation.conversation_id.clone(),
            caller: caller.clone(),
            client_id: format!("c{i}"),
            text: format!("message {i}"),
            traceparent: None,
        })
        .collect();
    store.append_messages(&batch, 2_000).await.unwrap();

    // A relay publishes everything and dies before marking it.
    let dying = Relay::new(store.clone(), Arc::new(bus.clone()), Clock::default());
    let pending = dying.pending().await.unwrap();
    assert_eq!(pending.len(), 12);
    let (published, error) = dying.publish(&pending).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(published.len(), 12);
    drop(dying);
    until_stored(&bus, 12).await;
    assert_eq!(store.outbox_backlog().await.unwrap().0, 12, "none marked");

    // The service starts, and its relay publishes them all again.
    let identity = Arc::new(helpers::spawn_identity(Backend::Postgres).await);
    let t = helpers::spawn_on(identity, db, Arc::new(bus.clone())).await;
    t.relayed().await;
    let events = stream_contents(&bus).await;
    assert_eq!(events.len(), 12, "JetStream absorbed the repeats");
    let ids: Vec<&String> = events.iter().map(|(_, id, _)| id).collect();
    let expected: Vec<&String> = pending.iter().map(|e| &e.event_id).collect();
    assert_eq!(ids, expected, "each once, in the outbox's order");
    assert_eq!(
        message_seqs(&events)[&conversation.conversation_id],
        (1..=10).collect::<Vec<_>>()
    );
    t.stop().await;
    bus.jetstream()
        .delete_stream(bus.stream_name())
        .await
        .unwrap();
}
