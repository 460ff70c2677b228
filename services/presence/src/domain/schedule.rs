//! The settle schedule: which member records need settling (a device expiring, a
//! pending event's window ending) and when. Every replica builds it from the store's
//! stream of changes, so it is derived state: a replica that restarts rebuilds it, and
//! losing a replica loses nothing.

use std::collections::{BTreeSet, HashMap};

use super::ids::MemberKey;
use super::record::Millis;

/// Member records by the time they are due, each at the latest revision seen.
#[derive(Debug, Default)]
pub struct Schedule {
    entries: HashMap<MemberKey, Entry>,
    queue: BTreeSet<(Millis, MemberKey)>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    revision: u64,
    due: Millis,
}

impl Schedule {
    /// Records that `key` at `revision` is due at `due` (never, when `None`). A revision
    /// older than the one already scheduled is ignored.
    pub fn set(&mut self, key: MemberKey, revision: u64, due: Option<Millis>) {
        if let Some(entry) = self.entries.get(&key) {
            if entry.revision > revision {
                return;
            }
            self.queue.remove(&(entry.due, key.clone()));
            self.entries.remove(&key);
        }
        if let Some(due) = due {
            self.queue.insert((due, key.clone()));
            self.entries.insert(key, Entry { revision, due });
        }
    }

    /// When the earliest record is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.queue.first().map(|(due, _)| *due)
    }

    /// Takes out up to `limit` records due at `now`, earliest first.
    pub fn take_due(&mut self, now: Millis, limit: usize) -> Vec<MemberKey> {
        let mut taken = Vec::new();
        while taken.len() < limit {
            match self.queue.first() {
                Some((due, _)) if *due <= now => {}
                _ => break,
            }
            if let Some((_, key)) = self.queue.pop_first() {
                self.entries.remove(&key);
                taken.push(key);
            }
        }
        taken
    }

    /// How many records are scheduled.
    pub fn scheduled(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(member: &str) -> MemberKey {
        MemberKey::new("app", member).unwrap()
    }

    #[test]
    fn records_come_out_in_due_order_up_to_the_limit() {
        let mut schedule = Schedule::default();
        schedule.set(key("late"), 1, Some(300));
        schedule.set(key("early"), 2, Some(100));
        schedule.set(key("middle"), 3, Some(200));
        assert_eq!(schedule.next_due(), Some(100));
        assert_eq!(schedule.take_due(250, 1), [key("early")]);
        assert_eq!(schedule.take_due(250, 10), [key("middle")]);
        assert_eq!(schedule.take_due(250, 10), Vec::<MemberKey>::new());
        assert_eq!(schedule.scheduled(), 1);
    }

    #[test]
    fn a_newer_revision_moves_or_removes_a_record_and_an_older_one_is_ignored() {
        let mut schedule = Schedule::default();
        schedule.set(key("m"), 5, Some(100));
        schedule.set(key("m"), 4, Some(50));
        assert_eq!(schedule.next_due(), Some(100));
        schedule.set(key("m"), 6, Some(400));
        assert_eq!(schedule.next_due(), Some(400));
        assert_eq!(schedule.scheduled(), 1);
        schedule.set(key("m"), 7, None);
        assert_eq!((schedule.next_due(), schedule.scheduled()), (None, 0));
    }
}
