//! The conversation gRPC server: proto messages in, domain calls, proto messages out.

use std::sync::Arc;

use palaver_kit::Error;
use palaver_proto::conversation::v1 as pb;
use pb::conversations_server::Conversations as ConversationsRpc;
use tonic::{Request, Response, Status};

use crate::domain::validate;
use crate::model::{Caller, ConversationView, Erased, Page, Visitor, Who};
use crate::proto;
use crate::service::Conversations;

/// The tonic service over the domain.
pub struct ConversationServer {
    conversations: Arc<Conversations>,
}

impl ConversationServer {
    pub fn new(
        conversations: Arc<Conversations>,
    ) -> pb::conversations_server::ConversationsServer<ConversationServer> {
        pb::conversations_server::ConversationsServer::new(ConversationServer { conversations })
    }
}

type Rpc<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Rpc<T> {
    Ok(Response::new(value))
}

/// The longest visitor display name, as identity allows it.
const MAX_NAME_CHARS: usize = 64;

/// The caller the gateway names, checked.
fn caller(caller: Option<pb::Caller>) -> Result<Caller, Error> {
    let caller = caller.ok_or_else(|| Error::invalid("caller", "is required"))?;
    let app_id = validate::id("caller.app_id", &caller.app_id)?;
    let who = match caller.who {
        None => Who::App,
        Some(pb::caller::Who::MemberId(member_id)) => {
            Who::Member(validate::id("caller.member_id", &member_id)?)
        }
        Some(pb::caller::Who::VisitorId(visitor_id)) => {
            let display_name = caller.display_name.trim();
            if display_name.is_empty() || display_name.chars().count() > MAX_NAME_CHARS {
                return Err(Error::invalid(
                    "caller.display_name",
                    format!("must be 1 to {MAX_NAME_CHARS} characters"),
                ));
            }
            let member_id = if caller.visitor_member_id.is_empty() {
                String::new()
            } else {
                validate::id("caller.visitor_member_id", &caller.visitor_member_id)?
            };
            Who::Visitor(Visitor {
                visitor_id: validate::id("caller.visitor_id", &visitor_id)?,
                display_name: display_name.to_owned(),
                verified: caller.verified,
                external_id: caller.external_id,
                member_id,
            })
        }
    };
    Ok(Caller { app_id, who })
}

fn view(view: &ConversationView) -> pb::Conversation {
    pb::Conversation {
        visitor_blocked: view.visitor_blocked,
        ..proto::conversation(&view.conversation, view.unread)
    }
}

fn erased(erased: Erased) -> pb::EraseResponse {
    pb::EraseResponse {
        conversations: erased.conversations,
        messages: erased.messages,
        offline_messages: erased.offline_messages,
    }
}

#[tonic::async_trait]
impl ConversationsRpc for ConversationServer {
    async fn start_conversation(
        &self,
        request: Request<pb::StartConversationRequest>,
    ) -> Rpc<pb::Conversation> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        let (conversation, _) = self
            .conversations
            .start_conversation(&caller, &r.endpoint)
            .await?;
        ok(view(&conversation))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Rpc<pb::Conversation> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        ok(view(
            &self
                .conversations
                .conversation(&caller, &r.conversation_id)
                .await?,
        ))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Rpc<pb::SendMessageResponse> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        let appended = self
            .conversations
            .send_message(&caller, &r.conversation_id, &r.client_id, &r.text)
            .await?;
        ok(pb::SendMessageResponse {
            message: Some(proto::message(&appended.message)),
            created: appended.created,
        })
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Rpc<pb::ListMessagesResponse> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        let seq = |field: &str, seq: u64| {
            i64::try_from(seq).map_err(|_| Error::invalid(field, "is too large"))
        };
        let page = match r.page {
            None => Page::Newest,
            Some(pb::list_messages_request::Page::AfterSeq(after)) => {
                Page::After(seq("after_seq", after)?)
            }
            Some(pb::list_messages_request::Page::BeforeSeq(before)) => {
                Page::Before(seq("before_seq", before)?)
            }
        };
        let (messages, more) = self
            .conversations
            .messages(&caller, &r.conversation_id, page, r.limit)
            .await?;
        ok(pb::ListMessagesResponse {
            messages: messages.iter().map(proto::message).collect(),
            more,
        })
    }

    async fn mark_read(&self, request: Request<pb::MarkReadRequest>) -> Rpc<pb::MarkReadResponse> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        let read_seq = self
            .conversations
            .mark_read(&caller, &r.conversation_id, r.seq)
            .await?;
        ok(pb::MarkReadResponse {
            read_seq: read_seq as u64,
        })
    }

    async fn close(&self, request: Request<pb::CloseRequest>) -> Rpc<pb::Conversation> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        ok(view(
            &self
                .conversations
                .close(&caller, &r.conversation_id)
                .await?,
        ))
    }

    async fn leave_offline_message(
        &self,
        request: Request<pb::LeaveOfflineMessageRequest>,
    ) -> Rpc<pb::OfflineMessage> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        let message = self
            .conversations
            .leave_offline_message(&caller, &r.endpoint, &r.text, &r.email)
            .await?;
        ok(proto::offline_message(&message))
    }

    async fn list_offline_messages(
        &self,
        request: Request<pb::ListOfflineMessagesRequest>,
    ) -> Rpc<pb::ListOfflineMessagesResponse> {
        let r = request.into_inner();
        let (messages, next) = self
            .conversations
            .offline_messages(&r.app_id, &r.member_id, &r.cursor, r.limit)
            .await?;
        ok(pb::ListOfflineMessagesResponse {
            offline_messages: messages.iter().map(proto::offline_message).collect(),
            next_cursor: next.unwrap_or_default(),
        })
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Rpc<pb::ListConversationsResponse> {
        let r = request.into_inner();
        let (conversations, next) = self
            .conversations
            .conversations_of_member(&r.app_id, &r.member_id, &r.cursor, r.limit)
            .await?;
        ok(pb::ListConversationsResponse {
            conversations: conversations.iter().map(view).collect(),
            next_cursor: next.unwrap_or_default(),
        })
    }

    async fn get_transcript(
        &self,
        request: Request<pb::GetTranscriptRequest>,
    ) -> Rpc<pb::Transcript> {
        let r = request.into_inner();
        let caller = caller(r.caller)?;
        let transcript = self
            .conversations
            .transcript(&caller, &r.conversation_id)
            .await?;
        ok(pb::Transcript {
            conversation: Some(view(&transcript.conversation)),
            messages: transcript.messages.iter().map(proto::message).collect(),
            text: transcript.text,
            json: transcript.json,
        })
    }

    async fn block_visitor(
        &self,
        request: Request<pb::BlockVisitorRequest>,
    ) -> Rpc<pb::BlockVisitorResponse> {
        let r = request.into_inner();
        let closed_conversations = self
            .conversations
            .block_visitor(&r.app_id, &r.member_id, &r.visitor_id)
            .await?;
        ok(pb::BlockVisitorResponse {
            closed_conversations,
        })
    }

    async fn unblock_visitor(
        &self,
        request: Request<pb::UnblockVisitorRequest>,
    ) -> Rpc<pb::UnblockVisitorResponse> {
        let r = request.into_inner();
        self.conversations
            .unblock_visitor(&r.app_id, &r.member_id, &r.visitor_id)
            .await?;
        ok(pb::UnblockVisitorResponse {})
    }

    async fn erase_member(
        &self,
        request: Request<pb::EraseMemberRequest>,
    ) -> Rpc<pb::EraseResponse> {
        let r = request.into_inner();
        ok(erased(
            self.conversations
                .erase_member(&r.app_id, &r.member_id)
                .await?,
        ))
    }

    async fn erase_visitor(
        &self,
        request: Request<pb::EraseVisitorRequest>,
    ) -> Rpc<pb::EraseResponse> {
        let r = request.into_inner();
        ok(erased(
            self.conversations
                .erase_visitor(&r.app_id, &r.visitor_id)
                .await?,
        ))
    }
}
