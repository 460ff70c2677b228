//! The presence service's logic, free of gRPC and protobuf types.
//!
//! [`Presence`] answers every request: it validates ids, asks the [`Directory`]
//! (identity) who exists, reads and writes member records in the
//! [`PresenceStore`] by compare-and-set, and publishes
//! changes through [`PresenceEvents`]. The rules of a record (aggregation, expiry,
//! coalescing) are in [`record`]; [`settle`] runs the loop that expires silent devices
//! and publishes pending changes; [`watch`] builds watch streams.
//!
//! Nothing that matters lives in memory: every answer is computed from the store at the
//! time of the request (a device past its deadline reads offline even before it is
//! settled), so any replica answers any request the same. What a replica does keep is
//! derived and disposable: [`hints`] (where writes start), the settle [`schedule`], the
//! identity cache of [`directory`] and the shared bus subscriptions of watches.

pub mod directory;
pub mod hints;
pub mod ids;
pub mod record;
pub mod schedule;
pub mod settle;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use palaver_kit::{Error, ErrorCode};

use crate::store::{PresenceStore, Saved, Stored};
use directory::{CachedDirectory, Directory, EndpointInfo, MemberInfo};
use hints::Hints;
use ids::{DeviceKey, MemberKey, Target, check_id};
use palaver_kit::status::Status;
use record::{Change, MemberRecord, Millis, Outcome};

/// At most this many targets in one batch read or watch.
pub const MAX_TARGETS: usize = 1000;

/// At most this many devices in one batched heartbeat or status change.
pub const MAX_BATCH: usize = 10_000;

/// How many compare-and-set attempts a change makes before giving up.
const MAX_ATTEMPTS: usize = 16;

/// How many members a batch reads or writes at once.
const BATCH_CONCURRENCY: usize = 64;

/// Durations that govern presence.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A device that has not heartbeated for `ttl + grace` is offline.
    pub ttl: Duration,
    pub grace: Duration,
    /// At most one event per member per window; the final state is always published.
    pub window: Duration,
    /// How long replicas other than a record's last writer wait past its due time
    /// before settling it themselves (the last writer may have died).
    pub takeover: Duration,
    /// How long answers from identity are kept; bounds how long a closed endpoint may
    /// still read as open.
    pub directory_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ttl: Duration::from_secs(30),
            grace: Duration::from_secs(15),
            window: Duration::from_millis(250),
            takeover: Duration::from_secs(1),
            directory_ttl: Duration::from_secs(5),
        }
    }
}

fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

impl Policy {
    /// TTL plus grace, in milliseconds.
    pub fn lifetime_ms(&self) -> Millis {
        millis(self.ttl + self.grace)
    }

    pub fn window_ms(&self) -> Millis {
        millis(self.window)
    }

    pub fn takeover_ms(&self) -> Millis {
        millis(self.takeover)
    }
}

/// Wall-clock Unix milliseconds. Replicas compare deadlines written by each other, so
/// their clocks must agree to well within the grace period (NTP does).
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// A member's presence as visitors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPresence {
    pub member: MemberKey,
    /// The chat endpoint the reader named, else the member's own, if any.
    pub endpoint: Option<String>,
    /// Invisible reads offline.
    pub status: Status,
    /// When the status took its current value.
    pub updated_at: Option<Millis>,
    pub display_name: String,
    /// The store revision this state was read or written at: a higher one is newer.
    pub revision: u64,
}

impl MemberPresence {
    pub fn accepts_chats(&self) -> bool {
        self.status.accepts_chats()
    }
}

/// What a subscription to a member's changes yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Changed(MemberPresence),
    /// Changes were dropped because the reader fell behind; read the state again.
    Missed,
}

/// Publishes presence changes and subscribes to them (the event bus).
#[async_trait]
pub trait PresenceEvents: Send + Sync + 'static {
    /// Publishes a member's new presence.
    async fn publish(&self, presence: &MemberPresence) -> Result<(), Error>;

    /// The changes of one member from now on; dropping the stream unsubscribes.
    async fn subscribe(&self, member: &MemberKey) -> Result<BoxStream<'static, FeedItem>, Error>;
}

/// A reader's target resolved to a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub member: MemberKey,
    pub endpoint: Option<String>,
    pub display_name: String,
}

/// A change written to a member's record.
struct Applied {
    revision: u64,
    outcome: Outcome,
}

/// The presence service's logic; one per process, shared by every request.
pub struct Presence {
    store: Arc<dyn PresenceStore>,
    directory: CachedDirectory,
    events: Arc<dyn PresenceEvents>,
    hints: Hints,
    policy: Policy,
    replica: String,
}

impl Presence {
    /// `replica` names this process in the records it writes.
    pub fn new(
        store: Arc<dyn PresenceStore>,
        directory: Arc<dyn Directory>,
        events: Arc<dyn PresenceEvents>,
        policy: Policy,
        replica: String,
    ) -> Self {
        Presence {
            store,
            directory: CachedDirectory::new(directory, policy.directory_ttl),
            events,
            hints: Hints::default(),
            policy,
            replica,
        }
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Sets one device's status (a heartbeat too). The member must exist in the app.
    pub async fn set_status(
        &self,
        device: &DeviceKey,
        status: Status,
    ) -> Result<MemberPresence, Error> {
        self.set_statuses(&device.member, vec![(device.device_id.clone(), status)])
            .await
    }

    /// Sets many devices' statuses, one write per member. Answers each change in
    /// request order: the member's presence after the batch, or not found for a member
    /// unknown to the app. Fails as a whole when the store or identity is unavailable.
    pub async fn set_status_many(
        &self,
        changes: &[(DeviceKey, Status)],
    ) -> Result<Vec<Result<MemberPresence, Error>>, Error> {
        if changes.len() > MAX_BATCH {
            return Err(Error::invalid(
                "changes",
                format!("at most {MAX_BATCH} at once"),
            ));
        }
        let mut by_member: HashMap<MemberKey, Vec<(String, Status)>> = HashMap::new();
        for (device, status) in changes {
            by_member
                .entry(device.member.clone())
                .or_default()
                .push((device.device_id.clone(), *status));
        }
        let answers: HashMap<MemberKey, Result<MemberPresence, Error>> = stream::iter(by_member)
            .map(|(member, statuses)| async move {
                let answer = self.set_statuses(&member, statuses).await;
                (member, answer)
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect()
            .await;
        if let Some(Err(error)) = answers.values().find(|answer| {
            answer
                .as_ref()
                .is_err_and(|e| e.code != ErrorCode::NotFound)
        }) {
            return Err(error.clone());
        }
        Ok(changes
            .iter()
            .map(|(device, _)| answers[&device.member].clone())
            .collect())
    }

    async fn set_statuses(
        &self,
        member: &MemberKey,
        statuses: Vec<(String, Status)>,
    ) -> Result<MemberPresence, Error> {
        let info = self.known_member(member).await?;
        let applied = self.change(member, Change::SetStatus { statuses }).await?;
        Ok(self.presence(
            Resolved {
                member: member.clone(),
                endpoint: info.endpoint,
                display_name: info.display_name,
            },
            &applied.outcome.record,
            applied.revision,
            now_ms(),
        ))
    }

    /// Heartbeats one device. `false` when it is not live (expired, disconnected or
    /// never set): it must set its status again.
    pub async fn heartbeat(&self, device: &DeviceKey) -> Result<bool, Error> {
        let applied = self
            .change(
                &device.member,
                Change::Heartbeat {
                    device_ids: vec![device.device_id.clone()],
                },
            )
            .await?;
        let alive = applied.outcome.not_alive.is_empty();
        if !alive {
            self.known_member(&device.member).await?;
        }
        metrics::counter!("palaver_presence_heartbeats_total").increment(1);
        Ok(alive)
    }

    /// Heartbeats many devices, one write per member. Answers the devices that are not
    /// live (including those of unknown members), in request order.
    pub async fn heartbeat_many(&self, devices: &[DeviceKey]) -> Result<Vec<DeviceKey>, Error> {
        if devices.len() > MAX_BATCH {
            return Err(Error::invalid(
                "devices",
                format!("at most {MAX_BATCH} at once"),
            ));
        }
        let mut by_member: HashMap<MemberKey, Vec<String>> = HashMap::new();
        for device in devices {
            let ids = by_member.entry(device.member.clone()).or_default();
            if !ids.contains(&device.device_id) {
                ids.push(device.device_id.clone());
            }
        }
        let not_alive: Vec<(MemberKey, Vec<String>)> = stream::iter(by_member)
            .map(|(member, device_ids)| async move {
                let applied = self
                    .change(&member, Change::Heartbeat { device_ids })
                    .await?;
                Ok::<_, Error>((member, applied.outcome.not_alive))
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await?;
        metrics::counter!("palaver_presence_heartbeats_total").increment(devices.len() as u64);
        let not_alive: HashMap<MemberKey, Vec<String>> = not_alive.into_iter().collect();
        Ok(devices
            .iter()
            .filter(|device| {
                not_alive
                    .get(&device.member)
                    .is_some_and(|ids| ids.contains(&device.device_id))
            })
            .cloned()
            .collect())
    }

    /// A device is gone now. Disconnecting a device that is already gone changes
    /// nothing; the member must exist in the app.
    pub async fn disconnect(&self, device: &DeviceKey) -> Result<MemberPresence, Error> {
        let applied = self
            .change(
                &device.member,
                Change::Disconnect {
                    device_id: device.device_id.clone(),
                },
            )
            .await?;
        let member = if applied.outcome.write {
            // The device was there, so the member was checked when it set its status; a
            // clean disconnect must count even while identity is unreachable.
            self.describe(&device.member).await
        } else {
            self.known_member(&device.member).await?
        };
        Ok(self.presence(
            Resolved {
                member: device.member.clone(),
                endpoint: member.endpoint,
                display_name: member.display_name,
            },
            &applied.outcome.record,
            applied.revision,
            now_ms(),
        ))
    }

    /// One member's presence, by member id or chat endpoint. An unknown member, or an
    /// endpoint that is unknown, of another app or not open, is not found.
    pub async fn get(&self, app_id: &str, target: &Target) -> Result<MemberPresence, Error> {
        check_id("app_id", app_id)?;
        target.check("target")?;
        let resolved = self.resolve(app_id, std::slice::from_ref(target)).await?;
        let Some(Some(resolved)) = resolved.into_iter().next() else {
            return Err(not_found(target));
        };
        self.read(resolved).await
    }

    /// The presence of each target that is known and open, in request order.
    pub async fn batch_get(
        &self,
        app_id: &str,
        targets: &[Target],
    ) -> Result<Vec<MemberPresence>, Error> {
        check_targets(app_id, targets)?;
        let resolved: Vec<Resolved> = self
            .resolve(app_id, targets)
            .await?
            .into_iter()
            .flatten()
            .collect();
        stream::iter(resolved)
            .map(|resolved| self.read(resolved))
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Resolves targets to members: `None` for a target that is unknown, of another app
    /// or (an endpoint) not open.
    async fn resolve(
        &self,
        app_id: &str,
        targets: &[Target],
    ) -> Result<Vec<Option<Resolved>>, Error> {
        let endpoints: Vec<String> = targets
            .iter()
            .filter_map(|target| match target {
                Target::Endpoint(endpoint) => Some(endpoint.clone()),
                Target::Member(_) => None,
            })
            .collect();
        let endpoints: HashMap<String, EndpointInfo> = if endpoints.is_empty() {
            HashMap::new()
        } else {
            self.directory
                .endpoints(&endpoints)
                .await?
                .into_iter()
                .map(|info| (info.endpoint.clone(), info))
                .collect()
        };
        let endpoints = &endpoints;
        stream::iter(targets.to_vec())
            .map(|target| async move {
                match target {
                    Target::Endpoint(endpoint) => Ok(endpoints
                        .get(&endpoint)
                        .filter(|info| info.open && info.member.app_id == app_id)
                        .map(|info| Resolved {
                            member: info.member.clone(),
                            endpoint: Some(info.endpoint.clone()),
                            display_name: info.display_name.clone(),
                        })),
                    Target::Member(member_id) => {
                        let key = MemberKey::new(app_id, &member_id)?;
                        Ok(self.directory.member(&key).await?.map(|info| Resolved {
                            member: key,
                            endpoint: info.endpoint,
                            display_name: info.display_name,
                        }))
                    }
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// The presence of a resolved target, read from the store now.
    async fn read(&self, resolved: Resolved) -> Result<MemberPresence, Error> {
        let stored = self.store.load(&resolved.member).await?;
        let (record, revision) =
            stored.map_or((MemberRecord::default(), 0), |s| (s.record, s.revision));
        Ok(self.presence(resolved, &record, revision, now_ms()))
    }

    fn presence(
        &self,
        resolved: Resolved,
        record: &MemberRecord,
        revision: u64,
        now: Millis,
    ) -> MemberPresence {
        let view = record.view(now, &self.policy);
        MemberPresence {
            member: resolved.member,
            endpoint: resolved.endpoint,
            status: view.status,
            updated_at: view.since,
            display_name: resolved.display_name,
            revision,
        }
    }

    /// The member, or not found.
    async fn known_member(&self, key: &MemberKey) -> Result<MemberInfo, Error> {
        self.directory.member(key).await?.ok_or_else(|| {
            Error::not_found(format!(
                "no member {:?} in app {:?}",
                key.member_id, key.app_id
            ))
        })
    }

    /// The member's name and endpoint for an event or answer about a state already
    /// written: blank when identity cannot say, since the change has happened anyway.
    async fn describe(&self, key: &MemberKey) -> MemberInfo {
        match self.directory.member(key).await {
            Ok(Some(member)) => member,
            Ok(None) => MemberInfo {
                display_name: String::new(),
                endpoint: None,
            },
            Err(error) => {
                tracing::warn!(member = %key, %error, "cannot describe the member; publishing without name");
                MemberInfo {
                    display_name: String::new(),
                    endpoint: None,
                }
            }
        }
    }

    /// Applies `change` to the member's record by compare-and-set, retrying on
    /// conflicts, and publishes when the rules say so. The replica whose write succeeds
    /// is the one that publishes. The first attempt starts from this replica's hint of
    /// the record, when it has one.
    async fn change(&self, key: &MemberKey, change: Change) -> Result<Applied, Error> {
        let mut hint = self.hints.get(key);
        for _ in 0..MAX_ATTEMPTS {
            let hinted = hint.is_some();
            let stored = match hint.take() {
                Some(stored) => Some(stored),
                None => self.store.load(key).await?,
            };
            let (record, expected) = match stored {
                Some(stored) => (stored.record, Some(stored.revision)),
                None => (MemberRecord::default(), None),
            };
            let now = now_ms();
            let outcome = record.apply(&change, now, &self.policy, &self.replica);
            if !outcome.write {
                if hinted {
                    // Nothing to write may only mean the hint is stale: ask the store.
                    continue;
                }
                return Ok(Applied {
                    revision: expected.unwrap_or(0),
                    outcome,
                });
            }
            match self.store.save(key, &outcome.record, expected).await? {
                Saved::Conflict => {
                    metrics::counter!("palaver_presence_store_conflicts_total").increment(1);
                }
                Saved::Written(revision) => {
                    let active = outcome.record.due(&self.policy, &self.replica).is_some();
                    let written = Stored {
                        revision,
                        record: outcome.record.clone(),
                    };
                    self.hints.note(key, written, active);
                    if !outcome.expired.is_empty() {
                        metrics::counter!("palaver_presence_devices_expired_total")
                            .increment(outcome.expired.len() as u64);
                        tracing::debug!(member = %key, devices = ?outcome.expired, "devices expired");
                    }
                    if outcome.publish {
                        self.publish(key, &outcome.record, revision, now).await;
                    }
                    return Ok(Applied { revision, outcome });
                }
            }
        }
        Err(Error::new(
            ErrorCode::Unavailable,
            "the member's presence changed too often to update; try again",
        ))
    }

    async fn publish(&self, key: &MemberKey, record: &MemberRecord, revision: u64, now: Millis) {
        let member = self.describe(key).await;
        let presence = self.presence(
            Resolved {
                member: key.clone(),
                endpoint: member.endpoint,
                display_name: member.display_name,
            },
            record,
            revision,
            now,
        );
        match self.events.publish(&presence).await {
            Ok(()) => metrics::counter!("palaver_presence_changes_published_total").increment(1),
            Err(error) => {
                metrics::counter!("palaver_presence_publish_failures_total").increment(1);
                tracing::warn!(member = %key, %error, "cannot publish a presence change");
            }
        }
    }
}

fn not_found(target: &Target) -> Error {
    match target {
        Target::Member(member_id) => Error::not_found(format!("no member {member_id:?}")),
        Target::Endpoint(endpoint) => {
            Error::not_found(format!("no open chat endpoint {endpoint:?}"))
        }
    }
}

fn check_targets(app_id: &str, targets: &[Target]) -> Result<(), Error> {
    check_id("app_id", app_id)?;
    if targets.len() > MAX_TARGETS {
        return Err(Error::invalid(
            "targets",
            format!("at most {MAX_TARGETS} at once"),
        ));
    }
    for (i, target) in targets.iter().enumerate() {
        target.check(&format!("targets[{i}]"))?;
    }
    Ok(())
}
