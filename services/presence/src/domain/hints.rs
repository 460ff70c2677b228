//! Where a write starts from: the latest revision of each active member's record this
//! replica has seen (on the store's change stream, or by writing it), so a change can
//! be compare-and-set without reading the record first.
//!
//! A hint is never an answer: a stale one only makes the compare-and-set fail, and the
//! write then reads the record and tries again; an outcome that writes nothing is read
//! again from the store before it is trusted. Reads always go to the store. Losing the
//! hints (a restart) costs one read per member.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::ids::MemberKey;
use crate::store::Stored;

/// The latest records seen, of members with live devices or a pending event.
#[derive(Debug, Default)]
pub struct Hints {
    records: Mutex<HashMap<MemberKey, Stored>>,
}

impl Hints {
    /// The latest record seen of `key`, if it is active.
    pub fn get(&self, key: &MemberKey) -> Option<Stored> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Notes `stored` as `key`'s record unless a newer one is known; `active` false
    /// forgets the member (nothing will be written for them until they come back).
    pub fn note(&self, key: &MemberKey, stored: Stored, active: bool) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records
            .get(key)
            .is_some_and(|known| known.revision > stored.revision)
        {
            return;
        }
        if active {
            records.insert(key.clone(), stored);
        } else {
            records.remove(key);
        }
    }

    /// Forgets `key`'s record (it was deleted).
    pub fn forget(&self, key: &MemberKey) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::MemberRecord;

    fn stored(revision: u64) -> Stored {
        Stored {
            revision,
            record: MemberRecord::default(),
        }
    }

    #[test]
    fn only_newer_revisions_replace_a_hint_and_inactive_members_are_forgotten() {
        let hints = Hints::default();
        let key = MemberKey::new("app", "m1").unwrap();
        hints.note(&key, stored(5), true);
        hints.note(&key, stored(4), true);
        assert_eq!(hints.get(&key).map(|s| s.revision), Some(5));
        hints.note(&key, stored(4), false);
        assert!(
            hints.get(&key).is_some(),
            "an older revision forgets nothing"
        );
        hints.note(&key, stored(6), false);
        assert_eq!(hints.get(&key), None);
        hints.note(&key, stored(7), true);
        hints.forget(&key);
        assert_eq!(hints.get(&key), None);
    }
}
