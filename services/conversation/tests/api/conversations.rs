//! Starting, reading, closing conversations; limits and blocks.

use palaver_kit::ErrorCode;
use palaver_proto::conversation::v1 as pb;

use palaver_proto::events::v1 as ev;
use prost::Message as _;

use crate::helpers::{TestConversation, app_caller, code, member_caller, next_event};
use crate::on_both_backends;

on_both_backends!(
    a_visitor_starts_one_open_conversation_per_endpoint,
    |t: TestConversation| async move {
        let app_id = t.app(90, 0).await;
        let (member_id, endpoint) = t.member(&app_id, "owner").await;
        let visitor = t.visitor(&app_id, &endpoint, "Curious Visitor").await;
        let started = t.start(&visitor, &endpoint).await.unwrap();
        assert_eq!(started.app_id, app_id);
        assert_eq!(started.member_id, member_id, "resolved through identity");
        assert_eq!(started.member_display_name, "Member owner");
        assert_eq!(started.endpoint, endpoint);
        assert_eq!(started.state(), pb::ConversationState::Open);
        assert_eq!((started.last_seq, started.unread), (0, 0));
        let participant = started.visitor.clone().unwrap();
        assert_eq!(participant.display_name, "Curious Visitor");
        assert!(!participant.verified);

        let again = t.start(&visitor, &endpoint).await.unwrap();
        assert_eq!(again.id, started.id, "the open conversation comes back");
        assert_eq!(t.counts().await.conversations, 1);

        let other = t.visitor(&app_id, &endpoint, "Someone Else").await;
        let theirs = t.start(&other, &endpoint).await.unwrap();
        assert_ne!(theirs.id, started.id);

        t.close(&visitor, &started.id).await.unwrap();
        let fresh = t.start(&visitor, &endpoint).await.unwrap();
        assert_ne!(
            fresh.id, started.id,
            "a closed conversation is not reopened"
        );
        assert_eq!(t.counts().await.conversations, 3);
    }
);

on_both_backends!(
    starting_is_refused_for_closed_unknown_and_foreign_endpoints,
    |t: TestConversation| async move {
        let app_id = t.app(90, 0).await;
        let (_, endpoint) = t.member(&app_id, "owner").await;
        let visitor = t.visitor(&app_id, &endpoint, "Visitor").await;
        let other_app = t.app(90, 0).await;
        let (_, foreign) = t.member(&other_app, "owner").await;
        let before = t.counts().await;

        assert_eq!(
            code(t.start(&visitor, "ce_doesnotexist").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(t.start(&visitor, &foreign).await),
            ErrorCode::NotFound,
            "another app's endpoint"
        );
        assert_eq!(
            code(t.start(&visitor, "ce.bad").await),
            ErrorCode::InvalidArgument
        );
        let member = member_caller(&app_id, "m_someone");
        assert_eq!(
            code(t.start(&member, &endpoint).await),
            ErrorCode::PermissionDenied,
            "only visitors start conversations"
        );
        assert_eq!(
            code(t.start(&app_caller(&app_id), &endpoint).await),
            ErrorCode::PermissionDenied
        );
        let mut nameless = visitor.clone();
        nameless.display_name = " ".into();
        assert_eq!(
            code(t.start(&nameless, &endpoint).await),
            ErrorCode::InvalidArgument
        );

        t.revoke(&app_id, "owner").await;
        assert_eq!(
            code(t.start(&visitor, &endpoint).await),
            ErrorCode::EndpointClosed
        );
        assert_eq!(t.counts().await, before, "nothing was stored");
    }
);

on_both_backends!(
    open_conversations_per_visitor_are_limited,
    |t: TestConversation| async move {
        let app_id = t.app(90, 0).await;
        let mut endpoints = Vec::new();
        for i in 0..4 {
            endpoints.push(t.member(&app_id, &format!("m{i}")).await.1);
        }
        let visitor = t.visitor(&app_id, &endpoints[0], "Visitor").await;
        let mut open = Vec::new();
        for endpoint in &endpoints[..3] {
            open.push(t.start(&visitor, endpoint).await.unwrap());
        }
        let before = t.counts().await;
        let refused = t.start(&visitor, &endpoints[3]).await;
        assert_eq!(code(refused), ErrorCode::RateLimited, "the default is 3");
        assert_eq!(t.counts().await, before);
        assert_eq!(
            t.start(&visitor, &endpoints[0]).await.unwrap().id,
            open[0].id,
            "an open one is still returned"
        );
        t.close(&visitor, &open[0].id).await.unwrap();
        t.start(&visitor, &endpoints[3]).await.unwrap();

        let strict_app = t.app(90, 1).await;
        let (_, a) = t.member(&strict_app, "a").await;
        let (_, b) = t.member(&strict_app, "b").await;
        let strict_visitor = t.visitor(&strict_app, &a, "Visitor").await;
        t.start(&strict_visitor, &a).await.unwrap();
        assert_eq!(
            code(t.start(&strict_visitor, &b).await),
            ErrorCode::RateLimited,
            "the app's own limit"
        );
    }
);

on_both_backends!(
    a_blocked_visitor_stays_blocked_until_unblocked,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let visitor_id = match chat.visitor.who.clone().unwrap() {
            pb::caller::Who::VisitorId(id) => id,
            pb::caller::Who::MemberId(_) => unreachable!(),
        };
        assert!(!chat.conversation.visitor_blocked);
        let blocked = t
            .client()
            .block_visitor(pb::BlockVisitorRequest {
                app_id: chat.app_id.clone(),
                member_id: chat.member_id.clone(),
                visitor_id: visitor_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(blocked.closed_conversations, 1);
        let closed = t.get(&chat.member, &chat.conversation.id).await.unwrap();
        assert_eq!(closed.state(), pb::ConversationState::Closed);
        assert!(closed.visitor_blocked, "the member sees the block");
        assert_eq!(
            code(
                t.send(&chat.visitor, &chat.conversation.id, "a", "hello")
                    .await
            ),
            ErrorCode::FailedPrecondition
        );
        let before = t.counts().await;
        assert_eq!(
            code(t.start(&chat.visitor, &chat.endpoint).await),
            ErrorCode::VisitorBlocked
        );
        assert_eq!(t.counts().await, before);

        let again = t
            .client()
            .block_visitor(pb::BlockVisitorRequest {
                app_id: chat.app_id.clone(),
                member_id: chat.member_id.clone(),
                visitor_id: visitor_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.closed_conversations, 0);
        assert_eq!(t.counts().await.blocks, 1);

        let unblock = pb::UnblockVisitorRequest {
            app_id: chat.app_id.clone(),
            member_id: chat.member_id.clone(),
            visitor_id,
        };
        t.client().unblock_visitor(unblock.clone()).await.unwrap();
        let status = t.client().unblock_visitor(unblock).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        let lifted = t.get(&chat.member, &chat.conversation.id).await.unwrap();
        assert!(!lifted.visitor_blocked);
        t.start(&chat.visitor, &chat.endpoint).await.unwrap();

        let bad = t
            .client()
            .block_visitor(pb::BlockVisitorRequest {
                app_id: chat.app_id.clone(),
                member_id: chat.member_id.clone(),
                visitor_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    }
);

on_both_backends!(
    only_participants_and_the_app_see_a_conversation,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        assert_eq!(t.get(&chat.visitor, id).await.unwrap().id, *id);
        assert_eq!(t.get(&chat.member, id).await.unwrap().id, *id);
        assert_eq!(t.get(&app_caller(&chat.app_id), id).await.unwrap().id, *id);

        let stranger = t.visitor(&chat.app_id, &chat.endpoint, "Stranger").await;
        assert_eq!(
            code(t.get(&stranger, id).await),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code(t.get(&member_caller(&chat.app_id, "m_other"), id).await),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code(t.get(&app_caller("app_other"), id).await),
            ErrorCode::NotFound,
            "another app learns nothing"
        );
        assert_eq!(
            code(t.get(&chat.visitor, "c_nothing").await),
            ErrorCode::NotFound
        );
        let status = t
            .client()
            .get_conversation(pb::GetConversationRequest {
                caller: None,
                conversation_id: id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
);

on_both_backends!(
    closing_is_for_participants_and_happens_once,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        t.send(&chat.visitor, id, "v1", "bye").await.unwrap();
        t.relayed().await;
        let mut events = t.events().await;
        let before = t.counts().await;
        assert_eq!(
            code(t.close(&app_caller(&chat.app_id), id).await),
            ErrorCode::PermissionDenied
        );
        let stranger = t.visitor(&chat.app_id, &chat.endpoint, "Stranger").await;
        assert_eq!(
            code(t.close(&stranger, id).await),
            ErrorCode::PermissionDenied
        );
        assert_eq!(t.counts().await, before);

        let closed = t.close(&chat.member, id).await.unwrap();
        assert_eq!(closed.state(), pb::ConversationState::Closed);
        assert!(closed.closed_at.is_some());
        let again = t.close(&chat.visitor, id).await.unwrap();
        assert_eq!(again.closed_at, closed.closed_at);
        t.client()
            .mark_read(pb::MarkReadRequest {
                caller: Some(chat.member.clone()),
                conversation_id: id.clone(),
                seq: 1,
            })
            .await
            .unwrap();
        let kinds: Vec<&str> = [next_event(&mut events).await, next_event(&mut events).await]
            .into_iter()
            .map(|event| {
                match ev::ConversationStateEvent::decode(event.payload)
                    .unwrap()
                    .kind
                {
                    Some(ev::conversation_state_event::Kind::Closed(_)) => "closed",
                    Some(ev::conversation_state_event::Kind::Read(_)) => "read",
                    other => panic!("unexpected {other:?}"),
                }
            })
            .collect();
        assert_eq!(
            kinds,
            ["closed", "read"],
            "one closed event, none for the refusals"
        );
    }
);
