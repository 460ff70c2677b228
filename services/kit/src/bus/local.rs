//! The bus in process, for the embedded default: subscriptions, durable consumers and
//! journals in memory, for as long as the process lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::StreamExt;
use tokio::sync::mpsc;

use super::dedup::Subscription;
use super::subject::{Prefix, check_durable_subject, check_name, check_subject, subject_matches};
use super::{
    BusError, DEFAULT_PREFIX, DurableConsumer, Event, EventBus, Journal, durable, journal,
    trace_headers,
};

/// Events a [`LocalBus`] subscriber may have waiting before new ones are dropped for it.
const LOCAL_CAPACITY: usize = 1024;

/// The bus in process, for the embedded default: every subscriber has a bounded queue,
/// and a subscriber that falls behind loses events rather than slowing publishers.
/// Clones share the same bus.
#[derive(Debug, Clone)]
pub struct LocalBus {
    subscribers: Arc<Mutex<Vec<LocalSubscriber>>>,
    /// Durable consumers and journals by `<prefix>.<name>`.
    consumers: Arc<Mutex<HashMap<String, Arc<durable::LocalQueue>>>>,
    journals: Arc<Mutex<HashMap<String, Arc<journal::LocalJournal>>>>,
    prefix: Prefix,
}

#[derive(Debug)]
struct LocalSubscriber {
    /// The subscribed subject, with the prefix.
    pattern: String,
    prefix: Prefix,
    sender: mpsc::Sender<Event>,
    lagging: bool,
}

impl LocalBus {
    /// A new, empty bus under [`DEFAULT_PREFIX`].
    pub fn new() -> Self {
        LocalBus {
            subscribers: Arc::default(),
            consumers: Arc::default(),
            journals: Arc::default(),
            prefix: Prefix::new(DEFAULT_PREFIX).expect("the default prefix is valid"),
        }
    }

    /// The same bus seen under another prefix: its subjects are apart from this one's.
    pub fn with_prefix(&self, prefix: &str) -> Result<LocalBus, BusError> {
        Ok(LocalBus {
            subscribers: self.subscribers.clone(),
            consumers: self.consumers.clone(),
            journals: self.journals.clone(),
            prefix: Prefix::new(prefix)?,
        })
    }

    fn deliver(&self, subject: &str, payload: Bytes, mut headers: HeaderMap, msg_id: Option<&str>) {
        if let Some(id) = msg_id {
            headers.insert(NATS_MESSAGE_ID, id);
        }
        let subject = self.prefix.root(subject);
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscribers.retain_mut(|subscriber| {
            if subscriber.sender.is_closed() {
                return false;
            }
            if !subject_matches(&subscriber.pattern, &subject) {
                return true;
            }
            let event = Event {
                subject: subscriber.prefix.strip(&subject).to_owned(),
                payload: payload.clone(),
                msg_id: msg_id.map(str::to_owned),
                headers: headers.clone(),
            };
            match subscriber.sender.try_send(event) {
                Ok(()) => subscriber.lagging = false,
                Err(_) => {
                    metrics::counter!("palaver_bus_events_dropped_total").increment(1);
                    if !std::mem::replace(&mut subscriber.lagging, true) {
                        tracing::warn!(
                            subscription = %subscriber.pattern,
                            "a slow subscriber fell {LOCAL_CAPACITY} events behind; dropping events for it"
                        );
                    }
                }
            }
            true
        });
    }

    /// The key of this prefix's durable consumer or journal `name`.
    fn key(&self, name: &str) -> String {
        self.prefix.root(name)
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus::new()
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject, false)?;
        self.deliver(subject, payload, trace_headers(), None);
        Ok(())
    }

    async fn publish_durable(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        check_durable_subject(subject)?;
        let mut headers = trace_headers();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        let event = Event {
            subject: subject.to_owned(),
            payload: payload.clone(),
            msg_id: Some(msg_id.to_owned()),
            headers: headers.clone(),
        };
        let mine = format!("{}.", self.prefix.as_str());
        let queues: Vec<Arc<durable::LocalQueue>> = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(name, _)| name.starts_with(&mine))
            .map(|(_, queue)| queue.clone())
            .collect();
        for queue in queues {
            queue.push(event.clone());
        }
        self.deliver(subject, payload, headers, Some(msg_id));
        Ok(())
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        check_subject(subject, true)?;
        let (sender, receiver) = mpsc::channel(LOCAL_CAPACITY);
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LocalSubscriber {
                pattern: self.prefix.root(subject),
                prefix: self.prefix.clone(),
                sender,
                lagging: false,
            });
        Ok(Subscription::new(
            tokio_stream::wrappers::ReceiverStream::new(receiver).boxed(),
        ))
    }

    async fn ready(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn durable_consumer(
        &self,
        name: &str,
        _ack_wait: Duration,
    ) -> Result<Box<dyn DurableConsumer>, BusError> {
        check_name(name)?;
        let queue = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.key(name))
            .or_default()
            .clone();
        Ok(Box::new(durable::LocalConsumer { queue }))
    }

    /// Durable events stay in memory until they are settled.
    fn retention(&self) -> Duration {
        Duration::MAX
    }

    async fn journal(&self, name: &str, max_age: Duration) -> Result<Arc<dyn Journal>, BusError> {
        check_name(name)?;
        let journal = self
            .journals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.key(name))
            .or_insert_with(|| Arc::new(journal::LocalJournal::new(max_age)))
            .clone();
        Ok(journal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::contract_tests::{next, text};

    #[tokio::test]
    async fn a_slow_subscriber_loses_events_without_blocking_publishers() {
        let bus = LocalBus::new();
        let mut slow = bus.subscribe("app1.presence.m1").await.unwrap();
        for i in 0..LOCAL_CAPACITY + 10 {
            bus.publish("app1.presence.m1", Bytes::from(i.to_string()))
                .await
                .unwrap();
        }
        for i in 0..LOCAL_CAPACITY {
            assert_eq!(text(&next(&mut slow).await), i.to_string());
        }
        bus.publish("app1.presence.m1", Bytes::from("after"))
            .await
            .unwrap();
        assert_eq!(
            text(&next(&mut slow).await),
            "after",
            "the overflow was dropped"
        );
    }

    #[tokio::test]
    async fn dropping_a_subscription_unsubscribes() {
        let bus = LocalBus::new();
        drop(bus.subscribe("app1.>").await.unwrap());
        bus.publish("app1.presence.m1", Bytes::new()).await.unwrap();
        assert!(bus.subscribers.lock().unwrap().is_empty());
    }
}
