//! Member records in process, for the embedded default (`palaver up`) and tests: the
//! same contract as the key-value bucket, gone when the process ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::{PresenceStore, Saved, StoreChange, StoreError, Stored};
use crate::domain::ids::MemberKey;
use crate::domain::record::MemberRecord;

/// An in-process [`PresenceStore`]. Clones share the same records.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    revision: u64,
    records: HashMap<MemberKey, Stored>,
    watchers: Vec<mpsc::UnboundedSender<StoreChange>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl PresenceStore for MemoryStore {
    async fn load(&self, key: &MemberKey) -> Result<Option<Stored>, StoreError> {
        Ok(self.state().records.get(key).cloned())
    }

    async fn save(
        &self,
        key: &MemberKey,
        record: &MemberRecord,
        expected: Option<u64>,
    ) -> Result<Saved, StoreError> {
        let mut state = self.state();
        let current = state.records.get(key).map(|stored| stored.revision);
        if current != expected {
            return Ok(Saved::Conflict);
        }
        state.revision += 1;
        let revision = state.revision;
        state.records.insert(
            key.clone(),
            Stored {
                revision,
                record: record.clone(),
            },
        );
        let change = StoreChange {
            key: key.clone(),
            revision,
            record: Some(record.clone()),
        };
        state
            .watchers
            .retain(|watcher| watcher.send(change.clone()).is_ok());
        Ok(Saved::Written(revision))
    }

    async fn watch(
        &self,
    ) -> Result<BoxStream<'static, Result<StoreChange, StoreError>>, StoreError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.state();
        let mut current: Vec<StoreChange> = state
            .records
            .iter()
            .map(|(key, stored)| StoreChange {
                key: key.clone(),
                revision: stored.revision,
                record: Some(stored.record.clone()),
            })
            .collect();
        current.sort_by_key(|change| change.revision);
        for change in current {
            let _ = sender.send(change);
        }
        state.watchers.push(sender);
        Ok(
            tokio_stream::wrappers::UnboundedReceiverStream::new(receiver)
                .map(Ok)
                .boxed(),
        )
    }

    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
