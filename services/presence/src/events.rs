//! Presence changes on the event bus: `<app>.presence.<member>`, a protobuf
//! `palaver.events.v1.PresenceChanged`, on core NATS (the store is the source of truth).
//!
//! Watchers in this process share one bus subscription per member subject: the first
//! watcher of a member subscribes, later ones join its broadcast, and the last one to
//! leave unsubscribes. A watcher that falls behind the broadcast is told it missed
//! changes (and reads the state again) instead of slowing the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use palaver_kit::bus::{EventBus, Subject, Subscription};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::events::v1::PresenceChanged;
use prost::Message;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::BroadcastStream;

use crate::domain::ids::MemberKey;
use crate::domain::{FeedItem, MemberPresence, PresenceEvents};
use crate::grpc::{presence_from_pb, presence_to_pb};

/// Changes a watcher may have waiting before it is told it missed some.
const FEED_CAPACITY: usize = 64;

/// The subject of a member's presence changes, without the bus prefix.
pub fn subject(member: &MemberKey) -> String {
    Subject::presence(&member.app_id, &member.member_id).to_string()
}

/// Encodes a presence change as it goes on the bus.
pub fn encode(presence: &MemberPresence) -> Vec<u8> {
    PresenceChanged {
        presence: Some(presence_to_pb(presence.clone())),
    }
    .encode_to_vec()
}

/// Decodes a presence change from the bus; `None` when it is not one.
pub fn decode(payload: &[u8]) -> Option<MemberPresence> {
    presence_from_pb(PresenceChanged::decode(payload).ok()?.presence?)
}

/// [`PresenceEvents`] on an [`EventBus`], sharing subscriptions between watchers.
pub struct BusEvents {
    bus: Arc<dyn EventBus>,
    hub: Arc<Mutex<HashMap<String, Shared>>>,
}

/// One bus subscription and the watchers that share it.
struct Shared {
    sender: broadcast::Sender<MemberPresence>,
    watchers: usize,
    pump: JoinHandle<()>,
}

impl BusEvents {
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        BusEvents {
            bus,
            hub: Arc::default(),
        }
    }

    /// Counts the bus subscriptions open now, one per watched member, however many
    /// watch them (`palaver_presence_bus_subscriptions`).
    pub fn subscriptions(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let hub = self.hub.clone();
        move || hub.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Joins the shared subscription of `subject`, if there is one.
    fn join(&self, subject: &str) -> Option<BoxStream<'static, FeedItem>> {
        let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = hub.get_mut(subject)?;
        shared.watchers += 1;
        Some(self.feed(subject, shared.sender.subscribe()))
    }

    fn feed(
        &self,
        subject: &str,
        receiver: broadcast::Receiver<MemberPresence>,
    ) -> BoxStream<'static, FeedItem> {
        let leave = Leave {
            hub: self.hub.clone(),
            subject: subject.to_owned(),
        };
        BroadcastStream::new(receiver)
            .map(move |item| {
                let _watching = &leave;
                match item {
                    Ok(presence) => FeedItem::Changed(presence),
                    Err(_lagged) => FeedItem::Missed,
                }
            })
            .boxed()
    }
}

/// Leaves a shared subscription when a watcher's feed is dropped; the last watcher to
/// leave ends the subscription.
struct Leave {
    hub: Arc<Mutex<HashMap<String, Shared>>>,
    subject: String,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = hub.get_mut(&self.subject) {
            shared.watchers -= 1;
            if shared.watchers == 0
                && let Some(shared) = hub.remove(&self.subject)
            {
                shared.pump.abort();
            }
        }
    }
}

/// Forwards a bus subscription's changes to the watchers' broadcast.
async fn pump(mut subscription: Subscription, sender: broadcast::Sender<MemberPresence>) {
    while let Some(event) = subscription.next().await {
        match decode(&event.payload) {
            // No watcher left is fine: the last one is about to end this task.
            Some(presence) => drop(sender.send(presence)),
            None => {
                tracing::warn!(subject = %event.subject, "ignoring an event that is not a presence change")
            }
        }
    }
}

#[async_trait]
impl PresenceEvents for BusEvents {
    async fn publish(&self, presence: &MemberPresence) -> Result<(), Error> {
        self.bus
            .publish(&subject(&presence.member), encode(presence).into())
            .await
            .map_err(|error| {
                Error::new(
                    ErrorCode::Unavailable,
                    format!(
                        "cannot publish: {}",
                        palaver_kit::error::error_chain(&error)
                    ),
                )
            })
    }

    async fn subscribe(&self, member: &MemberKey) -> Result<BoxStream<'static, FeedItem>, Error> {
        let subject = subject(member);
        if let Some(feed) = self.join(&subject) {
            return Ok(feed);
        }
        let subscription = self.bus.subscribe(&subject).await.map_err(|error| {
            tracing::warn!(%subject, error = %palaver_kit::error::error_chain(&error), "cannot subscribe");
            Error::new(ErrorCode::Unavailable, "cannot watch presence now; try again")
        })?;
        let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        // Another watcher may have subscribed while this one did: join theirs, and
        // drop this subscription.
        if let Some(shared) = hub.get_mut(&subject) {
            shared.watchers += 1;
            let receiver = shared.sender.subscribe();
            drop(hub);
            return Ok(self.feed(&subject, receiver));
        }
        let (sender, receiver) = broadcast::channel(FEED_CAPACITY);
        let pump = tokio::spawn(pump(subscription, sender.clone()));
        hub.insert(
            subject.clone(),
            Shared {
                sender,
                watchers: 1,
                pump,
            },
        );
        drop(hub);
        Ok(self.feed(&subject, receiver))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use palaver_kit::bus::LocalBus;

    use super::*;
    use palaver_kit::status::Status;

    fn presence(member: &str, revision: u64) -> MemberPresence {
        MemberPresence {
            member: MemberKey::new("app1", member).unwrap(),
            endpoint: Some("ce_1".into()),
            status: Status::Busy,
            updated_at: Some(1_700_000_000_123),
            display_name: "Ada".into(),
            revision,
        }
    }

    async fn next(feed: &mut BoxStream<'static, FeedItem>) -> FeedItem {
        tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("an item within 10 s")
            .expect("the feed is open")
    }

    #[test]
    fn changes_survive_the_wire() {
        let sent = presence("m1", 7);
        assert_eq!(decode(&encode(&sent)), Some(sent));
        assert_eq!(decode(b"\xff\xff"), None);
        assert_eq!(
            subject(&MemberKey::new("a1", "m1").unwrap()),
            "a1.presence.m1"
        );
    }

    #[tokio::test]
    async fn watchers_of_a_member_share_one_subscription_until_the_last_leaves() {
        let events = BusEvents::new(Arc::new(LocalBus::new()));
        let key = MemberKey::new("app1", "m1").unwrap();
        let mut first = events.subscribe(&key).await.unwrap();
        let mut second = events.subscribe(&key).await.unwrap();
        let mut other = events
            .subscribe(&MemberKey::new("app1", "m2").unwrap())
            .await
            .unwrap();
        assert_eq!(events.hub.lock().unwrap().len(), 2);
        assert_eq!(events.hub.lock().unwrap()[&subject(&key)].watchers, 2);

        events.publish(&presence("m1", 1)).await.unwrap();
        events.publish(&presence("m2", 2)).await.unwrap();
        assert_eq!(next(&mut first).await, FeedItem::Changed(presence("m1", 1)));
        assert_eq!(
            next(&mut second).await,
            FeedItem::Changed(presence("m1", 1))
        );
        assert_eq!(next(&mut other).await, FeedItem::Changed(presence("m2", 2)));

        drop(first);
        assert_eq!(events.hub.lock().unwrap()[&subject(&key)].watchers, 1);
        drop(second);
        drop(other);
        assert!(
            events.hub.lock().unwrap().is_empty(),
            "every subscription ended"
        );
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_so() {
        let events = BusEvents::new(Arc::new(LocalBus::new()));
        let key = MemberKey::new("app1", "m1").unwrap();
        let mut slow = events.subscribe(&key).await.unwrap();
        let mut fast = events.subscribe(&key).await.unwrap();
        let total = FEED_CAPACITY as u64 + 10;
        for revision in 1..=total {
            events.publish(&presence("m1", revision)).await.unwrap();
            assert_eq!(
                next(&mut fast).await,
                FeedItem::Changed(presence("m1", revision))
            );
        }
        assert_eq!(next(&mut slow).await, FeedItem::Missed);
    }
}
