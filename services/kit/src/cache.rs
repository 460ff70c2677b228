//! What a service reads from another, kept briefly: a burst of requests that need the
//! same answer costs one call, however many ask at once.
//!
//! An answer is kept for the cache's `keep_for` from when it was first asked for.
//! [`Cache::forget`] drops one at once (the service that changed it knows); anyone else
//! sees a change within `keep_for`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::Error;

/// Answers by key, each kept for a while.
pub struct Cache<V> {
    keep_for: Duration,
    kept: Mutex<Kept<V>>,
}

struct Kept<V> {
    entries: HashMap<String, Entry<V>>,
    swept_at: Instant,
}

/// One key's answer, fetched once by whoever asks first; the others wait for it.
struct Entry<V> {
    asked_at: Instant,
    value: Arc<OnceCell<V>>,
}

impl<V: Clone> Cache<V> {
    /// A cache that keeps each answer for `keep_for`.
    pub fn new(keep_for: Duration) -> Self {
        Cache {
            keep_for,
            kept: Mutex::new(Kept {
                entries: HashMap::new(),
                swept_at: Instant::now(),
            }),
        }
    }

    /// The answer kept for `key`, or else what `fetch` answers, then kept. Callers
    /// asking at the same time share one fetch; a failed fetch is not kept.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<V, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, Error>>,
    {
        let value = self.entry(key);
        value.get_or_try_init(fetch).await.cloned()
    }

    /// Forgets the answer for `key`, so that the next caller fetches it again. A fetch
    /// under way keeps its answer to the callers already waiting for it.
    pub fn forget(&self, key: &str) {
        self.lock().entries.remove(key);
    }

    /// The key's entry, a new one when none was kept or it is too old.
    fn entry(&self, key: &str) -> Arc<OnceCell<V>> {
        let now = Instant::now();
        let fresh = |entry: &Entry<V>| now.duration_since(entry.asked_at) < self.keep_for;
        let mut kept = self.lock();
        if now.duration_since(kept.swept_at) >= self.keep_for {
            kept.entries.retain(|_, entry| fresh(entry));
            kept.swept_at = now;
        }
        if let Some(entry) = kept.entries.get(key).filter(|entry| fresh(entry)) {
            return entry.value.clone();
        }
        let value = Arc::new(OnceCell::new());
        kept.entries.insert(
            key.to_owned(),
            Entry {
                asked_at: now,
                value: value.clone(),
            },
        );
        value
    }

    fn lock(&self) -> MutexGuard<'_, Kept<V>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ErrorCode;

    const KEEP_FOR: Duration = Duration::from_secs(5);

    /// An answer as another service gives it: `None` for something gone.
    type Answer = Option<String>;

    fn answer(url: &str) -> Answer {
        Some(url.to_owned())
    }

    /// Counts the fetches it makes; each answers `answer`.
    #[derive(Default)]
    struct Service {
        calls: AtomicUsize,
    }

    impl Service {
        async fn fetch(&self, answer: Result<Answer, Error>) -> Result<Answer, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            // Lets every concurrent caller reach the cache before the answer comes.
            tokio::task::yield_now().await;
            answer
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_one_key_costs_one_fetch_and_keys_are_kept_apart() {
        let cache = Cache::new(KEEP_FOR);
        let service = Service::default();
        let burst = (0..16).map(|_| {
            cache.get("app_a", || {
                service.fetch(Ok(answer("https://a.example/hooks")))
            })
        });
        for got in futures::future::join_all(burst).await {
            assert_eq!(got.unwrap(), answer("https://a.example/hooks"));
        }
        assert_eq!(service.calls(), 1);

        let other = cache.get("app_b", || service.fetch(Ok(None))).await;
        assert_eq!(other.unwrap(), None, "something gone is kept as gone");
        assert_eq!(service.calls(), 2);
        let again = cache.get("app_b", || service.fetch(Ok(answer("x")))).await;
        assert_eq!(again.unwrap(), None);
        assert_eq!(service.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_fetched_again_once_too_old_or_forgotten() {
        let cache = Cache::new(KEEP_FOR);
        let service = Service::default();
        let first = cache.get("app", || service.fetch(Ok(answer("https://old.example"))));
        assert_eq!(first.await.unwrap(), answer("https://old.example"));

        tokio::time::advance(KEEP_FOR - Duration::from_millis(1)).await;
        let kept = cache.get("app", || service.fetch(Ok(answer("https://new.example"))));
        assert_eq!(kept.await.unwrap(), answer("https://old.example"));
        assert_eq!(service.calls(), 1);

        tokio::time::advance(Duration::from_millis(1)).await;
        let expired = cache.get("app", || service.fetch(Ok(answer("https://new.example"))));
        assert_eq!(expired.await.unwrap(), answer("https://new.example"));
        assert_eq!(service.calls(), 2);

        cache.forget("app");
        let forgotten = cache.get("app", || service.fetch(Ok(None)));
        assert_eq!(forgotten.await.unwrap(), None);
        assert_eq!(service.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_is_not_kept() {
        let cache = Cache::new(KEEP_FOR);
        let service = Service::default();
        let unavailable = Error::new(ErrorCode::Unavailable, "identity is down");
        let failed = cache.get("app", || service.fetch(Err(unavailable))).await;
        assert_eq!(failed.unwrap_err().code, ErrorCode::Unavailable);
        let next = cache.get("app", || service.fetch(Ok(answer("https://a.example"))));
        assert_eq!(next.await.unwrap(), answer("https://a.example"));
        assert_eq!(service.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_during_a_fetch_keeps_its_answer_from_later_callers() {
        let cache = Cache::new(KEEP_FOR);
        let (send, answered) = tokio::sync::oneshot::channel::<Answer>();
        let slow = cache.get("app", || async { Ok(answered.await.unwrap()) });
        let forget_then_answer = async {
            tokio::task::yield_now().await;
            cache.forget("app");
            send.send(answer("https://old.example")).unwrap();
        };
        let (old, ()) = tokio::join!(slow, forget_then_answer);
        assert_eq!(old.unwrap(), answer("https://old.example"));

        let service = Service::default();
        let next = cache.get("app", || service.fetch(Ok(answer("https://new.example"))));
        assert_eq!(next.await.unwrap(), answer("https://new.example"));
        assert_eq!(service.calls(), 1);
    }
}
