//! The JSON frames of the WebSocket protocol (DESIGN.md, "WebSocket protocol"): each
//! `{"type": "...", ...}`.

use palaver_kit::Error;
use serde::{Deserialize, Serialize};

/// A frame from the client. Unknown types and unknown fields are refused.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientFrame {
    /// With `token` (a visitor session or operator access token), or, to only watch
    /// presence, with `app_id` and no token. `lang` picks the language of presence
    /// frames' `status_text`.
    #[serde(rename = "hello")]
    Hello {
        token: Option<String>,
        app_id: Option<String>,
        lang: Option<String>,
    },
    #[serde(rename = "presence.watch")]
    PresenceWatch { endpoints: Vec<String> },
    #[serde(rename = "presence.set")]
    PresenceSet { status: String },
    #[serde(rename = "conversation.open")]
    ConversationOpen { endpoint: String },
    #[serde(rename = "message.send")]
    MessageSend {
        conversation: String,
        client_id: String,
        text: String,
    },
    #[serde(rename = "typing")]
    Typing { conversation: String },
    #[serde(rename = "read")]
    Read { conversation: String, seq: u64 },
    #[serde(rename = "resume")]
    Resume {
        conversation: String,
        after_seq: u64,
    },
    #[serde(rename = "ping")]
    Ping,
}

impl ClientFrame {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Hello { .. } => "hello",
            ClientFrame::PresenceWatch { .. } => "presence.watch",
            ClientFrame::PresenceSet { .. } => "presence.set",
            ClientFrame::ConversationOpen { .. } => "conversation.open",
            ClientFrame::MessageSend { .. } => "message.send",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Read { .. } => "read",
            ClientFrame::Resume { .. } => "resume",
            ClientFrame::Ping => "ping",
        }
    }
}

/// Who the socket belongs to, as `welcome` tells it.
#[derive(Debug, Serialize)]
pub struct You {
    /// `visitor`, `operator` or `watcher` (a page watching presence, without a token).
    pub kind: &'static str,
    pub app_id: String,
    /// The visitor id or the member id; a watcher has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A watcher has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub verified: bool,
}

/// The visitor of a conversation.
#[derive(Debug, Serialize)]
pub struct VisitorFrame {
    pub id: String,
    pub display_name: String,
    pub verified: bool,
}

/// A frame to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    #[serde(rename = "welcome")]
    Welcome { you: You },
    #[serde(rename = "presence")]
    Presence {
        endpoint: String,
        status: &'static str,
        status_text: &'static str,
        accepts_chats: bool,
    },
    #[serde(rename = "conversation")]
    Conversation {
        id: String,
        endpoint: String,
        visitor: VisitorFrame,
        state: &'static str,
    },
    #[serde(rename = "message")]
    Message {
        conversation: String,
        seq: u64,
        id: String,
        client_id: String,
        from: &'static str,
        text: String,
        sent_at: Option<String>,
    },
    #[serde(rename = "message.ack")]
    MessageAck {
        client_id: String,
        id: String,
        seq: u64,
    },
    #[serde(rename = "typing")]
    Typing {
        conversation: String,
        from: &'static str,
    },
    #[serde(rename = "read")]
    Read {
        conversation: String,
        seq: u64,
        by: &'static str,
    },
    #[serde(rename = "error")]
    Error {
        code: &'static str,
        message: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    #[serde(rename = "pong")]
    Pong,
}

impl ServerFrame {
    /// An `error` frame.
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        reference: Option<String>,
    ) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            reference,
        }
    }

    /// The `error` frame that tells of `error`; `reference` is the `ref` of the frame it
    /// answers.
    pub fn of_error(error: &Error, reference: Option<String>) -> Self {
        ServerFrame::error(error.code.as_str(), error.message.clone(), reference)
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"internal error"}"#.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_strictly() {
        let frame: ClientFrame =
            serde_json::from_str(r#"{"type":"resume","conversation":"c1","after_seq":3}"#).unwrap();
        assert_eq!(
            frame,
            ClientFrame::Resume {
                conversation: "c1".into(),
                after_seq: 3
            }
        );
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"ping"}"#).unwrap(),
            ClientFrame::Ping
        );
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"hello","app_id":"a1","lang":"de"}"#)
                .unwrap(),
            ClientFrame::Hello {
                token: None,
                app_id: Some("a1".into()),
                lang: Some("de".into())
            }
        );
        for bad in [
            r#"{"type":"nope"}"#,
            r#"{"type":"hello","token":"t","origin":"x"}"#,
            r#"{"type":"read","conversation":"c1"}"#,
            r#"{"type":"read","conversation":"c1","seq":-1}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_frames_carry_their_type() {
        let json = ServerFrame::error("rate_limited", "slow down", Some("c9".into())).to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"rate_limited","message":"slow down","ref":"c9"}"#
        );
        assert_eq!(
            ServerFrame::MessageAck {
                client_id: "c".into(),
                id: "m".into(),
                seq: 1
            }
            .to_json(),
            r#"{"type":"message.ack","client_id":"c","id":"m","seq":1}"#
        );
    }
}
