//! Transcripts: a whole conversation as plain text (for people) and as JSON (for
//! programs).

use serde_json::json;

use crate::model::{Conversation, ConversationState, Message, Sender};

/// A Unix-milliseconds time as RFC 3339 in UTC, to the second.
pub fn rfc3339(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

fn name_of(conversation: &Conversation, sender: Sender) -> &str {
    match sender {
        Sender::Visitor => &conversation.visitor.display_name,
        Sender::Member => &conversation.member_name,
    }
}

/// The conversation as plain text: a heading, then one paragraph per message with its
/// time and sender; lines after a message's first are indented.
pub fn text(conversation: &Conversation, messages: &[Message]) -> String {
    let visitor = &conversation.visitor;
    let mut out = format!(
        "Conversation {} between {} ({}) and {}\nStarted {}\n",
        conversation.conversation_id,
        visitor.display_name,
        if visitor.verified {
            "verified"
        } else {
            "unverified"
        },
        conversation.member_name,
        rfc3339(conversation.started_at),
    );
    if let Some(closed_at) = conversation.closed_at {
        out.push_str(&format!("Closed {}\n", rfc3339(closed_at)));
    }
    for message in messages {
        out.push_str(&format!(
            "\n[{}] {}: {}",
            rfc3339(message.sent_at),
            name_of(conversation, message.sender),
            message.text.replace('\n', "\n    ")
        ));
    }
    out.push('\n');
    out
}

/// The conversation as a JSON document.
pub fn json(conversation: &Conversation, messages: &[Message]) -> String {
    let visitor = &conversation.visitor;
    let document = json!({
        "id": conversation.conversation_id,
        "app_id": conversation.app_id,
        "endpoint": conversation.endpoint,
        "member": {
            "id": conversation.member_id,
            "display_name": conversation.member_name,
        },
        "visitor": {
            "id": visitor.visitor_id,
            "display_name": visitor.display_name,
            "verified": visitor.verified,
            "external_id": (!visitor.external_id.is_empty()).then_some(&visitor.external_id),
        },
        "state": match conversation.state {
            ConversationState::Open => "open",
            ConversationState::Closed => "closed",
        },
        "started_at": rfc3339(conversation.started_at),
        "closed_at": conversation.closed_at.map(rfc3339),
        "messages": messages.iter().map(|message| json!({
            "seq": message.seq,
            "id": message.message_id,
            "from": message.sender.as_str(),
            "name": name_of(conversation, message.sender),
            "text": message.text,
            "sent_at": rfc3339(message.sent_at),
        })).collect::<Vec<_>>(),
    });
    document.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }
}
