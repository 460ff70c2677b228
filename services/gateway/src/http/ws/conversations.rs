//! What a session does for conversations: a visitor opens one, either side sends
//! messages, types and marks what it read, and a client that was away resumes. A socket
//! watches a conversation's subjects once it may see it; each message reaches it once,
//! live or resumed.

use palaver_kit::bus::{ConversationKind, Subject};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;

use super::frames::{ServerFrame, VisitorFrame};
use super::session::{Session, Step};
use super::writer::{Closed, Closing};
use crate::clients::call;
use crate::http::model::{sender_name, state_name, timestamp};

/// Messages per `ListMessages` page while resuming.
const RESUME_PAGE: u32 = 200;

impl Session {
    /// How conversations name this socket's side: the member for an operator, else the
    /// visitor.
    pub(super) fn own_side(&self) -> conv::Sender {
        if self.is_operator() {
            conv::Sender::Member
        } else {
            conv::Sender::Visitor
        }
    }

    /// `conversation.open`: a visitor starts a conversation on `endpoint`, or gets the
    /// one open there back.
    pub(super) async fn open(&mut self, endpoint: String) -> Step {
        if self.is_operator() {
            return Step::Reply(Error::new(
                ErrorCode::PermissionDenied,
                "conversation.open is for visitors",
            ));
        }
        let started = call(self.state.conversation().start_conversation(
            conv::StartConversationRequest {
                caller: Some(self.caller.clone()),
                endpoint,
            },
        ))
        .await;
        let conversation = match started {
            Ok(conversation) => conversation,
            Err(error) => return Step::Reply(error),
        };
        if let Err(error) = self.watch_conversation(&conversation.id).await {
            return Step::Reply(error);
        }
        self.send_conversation(conversation).await.into()
    }

    /// Sends a `conversation` frame.
    pub(super) async fn send_conversation(&mut self, c: conv::Conversation) -> Result<(), Closed> {
        let visitor = c.visitor.clone().unwrap_or_default();
        self.out
            .send(&ServerFrame::Conversation {
                state: state_name(c.state()),
                id: c.id,
                endpoint: c.endpoint,
                visitor: VisitorFrame {
                    id: visitor.visitor_id,
                    display_name: visitor.display_name,
                    verified: visitor.verified,
                },
            })
            .await
    }

    /// Watches the events of a conversation this socket may see.
    pub(super) async fn watch_conversation(&mut self, id: &str) -> Result<(), Error> {
        if self.conversations.contains(id) {
            return Ok(());
        }
        for kind in ConversationKind::ALL {
            self.watch(Subject::conversation(self.app(), id, kind))
                .await?;
        }
        self.conversations.insert(id.to_owned());
        Ok(())
    }

    /// Checks (once) that the caller takes part in the conversation, then watches it.
    async fn join(&mut self, id: &str) -> Result<(), Error> {
        if self.conversations.contains(id) {
            return Ok(());
        }
        call(
            self.state
                .conversation()
                .get_conversation(conv::GetConversationRequest {
                    caller: Some(self.caller.clone()),
                    conversation_id: id.to_owned(),
                }),
        )
        .await?;
        self.watch_conversation(id).await
    }

    /// `message.send`, within the session's message rate: the `message.ack`, then the
    /// message itself.
    pub(super) async fn send_message(
        &mut self,
        conversation: String,
        client_id: String,
        text: String,
    ) -> Step {
        let key = (self.app().to_owned(), self.subject().to_owned());
        if let Err(limited) = self
            .state
            .ws_messages()
            .check(self.limits.message_rate(), &key)
        {
            metrics::counter!("palaver_gateway_rate_limited_total", "limit" => "messages")
                .increment(1);
            return Step::Reply(Error::new(
                ErrorCode::RateLimited,
                format!(
                    "too many messages; try again in {} s",
                    limited.retry_after_seconds()
                ),
            ));
        }
        if let Err(error) = self.join(&conversation).await {
            return Step::Reply(error);
        }
        let sent = call(
            self.state
                .conversation()
                .send_message(conv::SendMessageRequest {
                    caller: Some(self.caller.clone()),
                    conversation_id: conversation,
                    client_id,
                    text,
                }),
        )
        .await;
        let message = match sent {
            Ok(sent) => sent.message.unwrap_or_default(),
            Err(error) => return Step::Reply(error),
        };
        let acknowledged = self
            .out
            .send(&ServerFrame::MessageAck {
                client_id: message.client_id.clone(),
                id: message.id.clone(),
                seq: message.seq,
            })
            .await;
        if acknowledged.is_err() {
            return Step::Close(Closing::Quietly);
        }
        self.deliver(message).await.into()
    }

    /// `typing`: tells the conversation's other sockets.
    pub(super) async fn typing(&mut self, conversation: String) -> Result<(), Error> {
        self.join(&conversation).await?;
        self.state
            .publisher()
            .typing(self.app(), &conversation, self.own_side())
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot publish typing");
                Error::new(ErrorCode::Unavailable, "typing could not be sent")
            })
    }

    /// `read`: marks the conversation read up to `seq`.
    pub(super) async fn read(&mut self, conversation: String, seq: u64) -> Result<(), Error> {
        self.join(&conversation).await?;
        call(self.state.conversation().mark_read(conv::MarkReadRequest {
            caller: Some(self.caller.clone()),
            conversation_id: conversation,
            seq,
        }))
        .await?;
        Ok(())
    }

    /// `resume`: every message after `after_seq` this socket did not have yet.
    pub(super) async fn resume(&mut self, conversation: String, after_seq: u64) -> Step {
        if let Err(error) = self.join(&conversation).await {
            return Step::Reply(error);
        }
        self.catch_up(&conversation, after_seq).await
    }

    /// Delivers every message of a watched conversation after `after_seq` that this
    /// socket did not have yet.
    pub(super) async fn catch_up(&mut self, conversation: &str, after_seq: u64) -> Step {
        let mut after = after_seq;
        loop {
            let page = call(
                self.state
                    .conversation()
                    .list_messages(conv::ListMessagesRequest {
                        caller: Some(self.caller.clone()),
                        conversation_id: conversation.to_owned(),
                        page: Some(conv::list_messages_request::Page::AfterSeq(after)),
                        limit: RESUME_PAGE,
                    }),
            )
            .await;
            let page = match page {
                Ok(page) => page,
                Err(error) => return Step::Reply(error),
            };
            let last = page.messages.last().map(|m| m.seq);
            for message in page.messages {
                if self.deliver(message).await.is_err() {
                    return Step::Close(Closing::Quietly);
                }
            }
            match last {
                Some(seq) if page.more => after = seq,
                _ => return Step::Continue,
            }
        }
    }

    /// Sends a message frame unless this socket had it already.
    pub(super) async fn deliver(&mut self, message: conv::Message) -> Result<(), Closed> {
        let delivered = self
            .delivered
            .entry(message.conversation_id.clone())
            .or_default();
        if delivered.contains(&message.seq) {
            return Ok(());
        }
        delivered.insert(message.seq..=message.seq);
        self.out
            .send(&ServerFrame::Message {
                from: sender_name(message.from()),
                conversation: message.conversation_id,
                seq: message.seq,
                id: message.id,
                client_id: message.client_id,
                text: message.text,
                sent_at: timestamp(message.sent_at),
            })
            .await
    }
}
