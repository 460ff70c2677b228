//! What the demo site remembers, as a CMS would in its own database: who is signed in
//! in which browser, each member's permission and refresh tokens and "chat enabled"
//! flag, the consent requests under way, the webhook secret and the webhook events
//! received. It is one JSON file in the data directory, rewritten whole (through a
//! temporary file and a rename, so a crash never leaves half a file) on every change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// Signed-in browsers kept at most; the oldest sign-in is forgotten first.
const MAX_SESSIONS: usize = 1000;
/// Webhook events kept at most; the oldest is forgotten first.
const MAX_WEBHOOKS: usize = 200;
/// How long a consent request may wait for its answer: as long as the API keeps it.
const CONSENT_SECONDS: i64 = 600;

/// The file's content.
#[derive(Serialize, Deserialize, Default)]
pub struct Saved {
    /// The HMAC key of the per-session CSRF tokens.
    pub csrf_key: String,
    /// The webhook signing secret (`whsec_…`) the API gave when the webhook was set.
    pub webhook_secret: Option<String>,
    /// Signed-in browsers: session id → who.
    pub sessions: BTreeMap<String, SignedIn>,
    /// The demo members' own settings, by external id.
    pub members: BTreeMap<String, MemberSettings>,
    /// Consent requests waiting for the member to come back, by `state`.
    pub consents: BTreeMap<String, PendingConsent>,
    /// Webhook events received, newest first.
    pub webhooks: Vec<ReceivedWebhook>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct SignedIn {
    pub external_id: String,
    pub since: i64,
}

/// What the CMS keeps for a member: the tokens of the consent flow and their choice.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct MemberSettings {
    pub permission_token: Option<String>,
    pub refresh_token: Option<String>,
    pub chat_enabled: bool,
}

/// A consent request in flight: the PKCE verifier stays here, never in the browser.
#[derive(Serialize, Deserialize, Clone)]
pub struct PendingConsent {
    pub session: String,
    pub external_id: String,
    pub code_verifier: String,
    pub created_at: i64,
}

/// A webhook delivery whose signature verified.
#[derive(Serialize, Deserialize, Clone)]
pub struct ReceivedWebhook {
    /// `webhook-id`: the same across retries of one event.
    pub id: String,
    /// The payload's `type`.
    pub event_type: String,
    /// The payload's `timestamp`.
    pub timestamp: String,
    /// The payload's `data`.
    pub data: serde_json::Value,
}

/// The file and its content in memory; every change goes through [`Store::update`].
pub struct Store {
    path: PathBuf,
    saved: Mutex<Saved>,
}

impl Store {
    /// Reads the file, or starts empty (with a fresh CSRF key) when there is none.
    pub async fn open(path: PathBuf) -> anyhow::Result<Self> {
        let mut saved: Saved = match tokio::fs::read(&path).await {
            Ok(raw) => serde_json::from_slice(&raw)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if saved.csrf_key.is_empty() {
            saved.csrf_key = palaver_kit::random::random_string(43);
        }
        let store = Store {
            path,
            saved: Mutex::new(saved),
        };
        store.update(|_| ()).await?;
        Ok(store)
    }

    /// A value computed from the content.
    pub async fn read<T>(&self, f: impl FnOnce(&Saved) -> T) -> T {
        f(&*self.saved.lock().await)
    }

    /// Changes the content and writes the file before anyone else may look.
    pub async fn update<T>(&self, f: impl FnOnce(&mut Saved) -> T) -> anyhow::Result<T> {
        let mut saved = self.saved.lock().await;
        let result = f(&mut saved);
        trim(&mut saved);
        let raw = serde_json::to_vec_pretty(&*saved).context("encoding the demo site's state")?;
        let temporary = self.path.with_extension("json.new");
        tokio::fs::write(&temporary, raw)
            .await
            .with_context(|| format!("writing {}", temporary.display()))?;
        tokio::fs::rename(&temporary, &self.path)
            .await
            .with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(result)
    }
}

/// Keeps the file small: old sign-ins, stale consent requests and old events go.
fn trim(saved: &mut Saved) {
    let now = now();
    saved
        .consents
        .retain(|_, pending| now - pending.created_at <= CONSENT_SECONDS);
    while saved.sessions.len() > MAX_SESSIONS {
        let oldest = saved
            .sessions
            .iter()
            .min_by_key(|(_, signed_in)| signed_in.since)
            .map(|(session, _)| session.clone());
        match oldest {
            Some(session) => saved.sessions.remove(&session),
            None => break,
        };
    }
    saved.webhooks.truncate(MAX_WEBHOOKS);
}

/// Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
