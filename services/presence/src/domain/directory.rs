//! Who exists: members and chat endpoints belong to the identity service, and presence
//! asks it through [`Directory`]. [`CachedDirectory`] keeps answers for a few seconds,
//! so a closed endpoint may read as open (and a renamed member keep their old name) for
//! at most that long.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use palaver_kit::Error;

use super::ids::MemberKey;

/// Beyond this many cached answers of one kind, expired ones are dropped (and all of
/// them if none has expired).
const MAX_CACHED: usize = 100_000;

/// A member as presence needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub display_name: String,
    /// Their chat endpoint, once they have held a permission token.
    pub endpoint: Option<String>,
}

/// A chat endpoint as presence needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub endpoint: String,
    pub member: MemberKey,
    pub display_name: String,
    /// True while the member holds a valid permission token.
    pub open: bool,
}

/// Looks members and endpoints up in the identity service.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// The member with this id in this app; `None` when the app has no such member.
    async fn member(&self, key: &MemberKey) -> Result<Option<MemberInfo>, Error>;

    /// The endpoints among `endpoints` that exist, open or closed, in any app.
    async fn endpoints(&self, endpoints: &[String]) -> Result<Vec<EndpointInfo>, Error>;
}

/// A [`Directory`] that remembers answers for `ttl`. Only found members and endpoints
/// are kept, so a new member is usable at once.
pub struct CachedDirectory {
    inner: Arc<dyn Directory>,
    ttl: Duration,
    members: Mutex<HashMap<MemberKey, (Instant, MemberInfo)>>,
    endpoints: Mutex<HashMap<String, (Instant, EndpointInfo)>>,
}

impl CachedDirectory {
    pub fn new(inner: Arc<dyn Directory>, ttl: Duration) -> Self {
        CachedDirectory {
            inner,
            ttl,
            members: Mutex::default(),
            endpoints: Mutex::default(),
        }
    }
}

fn cached<K: Hash + Eq, V: Clone>(cache: &Mutex<HashMap<K, (Instant, V)>>, key: &K) -> Option<V> {
    let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    cache
        .get(key)
        .filter(|(expires, _)| *expires > Instant::now())
        .map(|(_, value)| value.clone())
}

fn remember<K: Hash + Eq, V>(
    cache: &Mutex<HashMap<K, (Instant, V)>>,
    ttl: Duration,
    entries: impl IntoIterator<Item = (K, V)>,
) {
    if ttl.is_zero() {
        return;
    }
    let now = Instant::now();
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= MAX_CACHED {
        cache.retain(|_, (expires, _)| *expires > now);
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
    }
    cache.extend(
        entries
            .into_iter()
            .map(|(key, value)| (key, (now + ttl, value))),
    );
}

#[async_trait]
impl Directory for CachedDirectory {
    async fn member(&self, key: &MemberKey) -> Result<Option<MemberInfo>, Error> {
        if let Some(member) = cached(&self.members, key) {
            return Ok(Some(member));
        }
        let member = self.inner.member(key).await?;
        if let Some(member) = &member {
            remember(&self.members, self.ttl, [(key.clone(), member.clone())]);
        }
        Ok(member)
    }

    async fn endpoints(&self, endpoints: &[String]) -> Result<Vec<EndpointInfo>, Error> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for endpoint in endpoints {
            match cached(&self.endpoints, endpoint) {
                Some(info) => found.push(info),
                None => missing.push(endpoint.clone()),
            }
        }
        if !missing.is_empty() {
            let fetched = self.inner.endpoints(&missing).await?;
            remember(
                &self.endpoints,
                self.ttl,
                fetched
                    .iter()
                    .map(|info| (info.endpoint.clone(), info.clone())),
            );
            found.extend(fetched);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Knows member "m1" and endpoint "ce_1"; counts the questions it is asked.
    #[derive(Default)]
    struct Counting {
        asked: AtomicUsize,
    }

    #[async_trait]
    impl Directory for Counting {
        async fn member(&self, key: &MemberKey) -> Result<Option<MemberInfo>, Error> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Ok((key.member_id == "m1").then(|| MemberInfo {
                display_name: "Ada".into(),
                endpoint: None,
            }))
        }

        async fn endpoints(&self, endpoints: &[String]) -> Result<Vec<EndpointInfo>, Error> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Ok(endpoints
                .iter()
                .filter(|e| *e == "ce_1")
                .map(|e| EndpointInfo {
                    endpoint: e.clone(),
                    member: MemberKey::new("app", "m1").unwrap(),
                    display_name: "Ada".into(),
                    open: true,
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn found_answers_are_kept_for_the_ttl_and_unknown_ones_never() {
        let inner = Arc::new(Counting::default());
        let directory = CachedDirectory::new(inner.clone(), Duration::from_secs(60));
        let m1 = MemberKey::new("app", "m1").unwrap();
        let m2 = MemberKey::new("app", "m2").unwrap();
        for _ in 0..3 {
            assert!(directory.member(&m1).await.unwrap().is_some());
            assert!(directory.member(&m2).await.unwrap().is_none());
        }
        assert_eq!(inner.asked.load(Ordering::SeqCst), 4, "m1 once, m2 thrice");

        let wanted = ["ce_1".to_owned(), "ce_2".to_owned()];
        for _ in 0..2 {
            let found = directory.endpoints(&wanted).await.unwrap();
            assert_eq!(found.len(), 1);
        }
        assert_eq!(
            inner.asked.load(Ordering::SeqCst),
            6,
            "ce_2 is asked again, ce_1 is not"
        );
    }

    #[tokio::test]
    async fn a_zero_ttl_asks_every_time() {
        let inner = Arc::new(Counting::default());
        let directory = CachedDirectory::new(inner.clone(), Duration::ZERO);
        let m1 = MemberKey::new("app", "m1").unwrap();
        directory.member(&m1).await.unwrap();
        directory.member(&m1).await.unwrap();
        assert_eq!(inner.asked.load(Ordering::SeqCst), 2);
    }
}
