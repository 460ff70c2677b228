//! The apps' webhook settings as the worker reads them, kept briefly: every event on the
//! bus needs its app's settings, most apps have no webhook, and a burst of events of one
//! app should cost one call to identity, however many attempts run at once.
//!
//! An app's settings are kept for [`KEEP_FOR`] (5 seconds) from when they were first
//! asked for. A change made through this gateway is seen at once, because the CMS API
//! [forgets](WebhookCache::forget) the app's settings when it sets them; a change made
//! through another gateway is seen within [`KEEP_FOR`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use palaver_kit::Error;
use palaver_proto::identity::v1 as pb;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How long an app's webhook settings are kept.
pub const KEEP_FOR: Duration = Duration::from_secs(5);

/// An app's webhook as identity answers it; `None` when the app is gone.
pub type AppWebhook = Option<pb::Webhook>;

/// The webhook settings of the apps whose events were seen lately.
pub struct WebhookCache(Mutex<Kept>);

struct Kept {
    apps: HashMap<String, Entry>,
    swept_at: Instant,
}

/// One app's settings, read once by whoever asks first; the others wait for them.
struct Entry {
    asked_at: Instant,
    webhook: Arc<OnceCell<AppWebhook>>,
}

impl Default for WebhookCache {
    fn default() -> Self {
        WebhookCache(Mutex::new(Kept {
            apps: HashMap::new(),
            swept_at: Instant::now(),
        }))
    }
}

impl WebhookCache {
    /// The app's webhook: the one kept, or else what `fetch` answers, then kept. Callers
    /// asking at the same time share one fetch; a failed fetch is not kept.
    pub async fn get<F, Fut>(&self, app_id: &str, fetch: F) -> Result<AppWebhook, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AppWebhook, Error>>,
    {
        let webhook = self.entry(app_id);
        webhook.get_or_try_init(fetch).await.cloned()
    }

    /// Forgets the app's webhook, so that its next event reads it again. A fetch under
    /// way keeps its answer to the callers already waiting for it.
    pub fn forget(&self, app_id: &str) {
        self.lock().apps.remove(app_id);
    }

    /// The app's entry, a new one when none was kept or it is too old.
    fn entry(&self, app_id: &str) -> Arc<OnceCell<AppWebhook>> {
        let now = Instant::now();
        let fresh = |entry: &Entry| now.duration_since(entry.asked_at) < KEEP_FOR;
        let mut kept = self.lock();
        if now.duration_since(kept.swept_at) >= KEEP_FOR {
            kept.apps.retain(|_, entry| fresh(entry));
            kept.swept_at = now;
        }
        if let Some(entry) = kept.apps.get(app_id).filter(|entry| fresh(entry)) {
            return entry.webhook.clone();
        }
        let webhook = Arc::new(OnceCell::new());
        kept.apps.insert(
            app_id.to_owned(),
            Entry {
                asked_at: now,
                webhook: webhook.clone(),
            },
        );
        webhook
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use palaver_kit::ErrorCode;

    use super::*;

    fn webhook(url: &str) -> AppWebhook {
        Some(pb::Webhook {
            url: url.to_owned(),
            events: vec!["message.created".to_owned()],
            secret: "whsec_c2VjcmV0".to_owned(),
        })
    }

    /// Counts the fetches it makes; each answers `answer`.
    #[derive(Default)]
    struct Identity {
        calls: AtomicUsize,
    }

    impl Identity {
        async fn fetch(&self, answer: Result<AppWebhook, Error>) -> Result<AppWebhook, Error> {
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
    async fn a_burst_of_one_app_costs_one_fetch_and_apps_are_kept_apart() {
        let cache = WebhookCache::default();
        let identity = Identity::default();
        let burst = (0..16).map(|_| {
            cache.get("app_a", || {
                identity.fetch(Ok(webhook("https://a.example/hooks")))
            })
        });
        for answer in futures::future::join_all(burst).await {
            assert_eq!(answer.unwrap(), webhook("https://a.example/hooks"));
        }
        assert_eq!(identity.calls(), 1);

        let other = cache.get("app_b", || identity.fetch(Ok(None))).await;
        assert_eq!(other.unwrap(), None, "a gone app is kept as gone");
        assert_eq!(identity.calls(), 2);
        let again = cache
            .get("app_b", || identity.fetch(Ok(webhook("x"))))
            .await;
        assert_eq!(again.unwrap(), None);
        assert_eq!(identity.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn settings_are_read_again_once_too_old_or_forgotten() {
        let cache = WebhookCache::default();
        let identity = Identity::default();
        let first = cache.get("app", || identity.fetch(Ok(webhook("https://old.example"))));
        assert_eq!(first.await.unwrap(), webhook("https://old.example"));

        tokio::time::advance(KEEP_FOR - Duration::from_millis(1)).await;
        let kept = cache.get("app", || identity.fetch(Ok(webhook("https://new.example"))));
        assert_eq!(kept.await.unwrap(), webhook("https://old.example"));
        assert_eq!(identity.calls(), 1);

        tokio::time::advance(Duration::from_millis(1)).await;
        let expired = cache.get("app", || identity.fetch(Ok(webhook("https://new.example"))));
        assert_eq!(expired.await.unwrap(), webhook("https://new.example"));
        assert_eq!(identity.calls(), 2);

        cache.forget("app");
        let forgotten = cache.get("app", || identity.fetch(Ok(None)));
        assert_eq!(forgotten.await.unwrap(), None);
        assert_eq!(identity.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_is_not_kept() {
        let cache = WebhookCache::default();
        let identity = Identity::default();
        let unavailable = Error::new(ErrorCode::Unavailable, "identity is down");
        let failed = cache.get("app", || identity.fetch(Err(unavailable))).await;
        assert_eq!(failed.unwrap_err().code, ErrorCode::Unavailable);
        let next = cache.get("app", || identity.fetch(Ok(webhook("https://a.example"))));
        assert_eq!(next.await.unwrap(), webhook("https://a.example"));
        assert_eq!(identity.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_during_a_fetch_keeps_its_answer_from_later_callers() {
        let cache = WebhookCache::default();
        let (answer, answered) = tokio::sync::oneshot::channel::<AppWebhook>();
        let slow = cache.get("app", || async { Ok(answered.await.unwrap()) });
        let forget_then_answer = async {
            tokio::task::yield_now().await;
            cache.forget("app");
            answer.send(webhook("https://old.example")).unwrap();
        };
        let (old, ()) = tokio::join!(slow, forget_then_answer);
        assert_eq!(old.unwrap(), webhook("https://old.example"));

        let identity = Identity::default();
        let next = cache.get("app", || identity.fetch(Ok(webhook("https://new.example"))));
        assert_eq!(next.await.unwrap(), webhook("https://new.example"));
        assert_eq!(identity.calls(), 1);
    }
}
