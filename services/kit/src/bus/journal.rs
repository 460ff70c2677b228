//! Journals ([`EventBus::journal`](super::EventBus::journal)): records appended under a
//! key (an app id, say), kept for a maximum age, read back newest first a page at a
//! time.
//!
//! On NATS each key of a journal is a JetStream stream of its own,
//! `<PREFIX>_<NAME>_<key>` on the subject `<prefix>.journal.<name>.<key>`: a stream's
//! sequence numbers run without gaps (records only leave from the old end, by age or
//! count), so a page is a range of sequence numbers read from the top down. The
//! in-process bus keeps the same shape in memory, for as long as the process lives.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use async_trait::async_trait;
use bytes::Bytes;

use super::subject::check_prefix;
use super::{BoxError, BusError, ensure_stream};

/// At most this many records are kept per key; the oldest go first.
pub const MAX_RECORDS_PER_KEY: u64 = 100_000;

/// Records appended under keys, newest first when read.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Appends `record` under `key` (one token of letters, digits, '-' or '_') and waits
    /// until it is stored.
    async fn append(&self, key: &str, record: Bytes) -> Result<(), BusError>;

    /// Up to `limit` of `key`'s records, newest first, from just below the position
    /// `before` (a previous page's `next`) or from the newest.
    async fn page(
        &self,
        key: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<JournalPage, BusError>;
}

/// Records of one key, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalPage {
    pub records: Vec<Bytes>,
    /// Where the next, older page starts (`before`); `None` on the oldest page.
    pub next: Option<u64>,
}

fn journal_error(journal: &str, key: &str, source: BoxError) -> BusError {
    BusError::Journal {
        journal: journal.to_owned(),
        key: key.to_owned(),
        source,
    }
}

fn check_key(key: &str) -> Result<(), BusError> {
    check_prefix(key).map_err(|_| BusError::InvalidSubject(key.to_owned()))
}

/// The positions of a page: from `top` down to `bottom`, in a log holding `first..=last`.
fn page_range(first: u64, last: u64, before: Option<u64>, limit: usize) -> Option<(u64, u64)> {
    let top = before.map_or(last, |before| before.saturating_sub(1).min(last));
    if limit == 0 || top < first || top == 0 {
        return None;
    }
    let bottom = top.saturating_sub(limit as u64 - 1).max(first);
    Some((top, bottom))
}

/// A journal on NATS: a stream per key.
pub(super) struct NatsJournal {
    jetstream: jetstream::Context,
    prefix: String,
    name: String,
    max_age: Duration,
    /// The streams this process made sure of.
    known: Mutex<HashSet<String>>,
}

impl NatsJournal {
    pub(super) fn new(
        jetstream: jetstream::Context,
        prefix: &str,
        name: &str,
        max_age: Duration,
    ) -> NatsJournal {
        NatsJournal {
            jetstream,
            prefix: prefix.to_owned(),
            name: name.to_owned(),
            max_age,
            known: Mutex::default(),
        }
    }

    fn stream_name(&self, key: &str) -> String {
        format!(
            "{}_{}_{key}",
            self.prefix.to_uppercase(),
            self.name.to_uppercase()
        )
    }

    fn subject(&self, key: &str) -> String {
        format!("{}.journal.{}.{key}", self.prefix, self.name)
    }

    fn error(&self, key: &str, source: impl Into<BoxError>) -> BusError {
        journal_error(&self.name, key, source.into())
    }
}

#[async_trait]
impl Journal for NatsJournal {
    async fn append(&self, key: &str, record: Bytes) -> Result<(), BusError> {
        check_key(key)?;
        let stream_name = self.stream_name(key);
        let known = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&stream_name);
        if !known {
            let config = stream::Config {
                name: stream_name.clone(),
                description: Some(format!("Palaver journal {} of {key}", self.name)),
                subjects: vec![self.subject(key)],
                storage: stream::StorageType::File,
                max_age: self.max_age,
                max_messages: MAX_RECORDS_PER_KEY as i64,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            };
            ensure_stream(&self.jetstream, config)
                .await
                .map_err(|e| self.error(key, e))?;
            self.known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(stream_name.clone());
        }
        let stored = match self.jetstream.publish(self.subject(key), record).await {
            Ok(ack) => ack.await.map(drop).map_err(|e| self.error(key, e)),
            Err(error) => Err(self.error(key, error)),
        };
        if stored.is_err() {
            // The stream may be gone: the next append makes sure of it again.
            self.known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&stream_name);
        }
        stored
    }

    async fn page(
        &self,
        key: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<JournalPage, BusError> {
        check_key(key)?;
        let mut stream = match self.jetstream.get_stream(self.stream_name(key)).await {
            Ok(stream) => stream,
            Err(error)
                if matches!(error.kind(), GetStreamErrorKind::JetStream(e)
                    if e.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                return Ok(JournalPage::default());
            }
            Err(error) => return Err(self.error(key, error)),
        };
        let state = stream
            .info()
            .await
            .map_err(|e| self.error(key, e))?
            .state
            .clone();
        if state.messages == 0 {
            return Ok(JournalPage::default());
        }
        let Some((top, bottom)) =
            page_range(state.first_sequence, state.last_sequence, before, limit)
        else {
            return Ok(JournalPage::default());
        };
        let reads = (bottom..=top)
            .rev()
            .map(|sequence| stream.get_raw_message(sequence));
        let mut records = Vec::new();
        for read in futures::future::join_all(reads).await {
            match read {
                Ok(message) => records.push(message.payload),
                // Aged out since the stream's state was read.
                Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                Err(error) => return Err(self.error(key, error)),
            }
        }
        Ok(JournalPage {
            records,
            next: (bottom > state.first_sequence).then_some(bottom),
        })
    }
}

/// A journal in process memory.
pub(super) struct LocalJournal {
    max_age: Duration,
    logs: Mutex<HashMap<String, LocalLog>>,
}

#[derive(Default)]
struct LocalLog {
    /// The position of the next record; the first is 1.
    next: u64,
    records: VecDeque<(u64, Instant, Bytes)>,
}

impl LocalLog {
    fn forget_old(&mut self, max_age: Duration) {
        while let Some((_, at, _)) = self.records.front() {
            if at.elapsed() < max_age && (self.records.len() as u64) <= MAX_RECORDS_PER_KEY {
                break;
            }
            self.records.pop_front();
        }
    }
}

impl std::fmt::Debug for LocalJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalJournal")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl LocalJournal {
    pub(super) fn new(max_age: Duration) -> LocalJournal {
        LocalJournal {
            max_age,
            logs: Mutex::default(),
        }
    }
}

#[async_trait]
impl Journal for LocalJournal {
    async fn append(&self, key: &str, record: Bytes) -> Result<(), BusError> {
        check_key(key)?;
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        let log = logs.entry(key.to_owned()).or_default();
        log.next = log.next.max(1);
        log.records.push_back((log.next, Instant::now(), record));
        log.next += 1;
        log.forget_old(self.max_age);
        Ok(())
    }

    async fn page(
        &self,
        key: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<JournalPage, BusError> {
        check_key(key)?;
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(log) = logs.get_mut(key) else {
            return Ok(JournalPage::default());
        };
        log.forget_old(self.max_age);
        let (Some((first, ..)), Some((last, ..))) = (log.records.front(), log.records.back())
        else {
            return Ok(JournalPage::default());
        };
        let first = *first;
        let Some((top, bottom)) = page_range(first, *last, before, limit) else {
            return Ok(JournalPage::default());
        };
        let records = log
            .records
            .iter()
            .rev()
            .filter(|(position, ..)| (bottom..=top).contains(position))
            .map(|(_, _, record)| record.clone())
            .collect();
        Ok(JournalPage {
            records,
            next: (bottom > first).then_some(bottom),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_run_from_the_top_down_without_gaps() {
        assert_eq!(page_range(1, 10, None, 4), Some((10, 7)));
        assert_eq!(page_range(1, 10, Some(7), 4), Some((6, 3)));
        assert_eq!(page_range(1, 10, Some(3), 4), Some((2, 1)));
        assert_eq!(page_range(5, 10, Some(7), 4), Some((6, 5)));
        assert_eq!(page_range(5, 10, Some(5), 4), None);
        assert_eq!(page_range(1, 10, Some(50), 2), Some((10, 9)));
        assert_eq!(page_range(1, 10, Some(0), 2), None);
        assert_eq!(page_range(1, 10, None, 0), None);
    }

    #[tokio::test]
    async fn a_local_journal_pages_newest_first_per_key() {
        let journal = LocalJournal::new(Duration::from_secs(60));
        for i in 1..=5 {
            journal
                .append("app1", Bytes::from(format!("a{i}")))
                .await
                .unwrap();
        }
        journal.append("app2", Bytes::from("b1")).await.unwrap();
        let first = journal.page("app1", None, 2).await.unwrap();
        assert_eq!(first.records, [Bytes::from("a5"), Bytes::from("a4")]);
        let second = journal.page("app1", first.next, 2).await.unwrap();
        assert_eq!(second.records, [Bytes::from("a3"), Bytes::from("a2")]);
        let last = journal.page("app1", second.next, 2).await.unwrap();
        assert_eq!((last.records, last.next), (vec![Bytes::from("a1")], None));
        assert_eq!(
            journal.page("nobody", None, 2).await.unwrap(),
            JournalPage::default()
        );
        assert!(matches!(
            journal.append("a.b", Bytes::new()).await,
            Err(BusError::InvalidSubject(_))
        ));
    }
}
