//! Sending, idempotency, sequence numbers under concurrency, paging and read marks.

use std::collections::HashSet;

use palaver_kit::ErrorCode;
use palaver_proto::conversation::v1 as pb;
use palaver_proto::events::v1 as ev;
use pb::list_messages_request::Page;
use prost::Message as _;

use crate::helpers::{self, TestConversation, app_caller, code, member_caller};
use crate::on_both_backends;

on_both_backends!(
    messages_get_sequence_numbers_from_one,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        let first = t
            .send(&chat.visitor, id, "v-1", "  Hello!  ")
            .await
            .unwrap();
        assert!(first.created);
        let first = first.message.unwrap();
        assert_eq!(first.seq, 1);
        assert_eq!(first.text, "Hello!");
        assert_eq!(first.from(), pb::Sender::Visitor);
        assert_eq!(first.client_id, "v-1");
        let reply = t
            .send(&chat.member, id, "m-1", "Hi,\r\nhow can I help?\t")
            .await
            .unwrap()
            .message
            .unwrap();
        assert_eq!((reply.seq, reply.from()), (2, pb::Sender::Member));
        assert_eq!(reply.text, "Hi,\nhow can I help?");

        let listed = t.messages(&chat.member, id, None, 0).await.unwrap();
        let seqs: Vec<u64> = listed.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert!(!listed.more);
        let conversation = t.get(&chat.visitor, id).await.unwrap();
        assert_eq!(conversation.last_seq, 2);
    }
);

on_both_backends!(
    sending_again_returns_the_stored_message,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        t.relayed().await;
        let mut events = t.events().await;
        let first = t.send(&chat.visitor, id, "c1", "once").await.unwrap();
        let before = t.counts().await;
        let again = t
            .send(&chat.visitor, id, "c1", "a different text")
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(
            again.message, first.message,
            "the stored message, unchanged"
        );
        assert_eq!(t.counts().await, before, "no message added");

        let member_same_id = t.send(&chat.member, id, "c1", "mine").await.unwrap();
        assert!(
            member_same_id.created,
            "client ids are the sender's own: the member's c1 is another message"
        );
        assert_eq!(member_same_id.message.unwrap().seq, 2);
        let published: Vec<u64> = [
            helpers::next_event(&mut events).await,
            helpers::next_event(&mut events).await,
        ]
        .iter()
        .map(|e| helpers::created_message(e).seq)
        .collect();
        assert_eq!(published, [1, 2], "the repeat published nothing");
    }
);

on_both_backends!(
    bad_messages_are_refused_and_change_nothing,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        t.relayed().await;
        let mut events = t.events().await;
        t.send(&chat.visitor, id, "ok", "fine").await.unwrap();
        let before = t.counts().await;
        let too_long = "x".repeat(4001);
        for (client_id, text) in [
            ("a", ""),
            ("a", " \n\t "),
            ("a", too_long.as_str()),
            ("a", "bell\u{7}"),
            ("a", "escape\u{1b}[2J"),
            ("a", "nul\u{0}"),
            ("a", "carriage\rreturn"),
            ("", "no client id"),
            ("has space", "text"),
            (&"y".repeat(65), "text"),
        ] {
            let error = t
                .send(&chat.visitor, id, client_id, text)
                .await
                .unwrap_err();
            assert_eq!(
                error.code,
                ErrorCode::InvalidArgument,
                "{client_id:?} {text:?}"
            );
            assert!(!error.violations.is_empty(), "names the field");
        }
        assert_eq!(
            code(t.send(&chat.visitor, "c_unknown", "a", "hi").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(t.send(&chat.visitor, "c.bad", "a", "hi").await),
            ErrorCode::InvalidArgument
        );
        let stranger = t.visitor(&chat.app_id, &chat.endpoint, "Stranger").await;
        assert_eq!(
            code(t.send(&stranger, id, "a", "hi").await),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code(
                t.send(&member_caller(&chat.app_id, "m_other"), id, "a", "hi")
                    .await
            ),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code(t.send(&app_caller(&chat.app_id), id, "a", "hi").await),
            ErrorCode::PermissionDenied
        );
        let mut foreign = chat.visitor.clone();
        foreign.app_id = "app_other".into();
        assert_eq!(
            code(t.send(&foreign, id, "a", "hi").await),
            ErrorCode::NotFound
        );
        assert_eq!(t.counts().await, before);

        let longest = "é".repeat(4000);
        let sent = t.send(&chat.visitor, id, "long", &longest).await.unwrap();
        assert_eq!(sent.message.unwrap().text, longest);
        let published: Vec<u64> = [
            helpers::next_event(&mut events).await,
            helpers::next_event(&mut events).await,
        ]
        .iter()
        .map(|e| helpers::created_message(e).seq)
        .collect();
        assert_eq!(published, [1, 2], "the refused sends published nothing");
    }
);

on_both_backends!(
    concurrent_senders_get_every_sequence_number_once,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = chat.conversation.id.clone();
        const SENDERS: usize = 48;
        const EACH: usize = 20;
        let mut tasks = Vec::new();
        for sender in 0..SENDERS {
            let mut client = t.client();
            let caller = if sender % 2 == 0 {
                chat.visitor.clone()
            } else {
                chat.member.clone()
            };
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..EACH {
                    let sent = helpers::send(
                        &mut client,
                        &caller,
                        &id,
                        &format!("s{sender}-{i}"),
                        &format!("message {i} from {sender}"),
                    )
                    .await
                    .unwrap();
                    assert!(sent.created);
                    seqs.push(sent.message.unwrap().seq);
                }
                seqs
            }));
        }
        let mut seqs = Vec::new();
        for task in tasks {
            let mine = task.await.unwrap();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "one sender's messages keep their order: {mine:?}"
            );
            seqs.extend(mine);
        }
        seqs.sort_unstable();
        let expected: Vec<u64> = (1..=(SENDERS * EACH) as u64).collect();
        assert_eq!(seqs, expected, "1..=N, no gap, no repeat");

        let mut stored = Vec::new();
        let mut after = 0;
        loop {
            let page = t
                .messages(&chat.member, &id, Some(Page::AfterSeq(after)), 200)
                .await
                .unwrap();
            stored.extend(page.messages.iter().map(|m| m.seq));
            after = *stored.last().unwrap();
            if !page.more {
                break;
            }
        }
        assert_eq!(stored, expected);
        assert_eq!(t.counts().await.messages, (SENDERS * EACH) as i64);
    }
);

on_both_backends!(
    repeated_concurrent_sends_store_one_message,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let mut client = t.client();
            let (caller, id) = (chat.visitor.clone(), chat.conversation.id.clone());
            tasks.push(tokio::spawn(async move {
                helpers::send(&mut client, &caller, &id, "same", "retry storm")
                    .await
                    .unwrap()
            }));
        }
        let mut ids = HashSet::new();
        let mut created = 0;
        for task in tasks {
            let sent = task.await.unwrap();
            created += usize::from(sent.created);
            ids.insert(sent.message.unwrap().id);
        }
        assert_eq!(ids.len(), 1, "every answer names the same message");
        assert_eq!(created, 1, "one of them created it");
        assert_eq!(t.counts().await.messages, 1);
    }
);

on_both_backends!(
    history_pages_after_and_before,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        for i in 1..=7 {
            t.send(&chat.visitor, id, &format!("c{i}"), &format!("m{i}"))
                .await
                .unwrap();
        }
        let seqs =
            |r: &pb::ListMessagesResponse| r.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
        let newest = t.messages(&chat.visitor, id, None, 3).await.unwrap();
        assert_eq!((seqs(&newest), newest.more), (vec![5, 6, 7], true));
        let before = t
            .messages(&chat.visitor, id, Some(Page::BeforeSeq(5)), 3)
            .await
            .unwrap();
        assert_eq!((seqs(&before), before.more), (vec![2, 3, 4], true));
        let first = t
            .messages(&chat.visitor, id, Some(Page::BeforeSeq(2)), 3)
            .await
            .unwrap();
        assert_eq!((seqs(&first), first.more), (vec![1], false));
        let after = t
            .messages(&chat.visitor, id, Some(Page::AfterSeq(4)), 0)
            .await
            .unwrap();
        assert_eq!((seqs(&after), after.more), (vec![5, 6, 7], false));
        let caught_up = t
            .messages(&chat.visitor, id, Some(Page::AfterSeq(7)), 10)
            .await
            .unwrap();
        assert!(caught_up.messages.is_empty() && !caught_up.more);
        let by_app = t
            .messages(&app_caller(&chat.app_id), id, None, 200)
            .await
            .unwrap();
        assert_eq!(by_app.messages.len(), 7);

        assert_eq!(
            code(t.messages(&chat.visitor, id, None, 201).await),
            ErrorCode::InvalidArgument
        );
        let stranger = t.visitor(&chat.app_id, &chat.endpoint, "Stranger").await;
        assert_eq!(
            code(t.messages(&stranger, id, None, 10).await),
            ErrorCode::PermissionDenied
        );
    }
);

on_both_backends!(
    read_marks_count_unread_and_only_move_forward,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        for i in 1..=3 {
            t.send(&chat.visitor, id, &format!("v{i}"), "hello")
                .await
                .unwrap();
        }
        t.relayed().await;
        let mut events = t.events().await;
        assert_eq!(t.get(&chat.member, id).await.unwrap().unread, 3);
        assert_eq!(
            t.get(&chat.visitor, id).await.unwrap().unread,
            0,
            "a sender has read up to their own message"
        );
        let mark = |caller: pb::Caller, seq: u64| {
            let mut client = t.client();
            let id = id.clone();
            async move {
                client
                    .mark_read(pb::MarkReadRequest {
                        caller: Some(caller),
                        conversation_id: id,
                        seq,
                    })
                    .await
                    .map(|r| r.into_inner().read_seq)
                    .map_err(|s| palaver_kit::Error::from_status(&s))
            }
        };
        assert_eq!(mark(chat.member.clone(), 2).await.unwrap(), 2);
        assert_eq!(t.get(&chat.member, id).await.unwrap().unread, 1);
        assert_eq!(mark(chat.member.clone(), 1).await.unwrap(), 2, "never back");
        let before = t.counts().await;
        assert_eq!(
            code(mark(chat.member.clone(), 4).await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(mark(app_caller(&chat.app_id), 3).await),
            ErrorCode::PermissionDenied
        );
        assert_eq!(t.counts().await, before);
        assert_eq!(mark(chat.member.clone(), 3).await.unwrap(), 3);
        let read_marks: Vec<u64> = [
            helpers::next_event(&mut events).await,
            helpers::next_event(&mut events).await,
        ]
        .into_iter()
        .map(|event| {
            match ev::ConversationStateEvent::decode(event.payload)
                .unwrap()
                .kind
            {
                Some(ev::conversation_state_event::Kind::Read(read)) => read.seq,
                other => panic!("not a read mark: {other:?}"),
            }
        })
        .collect();
        assert_eq!(
            read_marks,
            [2, 3],
            "no event for no change or refused marks"
        );
        let seen = t.get(&chat.visitor, id).await.unwrap();
        assert_eq!((seen.member_read_seq, seen.unread), (3, 0));
    }
);
