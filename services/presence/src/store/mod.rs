//! Where member records live: [`PresenceStore`], one record per member, written only
//! by compare-and-set on its revision, with a stream of every change. [`KvStore`] keeps
//! them in a NATS JetStream key-value bucket (a cluster); [`MemoryStore`] in process
//! (the embedded default). Revisions only grow, across all keys of a store, so they
//! also order the events published about a member.

mod memory;
mod nats;

use async_trait::async_trait;
use futures::stream::BoxStream;
use palaver_kit::{Error, ErrorCode};

pub use memory::MemoryStore;
pub use nats::{KvOptions, KvStore};

use crate::domain::ids::MemberKey;
use crate::domain::record::MemberRecord;

/// A record and the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub revision: u64,
    pub record: MemberRecord,
}

/// What a compare-and-set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Written at this revision.
    Written(u64),
    /// The record had moved on from the expected revision; nothing was written.
    Conflict,
}

/// One write seen on the change stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreChange {
    pub key: MemberKey,
    pub revision: u64,
    /// `None` when the key was deleted.
    pub record: Option<MemberRecord>,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the presence store is unavailable: {what}")]
    Unavailable {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the record of {key} cannot be read")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    fn unavailable(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Unavailable {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::Unavailable { .. } => {
                tracing::warn!(
                    error = %palaver_kit::error::error_chain(&error),
                    "presence store unavailable"
                );
                Error::new(
                    ErrorCode::Unavailable,
                    "presence state is unavailable; try again",
                )
            }
            StoreError::Corrupt { .. } => Error::internal(&error),
        }
    }
}

/// The state of presence: one record per member.
#[async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    /// The member's record and its revision; `None` when there is none.
    async fn load(&self, key: &MemberKey) -> Result<Option<Stored>, StoreError>;

    /// Writes `record` if the member's record is still at `expected` (`None`: there is
    /// none).
    async fn save(
        &self,
        key: &MemberKey,
        record: &MemberRecord,
        expected: Option<u64>,
    ) -> Result<Saved, StoreError>;

    /// Every record as it is now, then every change, in revision order. Ends or fails
    /// when the store goes away; watch again to start over.
    async fn watch(
        &self,
    ) -> Result<BoxStream<'static, Result<StoreChange, StoreError>>, StoreError>;

    /// Whether the store answers now (for `/readyz`).
    async fn ready(&self) -> Result<(), StoreError>;
}

/// The `/readyz` check of a presence store.
pub struct StoreCheck(pub std::sync::Arc<dyn PresenceStore>);

#[async_trait]
impl palaver_kit::admin::ReadinessCheck for StoreCheck {
    fn name(&self) -> &str {
        "presence_store"
    }

    async fn check(&self) -> Result<(), String> {
        self.0
            .ready()
            .await
            .map_err(|error| palaver_kit::error::error_chain(&error))
    }
}

#[cfg(test)]
mod tests {
    //! One contract, run against both stores.

    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;
    use palaver_kit::testing;

    use super::*;
    use crate::domain::record::{DeviceState, MemberRecord};
    use palaver_kit::status::Status;

    fn key(member: &str) -> MemberKey {
        MemberKey::new("app1", member).unwrap()
    }

    fn record(status: Status, seen: i64) -> MemberRecord {
        let mut record = MemberRecord::default();
        record
            .devices
            .insert("desk".into(), DeviceState { status, seen });
        record
    }

    async fn next(
        changes: &mut BoxStream<'static, Result<StoreChange, StoreError>>,
    ) -> StoreChange {
        tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change within 10 s")
            .expect("the watch is open")
            .expect("a change, not an error")
    }

    async fn compare_and_set(store: Arc<dyn PresenceStore>) {
        assert_eq!(store.load(&key("m1")).await.unwrap(), None);
        let Saved::Written(first) = store
            .save(&key("m1"), &record(Status::Online, 1), None)
            .await
            .unwrap()
        else {
            panic!("the first write succeeds");
        };
        assert_eq!(
            store
                .save(&key("m1"), &record(Status::Busy, 2), None)
                .await
                .unwrap(),
            Saved::Conflict,
            "a record exists now"
        );
        assert_eq!(
            store
                .save(&key("m1"), &record(Status::Busy, 2), Some(first + 7))
                .await
                .unwrap(),
            Saved::Conflict
        );
        let Saved::Written(second) = store
            .save(&key("m1"), &record(Status::Away, 3), Some(first))
            .await
            .unwrap()
        else {
            panic!("a write at the current revision succeeds");
        };
        assert!(second > first);
        assert_eq!(
            store.load(&key("m1")).await.unwrap(),
            Some(Stored {
                revision: second,
                record: record(Status::Away, 3)
            }),
            "the conflicting writes changed nothing"
        );
        assert_eq!(
            store
                .save(&key("m1"), &record(Status::Idle, 4), Some(first))
                .await
                .unwrap(),
            Saved::Conflict,
            "a stale revision"
        );
        assert_eq!(store.load(&key("m2")).await.unwrap(), None);
        let other_app = MemberKey::new("app2", "m1").unwrap();
        assert_eq!(store.load(&other_app).await.unwrap(), None);
        store.ready().await.unwrap();
    }

    async fn watch_gives_the_current_records_then_changes(store: Arc<dyn PresenceStore>) {
        let Saved::Written(first) = store
            .save(&key("m1"), &record(Status::Online, 1), None)
            .await
            .unwrap()
        else {
            panic!("written");
        };
        let Saved::Written(second) = store
            .save(&key("m1"), &record(Status::Busy, 2), Some(first))
            .await
            .unwrap()
        else {
            panic!("written");
        };
        let mut changes = store.watch().await.unwrap();
        assert_eq!(
            next(&mut changes).await,
            StoreChange {
                key: key("m1"),
                revision: second,
                record: Some(record(Status::Busy, 2))
            },
            "only the latest revision of a record"
        );
        let Saved::Written(third) = store
            .save(&key("m2"), &record(Status::Idle, 3), None)
            .await
            .unwrap()
        else {
            panic!("written");
        };
        assert_eq!(
            next(&mut changes).await,
            StoreChange {
                key: key("m2"),
                revision: third,
                record: Some(record(Status::Idle, 3))
            }
        );
    }

    mod memory {
        use super::*;

        #[tokio::test]
        async fn compare_and_set() {
            super::compare_and_set(Arc::new(MemoryStore::new())).await;
        }

        #[tokio::test]
        async fn watch_gives_the_current_records_then_changes() {
            super::watch_gives_the_current_records_then_changes(Arc::new(MemoryStore::new())).await;
        }
    }

    mod kv {
        use super::*;

        async fn store() -> KvStore {
            let client = async_nats::connect(testing::nats_url().await)
                .await
                .unwrap();
            KvStore::open(
                async_nats::jetstream::new(client),
                &testing::unique_prefix(),
                KvOptions::default(),
            )
            .await
            .unwrap()
        }

        #[tokio::test]
        async fn compare_and_set() {
            let store = store().await;
            super::compare_and_set(Arc::new(store.clone())).await;
            store.delete_bucket().await.unwrap();
        }

        #[tokio::test]
        async fn watch_gives_the_current_records_then_changes() {
            let store = store().await;
            super::watch_gives_the_current_records_then_changes(Arc::new(store.clone())).await;
            store.delete_bucket().await.unwrap();
        }

        #[tokio::test]
        async fn a_record_that_cannot_be_read_is_an_error_not_a_blank() {
            let store = store().await;
            store.put_raw("app1.m1", "not json").await.unwrap();
            let error = store.load(&key("m1")).await.unwrap_err();
            assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
            store.delete_bucket().await.unwrap();
        }

        #[tokio::test]
        async fn buckets_are_per_prefix() {
            let (a, b) = (store().await, store().await);
            a.save(&key("m1"), &record(Status::Online, 1), None)
                .await
                .unwrap();
            assert_eq!(b.load(&key("m1")).await.unwrap(), None);
            assert_ne!(a.bucket(), b.bucket());
            a.delete_bucket().await.unwrap();
            b.delete_bucket().await.unwrap();
        }
    }
}
