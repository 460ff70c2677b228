//! How a session turns the bus events of the subjects it watches into frames: a
//! conversation started with the operator, messages, a conversation's state, typing
//! (but its own) and presence. Each event is handled in a `ws.deliver` span, a child of
//! the span that published it, so a message is one trace from sender to receiver.

use opentelemetry::trace::TraceContextExt as _;
use palaver_kit::bus::{ConversationKind, Event, MemberKind, Subject};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::events::v1 as events;
use prost::Message as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::frames::ServerFrame;
use super::hello::SocketKind;
use super::session::{Session, Step};
use super::writer::{Closed, Closing};
use crate::http::model::sender_name;

impl Session {
    /// Turns a bus event into frames. Events that cannot be read are skipped.
    pub(super) async fn on_event(&mut self, event: &Event) -> Step {
        let span = deliver_span(event, self.kind());
        self.route(event).instrument(span).await
    }

    async fn route(&mut self, event: &Event) -> Step {
        let payload = &event.payload[..];
        let Ok(subject) = event.subject.parse::<Subject>() else {
            return Step::Continue;
        };
        match subject {
            Subject::Member {
                kind: MemberKind::Inbox,
                ..
            } => {
                let Ok(inbox) = events::InboxEvent::decode(payload) else {
                    return Step::Continue;
                };
                match inbox.kind {
                    Some(events::inbox_event::Kind::ConversationStarted(c)) => {
                        self.on_started(c).await
                    }
                    _ => Step::Continue,
                }
            }
            Subject::Conversation {
                kind: ConversationKind::Msg,
                ..
            } => {
                let Ok(message) = events::MessageEvent::decode(payload) else {
                    return Step::Continue;
                };
                match message.kind {
                    Some(events::message_event::Kind::Created(m)) => self.deliver(m).await.into(),
                    _ => Step::Continue,
                }
            }
            Subject::Conversation {
                kind: ConversationKind::State | ConversationKind::Typing,
                ..
            } => {
                let Ok(state) = events::ConversationStateEvent::decode(payload) else {
                    return Step::Continue;
                };
                self.on_state(state).await.into()
            }
            Subject::Presence { .. } => {
                let Ok(changed) = events::PresenceChanged::decode(payload) else {
                    return Step::Continue;
                };
                match changed.presence {
                    Some(member) => self.on_presence(member).await.into(),
                    None => Step::Continue,
                }
            }
            Subject::Member {
                kind: MemberKind::Permission,
                ..
            } => Step::Continue,
        }
    }

    /// A conversation started with the operator: watched, announced, and its first
    /// messages sent.
    async fn on_started(&mut self, c: conv::Conversation) -> Step {
        let id = c.id.clone();
        let new = !self.conversations.contains(&id);
        if self.watch_conversation(&id).await.is_err() {
            return Step::Continue;
        }
        if self.send_conversation(c).await.is_err() {
            return Step::Close(Closing::Quietly);
        }
        if !new {
            return Step::Continue;
        }
        // The first messages may have been published before this socket's subscription
        // existed: fetched once, and repeats are not delivered.
        match self.catch_up(&id, 0).await {
            Step::Reply(error) => {
                tracing::debug!(%error, conversation = %id, "cannot fetch a new conversation's first messages");
                Step::Continue
            }
            step => step,
        }
    }

    async fn on_state(&mut self, state: events::ConversationStateEvent) -> Result<(), Closed> {
        use events::conversation_state_event::Kind;
        let conversation = state.conversation_id;
        match state.kind {
            Some(Kind::Opened(c) | Kind::Closed(c)) => self.send_conversation(c).await,
            Some(Kind::Read(read)) => {
                self.out
                    .send(&ServerFrame::Read {
                        conversation,
                        seq: read.seq,
                        by: sender_name(read.by()),
                    })
                    .await
            }
            Some(Kind::Typing(typing)) => {
                if typing.from() == self.own_side() {
                    return Ok(());
                }
                self.out
                    .send(&ServerFrame::Typing {
                        conversation,
                        from: sender_name(typing.from()),
                    })
                    .await
            }
            None => Ok(()),
        }
    }
}

/// The span in which a bus event becomes frames for a socket of `receiver`: a child of
/// the span that published the event, when it carries one.
fn deliver_span(event: &Event, receiver: SocketKind) -> tracing::Span {
    let span = tracing::info_span!(
        "ws.deliver",
        otel.name = format!("deliver {}", event.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %event.subject,
        ws.receiver = receiver.as_str(),
    );
    let parent = event.parent_context();
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}
