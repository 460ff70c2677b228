//! Wall-clock time, which tests may shift.
//!
//! Services read the time through a [`Clock`] so a test can age tokens, codes and
//! messages without waiting: it shifts the clock it built the service with, and every
//! clone of it moves too.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The system time plus an offset shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        system + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves this clock, and every clone of it, by `ms` milliseconds (back when negative).
    pub fn shift_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_moves_every_clone() {
        let clock = Clock::default();
        let clone = clock.clone();
        let before = clone.now();
        clock.shift_ms(-3_600_000);
        assert!(clone.now() <= before - 3_599);
        clock.shift_ms(3_600_000);
        assert!(clone.now() >= before);
    }
}
