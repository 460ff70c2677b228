//! The hand-off of committed events from the store to the relay of the same process, so
//! the relay publishes them without reading them back from the outbox table.
//!
//! Each event comes with the order key of the event before it in its stream (`after`),
//! read while the stream's conversation was locked. The relay publishes a handed event
//! only when it published that predecessor itself; otherwise (a predecessor committed by
//! another replica, handed in a later batch, or published before a restart) it reads the
//! stream from the table, which holds every event until it is published. So the hand-off
//! only saves reads: what is published, and in what order, stays the table's.

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::model::PendingEvent;

/// Events waiting in the hand-off before new ones are dropped (and read from the table
/// instead): a relay that does not keep up, or none at all, costs bounded memory.
const CAPACITY: usize = 10_000;

/// An event its transaction wrote, with the order key of its stream's previous event
/// (`None`: the first of its stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handed {
    pub event: PendingEvent,
    pub after: Option<i64>,
}

/// What the store hands to the relay after each commit.
#[derive(Debug, Default)]
pub struct Handoff {
    waiting: Mutex<Waiting>,
    handed: Notify,
}

#[derive(Debug, Default)]
struct Waiting {
    events: Vec<Handed>,
    dropped: bool,
}

impl Handoff {
    /// Hands over the events of a commit.
    pub fn hand(&self, events: Vec<Handed>) {
        if events.is_empty() {
            return;
        }
        {
            let mut waiting = self.lock();
            if waiting.events.len() + events.len() > CAPACITY {
                waiting.dropped = true;
            } else {
                waiting.events.extend(events);
            }
        }
        self.handed.notify_one();
    }

    /// Takes the events handed so far, and whether some were dropped since the last take.
    pub fn take(&self) -> (Vec<Handed>, bool) {
        let mut waiting = self.lock();
        let dropped = std::mem::take(&mut waiting.dropped);
        (std::mem::take(&mut waiting.events), dropped)
    }

    /// Waits until something is handed after the last wait.
    pub async fn handed(&self) {
        self.handed.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
