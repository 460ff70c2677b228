//! Member records in a NATS JetStream key-value bucket, for a cluster: every presence
//! replica reads and writes the same bucket, so none keeps state of its own.
//!
//! The bucket is `<PREFIX>_PRESENCE` (the bus prefix upper-cased, so tests with their
//! own prefix get their own bucket), keys are `<app_id>.<member_id>`, values the JSON of
//! a [`MemberRecord`]. Writes are compare-and-set on the key's last revision (the
//! `Nats-Expected-Last-Subject-Sequence` header). The bucket keeps one revision per key
//! and drops records untouched for a day: a member with a live device is written at
//! least once per TTL + grace, so only long-settled offline records age out.
//!
//! The bucket's stream is created with the kit's `ensure_stream` rather than
//! `create_key_value`, whose account-info request cannot parse the answer of older
//! servers such as Debian's nats-server 2.9; the stream has exactly the key-value shape.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{PresenceStore, Saved, StoreChange, StoreError, Stored};
use crate::domain::ids::MemberKey;
use crate::domain::record::MemberRecord;

/// How long a record nobody writes stays in the bucket.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How long a readiness probe waits for JetStream.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// How the bucket is made.
#[derive(Debug, Clone)]
pub struct KvOptions {
    /// Copies of each record in a NATS cluster (1 to 5).
    pub replicas: usize,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions { replicas: 1 }
    }
}

/// A [`PresenceStore`] on a NATS key-value bucket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KvStore {
    jetstream: jetstream::Context,
    kv: kv::Store,
    bucket: String,
}

impl KvStore {
    /// Opens the bucket of the bus prefix `prefix`, creating it (or updating its
    /// settings) first.
    pub async fn open(
        jetstream: jetstream::Context,
        prefix: &str,
        options: KvOptions,
    ) -> Result<KvStore, StoreError> {
        let bucket = format!("{}_PRESENCE", prefix.to_uppercase());
        palaver_kit::bus::ensure_stream(
            &jetstream,
            stream::Config {
                name: format!("KV_{bucket}"),
                description: Some("Palaver presence: one record per member".to_owned()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: MAX_AGE,
                storage: stream::StorageType::File,
                num_replicas: options.replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| StoreError::unavailable(format!("creating bucket {bucket}"), e))?;
        let kv = jetstream
            .get_key_value(&bucket)
            .await
            .map_err(|e| StoreError::unavailable(format!("opening bucket {bucket}"), e))?;
        Ok(KvStore {
            jetstream,
            kv,
            bucket,
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Removes the bucket and every record in it.
    pub async fn delete_bucket(&self) -> Result<(), StoreError> {
        self.jetstream
            .delete_key_value(&self.bucket)
            .await
            .map(drop)
            .map_err(|e| StoreError::unavailable(format!("deleting bucket {}", self.bucket), e))
    }

    /// Writes raw bytes under a key, bypassing the record format.
    #[cfg(test)]
    pub async fn put_raw(&self, key: &str, value: &'static str) -> Result<u64, StoreError> {
        self.kv
            .put(key, Bytes::from_static(value.as_bytes()))
            .await
            .map_err(|e| StoreError::unavailable("put", e))
    }
}

fn kv_key(key: &MemberKey) -> String {
    format!("{}.{}", key.app_id, key.member_id)
}

fn member_key(kv_key: &str) -> Option<MemberKey> {
    let (app_id, member_id) = kv_key.split_once('.')?;
    MemberKey::new(app_id, member_id).ok()
}

fn decode(key: &str, value: &[u8]) -> Result<MemberRecord, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

#[async_trait]
impl PresenceStore for KvStore {
    #[tracing::instrument(level = "debug", skip_all, fields(key = %key))]
    async fn load(&self, key: &MemberKey) -> Result<Option<Stored>, StoreError> {
        let kv_key = kv_key(key);
        let entry = self
            .kv
            .entry(kv_key.as_str())
            .await
            .map_err(|e| StoreError::unavailable(format!("reading {kv_key}"), e))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let record = match entry.operation {
            Operation::Put => decode(&kv_key, &entry.value)?,
            // A deleted key still has a revision to compare against.
            Operation::Delete | Operation::Purge => MemberRecord::default(),
        };
        Ok(Some(Stored {
            revision: entry.revision,
            record,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key = %key, expected))]
    async fn save(
        &self,
        key: &MemberKey,
        record: &MemberRecord,
        expected: Option<u64>,
    ) -> Result<Saved, StoreError> {
        let kv_key = kv_key(key);
        let value =
            Bytes::from(
                serde_json::to_vec(record).map_err(|source| StoreError::Corrupt {
                    key: kv_key.clone(),
                    source,
                })?,
            );
        let written = match expected {
            None => match self.kv.create(kv_key.as_str(), value).await {
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => return Ok(Saved::Conflict),
                written => {
                    written.map_err(|e| StoreError::unavailable(format!("creating {kv_key}"), e))
                }
            },
            Some(revision) => match self.kv.update(kv_key.as_str(), value, revision).await {
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    return Ok(Saved::Conflict);
                }
                written => {
                    written.map_err(|e| StoreError::unavailable(format!("updating {kv_key}"), e))
                }
            },
        };
        written.map(Saved::Written)
    }

    async fn watch(
        &self,
    ) -> Result<BoxStream<'static, Result<StoreChange, StoreError>>, StoreError> {
        let watch =
            self.kv.watch_with_history(">").await.map_err(|e| {
                StoreError::unavailable(format!("watching bucket {}", self.bucket), e)
            })?;
        let bucket = self.bucket.clone();
        let changes = watch.filter_map(move |entry| {
            let change = match entry {
                Err(e) => Some(Err(StoreError::unavailable(
                    format!("watching bucket {bucket}"),
                    e,
                ))),
                Ok(entry) => match member_key(&entry.key) {
                    None => {
                        tracing::warn!(key = %entry.key, "ignoring a key that names no member");
                        None
                    }
                    Some(key) => match entry.operation {
                        Operation::Put => match decode(&entry.key, &entry.value) {
                            Ok(record) => Some(Ok(StoreChange {
                                key,
                                revision: entry.revision,
                                record: Some(record),
                            })),
                            Err(error) => {
                                tracing::error!(
                                    error = %palaver_kit::error::error_chain(&error),
                                    "ignoring a record that cannot be read"
                                );
                                None
                            }
                        },
                        Operation::Delete | Operation::Purge => Some(Ok(StoreChange {
                            key,
                            revision: entry.revision,
                            record: None,
                        })),
                    },
                },
            };
            std::future::ready(change)
        });
        Ok(changes.boxed())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let stream = format!("KV_{}", self.bucket);
        match tokio::time::timeout(READY_TIMEOUT, self.jetstream.get_stream(&stream)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::unavailable(
                format!("bucket {}", self.bucket),
                e,
            )),
            Err(_) => Err(StoreError::unavailable(
                format!("bucket {}", self.bucket),
                format!("JetStream did not answer within {READY_TIMEOUT:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_app_dot_member() {
        let key = MemberKey::new("app_1", "m-2").unwrap();
        assert_eq!(kv_key(&key), "app_1.m-2");
        assert_eq!(member_key("app_1.m-2"), Some(key));
        assert_eq!(member_key("nodot"), None);
        assert_eq!(member_key("a.b.c"), None);
    }
}
