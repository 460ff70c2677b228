//! The statuses of the original presence API plus invisible, their availability order,
//! and how visitors see them.

use serde::{Deserialize, Serialize};

/// A device's or a member's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    Away,
    Idle,
    BeRightBack,
    Busy,
    OutToLunch,
    OnThePhone,
    Invisible,
    Offline,
}

impl Status {
    /// Every status, most available first: the order a member's devices are aggregated
    /// by (the member shows the most available status among their live devices).
    ///
    /// `online > idle > be_right_back > away > out_to_lunch > on_the_phone > busy >
    /// invisible > offline`: idle and be-right-back mean "at the keyboard soon", away and
    /// out-to-lunch "not soon", on-the-phone and busy "there but occupied"; invisible
    /// only beats offline, so a member who is online anywhere shows online.
    pub const BY_AVAILABILITY: [Status; 9] = [
        Status::Online,
        Status::Idle,
        Status::BeRightBack,
        Status::Away,
        Status::OutToLunch,
        Status::OnThePhone,
        Status::Busy,
        Status::Invisible,
        Status::Offline,
    ];

    /// Higher is more available.
    pub fn availability(self) -> usize {
        Status::BY_AVAILABILITY.len()
            - Status::BY_AVAILABILITY
                .iter()
                .position(|s| *s == self)
                .unwrap_or(Status::BY_AVAILABILITY.len() - 1)
    }

    /// The more available of two statuses.
    pub fn most_available(self, other: Status) -> Status {
        if other.availability() > self.availability() {
            other
        } else {
            self
        }
    }

    /// As visitors see it: invisible reads offline.
    pub fn visible(self) -> Status {
        match self {
            Status::Invisible => Status::Offline,
            other => other,
        }
    }

    /// Whether visitors may start a chat: in every status but offline (and invisible,
    /// which visitors cannot tell from offline).
    pub fn accepts_chats(self) -> bool {
        self.visible() != Status::Offline
    }

    /// The snake_case name, as in DESIGN.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
            Status::Idle => "idle",
            Status::BeRightBack => "be_right_back",
            Status::Busy => "busy",
            Status::OutToLunch => "out_to_lunch",
            Status::OnThePhone => "on_the_phone",
            Status::Invisible => "invisible",
            Status::Offline => "offline",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_total_and_documented() {
        let ranks: Vec<usize> = Status::BY_AVAILABILITY
            .iter()
            .map(|s| s.availability())
            .collect();
        assert_eq!(ranks, [9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(Status::Idle.most_available(Status::Online), Status::Online);
        assert_eq!(Status::Busy.most_available(Status::Away), Status::Away);
        assert_eq!(
            Status::Invisible.most_available(Status::Offline),
            Status::Invisible
        );
        assert_eq!(
            Status::OnThePhone.most_available(Status::Busy),
            Status::OnThePhone
        );
    }

    #[test]
    fn visitors_see_invisible_as_offline_and_chat_unless_offline() {
        for status in Status::BY_AVAILABILITY {
            let hidden = matches!(status, Status::Invisible | Status::Offline);
            assert_eq!(status.accepts_chats(), !hidden, "{status}");
            assert_eq!(status.visible() == Status::Offline, hidden, "{status}");
        }
    }

    #[test]
    fn names_are_snake_case_in_json_too() {
        for status in Status::BY_AVAILABILITY {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
    }
}
