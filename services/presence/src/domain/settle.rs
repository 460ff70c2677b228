//! The settle loop every replica runs: it follows the store's change stream into a
//! [`Schedule`], and when a record is due it settles it (expires the devices past their
//! deadline, publishes a pending change) by compare-and-set. However many replicas try,
//! one write succeeds and that replica alone publishes; the others see the new record
//! on the stream and find nothing left to do. A record's last writer settles it on
//! time, the others only after the takeover delay, so a healthy cluster does not race.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use palaver_kit::shutdown::Shutdown;
use tokio::task::JoinSet;

use super::ids::MemberKey;
use super::record::{Change, Millis};
use super::schedule::Schedule;
use super::{Presence, now_ms};
use crate::store::{StoreChange, StoreError, Stored};

type StoreChanges = BoxStream<'static, Result<StoreChange, StoreError>>;

/// How many records one replica settles at once.
const MAX_SETTLING: usize = 256;

/// How long to wait before watching the store again after the watch failed, and
/// before retrying a record whose settling failed.
const RETRY: Duration = Duration::from_secs(1);

/// A timer may fire a little before the wall clock reaches the due time: a record found
/// not yet due is looked at again this much later, at the earliest.
const NUDGE_MS: Millis = 5;

/// What settling a record did.
enum Settled {
    /// A change was written (and published if due); the stream brings the new record.
    Written,
    /// Nothing was due yet: look again at `due`.
    Unchanged { revision: u64, due: Option<Millis> },
}

impl Presence {
    #[tracing::instrument(name = "presence.settle", skip_all, fields(member = %key))]
    async fn settle(&self, key: &MemberKey) -> Result<Settled, palaver_kit::Error> {
        let applied = self.change(key, Change::Settle).await?;
        Ok(if applied.outcome.write {
            Settled::Written
        } else {
            Settled::Unchanged {
                revision: applied.revision,
                due: applied.outcome.record.due(&self.policy, &self.replica),
            }
        })
    }
}

/// Settles due records until `shutdown` triggers, watching the store again whenever
/// its change stream ends or fails.
pub async fn run(presence: Arc<Presence>, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        match presence.store.watch().await {
            Ok(changes) => follow(&presence, changes, &shutdown).await,
            Err(error) => tracing::warn!(
                error = %palaver_kit::error::error_chain(&error),
                "cannot watch the presence store; retrying"
            ),
        }
        tokio::select! {
            () = shutdown.wait() => {}
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Follows one change stream until it ends or fails, or `shutdown` triggers; then
/// waits for the settles in flight, so what they wrote is published.
async fn follow(presence: &Arc<Presence>, mut changes: StoreChanges, shutdown: &Shutdown) {
    let mut schedule = Schedule::default();
    let mut settling: JoinSet<(MemberKey, Result<Settled, palaver_kit::Error>)> = JoinSet::new();
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Millis> = None;
    loop {
        metrics::gauge!("palaver_presence_settle_scheduled").set(schedule.scheduled() as f64);
        let next_due = schedule
            .next_due()
            .filter(|_| settling.len() < MAX_SETTLING);
        if next_due != armed {
            if let Some(due) = next_due {
                let wait = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_millis(wait));
            }
            armed = next_due;
        }
        tokio::select! {
            () = shutdown.wait() => break,
            change = changes.next() => match change {
                Some(Ok(change)) => {
                    let due = match change.record {
                        Some(record) => {
                            let due = record.due(&presence.policy, &presence.replica);
                            let stored = Stored { revision: change.revision, record };
                            presence.hints.note(&change.key, stored, due.is_some());
                            due
                        }
                        None => {
                            presence.hints.forget(&change.key);
                            None
                        }
                    };
                    schedule.set(change.key, change.revision, due);
                }
                Some(Err(error)) => {
                    tracing::warn!(
                        error = %palaver_kit::error::error_chain(&error),
                        "the presence store's change stream failed; watching again"
                    );
                    break;
                }
                None => {
                    tracing::warn!("the presence store's change stream ended; watching again");
                    break;
                }
            },
            () = &mut timer, if armed.is_some() => {
                armed = None;
                for key in schedule.take_due(now_ms(), MAX_SETTLING - settling.len()) {
                    let presence = presence.clone();
                    settling.spawn(async move {
                        let settled = presence.settle(&key).await;
                        (key, settled)
                    });
                }
            }
            Some(done) = settling.join_next() => match done {
                Ok((_, Ok(Settled::Written))) => {}
                Ok((key, Ok(Settled::Unchanged { revision, due }))) => {
                    let due = due.map(|due| due.max(now_ms() + NUDGE_MS));
                    schedule.set(key, revision, due);
                }
                Ok((key, Err(error))) => {
                    tracing::warn!(member = %key, %error, "cannot settle a member's presence; retrying");
                    let retry = now_ms() + Millis::try_from(RETRY.as_millis()).unwrap_or(1000);
                    schedule.set(key, 0, Some(retry));
                }
                Err(error) => tracing::error!(%error, "a settle task failed"),
            },
        }
    }
    while settling.join_next().await.is_some() {}
}
