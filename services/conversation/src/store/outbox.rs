//! The outbox table: the events a transaction writes beside its change, and what the
//! relay reads and deletes.

use palaver_kit::Error;
use palaver_kit::bus::new_event_id;
use palaver_kit::db::placeholders;

use super::rows::OutboxRow;
use super::writes::Writes;
use super::{Locked, Store, bucket, internal, pow2_chunks};
use crate::domain::events::Event;
use crate::model::PendingEvent;
use crate::outbox::handoff::Handed;

impl Store {
    /// Adds the outbox rows of `events` to `writes`.
    /// `event`, encoded, as the outbox keeps it, with the order key `event_at`.
    pub(super) fn pending(&self, event: Event, event_at: i64, now: i64) -> PendingEvent {
        let event_id = new_event_id();
        PendingEvent {
            payload: (self.encode)(&event_id, &event),
            stream: event.stream().to_owned(),
            subject: event.subject().to_string(),
            event_id,
            event_at,
            created_at: now,
            traceparent: event.traceparent,
        }
    }

    /// `event` of the locked conversation, committed at `now`, as the next of its stream.
    pub(super) fn stamp(&self, locked: &mut Locked, event: Event, now: i64) -> Handed {
        let (after, event_at) = locked.next_event_at(now);
        Handed {
            event: self.pending(event, event_at, now),
            after,
        }
    }

    pub(super) fn write_events<'q>(writes: &mut Writes<'q>, events: &'q [Handed], now: i64) {
        for chunk in pow2_chunks(events) {
            writes.add(false, |arguments| {
                let now = arguments.bind(now);
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|Handed { event, .. }| {
                        format!(
                            "({}, {}, {}, {}, {}, {}, {now})",
                            arguments.bind(&event.event_id),
                            arguments.bind(&event.stream),
                            arguments.bind(&event.subject),
                            arguments.bind(&event.payload),
                            arguments.bind(event.event_at),
                            arguments.bind(&event.traceparent),
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO outbox (event_id, stream, subject, payload, event_at, traceparent, created_at) VALUES {}",
                    rows.join(", ")
                )
            });
        }
    }

    /// Up to `limit` unpublished events, in publishing order (by stream, the commit
    /// order).
    pub async fn pending_events(&self, limit: u32) -> Result<Vec<PendingEvent>, Error> {
        let rows = sqlx::query_as::<_, OutboxRow>(&format!(
            "SELECT event_id, stream, subject, payload, event_at, created_at, traceparent FROM outbox ORDER BY event_at, stream LIMIT {limit}"
        ))
        .fetch_all(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(rows.into_iter().map(PendingEvent::from).collect())
    }

    /// Marks events published, by deleting them: nothing is left to do with an event
    /// once it is published.
    pub async fn mark_published(&self, event_ids: &[&str]) -> Result<(), Error> {
        for chunk in event_ids.chunks(512) {
            let padded = bucket(chunk.len());
            let sql = format!(
                "DELETE FROM outbox WHERE event_id IN ({})",
                placeholders(1, padded)
            );
            let mut query = sqlx::query(&sql);
            for i in 0..padded {
                query = query.bind(chunk[i.min(chunk.len() - 1)]);
            }
            query.execute(self.db.pool()).await.map_err(internal)?;
        }
        Ok(())
    }

    /// How many events wait, and when the oldest of them was committed.
    pub async fn outbox_backlog(&self) -> Result<(i64, Option<i64>), Error> {
        sqlx::query_as::<_, (i64, Option<i64>)>("SELECT COUNT(*), MIN(created_at) FROM outbox")
            .fetch_one(self.db.pool())
            .await
            .map_err(internal)
    }
}
