//! Fan-out of bus events to sockets: ONE bus subscription per subject per gateway
//! process, shared by every socket interested in it. The registry maps a subject to the
//! set of sockets watching it; the first interest subscribes, the last one leaving drops
//! the subscription.
//!
//! Delivery never waits for a socket: each has a bounded queue, and a socket whose
//! queue is full is flagged as a slow consumer (its connection then says so and
//! closes); the other sockets on the subject are not held up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use palaver_kit::bus::{BusError, Event, EventBus};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// A socket's id, unique in the process.
pub type SocketId = u64;

/// Where a socket's events go: its bounded queue, and the flag raised when it is full.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Arc<Event>>,
    slow: Arc<SlowFlag>,
}

/// Raised once when a socket falls behind.
#[derive(Default)]
pub struct SlowFlag {
    raised: AtomicBool,
    notify: Notify,
}

impl SlowFlag {
    /// Whether the flag was raised.
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Waits until the flag is raised.
    pub async fn raised(&self) {
        let notified = self.notify.notified();
        if self.is_raised() {
            return;
        }
        notified.await;
    }

    fn raise(&self) {
        if !self.raised.swap(true, Ordering::AcqRel) {
            metrics::counter!("palaver_gateway_ws_slow_consumers_total").increment(1);
            self.notify.notify_waiters();
        }
    }
}

impl Outbox {
    /// A queue of `capacity` events; answers the outbox, its receiving end and the flag.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Arc<Event>>, Arc<SlowFlag>) {
        let (queue, events) = mpsc::channel(capacity.max(1));
        let slow = Arc::new(SlowFlag::default());
        (
            Outbox {
                queue,
                slow: slow.clone(),
            },
            events,
            slow,
        )
    }

    fn deliver(&self, event: &Arc<Event>) {
        match self.queue.try_send(event.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.slow.raise(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

struct Watchers {
    sockets: Arc<Mutex<HashMap<SocketId, Outbox>>>,
    task: JoinHandle<()>,
}

/// The registry of subjects and the sockets watching them.
pub struct Fanout {
    bus: Arc<dyn EventBus>,
    subjects: tokio::sync::Mutex<HashMap<String, Watchers>>,
}

impl Fanout {
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Fanout {
            bus,
            subjects: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Adds `socket` to the watchers of `subject`, subscribing on the first; events
    /// published once this returns reach it.
    pub async fn watch(
        &self,
        subject: &str,
        socket: SocketId,
        outbox: &Outbox,
    ) -> Result<(), BusError> {
        let mut subjects = self.subjects.lock().await;
        if let Some(watchers) = subjects.get(subject) {
            lock(&watchers.sockets).insert(socket, outbox.clone());
            return Ok(());
        }
        let mut subscription = self.bus.subscribe(subject).await?;
        metrics::gauge!("palaver_gateway_bus_subscriptions").increment(1.0);
        let sockets = Arc::new(Mutex::new(HashMap::from([(socket, outbox.clone())])));
        let targets = sockets.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = subscription.next().await {
                let event = Arc::new(event);
                let outboxes: Vec<Outbox> = lock(&targets).values().cloned().collect();
                for outbox in &outboxes {
                    outbox.deliver(&event);
                }
            }
        });
        subjects.insert(subject.to_owned(), Watchers { sockets, task });
        Ok(())
    }

    /// Removes `socket` from the watchers of each of `subjects`, unsubscribing from
    /// those it was the last of.
    pub async fn leave(&self, subjects: impl IntoIterator<Item = String>, socket: SocketId) {
        let mut registry = self.subjects.lock().await;
        for subject in subjects {
            let Some(watchers) = registry.get(&subject) else {
                continue;
            };
            let empty = {
                let mut sockets = lock(&watchers.sockets);
                sockets.remove(&socket);
                sockets.is_empty()
            };
            if empty && let Some(watchers) = registry.remove(&subject) {
                watchers.task.abort();
                metrics::gauge!("palaver_gateway_bus_subscriptions").decrement(1.0);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use palaver_kit::bus::LocalBus;

    async fn subscriptions(fanout: &Fanout) -> usize {
        fanout.subjects.lock().await.len()
    }

    #[tokio::test]
    async fn one_subscription_serves_every_socket_until_the_last_leaves() {
        let bus = Arc::new(LocalBus::new());
        let fanout = Fanout::new(bus.clone());
        let (a, mut a_events, _) = Outbox::new(4);
        let (b, mut b_events, _) = Outbox::new(4);
        fanout.watch("app.presence.m1", 1, &a).await.unwrap();
        fanout.watch("app.presence.m1", 2, &b).await.unwrap();
        assert_eq!(subscriptions(&fanout).await, 1);
        bus.publish("app.presence.m1", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(a_events.recv().await.unwrap().payload, "x");
        assert_eq!(b_events.recv().await.unwrap().payload, "x");
        fanout.leave(["app.presence.m1".to_owned()], 1).await;
        assert_eq!(subscriptions(&fanout).await, 1);
        fanout.leave(["app.presence.m1".to_owned()], 2).await;
        assert_eq!(subscriptions(&fanout).await, 0);
    }

    #[tokio::test]
    async fn a_full_queue_flags_its_socket_and_spares_the_others() {
        let bus = Arc::new(LocalBus::new());
        let fanout = Fanout::new(bus.clone());
        let (slow, _kept, flag) = Outbox::new(1);
        let (fast, mut fast_events, _) = Outbox::new(8);
        fanout.watch("app.presence.m1", 1, &slow).await.unwrap();
        fanout.watch("app.presence.m1", 2, &fast).await.unwrap();
        for _ in 0..3 {
            bus.publish("app.presence.m1", Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        for _ in 0..3 {
            fast_events.recv().await.unwrap();
        }
        flag.raised().await;
    }
}
