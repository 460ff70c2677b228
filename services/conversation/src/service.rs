//! The conversation service on top of its parts: [`Conversations`] checks who may do
//! what and validates input ([`crate::domain`]), asks identity (the [`Directory`])
//! about chat endpoints and apps, sends messages through the group commit and
//! everything else straight to the [`Store`].

use palaver_kit::random::new_id;
use palaver_kit::telemetry::current_traceparent;
use palaver_kit::{Error, ErrorCode};

use crate::directory::{ChatEndpoint, Directory};
use crate::domain::{Clock, Policy, transcript, validate};
use crate::model::{
    Appended, Caller, Conversation, ConversationView, Erased, Message, NewConversation, NewMessage,
    OfflineMessage, Page, Retained, Role, Sender, Started, Transcript, Who,
};
use crate::store::Store;
use crate::store::group_commit::GroupCommit;

/// The conversation service's logic.
pub struct Conversations {
    store: Store,
    group_commit: GroupCommit,
    directory: Directory,
    policy: Policy,
    clock: Clock,
}

impl Conversations {
    pub fn new(
        store: Store,
        group_commit: GroupCommit,
        directory: Directory,
        policy: Policy,
        clock: Clock,
    ) -> Self {
        Conversations {
            store,
            group_commit,
            directory,
            policy,
            clock,
        }
    }

    async fn view(
        &self,
        caller: &Caller,
        conversation: Conversation,
    ) -> Result<ConversationView, Error> {
        let role = caller.role_in(&conversation)?;
        let unread = match role {
            Role::Participant(side) => conversation.unread_for(side),
            Role::App => 0,
        };
        // Only the member and the app are told of a block: it is theirs to lift.
        let visitor_blocked = match role {
            Role::Participant(Sender::Visitor) => false,
            Role::Participant(Sender::Member) | Role::App => !self
                .store
                .blocked_among(
                    &conversation.app_id,
                    &conversation.member_id,
                    &[conversation.visitor.visitor_id.as_str()],
                )
                .await?
                .is_empty(),
        };
        Ok(ConversationView {
            conversation,
            unread,
            visitor_blocked,
        })
    }

    async fn load(&self, conversation_id: &str) -> Result<Conversation, Error> {
        validate::id("conversation_id", conversation_id)?;
        self.store
            .conversation(conversation_id)
            .await?
            .ok_or_else(|| Error::not_found("no such conversation"))
    }

    /// The open chat endpoint `endpoint` of the caller's app: `not_found` when it is
    /// unknown or another app's, `endpoint_closed` while its member holds no valid
    /// permission token.
    async fn open_chat_endpoint(
        &self,
        caller: &Caller,
        endpoint: &str,
    ) -> Result<ChatEndpoint, Error> {
        validate::id("endpoint", endpoint)?;
        let unknown = || Error::not_found(format!("no chat endpoint {endpoint:?}"));
        let chat = match self.directory.chat_endpoint(endpoint).await {
            Ok(chat) if chat.app_id == caller.app_id => chat,
            Ok(_) => return Err(unknown()),
            Err(error) if error.code == ErrorCode::NotFound => return Err(unknown()),
            Err(error) => return Err(error),
        };
        if !chat.open {
            return Err(Error::new(
                ErrorCode::EndpointClosed,
                "this chat is not available",
            ));
        }
        Ok(chat)
    }

    /// Opens a conversation between the calling visitor and the member behind
    /// `endpoint`, or returns the visitor's open one with that endpoint (`false`).
    #[tracing::instrument(skip(self, caller), fields(app_id = %caller.app_id))]
    pub async fn start_conversation(
        &self,
        caller: &Caller,
        endpoint: &str,
    ) -> Result<(ConversationView, bool), Error> {
        let visitor = caller.visitor()?;
        let chat = self.open_chat_endpoint(caller, endpoint).await?;
        if visitor.member_id == chat.member_id {
            return Err(Error::new(
                ErrorCode::FailedPrecondition,
                "a member cannot start a chat with their own chat endpoint",
            ));
        }
        let app = self.directory.app(&caller.app_id).await?;
        let limit = match app.open_conversations_per_visitor {
            0 => self.policy.open_conversations_per_visitor,
            own => own,
        };
        let new = NewConversation {
            app_id: caller.app_id.clone(),
            endpoint: chat.endpoint,
            member_id: chat.member_id,
            member_name: chat.display_name,
            visitor: visitor.clone(),
        };
        let (conversation, created) = match self
            .store
            .start_conversation(&new, limit, self.clock.now_ms())
            .await?
        {
            Started::Created(conversation) => (conversation, true),
            Started::Existing(conversation) => (conversation, false),
        };
        Ok((self.view(caller, conversation).await?, created))
    }

    /// A conversation the caller takes part in (or of the calling app).
    #[tracing::instrument(skip(self, caller), fields(app_id = %caller.app_id))]
    pub async fn conversation(
        &self,
        caller: &Caller,
        conversation_id: &str,
    ) -> Result<ConversationView, Error> {
        let conversation = self.load(conversation_id).await?;
        self.view(caller, conversation).await
    }

    /// Sends a message; idempotent on the conversation, the caller's side and
    /// `client_id`. Answers once the message is committed.
    #[tracing::instrument(skip(self, caller, text), fields(app_id = %caller.app_id))]
    pub async fn send_message(
        &self,
        caller: &Caller,
        conversation_id: &str,
        client_id: &str,
        text: &str,
    ) -> Result<Appended, Error> {
        validate::id("conversation_id", conversation_id)?;
        let client_id = validate::client_id(client_id)?;
        let text = validate::text("text", text)?;
        if caller.who == Who::App {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                "only a participant may send messages",
            ));
        }
        self.group_commit
            .append(NewMessage {
                conversation_id: conversation_id.to_owned(),
                caller: caller.clone(),
                client_id,
                text,
                traceparent: current_traceparent(),
            })
            .await
    }

    /// A page of a conversation's messages, in sequence order, and whether there are
    /// more in the page's direction.
    #[tracing::instrument(skip(self, caller), fields(app_id = %caller.app_id))]
    pub async fn messages(
        &self,
        caller: &Caller,
        conversation_id: &str,
        page: Page,
        limit: u32,
    ) -> Result<(Vec<Message>, bool), Error> {
        let limit = validate::page_size(limit)?;
        let conversation = self.load(conversation_id).await?;
        caller.role_in(&conversation)?;
        self.store.messages(conversation_id, page, limit).await
    }

    /// Moves the caller's read mark forward to `seq`; returns the mark.
    #[tracing::instrument(skip(self, caller), fields(app_id = %caller.app_id))]
    pub async fn mark_read(
        &self,
        caller: &Caller,
        conversation_id: &str,
        seq: u64,
    ) -> Result<i64, Error> {
        let conversation = self.load(conversation_id).await?;
        let side = caller.participant_in(&conversation)?;
        let seq = i64::try_from(seq).map_err(|_| Error::invalid("seq", "is too large"))?;
        let conversation = self
            .store
            .mark_read(conversation_id, side, seq, self.clock.now_ms())
            .await?;
        Ok(match side {
            Sender::Member => conversation.member_read_seq,
            Sender::Visitor => conversation.visitor_read_seq,
        })
    }

    /// Closes a conversation (either participant may); closing again changes nothing.
    #[tracing::instrument(skip(self, caller), fields(app_id = %caller.app_id))]
    pub async fn close(
        &self,
        caller: &Caller,
        conversation_id: &str,
    ) -> Result<ConversationView, Error> {
        let conversation = self.load(conversation_id).await?;
        caller.participant_in(&conversation)?;
        let conversation = self
            .store
            .close(conversation_id, self.clock.now_ms())
            .await?;
        self.view(caller, conversation).await
    }

    /// Leaves a message for the member behind `endpoint` ("leave a message").
    #[tracing::instrument(skip(self, caller, text, email), fields(app_id = %caller.app_id))]
    pub async fn leave_offline_message(
        &self,
        caller: &Caller,
        endpoint: &str,
        text: &str,
        email: &str,
    ) -> Result<OfflineMessage, Error> {
        let visitor = caller.visitor()?;
        let text = validate::text("text", text)?;
        let email = validate::optional_email(email)?;
        let chat = self.open_chat_endpoint(caller, endpoint).await?;
        let now = self.clock.now_ms();
        let message = OfflineMessage {
            offline_message_id: new_id("om_", 20),
            app_id: caller.app_id.clone(),
            member_id: chat.member_id,
            endpoint: chat.endpoint,
            visitor: visitor.clone(),
            text,
            email,
            sent_at: now,
        };
        self.store.insert_offline_message(&message, now).await?;
        Ok(message)
    }

    /// A member's offline messages, newest first, and the next page's cursor.
    #[tracing::instrument(skip(self))]
    pub async fn offline_messages(
        &self,
        app_id: &str,
        member_id: &str,
        cursor: &str,
        limit: u32,
    ) -> Result<(Vec<OfflineMessage>, Option<String>), Error> {
        validate::id("app_id", app_id)?;
        validate::id("member_id", member_id)?;
        let cursor = validate::cursor(cursor)?;
        let limit = validate::page_size(limit)?;
        let (messages, next) = self
            .store
            .offline_messages(app_id, member_id, cursor.as_ref(), limit)
            .await?;
        Ok((messages, next.map(|c| c.encode())))
    }

    /// A member's conversations, newest first, with the member's unread counts, and
    /// the next page's cursor.
    #[tracing::instrument(skip(self))]
    pub async fn conversations_of_member(
        &self,
        app_id: &str,
        member_id: &str,
        cursor: &str,
        limit: u32,
    ) -> Result<(Vec<ConversationView>, Option<String>), Error> {
        validate::id("app_id", app_id)?;
        validate::id("member_id", member_id)?;
        let cursor = validate::cursor(cursor)?;
        let limit = validate::page_size(limit)?;
        let (conversations, next) = self
            .store
            .conversations_of_member(app_id, member_id, cursor.as_ref(), limit)
            .await?;
        // Blocks are the member's own: of the visitors of the conversations they answer.
        let visitors: Vec<&str> = conversations
            .iter()
            .filter(|c| c.member_id == member_id)
            .map(|c| c.visitor.visitor_id.as_str())
            .collect();
        let blocked = self
            .store
            .blocked_among(app_id, member_id, &visitors)
            .await?;
        let views = conversations
            .into_iter()
            .map(|conversation| {
                let unread = conversation
                    .side_of_member(member_id)
                    .map_or(0, |side| conversation.unread_for(side));
                let visitor_blocked = conversation.member_id == member_id
                    && blocked.contains(&conversation.visitor.visitor_id);
                ConversationView {
                    conversation,
                    unread,
                    visitor_blocked,
                }
            })
            .collect();
        Ok((views, next.map(|c| c.encode())))
    }

    /// The whole conversation, as messages, plain text and JSON.
    #[tracing::instrument(skip(self, caller), fields(app_id = %caller.app_id))]
    pub async fn transcript(
        &self,
        caller: &Caller,
        conversation_id: &str,
    ) -> Result<Transcript, Error> {
        let conversation = self.conversation(caller, conversation_id).await?;
        let messages = self.store.all_messages(conversation_id).await?;
        Ok(Transcript {
            text: transcript::text(&conversation.conversation, &messages),
            json: transcript::json(&conversation.conversation, &messages),
            conversation,
            messages,
        })
    }

    /// Blocks a visitor from the member; returns how many open conversations it closed.
    #[tracing::instrument(skip(self))]
    pub async fn block_visitor(
        &self,
        app_id: &str,
        member_id: &str,
        visitor_id: &str,
    ) -> Result<u64, Error> {
        validate::id("app_id", app_id)?;
        validate::id("member_id", member_id)?;
        validate::id("visitor_id", visitor_id)?;
        self.store
            .block(app_id, member_id, visitor_id, self.clock.now_ms())
            .await
    }

    /// Lifts a block; `not_found` when there was none.
    #[tracing::instrument(skip(self))]
    pub async fn unblock_visitor(
        &self,
        app_id: &str,
        member_id: &str,
        visitor_id: &str,
    ) -> Result<(), Error> {
        validate::id("app_id", app_id)?;
        validate::id("member_id", member_id)?;
        validate::id("visitor_id", visitor_id)?;
        if self.store.unblock(app_id, member_id, visitor_id).await? {
            Ok(())
        } else {
            Err(Error::not_found("the visitor is not blocked"))
        }
    }

    /// Erases everything of a member.
    #[tracing::instrument(skip(self))]
    pub async fn erase_member(&self, app_id: &str, member_id: &str) -> Result<Erased, Error> {
        validate::id("app_id", app_id)?;
        validate::id("member_id", member_id)?;
        self.store.erase_member(app_id, member_id).await
    }

    /// Erases everything of a visitor.
    #[tracing::instrument(skip(self))]
    pub async fn erase_visitor(&self, app_id: &str, visitor_id: &str) -> Result<Erased, Error> {
        validate::id("app_id", app_id)?;
        validate::id("visitor_id", visitor_id)?;
        self.store.erase_visitor(app_id, visitor_id).await
    }

    /// Deletes, for every app with a retention period, what is older than it. An app
    /// identity cannot tell about is left alone.
    #[tracing::instrument(skip(self))]
    pub async fn apply_retention(&self) -> Result<Retained, Error> {
        let now = self.clock.now_ms();
        let mut retained = Retained::default();
        for app_id in self.store.apps().await? {
            let days = match self.directory.app(&app_id).await {
                Ok(settings) => settings.retention_days,
                Err(error) => {
                    tracing::warn!(%app_id, %error, "cannot read the app's retention; skipping it");
                    continue;
                }
            };
            if days == 0 {
                continue;
            }
            let cutoff = now - i64::from(days) * 86_400_000;
            let (messages, offline_messages, conversations) =
                self.store.delete_older_than(&app_id, cutoff).await?;
            retained.messages += messages;
            retained.offline_messages += offline_messages;
            retained.conversations += conversations;
        }
        metrics::counter!("palaver_conversation_retention_deleted_total", "kind" => "message")
            .increment(retained.messages);
        metrics::counter!("palaver_conversation_retention_deleted_total", "kind" => "offline_message")
            .increment(retained.offline_messages);
        metrics::counter!("palaver_conversation_retention_deleted_total", "kind" => "conversation")
            .increment(retained.conversations);
        Ok(retained)
    }
}
