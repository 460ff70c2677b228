//! The rows of the tables as sqlx reads them, and their columns, turned into the model.

use sqlx::FromRow;

use super::Locked;
use crate::model::{
    Conversation, ConversationState, Message, OfflineMessage, PendingEvent, Sender, Visitor,
};

pub(super) const CONVERSATION_COLUMNS: &str = "conversation_id, app_id, endpoint, member_id, member_name, visitor_id, visitor_name, visitor_verified, visitor_external_id, visitor_member_id, state, started_at, closed_at, last_seq, last_activity_at, member_read_seq, visitor_read_seq, event_at";
pub(super) const MESSAGE_COLUMNS: &str =
    "message_id, conversation_id, seq, client_id, sender, text, sent_at";
pub(super) const OFFLINE_COLUMNS: &str = "offline_message_id, app_id, member_id, endpoint, visitor_id, visitor_name, visitor_verified, visitor_external_id, visitor_member_id, text, email, sent_at";

#[derive(Debug, FromRow)]
pub(super) struct ConversationRow {
    pub(super) conversation_id: String,
    app_id: String,
    endpoint: String,
    member_id: String,
    member_name: String,
    visitor_id: String,
    visitor_name: String,
    visitor_verified: i64,
    visitor_external_id: String,
    visitor_member_id: String,
    state: String,
    started_at: i64,
    closed_at: Option<i64>,
    last_seq: i64,
    last_activity_at: i64,
    member_read_seq: i64,
    visitor_read_seq: i64,
    event_at: i64,
}

impl From<ConversationRow> for Locked {
    fn from(row: ConversationRow) -> Self {
        Locked {
            conversation: Conversation {
                conversation_id: row.conversation_id,
                app_id: row.app_id,
                endpoint: row.endpoint,
                member_id: row.member_id,
                member_name: row.member_name,
                visitor: Visitor {
                    visitor_id: row.visitor_id,
                    display_name: row.visitor_name,
                    verified: row.visitor_verified != 0,
                    external_id: row.visitor_external_id,
                    member_id: row.visitor_member_id,
                },
                state: if row.state == ConversationState::Open.as_str() {
                    ConversationState::Open
                } else {
                    ConversationState::Closed
                },
                started_at: row.started_at,
                closed_at: row.closed_at,
                last_seq: row.last_seq,
                last_activity_at: row.last_activity_at,
                member_read_seq: row.member_read_seq,
                visitor_read_seq: row.visitor_read_seq,
            },
            event_at: Some(row.event_at),
        }
    }
}

#[derive(Debug, FromRow)]
pub(super) struct MessageRow {
    message_id: String,
    pub(super) conversation_id: String,
    seq: i64,
    client_id: String,
    sender: String,
    text: String,
    sent_at: i64,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            message_id: row.message_id,
            conversation_id: row.conversation_id,
            seq: row.seq,
            client_id: row.client_id,
            sender: Sender::parse(&row.sender).unwrap_or(Sender::Visitor),
            text: row.text,
            sent_at: row.sent_at,
        }
    }
}

#[derive(Debug, FromRow)]
pub(super) struct OfflineRow {
    offline_message_id: String,
    app_id: String,
    member_id: String,
    endpoint: String,
    visitor_id: String,
    visitor_name: String,
    visitor_verified: i64,
    visitor_external_id: String,
    visitor_member_id: String,
    text: String,
    email: String,
    sent_at: i64,
}

impl From<OfflineRow> for OfflineMessage {
    fn from(row: OfflineRow) -> Self {
        OfflineMessage {
            offline_message_id: row.offline_message_id,
            app_id: row.app_id,
            member_id: row.member_id,
            endpoint: row.endpoint,
            visitor: Visitor {
                visitor_id: row.visitor_id,
                display_name: row.visitor_name,
                verified: row.visitor_verified != 0,
                external_id: row.visitor_external_id,
                member_id: row.visitor_member_id,
            },
            text: row.text,
            email: row.email,
            sent_at: row.sent_at,
        }
    }
}

#[derive(Debug, FromRow)]
pub(super) struct OutboxRow {
    event_id: String,
    stream: String,
    subject: String,
    payload: Vec<u8>,
    event_at: i64,
    created_at: i64,
    traceparent: Option<String>,
}

impl From<OutboxRow> for PendingEvent {
    fn from(row: OutboxRow) -> Self {
        PendingEvent {
            event_id: row.event_id,
            stream: row.stream,
            subject: row.subject,
            payload: row.payload,
            event_at: row.event_at,
            created_at: row.created_at,
            traceparent: row.traceparent,
        }
    }
}
