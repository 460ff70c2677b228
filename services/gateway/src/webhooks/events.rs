//! The webhook events: which stored bus events become which webhook, and the JSON of
//! each (`{"type","timestamp","data"}`, the Standard Webhooks payload shape), documented
//! in the OpenAPI document's `webhooks` section.
//!
//! | webhook | bus event |
//! | --- | --- |
//! | `conversation.started` | `<app>.member.<member>.inbox`, a conversation started |
//! | `message.created` | `<app>.conv.<id>.msg`, a message created |
//! | `message.offline` | `<app>.member.<member>.inbox`, an offline message |
//! | `conversation.closed` | `<app>.conv.<id>.state`, closed |
//! | `member.permission_changed` | `<app>.member.<member>.permission` |
//!
//! The other bus events (edits, read marks, a conversation's opening, which its
//! `conversation.started` already tells) are no webhook. The bus events carry Palaver's
//! own ids; the member's `external_id` (and a message's endpoint and member) are looked
//! up when the webhook is sent, and are null once the member or conversation is erased.

use palaver_kit::bus::{ConversationKind, Event, MemberKind, Subject};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::events::v1 as ev;
use palaver_proto::identity::v1 as pb;
use prost::Message as _;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItemBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, OpenApi, PathsBuilder, Ref, RefOr, ResponseBuilder,
    ResponsesBuilder,
};

use super::WebhookContext;
use crate::clients::call;
use crate::http::model::{non_empty, sender_name, timestamp};

/// The webhook events an app may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ConversationStarted,
    MessageCreated,
    MessageOffline,
    ConversationClosed,
    MemberPermissionChanged,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::ConversationStarted,
        EventType::MessageCreated,
        EventType::MessageOffline,
        EventType::ConversationClosed,
        EventType::MemberPermissionChanged,
    ];

    /// The `type` of the payload, and the name in the webhook's `events`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::ConversationStarted => "conversation.started",
            EventType::MessageCreated => "message.created",
            EventType::MessageOffline => "message.offline",
            EventType::ConversationClosed => "conversation.closed",
            EventType::MemberPermissionChanged => "member.permission_changed",
        }
    }

    fn data_schema(self) -> &'static str {
        match self {
            EventType::ConversationStarted => "ConversationStartedData",
            EventType::MessageCreated => "MessageCreatedData",
            EventType::MessageOffline => "MessageOfflineData",
            EventType::ConversationClosed => "ConversationClosedData",
            EventType::MemberPermissionChanged => "MemberPermissionChangedData",
        }
    }

    fn description(self) -> &'static str {
        match self {
            EventType::ConversationStarted => "A visitor started a conversation with a member.",
            EventType::MessageCreated => {
                "A message was sent in a conversation, by the visitor or the member."
            }
            EventType::MessageOffline => "A visitor left a message for a member who was offline.",
            EventType::ConversationClosed => "A conversation was closed.",
            EventType::MemberPermissionChanged => {
                "A member's permission changed through the API: granted (code exchange), refreshed, revoked, or the member deleted. A permission that expires by time sends nothing."
            }
        }
    }
}

/// A member, as webhooks name them.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookMember {
    /// Palaver's own id of the member.
    member_id: String,
    /// The CMS's user id; null once the member is erased.
    external_id: Option<String>,
}

/// A visitor, as webhooks name them.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookVisitor {
    visitor_id: String,
    display_name: String,
    /// True when the CMS vouched for the visitor with an identity assertion.
    verified: bool,
    /// The CMS's user id of a verified visitor.
    external_id: Option<String>,
}

impl From<conv::Participant> for WebhookVisitor {
    fn from(visitor: conv::Participant) -> Self {
        WebhookVisitor {
            visitor_id: visitor.visitor_id,
            display_name: visitor.display_name,
            verified: visitor.verified,
            external_id: non_empty(visitor.external_id),
        }
    }
}

/// `data` of `conversation.started`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConversationStartedData)]
pub struct ConversationStarted {
    conversation_id: String,
    /// The member's chat endpoint the visitor chats on.
    endpoint: String,
    member: WebhookMember,
    visitor: WebhookVisitor,
    #[schema(format = DateTime)]
    started_at: Option<String>,
}

/// `data` of `conversation.closed`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConversationClosedData)]
pub struct ConversationClosed {
    conversation_id: String,
    endpoint: String,
    member: WebhookMember,
    visitor: WebhookVisitor,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    closed_at: Option<String>,
    /// The sequence number of the conversation's last message (0 when there was none).
    last_seq: u64,
}

/// `data` of `message.created`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageCreatedData)]
pub struct MessageCreated {
    conversation_id: String,
    /// The conversation's chat endpoint; null once the conversation is erased.
    endpoint: Option<String>,
    /// The member of the conversation; null once the conversation is erased.
    member: Option<WebhookMember>,
    message_id: String,
    /// The message's place in its conversation, from 1.
    seq: u64,
    /// `visitor` or `member`.
    from: &'static str,
    text: String,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
}

/// `data` of `message.offline`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageOfflineData)]
pub struct MessageOffline {
    offline_message_id: String,
    endpoint: String,
    member: WebhookMember,
    visitor: WebhookVisitor,
    text: String,
    /// Where the visitor asked to be answered, if they said.
    email: Option<String>,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
}

/// `data` of `member.permission_changed`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MemberPermissionChangedData)]
pub struct PermissionChanged {
    member: WebhookMember,
    /// The member's chat endpoint.
    endpoint: Option<String>,
    /// `valid`, `expired`, `revoked` or `none`, as `GET /v1/cms/members/{external_id}/permission` reads it.
    status: String,
    /// When the permission token expires.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// `granted`, `refreshed`, `revoked` or `member_deleted`.
    reason: String,
}

/// The `data` of a webhook event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EventData {
    ConversationStarted(ConversationStarted),
    MessageCreated(MessageCreated),
    MessageOffline(MessageOffline),
    ConversationClosed(ConversationClosed),
    PermissionChanged(PermissionChanged),
}

/// The body of a webhook request.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the event happened (RFC 3339).
    pub timestamp: String,
    pub data: &'a EventData,
}

/// A bus event that is a webhook event, before its data is looked up.
#[derive(Debug)]
pub struct WebhookEvent {
    pub app_id: String,
    /// The bus event's id: the `webhook-id`, the same on every attempt.
    pub event_id: String,
    pub kind: EventType,
    pub at: Option<prost_types::Timestamp>,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Started(conv::Conversation),
    Closed(conv::Conversation),
    Message(conv::Message),
    Offline(conv::OfflineMessage),
    Permission(ev::PermissionChanged),
}

/// A stored bus event that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the event on {subject} cannot be decoded: {reason}")]
pub struct DecodeError {
    subject: String,
    reason: String,
}

/// The webhook event a bus event makes; `None` for bus events that are none.
pub fn decode(event: &Event) -> Result<Option<WebhookEvent>, DecodeError> {
    let invalid = |reason: String| DecodeError {
        subject: event.subject.clone(),
        reason,
    };
    let Ok(subject) = event.subject.parse::<Subject>() else {
        return Ok(None);
    };
    let app_id = subject.app();
    let made = |event_id: String, at, kind, source| {
        Some(WebhookEvent {
            app_id: app_id.to_owned(),
            event_id,
            kind,
            at,
            source,
        })
    };
    let payload = &event.payload[..];
    Ok(match subject {
        Subject::Conversation {
            kind: ConversationKind::Msg,
            ..
        } => {
            let message = ev::MessageEvent::decode(payload).map_err(|e| invalid(e.to_string()))?;
            match message.kind {
                Some(ev::message_event::Kind::Created(created)) => made(
                    message.event_id,
                    message.at,
                    EventType::MessageCreated,
                    Source::Message(created),
                ),
                _ => None,
            }
        }
        Subject::Conversation {
            kind: ConversationKind::State,
            ..
        } => {
            let state =
                ev::ConversationStateEvent::decode(payload).map_err(|e| invalid(e.to_string()))?;
            match state.kind {
                Some(ev::conversation_state_event::Kind::Closed(closed)) => made(
                    state.event_id,
                    state.at,
                    EventType::ConversationClosed,
                    Source::Closed(closed),
                ),
                _ => None,
            }
        }
        Subject::Member {
            kind: MemberKind::Inbox,
            ..
        } => {
            let inbox = ev::InboxEvent::decode(payload).map_err(|e| invalid(e.to_string()))?;
            match inbox.kind {
                Some(ev::inbox_event::Kind::ConversationStarted(started)) => made(
                    inbox.event_id,
                    inbox.at,
                    EventType::ConversationStarted,
                    Source::Started(started),
                ),
                Some(ev::inbox_event::Kind::OfflineMessage(offline)) => made(
                    inbox.event_id,
                    inbox.at,
                    EventType::MessageOffline,
                    Source::Offline(offline),
                ),
                None => None,
            }
        }
        Subject::Member {
            kind: MemberKind::Permission,
            ..
        } => {
            let changed =
                ev::PermissionChanged::decode(payload).map_err(|e| invalid(e.to_string()))?;
            made(
                changed.event_id.clone(),
                changed.at,
                EventType::MemberPermissionChanged,
                Source::Permission(changed),
            )
        }
        Subject::Presence { .. }
        | Subject::Conversation {
            kind: ConversationKind::Typing,
            ..
        } => None,
    })
}

impl WebhookEvent {
    /// The event's `data`, with what the bus event does not carry looked up.
    pub async fn data(&self, context: &WebhookContext) -> Result<EventData, Error> {
        let app_id = &self.app_id;
        Ok(match &self.source {
            Source::Started(c) => EventData::ConversationStarted(ConversationStarted {
                conversation_id: c.id.clone(),
                endpoint: c.endpoint.clone(),
                member: member(context, app_id, &c.member_id).await?,
                visitor: c.visitor.clone().unwrap_or_default().into(),
                started_at: timestamp(c.started_at),
            }),
            Source::Closed(c) => EventData::ConversationClosed(ConversationClosed {
                conversation_id: c.id.clone(),
                endpoint: c.endpoint.clone(),
                member: member(context, app_id, &c.member_id).await?,
                visitor: c.visitor.clone().unwrap_or_default().into(),
                started_at: timestamp(c.started_at),
                closed_at: timestamp(c.closed_at),
                last_seq: c.last_seq,
            }),
            Source::Message(m) => {
                let mut conversations = context.conversation.clone();
                let conversation = conversations.get_conversation(conv::GetConversationRequest {
                    caller: Some(conv::Caller {
                        app_id: app_id.clone(),
                        ..conv::Caller::default()
                    }),
                    conversation_id: m.conversation_id.clone(),
                });
                let (endpoint, member_ref) = match found(call(conversation).await)? {
                    Some(c) => (
                        Some(c.endpoint),
                        Some(member(context, app_id, &c.member_id).await?),
                    ),
                    None => (None, None),
                };
                EventData::MessageCreated(MessageCreated {
                    conversation_id: m.conversation_id.clone(),
                    endpoint,
                    member: member_ref,
                    message_id: m.id.clone(),
                    seq: m.seq,
                    from: sender_name(m.from()),
                    text: m.text.clone(),
                    sent_at: timestamp(m.sent_at),
                })
            }
            Source::Offline(o) => EventData::MessageOffline(MessageOffline {
                offline_message_id: o.id.clone(),
                endpoint: o.endpoint.clone(),
                member: member(context, app_id, &o.member_id).await?,
                visitor: o.visitor.clone().unwrap_or_default().into(),
                text: o.text.clone(),
                email: non_empty(o.email.clone()),
                sent_at: timestamp(o.sent_at),
            }),
            Source::Permission(p) => EventData::PermissionChanged(PermissionChanged {
                member: WebhookMember {
                    member_id: p.member_id.clone(),
                    external_id: non_empty(p.external_id.clone()),
                },
                endpoint: non_empty(p.endpoint.clone()),
                status: p.status.clone(),
                expires_at: timestamp(p.expires_at),
                reason: p.reason.clone(),
            }),
        })
    }
}

/// `None` for what is not found (erased); other errors stay errors, to be retried.
fn found<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.code == ErrorCode::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

async fn member(
    context: &WebhookContext,
    app_id: &str,
    member_id: &str,
) -> Result<WebhookMember, Error> {
    let found = found(
        call(context.identity.clone().get_member(pb::GetMemberRequest {
            app_id: app_id.to_owned(),
            key: Some(pb::get_member_request::Key::MemberId(member_id.to_owned())),
        }))
        .await,
    )?;
    Ok(WebhookMember {
        member_id: member_id.to_owned(),
        external_id: found.map(|member| member.external_id),
    })
}

/// `T`'s schema and those it refers to.
fn with_schema<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// Adds the webhooks to the OpenAPI document: one `webhooks` entry per event type
/// (a POST with the event's payload), and the schemas of their `data`.
pub fn document(openapi: &mut OpenApi) {
    let mut schemas = Vec::new();
    with_schema::<ConversationStarted>(&mut schemas);
    with_schema::<MessageCreated>(&mut schemas);
    with_schema::<MessageOffline>(&mut schemas);
    with_schema::<ConversationClosed>(&mut schemas);
    with_schema::<PermissionChanged>(&mut schemas);
    openapi
        .components
        .get_or_insert_default()
        .schemas
        .extend(schemas);
    let mut webhooks = PathsBuilder::new();
    for kind in EventType::ALL {
        let payload = ObjectBuilder::new()
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([kind.name()])),
            )
            .required("type")
            .property(
                "timestamp",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("When the event happened.")),
            )
            .required("timestamp")
            .property("data", Ref::from_schema_name(kind.data_schema()))
            .required("data");
        let operation = OperationBuilder::new()
            .summary(Some(kind.name()))
            .description(Some(format!(
                "{} Sent as a POST to the app's webhook URL when the app subscribed to `{}`, signed as Standard Webhooks specifies: `webhook-id` (the event's id, the same on every attempt), `webhook-timestamp` (seconds since 1970 when this attempt was sent) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` keyed with the base64 part of the app's `whsec_` secret). Any 2xx answer within the timeout acknowledges it; otherwise it is tried again on the retry schedule (by default after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h), then given up. Each attempt is listed by `GET /v1/cms/webhook/deliveries`.",
                kind.description(),
                kind.name()
            )))
            .tag("webhooks")
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(payload)).build(),
                    )
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ))
            .responses(
                ResponsesBuilder::new()
                    .response(
                        "2XX",
                        ResponseBuilder::new()
                            .description("Received: the event is not sent again."),
                    )
                    .build(),
            );
        webhooks = webhooks.path(
            kind.name(),
            PathItemBuilder::new()
                .operation(HttpMethod::Post, operation.build())
                .build(),
        );
    }
    openapi.webhooks = Some(webhooks.build());
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn event(subject: &str, payload: Vec<u8>) -> Event {
        Event {
            subject: subject.to_owned(),
            payload: Bytes::from(payload),
            msg_id: None,
            headers: Default::default(),
        }
    }

    #[test]
    fn bus_events_map_to_webhook_events() {
        let created = ev::MessageEvent {
            event_id: "ev_1".to_owned(),
            at: None,
            kind: Some(ev::message_event::Kind::Created(conv::Message::default())),
        };
        let decoded = decode(&event("app_1.conv.c1.msg", created.encode_to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                decoded.app_id.as_str(),
                decoded.event_id.as_str(),
                decoded.kind
            ),
            ("app_1", "ev_1", EventType::MessageCreated)
        );
        let read = ev::ConversationStateEvent {
            kind: Some(ev::conversation_state_event::Kind::Read(
                ev::ReadUpTo::default(),
            )),
            ..Default::default()
        };
        assert!(
            decode(&event("app_1.conv.c1.state", read.encode_to_vec()))
                .unwrap()
                .is_none()
        );
        assert!(
            decode(&event("app_1.presence.m1", Vec::new()))
                .unwrap()
                .is_none()
        );
        assert!(decode(&event("app_1.member.m1.permission", vec![0xff, 0xff])).is_err());
    }

    #[test]
    fn the_payload_has_the_standard_webhooks_shape() {
        let data = EventData::PermissionChanged(PermissionChanged {
            member: WebhookMember {
                member_id: "mem_1".to_owned(),
                external_id: Some("42".to_owned()),
            },
            endpoint: Some("ce_1".to_owned()),
            status: "revoked".to_owned(),
            expires_at: None,
            reason: "revoked".to_owned(),
        });
        let body = serde_json::to_value(Payload {
            kind: EventType::MemberPermissionChanged.name(),
            timestamp: "2026-01-01T00:00:00Z".to_owned(),
            data: &data,
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "member.permission_changed",
                "timestamp": "2026-01-01T00:00:00Z",
                "data": {
                    "member": {"member_id": "mem_1", "external_id": "42"},
                    "endpoint": "ce_1",
                    "status": "revoked",
                    "expires_at": null,
                    "reason": "revoked",
                },
            })
        );
    }
}
