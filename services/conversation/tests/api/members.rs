//! What a member's console reads: their conversations with unread counts, offline
//! messages, transcripts.

use palaver_kit::ErrorCode;
use palaver_proto::conversation::v1 as pb;

use crate::helpers::{TestConversation, app_caller, code, member_caller};
use crate::on_both_backends;

async fn list(
    t: &TestConversation,
    app_id: &str,
    member_id: &str,
    cursor: &str,
    limit: u32,
) -> Result<pb::ListConversationsResponse, palaver_kit::Error> {
    t.client()
        .list_conversations(pb::ListConversationsRequest {
            app_id: app_id.into(),
            member_id: member_id.into(),
            cursor: cursor.into(),
            limit,
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| palaver_kit::Error::from_status(&s))
}

on_both_backends!(
    a_member_pages_through_their_conversations,
    |t: TestConversation| async move {
        let app_id = t.app(90, 0).await;
        let (member_id, endpoint) = t.member(&app_id, "owner").await;
        let (_, elsewhere) = t.member(&app_id, "other").await;
        let mut started = Vec::new();
        for i in 0..5 {
            let visitor = t.visitor(&app_id, &endpoint, &format!("Visitor {i}")).await;
            let conversation = t.start(&visitor, &endpoint).await.unwrap();
            for n in 0..i {
                t.send(&visitor, &conversation.id, &format!("c{n}"), "hi")
                    .await
                    .unwrap();
            }
            started.push(conversation.id);
        }
        let not_theirs = t.visitor(&app_id, &elsewhere, "Elsewhere").await;
        t.start(&not_theirs, &elsewhere).await.unwrap();

        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = list(&t, &app_id, &member_id, &cursor, 2).await.unwrap();
            assert!(page.conversations.len() <= 2);
            for conversation in &page.conversations {
                assert_eq!(conversation.member_id, member_id);
                let i = started
                    .iter()
                    .position(|id| *id == conversation.id)
                    .unwrap();
                assert_eq!(conversation.unread, i as u64, "the member's unread count");
                seen.push(conversation.id.clone());
            }
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
        started.reverse();
        assert_eq!(seen, started, "newest first, each once");

        assert_eq!(
            code(list(&t, &app_id, &member_id, "garbage", 2).await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(list(&t, &app_id, &member_id, "", 201).await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(list(&t, &app_id, "", "", 10).await),
            ErrorCode::InvalidArgument
        );
    }
);

on_both_backends!(
    a_member_chatting_as_a_verified_visitor_sees_it_in_their_console,
    |t: TestConversation| async move {
        let app_id = t.app(90, 0).await;
        let (owner_id, endpoint) = t.member(&app_id, "owner").await;
        let (alice_id, alice_endpoint) = t.member(&app_id, "alice").await;
        let mut alice_visiting = t.visitor(&app_id, &endpoint, "Alice").await;
        alice_visiting.verified = true;
        alice_visiting.external_id = "alice".into();
        alice_visiting.visitor_member_id = alice_id.clone();
        let conversation = t.start(&alice_visiting, &endpoint).await.unwrap();
        assert_eq!(conversation.visitor.unwrap().member_id, alice_id);
        t.send(
            &member_caller(&app_id, &owner_id),
            &conversation.id,
            "o1",
            "Hello Alice",
        )
        .await
        .unwrap();

        let alices = list(&t, &app_id, &alice_id, "", 10).await.unwrap();
        assert_eq!(alices.conversations.len(), 1);
        assert_eq!(alices.conversations[0].id, conversation.id);
        assert_eq!(alices.conversations[0].unread, 1, "unread on her side");
        let as_member = member_caller(&app_id, &alice_id);
        let reply = t
            .send(&as_member, &conversation.id, "a1", "Hi!")
            .await
            .unwrap()
            .message
            .unwrap();
        assert_eq!(reply.from(), pb::Sender::Visitor, "she is the visitor here");
        assert_eq!(
            code(t.start(&alice_visiting, &alice_endpoint).await),
            ErrorCode::FailedPrecondition,
            "nobody chats with themselves"
        );
    }
);

on_both_backends!(
    transcripts_come_as_text_and_json,
    |t: TestConversation| async move {
        let chat = t.chat().await;
        let id = &chat.conversation.id;
        t.send(&chat.visitor, id, "v1", "Is the shop open?")
            .await
            .unwrap();
        t.send(&chat.member, id, "m1", "Yes,\nuntil six.")
            .await
            .unwrap();
        let transcript = t
            .client()
            .get_transcript(pb::GetTranscriptRequest {
                caller: Some(app_caller(&chat.app_id)),
                conversation_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(transcript.messages.len(), 2);
        let text = &transcript.text;
        assert!(
            text.starts_with(&format!(
                "Conversation {id} between Curious Visitor (unverified) and Member owner\n"
            )),
            "{text}"
        );
        assert!(
            text.contains("] Curious Visitor: Is the shop open?\n"),
            "{text}"
        );
        assert!(
            text.contains("] Member owner: Yes,\n    until six.\n"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&transcript.json).unwrap();
        assert_eq!(json["id"], id.as_str());
        assert_eq!(json["visitor"]["display_name"], "Curious Visitor");
        assert_eq!(json["messages"][1]["from"], "member");
        assert_eq!(json["messages"][1]["text"], "Yes,\nuntil six.");
        assert_eq!(json["messages"][0]["seq"], 1);

        let stranger = t.visitor(&chat.app_id, &chat.endpoint, "Stranger").await;
        let refused = t
            .client()
            .get_transcript(pb::GetTranscriptRequest {
                caller: Some(stranger),
                conversation_id: id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    }
);

on_both_backends!(
    offline_messages_wait_for_the_member,
    |t: TestConversation| async move {
        let app_id = t.app(90, 0).await;
        let (member_id, endpoint) = t.member(&app_id, "owner").await;
        let visitor = t.visitor(&app_id, &endpoint, "Visitor").await;
        let leave = |caller: pb::Caller, endpoint: String, text: &str, email: &str| {
            let mut client = t.client();
            let request = pb::LeaveOfflineMessageRequest {
                caller: Some(caller),
                endpoint,
                text: text.into(),
                email: email.into(),
            };
            async move {
                client
                    .leave_offline_message(request)
                    .await
                    .map(|r| r.into_inner())
                    .map_err(|s| palaver_kit::Error::from_status(&s))
            }
        };
        let left = leave(
            visitor.clone(),
            endpoint.clone(),
            " Call me back ",
            " me@example.org ",
        )
        .await
        .unwrap();
        assert_eq!(left.member_id, member_id);
        assert_eq!(
            (left.text.as_str(), left.email.as_str()),
            ("Call me back", "me@example.org")
        );
        leave(visitor.clone(), endpoint.clone(), "No email this time", "")
            .await
            .unwrap();

        let before = t.counts().await;
        assert_eq!(
            code(leave(visitor.clone(), endpoint.clone(), "hi", "not-an-email").await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(leave(visitor.clone(), endpoint.clone(), "", "").await),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(leave(visitor.clone(), "ce_unknown".into(), "hi", "").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(
                leave(
                    member_caller(&app_id, &member_id),
                    endpoint.clone(),
                    "hi",
                    ""
                )
                .await
            ),
            ErrorCode::PermissionDenied
        );
        assert_eq!(t.counts().await, before);

        let page = t
            .client()
            .list_offline_messages(pb::ListOfflineMessagesRequest {
                app_id: app_id.clone(),
                member_id: member_id.clone(),
                cursor: String::new(),
                limit: 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.offline_messages.len(), 1);
        assert_eq!(
            page.offline_messages[0].text, "No email this time",
            "newest first"
        );
        let rest = t
            .client()
            .list_offline_messages(pb::ListOfflineMessagesRequest {
                app_id: app_id.clone(),
                member_id: member_id.clone(),
                cursor: page.next_cursor,
                limit: 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rest.offline_messages[0].id, left.id);
        assert!(rest.next_cursor.is_empty());

        let visitor_id = match visitor.who.clone().unwrap() {
            pb::caller::Who::VisitorId(id) => id,
            pb::caller::Who::MemberId(_) => unreachable!(),
        };
        t.client()
            .block_visitor(pb::BlockVisitorRequest {
                app_id: app_id.clone(),
                member_id: member_id.clone(),
                visitor_id,
            })
            .await
            .unwrap();
        assert_eq!(
            code(leave(visitor.clone(), endpoint.clone(), "again", "").await),
            ErrorCode::VisitorBlocked
        );
        let other = t.visitor(&app_id, &endpoint, "Other").await;
        t.revoke(&app_id, "owner").await;
        assert_eq!(
            code(leave(other, endpoint.clone(), "hello?", "").await),
            ErrorCode::EndpointClosed
        );
        assert_eq!(t.counts().await.offline_messages, 2);
    }
);
