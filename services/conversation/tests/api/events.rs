//! The events every change publishes through the outbox, on the in-process bus.

use palaver_proto::conversation::v1 as pb;
use palaver_proto::events::v1 as ev;
use prost::Message as _;

use crate::helpers::{TestConversation, next_event};
use crate::on_both_backends;

on_both_backends!(
    every_change_publishes_its_event_in_order,
    |t: TestConversation| async move {
        let mut events = t.events().await;
        let chat = t.chat().await;
        let (app, id) = (chat.app_id.clone(), chat.conversation.id.clone());
        t.send(&chat.visitor, &id, "v1", "hello").await.unwrap();
        t.send(&chat.visitor, &id, "v1", "hello").await.unwrap();
        t.send(&chat.member, &id, "m1", "hi there").await.unwrap();
        t.client()
            .mark_read(pb::MarkReadRequest {
                caller: Some(chat.visitor.clone()),
                conversation_id: id.clone(),
                seq: 2,
            })
            .await
            .unwrap();
        t.close(&chat.visitor, &id).await.unwrap();

        let opened = next_event(&mut events).await;
        assert_eq!(opened.subject, format!("{app}.conv.{id}.state"));
        let state = ev::ConversationStateEvent::decode(opened.payload.clone()).unwrap();
        assert_eq!(opened.msg_id.as_deref(), Some(state.event_id.as_str()));
        assert_eq!(state.conversation_id, id);
        assert!(matches!(
            state.kind,
            Some(ev::conversation_state_event::Kind::Opened(ref c)) if c.id == id
        ));

        let started = next_event(&mut events).await;
        assert_eq!(
            started.subject,
            format!("{app}.member.{}.inbox", chat.member_id)
        );
        let inbox = ev::InboxEvent::decode(started.payload.clone()).unwrap();
        assert_eq!(inbox.member_id, chat.member_id);
        assert!(matches!(
            inbox.kind,
            Some(ev::inbox_event::Kind::ConversationStarted(ref c)) if c.id == id
        ));

        for (seq, text) in [(1, "hello"), (2, "hi there")] {
            let created = next_event(&mut events).await;
            assert_eq!(created.subject, format!("{app}.conv.{id}.msg"));
            let message = ev::MessageEvent::decode(created.payload.clone()).unwrap();
            assert_eq!(created.msg_id.as_deref(), Some(message.event_id.as_str()));
            match message.kind {
                Some(ev::message_event::Kind::Created(m)) => {
                    assert_eq!(
                        (m.seq, m.text.as_str()),
                        (seq, text),
                        "the repeat added nothing"
                    )
                }
                other => panic!("not a created message: {other:?}"),
            }
        }

        let read =
            ev::ConversationStateEvent::decode(next_event(&mut events).await.payload).unwrap();
        assert_eq!(
            read.kind,
            Some(ev::conversation_state_event::Kind::Read(ev::ReadUpTo {
                seq: 2,
                by: pb::Sender::Visitor as i32
            }))
        );
        let closed =
            ev::ConversationStateEvent::decode(next_event(&mut events).await.payload).unwrap();
        assert!(matches!(
            closed.kind,
            Some(ev::conversation_state_event::Kind::Closed(ref c))
                if c.state() == pb::ConversationState::Closed
        ));

        t.client()
            .leave_offline_message(pb::LeaveOfflineMessageRequest {
                caller: Some(chat.visitor.clone()),
                endpoint: chat.endpoint.clone(),
                text: "call me".into(),
                email: String::new(),
            })
            .await
            .unwrap();
        let offline = next_event(&mut events).await;
        assert_eq!(
            offline.subject,
            format!("{app}.member.{}.inbox", chat.member_id)
        );
        let inbox = ev::InboxEvent::decode(offline.payload).unwrap();
        assert!(matches!(
            inbox.kind,
            Some(ev::inbox_event::Kind::OfflineMessage(ref m)) if m.text == "call me"
        ));
        t.relayed().await;
    }
);
