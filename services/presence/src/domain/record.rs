//! A member's presence record, the value the store keeps per member, and the pure rules
//! that change it: aggregation over live devices, expiry after the TTL and grace, and
//! the coalescing of change events.
//!
//! Every change goes through [`MemberRecord::apply`] at a given time: it first expires
//! the devices whose last heartbeat is older than TTL + grace, then applies the change,
//! then decides whether the writer publishes an event. The record remembers the last
//! status published and when, so the decision holds across replicas: the first change
//! after a quiet window is published at once (by the replica whose compare-and-set
//! wrote it), later ones within the window are left pending, and whoever settles the
//! record once the window has passed publishes the state as it is then. A member who
//! flaps back to the published status before the window ends publishes nothing more.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Policy;
use palaver_kit::status::Status;

/// Unix time in milliseconds.
pub type Millis = i64;

/// What the store keeps for one member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member's devices by id, each with its own status and last heartbeat. A
    /// device leaves the map when it disconnects or expires.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, DeviceState>,
    /// The status visitors were last told about in an event, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// When the status visitors see took its current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Millis>,
    /// The replica that wrote the record last: it settles the record when due, the
    /// others only after the takeover delay (when it may have died).
    #[serde(default)]
    pub writer: String,
}

/// One device's status and last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    pub status: Status,
    pub seen: Millis,
}

/// The last status published in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub status: Status,
    pub at: Millis,
}

/// A change to a member's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Devices report statuses, in order (the last one wins for a device); each counts
    /// as a heartbeat.
    SetStatus { statuses: Vec<(String, Status)> },
    /// Devices are still there.
    Heartbeat { device_ids: Vec<String> },
    /// A device is gone now.
    Disconnect { device_id: String },
    /// Nothing but expiry and publishing what is due.
    Settle,
}

/// The record after a change, and what the writer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub record: MemberRecord,
    /// Whether the record changed and must be written.
    pub write: bool,
    /// Whether the writer publishes an event once the write succeeded.
    pub publish: bool,
    /// Devices that expired in this change.
    pub expired: Vec<String>,
    /// Heartbeats of devices that are not live (expired, disconnected or never seen).
    pub not_alive: Vec<String>,
}

/// The member's status as visitors see it at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub status: Status,
    pub since: Option<Millis>,
}

impl MemberRecord {
    /// The most available status among the devices in the record, expired or not.
    fn aggregate(&self) -> Status {
        self.devices.values().fold(Status::Offline, |best, device| {
            best.most_available(device.status)
        })
    }

    fn last_published(&self) -> Status {
        self.published.map_or(Status::Offline, |p| p.status)
    }

    /// Removes the devices whose deadline has passed at `now`; keeps `since` right.
    fn expire(&mut self, now: Millis, policy: &Policy) -> Vec<String> {
        let lifetime = policy.lifetime_ms();
        let before = self.aggregate().visible();
        let mut latest_deadline = None;
        let mut expired = Vec::new();
        self.devices.retain(|id, device| {
            let deadline = device.seen.saturating_add(lifetime);
            if deadline > now {
                return true;
            }
            latest_deadline = latest_deadline.max(Some(deadline));
            expired.push(id.clone());
            false
        });
        if self.aggregate().visible() != before {
            self.since = latest_deadline;
        }
        expired
    }

    /// The status visitors see at `now`, counting only live devices.
    pub fn view(&self, now: Millis, policy: &Policy) -> View {
        let mut live = self.clone();
        live.expire(now, policy);
        View {
            status: live.aggregate().visible(),
            since: live.since,
        }
    }

    /// Applies `change` at `now` on behalf of replica `writer`.
    pub fn apply(&self, change: &Change, now: Millis, policy: &Policy, writer: &str) -> Outcome {
        let mut record = self.clone();
        let expired = record.expire(now, policy);
        let before = record.aggregate().visible();
        let mut not_alive = Vec::new();
        match change {
            Change::SetStatus { statuses } => {
                for (device_id, status) in statuses {
                    record.devices.insert(
                        device_id.clone(),
                        DeviceState {
                            status: *status,
                            seen: now,
                        },
                    );
                }
            }
            Change::Heartbeat { device_ids } => {
                for id in device_ids {
                    match record.devices.get_mut(id) {
                        Some(device) => device.seen = now,
                        None => not_alive.push(id.clone()),
                    }
                }
            }
            Change::Disconnect { device_id } => {
                record.devices.remove(device_id);
            }
            Change::Settle => {}
        }
        let after = record.aggregate().visible();
        if after != before {
            record.since = Some(now);
        }
        let window_open = record
            .published
            .is_none_or(|p| now >= p.at.saturating_add(policy.window_ms()));
        let publish = after != record.last_published() && window_open;
        if publish {
            record.published = Some(Published {
                status: after,
                at: now,
            });
        }
        let write = record != *self;
        if write {
            writer.clone_into(&mut record.writer);
        }
        Outcome {
            record,
            write,
            publish,
            expired,
            not_alive,
        }
    }

    /// When the record next needs settling (a device's deadline, or the end of the
    /// window of a pending event), as seen by `replica`: replicas other than the last
    /// writer wait the takeover delay longer. `None` when nothing is due ever.
    pub fn due(&self, policy: &Policy, replica: &str) -> Option<Millis> {
        let lifetime = policy.lifetime_ms();
        let deadline = self
            .devices
            .values()
            .map(|device| device.seen.saturating_add(lifetime))
            .min();
        let pending = (self.aggregate().visible() != self.last_published()).then(|| {
            self.published
                .map_or(0, |p| p.at.saturating_add(policy.window_ms()))
        });
        let due = deadline.into_iter().chain(pending).min()?;
        if self.writer == replica {
            Some(due)
        } else {
            Some(due.saturating_add(policy.takeover_ms()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> Policy {
        Policy {
            ttl: Duration::from_secs(30),
            grace: Duration::from_secs(15),
            window: Duration::from_millis(250),
            takeover: Duration::from_secs(1),
            ..Policy::default()
        }
    }

    fn set(device: &str, status: Status) -> Change {
        Change::SetStatus {
            statuses: vec![(device.into(), status)],
        }
    }

    /// Applies changes one after another, each at its time, by replica "a".
    fn run(changes: &[(Millis, Change)]) -> (MemberRecord, Vec<Outcome>) {
        let mut record = MemberRecord::default();
        let mut outcomes = Vec::new();
        for (at, change) in changes {
            let outcome = record.apply(change, *at, &policy(), "a");
            record = outcome.record.clone();
            outcomes.push(outcome);
        }
        (record, outcomes)
    }

    #[test]
    fn the_member_shows_the_most_available_live_device() {
        let (record, _) = run(&[
            (0, set("phone", Status::Busy)),
            (1, set("desk", Status::Away)),
            (2, set("cli", Status::Invisible)),
        ]);
        assert_eq!(record.view(3, &policy()).status, Status::Away);
        let (record, _) = run(&[(0, set("desk", Status::Invisible))]);
        assert_eq!(record.view(1, &policy()).status, Status::Offline);
        let (record, _) = run(&[
            (0, set("desk", Status::Invisible)),
            (1, set("phone", Status::Idle)),
        ]);
        assert_eq!(record.view(2, &policy()).status, Status::Idle);
    }

    #[test]
    fn a_silent_device_goes_offline_after_ttl_plus_grace() {
        let (record, _) = run(&[
            (0, set("desk", Status::Online)),
            (10_000, set("phone", Status::Busy)),
        ]);
        assert_eq!(record.view(44_999, &policy()).status, Status::Online);
        let view = record.view(45_000, &policy());
        assert_eq!(view.status, Status::Busy);
        assert_eq!(view.since, Some(45_000), "changed when the deadline passed");
        assert_eq!(record.view(55_000, &policy()).status, Status::Offline);
    }

    #[test]
    fn heartbeats_extend_only_live_devices() {
        let (record, outcomes) = run(&[
            (0, set("desk", Status::Online)),
            (
                30_000,
                Change::Heartbeat {
                    device_ids: vec!["desk".into(), "ghost".into()],
                },
            ),
        ]);
        assert_eq!(outcomes[1].not_alive, ["ghost"]);
        assert!(outcomes[1].write && !outcomes[1].publish);
        assert_eq!(record.view(74_999, &policy()).status, Status::Online);

        let late = record.apply(
            &Change::Heartbeat {
                device_ids: vec!["desk".into()],
            },
            75_000,
            &policy(),
            "b",
        );
        assert_eq!(
            late.not_alive,
            ["desk"],
            "an expired device must set its status again"
        );
        assert_eq!(late.expired, ["desk"]);
        assert!(
            late.write && late.publish,
            "the writer of the expiry publishes offline"
        );
        assert_eq!(late.record.published.unwrap().status, Status::Offline);
        assert_eq!(late.record.writer, "b");
    }

    #[test]
    fn a_disconnect_counts_at_once() {
        let (record, outcomes) = run(&[
            (0, set("desk", Status::Online)),
            (
                1_000,
                Change::Disconnect {
                    device_id: "desk".into(),
                },
            ),
        ]);
        assert!(outcomes[1].publish);
        assert_eq!(record.view(1_000, &policy()).status, Status::Offline);
        assert!(record.devices.is_empty());
        let again = record.apply(
            &Change::Disconnect {
                device_id: "desk".into(),
            },
            2_000,
            &policy(),
            "a",
        );
        assert!(!again.write, "disconnecting a gone device changes nothing");
    }

    #[test]
    fn changes_within_the_window_wait_and_the_final_state_is_published() {
        let (record, outcomes) = run(&[
            (0, set("desk", Status::Online)),
            (100, set("desk", Status::Busy)),
            (200, set("desk", Status::Away)),
        ]);
        let published: Vec<bool> = outcomes.iter().map(|o| o.publish).collect();
        assert_eq!(published, [true, false, false]);
        assert_eq!(record.due(&policy(), "a"), Some(250));
        assert_eq!(
            record.due(&policy(), "b"),
            Some(1_250),
            "others wait to take over"
        );

        let early = record.apply(&Change::Settle, 249, &policy(), "a");
        assert!(!early.write && !early.publish);
        let settled = record.apply(&Change::Settle, 250, &policy(), "a");
        assert!(settled.write && settled.publish);
        assert_eq!(
            settled.record.published,
            Some(Published {
                status: Status::Away,
                at: 250
            })
        );
        assert_eq!(
            settled.record.due(&policy(), "a"),
            Some(45_200),
            "then only the device's deadline is due"
        );
    }

    #[test]
    fn flapping_back_to_the_published_status_publishes_nothing() {
        let (record, outcomes) = run(&[
            (0, set("desk", Status::Online)),
            (50, set("desk", Status::Busy)),
            (60, set("desk", Status::Online)),
        ]);
        assert!(!outcomes[1].publish && !outcomes[2].publish);
        assert_eq!(
            record.due(&policy(), "a"),
            Some(45_060),
            "nothing pending but the deadline"
        );
        assert!(!record.apply(&Change::Settle, 300, &policy(), "a").publish);
    }

    #[test]
    fn a_change_after_a_quiet_window_is_published_at_once() {
        let (_, outcomes) = run(&[
            (0, set("desk", Status::Online)),
            (250, set("desk", Status::Busy)),
            (400, set("desk", Status::Busy)),
        ]);
        let published: Vec<bool> = outcomes.iter().map(|o| o.publish).collect();
        assert_eq!(published, [true, true, false]);
        assert!(
            outcomes[2].write,
            "the same status still refreshes the heartbeat"
        );
    }

    #[test]
    fn visitors_never_learn_of_invisible() {
        let (record, outcomes) = run(&[
            (0, set("desk", Status::Invisible)),
            (1_000, set("desk", Status::Offline)),
        ]);
        assert!(!outcomes[0].publish && !outcomes[1].publish);
        assert_eq!(record.published, None);
        assert_eq!(record.since, None);
    }

    #[test]
    fn a_settled_record_without_devices_is_never_due() {
        let (record, _) = run(&[
            (0, set("desk", Status::Online)),
            (
                1,
                Change::Disconnect {
                    device_id: "desk".into(),
                },
            ),
        ]);
        assert_eq!(record.due(&policy(), "a"), Some(250), "offline is pending");
        let settled = record.apply(&Change::Settle, 250, &policy(), "a").record;
        assert_eq!(settled.due(&policy(), "a"), None);
    }

    #[test]
    fn several_statuses_at_once_apply_in_order() {
        let (record, outcomes) = run(&[(
            0,
            Change::SetStatus {
                statuses: vec![
                    ("desk".into(), Status::Online),
                    ("phone".into(), Status::Busy),
                    ("desk".into(), Status::Away),
                ],
            },
        )]);
        assert_eq!(record.devices.len(), 2);
        assert_eq!(record.devices["desk"].status, Status::Away);
        assert_eq!(record.view(1, &policy()).status, Status::Away);
        assert!(outcomes[0].publish, "one change, one event");
    }

    #[test]
    fn records_survive_json() {
        let (record, _) = run(&[(0, set("desk", Status::BeRightBack))]);
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<MemberRecord>(&json).unwrap(), record);
        assert_eq!(
            serde_json::from_str::<MemberRecord>("{}").unwrap(),
            MemberRecord::default()
        );
    }
}
