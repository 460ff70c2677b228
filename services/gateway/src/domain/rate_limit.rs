//! Keyed rate limiters (GCRA, from `governor`): one bucket per key, such as a client IP
//! within an app or a visitor session.
//!
//! A [`RateLimiter`] enforces whichever [`Rate`] each check names, so an app's own limit
//! and the deployment's default live side by side: buckets are kept per rate, and a
//! change of an app's limit starts its clients on fresh buckets. Each kind of limit
//! (new sessions per IP today; messages per session and offline messages per IP next)
//! is one `RateLimiter` with its own key type.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

/// At most `count` per `period`: a burst of `count` at once, then one more each
/// `period / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: NonZeroU32,
    period: Duration,
}

impl Rate {
    pub fn new(count: NonZeroU32, period: Duration) -> Rate {
        Rate { count, period }
    }

    fn quota(self) -> Quota {
        let every = (self.period / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(every)
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.count)
    }
}

/// A check that failed: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl RateLimited {
    /// The `Retry-After` value: whole seconds, rounded up, at least one.
    pub fn retry_after_seconds(&self) -> u64 {
        let whole = self.retry_after.as_secs();
        let rounded = if self.retry_after.subsec_nanos() > 0 {
            whole + 1
        } else {
            whole
        };
        rounded.max(1)
    }
}

/// Buckets per key, for any number of rates.
pub struct RateLimiter<K: Hash + Eq + Clone> {
    by_rate: Mutex<HashMap<Rate, Arc<DefaultKeyedRateLimiter<K>>>>,
}

impl<K: Hash + Eq + Clone> Default for RateLimiter<K> {
    fn default() -> Self {
        RateLimiter {
            by_rate: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Takes one unit from `key`'s bucket under `rate`, or says how long until one is
    /// there. A refused check takes nothing.
    pub fn check(&self, rate: Rate, key: &K) -> Result<(), RateLimited> {
        let limiter = self.limiter(rate);
        limiter.check_key(key).map_err(|not_until| RateLimited {
            retry_after: not_until.wait_time_from(limiter.clock().now()),
        })
    }

    /// Forgets the buckets that have filled up again (they would let the next request
    /// through anyway), so memory follows the clients seen lately.
    pub fn forget_idle(&self) {
        let mut by_rate = self.by_rate.lock().unwrap_or_else(PoisonError::into_inner);
        by_rate.retain(|_, limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            !limiter.is_empty()
        });
    }

    fn limiter(&self, rate: Rate) -> Arc<DefaultKeyedRateLimiter<K>> {
        let mut by_rate = self.by_rate.lock().unwrap_or_else(PoisonError::into_inner);
        by_rate
            .entry(rate)
            .or_insert_with(|| Arc::new(governor::RateLimiter::keyed(rate.quota())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_minute(n: u32) -> Rate {
        Rate::new(NonZeroU32::new(n).unwrap(), Duration::from_secs(60))
    }

    #[test]
    fn a_burst_passes_then_the_next_is_refused_with_a_wait() {
        let limiter = RateLimiter::<&str>::default();
        for _ in 0..3 {
            limiter.check(per_minute(3), &"a").unwrap();
        }
        let refused = limiter.check(per_minute(3), &"a").unwrap_err();
        assert!(refused.retry_after > Duration::ZERO);
        assert!(refused.retry_after <= Duration::from_secs(20));
        assert!((1..=20).contains(&refused.retry_after_seconds()));
        limiter.check(per_minute(3), &"b").unwrap();
    }

    #[test]
    fn each_rate_has_its_own_buckets() {
        let limiter = RateLimiter::<&str>::default();
        limiter.check(per_minute(1), &"a").unwrap();
        assert!(limiter.check(per_minute(1), &"a").is_err());
        limiter.check(per_minute(2), &"a").unwrap();
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let wait = |ms| RateLimited {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(wait(1).retry_after_seconds(), 1);
        assert_eq!(wait(1000).retry_after_seconds(), 1);
        assert_eq!(wait(1001).retry_after_seconds(), 2);
        assert_eq!(wait(0).retry_after_seconds(), 1);
    }

    #[test]
    fn forgetting_idle_buckets_keeps_busy_ones() {
        let limiter = RateLimiter::<&str>::default();
        limiter.check(per_minute(1), &"a").unwrap();
        limiter.forget_idle();
        assert!(
            limiter.check(per_minute(1), &"a").is_err(),
            "an empty bucket is remembered"
        );
    }
}
