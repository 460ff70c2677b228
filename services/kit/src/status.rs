//! The statuses of the original presence API plus invisible: their wire names, their
//! availability order (how a member's devices aggregate), how visitors see them, and
//! their proto form. Presence aggregates them; the gateway names, translates and draws
//! them.

use std::str::FromStr;

use palaver_proto::presence::v1 as pb;
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

/// A name that is not a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Status::BY_AVAILABILITY
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| UnknownStatus(name.to_owned()))
    }
}

impl From<Status> for pb::Status {
    fn from(status: Status) -> Self {
        match status {
            Status::Online => pb::Status::Online,
            Status::Away => pb::Status::Away,
            Status::Idle => pb::Status::Idle,
            Status::BeRightBack => pb::Status::BeRightBack,
            Status::Busy => pb::Status::Busy,
            Status::OutToLunch => pb::Status::OutToLunch,
            Status::OnThePhone => pb::Status::OnThePhone,
            Status::Invisible => pb::Status::Invisible,
            Status::Offline => pb::Status::Offline,
        }
    }
}

/// The proto status had no value (`STATUS_UNSPECIFIED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the status is unspecified")]
pub struct Unspecified;

impl TryFrom<pb::Status> for Status {
    type Error = Unspecified;

    fn try_from(status: pb::Status) -> Result<Self, Self::Error> {
        Ok(match status {
            pb::Status::Unspecified => return Err(Unspecified),
            pb::Status::Online => Status::Online,
            pb::Status::Away => Status::Away,
            pb::Status::Idle => Status::Idle,
            pb::Status::BeRightBack => Status::BeRightBack,
            pb::Status::Busy => Status::Busy,
            pb::Status::OutToLunch => Status::OutToLunch,
            pb::Status::OnThePhone => Status::OnThePhone,
            pb::Status::Invisible => Status::Invisible,
            pb::Status::Offline => Status::Offline,
        })
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
    fn wire_names_and_proto_round_trip() {
        for status in Status::BY_AVAILABILITY {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
            assert_eq!(Status::try_from(pb::Status::from(status)), Ok(status));
        }
        assert!("Online".parse::<Status>().is_err());
        assert!("".parse::<Status>().is_err());
        assert_eq!(Status::try_from(pb::Status::Unspecified), Err(Unspecified));
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
