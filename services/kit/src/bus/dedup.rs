//! De-duplication of durable events: a [`Subscription`] drops a message id it has seen
//! within the duplicate window, since core NATS subscribers see each publish, repeated or
//! not (JetStream drops repeats from the stream over the same window).

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, Stream, StreamExt};

use super::Event;

/// How long a repeated message id is recognised, by JetStream and by subscriptions.
pub(super) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// At most this many recent message ids are remembered per subscription.
const MAX_REMEMBERED_IDS: usize = 10_000;

/// A stream of the events on a subscribed subject; ends when the bus closes.
/// Dropping it unsubscribes.
pub struct Subscription {
    events: BoxStream<'static, Event>,
    seen: RecentIds,
}

impl Subscription {
    pub(super) fn new(events: BoxStream<'static, Event>) -> Self {
        Subscription {
            events,
            seen: RecentIds::default(),
        }
    }
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            let Some(event) = std::task::ready!(self.events.poll_next_unpin(cx)) else {
                return Poll::Ready(None);
            };
            match &event.msg_id {
                Some(id) if !self.seen.first_time(id) => continue,
                _ => return Poll::Ready(Some(event)),
            }
        }
    }
}

/// The message ids seen within the duplicate window, oldest first.
#[derive(Default)]
pub(super) struct RecentIds {
    order: VecDeque<(Instant, String)>,
    ids: HashSet<String>,
}

impl RecentIds {
    /// Remembers `id`; false when it was seen within the window.
    pub(super) fn first_time(&mut self, id: &str) -> bool {
        let now = Instant::now();
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < DUPLICATE_WINDOW && self.order.len() < MAX_REMEMBERED_IDS {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back((now, id.to_owned()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_beyond_the_limit() {
        let mut seen = RecentIds::default();
        assert!(seen.first_time("x"));
        assert!(!seen.first_time("x"));
        for i in 0..MAX_REMEMBERED_IDS {
            assert!(seen.first_time(&i.to_string()));
        }
        assert!(seen.first_time("x"), "x was the oldest and is forgotten");
        assert_eq!(seen.ids.len(), seen.order.len());
    }
}
