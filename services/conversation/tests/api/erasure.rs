//! Erasing a member or a visitor, and each app's retention.

use palaver_kit::ErrorCode;
use palaver_proto::conversation::v1 as pb;

use crate::helpers::{TestConversation, code};
use crate::on_both_backends;

fn visitor_id(caller: &pb::Caller) -> String {
    match caller.who.clone().unwrap() {
        pb::caller::Who::VisitorId(id) => id,
        pb::caller::Who::MemberId(_) => unreachable!(),
    }
}

async fn leave(t: &TestConversation, caller: &pb::Caller, endpoint: &str) {
    t.client()
        .leave_offline_message(pb::LeaveOfflineMessageRequest {
            caller: Some(caller.clone()),
            endpoint: endpoint.into(),
            text: "are you there?".into(),
            email: String::new(),
        })
        .await
        .unwrap();
}

on_both_backends!(
    erasing_a_member_removes_all_of_theirs,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let (_, other_endpoint) = t.member(&chat.app_id, "other").await;
        let id = &chat.conversation.id;
        t.send(&chat.visitor, id, "v1", "hello").await.unwrap();
        t.send(&chat.member, id, "m1", "hi").await.unwrap();
        let second = t.visitor(&chat.app_id, &chat.endpoint, "Second").await;
        t.start(&second, &chat.endpoint).await.unwrap();
        leave(&t, &second, &chat.endpoint).await;
        let kept = t.start(&chat.visitor, &other_endpoint).await.unwrap();
        t.send(&chat.visitor, &kept.id, "k1", "keep me")
            .await
            .unwrap();
        t.client()
            .block_visitor(pb::BlockVisitorRequest {
                app_id: chat.app_id.clone(),
                member_id: chat.member_id.clone(),
                visitor_id: visitor_id(&second),
            })
            .await
            .unwrap();

        let bad = t
            .client()
            .erase_member(pb::EraseMemberRequest {
                app_id: chat.app_id.clone(),
                member_id: "not an id".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);

        let erased = t
            .client()
            .erase_member(pb::EraseMemberRequest {
                app_id: chat.app_id.clone(),
                member_id: chat.member_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (
                erased.conversations,
                erased.messages,
                erased.offline_messages
            ),
            (2, 2, 1)
        );
        let counts = t.counts().await;
        assert_eq!(
            (
                counts.conversations,
                counts.messages,
                counts.offline_messages,
                counts.blocks
            ),
            (1, 1, 0, 0),
            "only the other member's conversation is left"
        );
        assert_eq!(code(t.get(&chat.visitor, id).await), ErrorCode::NotFound);
        assert_eq!(t.get(&chat.visitor, &kept.id).await.unwrap().last_seq, 1);

        let none = t
            .client()
            .erase_member(pb::EraseMemberRequest {
                app_id: chat.app_id.clone(),
                member_id: chat.member_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((none.conversations, none.messages), (0, 0));
    }
);

on_both_backends!(
    erasing_a_visitor_removes_all_of_theirs,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        t.send(&chat.visitor, id, "v1", "hello").await.unwrap();
        leave(&t, &chat.visitor, &chat.endpoint).await;
        let other = t.visitor(&chat.app_id, &chat.endpoint, "Other").await;
        let kept = t.start(&other, &chat.endpoint).await.unwrap();
        t.send(&other, &kept.id, "o1", "keep me").await.unwrap();

        let erased = t
            .client()
            .erase_visitor(pb::EraseVisitorRequest {
                app_id: chat.app_id.clone(),
                visitor_id: visitor_id(&chat.visitor),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (
                erased.conversations,
                erased.messages,
                erased.offline_messages
            ),
            (1, 1, 1)
        );
        let counts = t.counts().await;
        assert_eq!(
            (
                counts.conversations,
                counts.messages,
                counts.offline_messages
            ),
            (1, 1, 0)
        );
        assert_eq!(code(t.get(&chat.member, id).await), ErrorCode::NotFound);
    }
);

on_both_backends!(
    retention_deletes_what_is_older_than_the_apps_days,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        t.send(&chat.visitor, id, "old", "from long ago")
            .await
            .unwrap();
        leave(&t, &chat.visitor, &chat.endpoint).await;
        let closed = t.visitor(&chat.app_id, &chat.endpoint, "Gone").await;
        let finished = t.start(&closed, &chat.endpoint).await.unwrap();
        t.send(&closed, &finished.id, "bye", "bye").await.unwrap();
        t.close(&closed, &finished.id).await.unwrap();

        let forever = t.app(0, 0).await;
        let (_, forever_endpoint) = t.member(&forever, "owner").await;
        let keeper = t.visitor(&forever, &forever_endpoint, "Keeper").await;
        let kept = t.start(&keeper, &forever_endpoint).await.unwrap();
        t.send(&keeper, &kept.id, "k", "kept forever")
            .await
            .unwrap();

        // 91 days later, for an app that keeps 90.
        t.clock.shift_ms(91 * 86_400_000);
        t.send(&chat.visitor, id, "new", "fresh").await.unwrap();
        let retained = t.conversations.apply_retention().await.unwrap();
        assert_eq!(
            (
                retained.messages,
                retained.offline_messages,
                retained.conversations
            ),
            (2, 1, 1)
        );
        let left = t.messages(&chat.member, id, None, 200).await.unwrap();
        let seqs: Vec<u64> = left.messages.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            [2],
            "the fresh message stays, numbered after the old one"
        );
        assert_eq!(
            code(t.get(&closed, &finished.id).await),
            ErrorCode::NotFound
        );
        assert_eq!(t.get(&keeper, &kept.id).await.unwrap().last_seq, 1);
        let counts = t.counts().await;
        assert_eq!((counts.messages, counts.offline_messages), (2, 0));
    }
);
