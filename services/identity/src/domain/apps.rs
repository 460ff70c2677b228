//! Apps: one site registered with Palaver, its settings and its secrets.

use std::collections::HashMap;
use std::sync::Mutex;

use palaver_kit::random::{new_id, random_string};
use palaver_kit::{Error, ErrorCode};
use serde::{Deserialize, Serialize};

use super::{Identity, secrets, validate};
use crate::store::{AppRow, IdentityKeyRow};

/// Webhook event types an app may subscribe to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "conversation.started",
    "message.created",
    "message.offline",
    "conversation.closed",
    "member.permission_changed",
];

/// Per-app abuse limits; zero means the deployment's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub sessions_per_ip_per_minute: u32,
    pub messages_per_second: u32,
    pub message_burst: u32,
    pub offline_messages_per_ip_per_hour: u32,
    pub open_conversations_per_visitor: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: String,
    pub name: String,
    pub origins: Vec<String>,
    pub privacy_url: String,
    pub logo_url: String,
    pub return_urls: Vec<String>,
    pub retention_days: u32,
    pub webhook_url: String,
    pub webhook_events: Vec<String>,
    pub limits: Limits,
    pub identity_key_ids: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an admin gives to register an app.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    pub name: String,
    pub origins: Vec<String>,
    pub privacy_url: String,
    pub logo_url: String,
    pub return_urls: Vec<String>,
    pub retention_days: u32,
    pub limits: Limits,
}

/// A partial update; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct AppUpdate {
    pub name: Option<String>,
    pub origins: Option<Vec<String>>,
    pub privacy_url: Option<String>,
    pub logo_url: Option<String>,
    pub return_urls: Option<Vec<String>>,
    pub retention_days: Option<u32>,
    pub limits: Option<Limits>,
}

/// A new app and its secrets, shown once.
#[derive(Debug, Clone)]
pub struct CreatedApp {
    pub app: App,
    pub api_secret: String,
    pub identity_key: String,
    pub identity_key_id: String,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
}

/// The longest retention an app may ask for (10 years).
const MAX_RETENTION_DAYS: u32 = 3650;

/// Remembers API secrets that passed argon2 verification, keyed by their SHA-256 and
/// bound to the stored hash they matched, so a rotation invalidates them at once on
/// every replica while repeated CMS calls skip the deliberately slow hash.
#[derive(Debug, Default)]
pub struct ApiSecretCache(Mutex<HashMap<String, String>>);

impl ApiSecretCache {
    const MAX_ENTRIES: usize = 10_000;

    fn matches(&self, secret_sha: &str, stored_hash: &str) -> bool {
        self.0
            .lock()
            .map(|cache| cache.get(secret_sha).is_some_and(|h| h == stored_hash))
            .unwrap_or(false)
    }

    fn remember(&self, secret_sha: String, stored_hash: String) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= Self::MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(secret_sha, stored_hash);
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn from_json<T: for<'de> Deserialize<'de> + Default>(raw: &str) -> T {
    serde_json::from_str(raw).unwrap_or_default()
}

fn app_from_row(row: AppRow, keys: &[IdentityKeyRow]) -> App {
    App {
        origins: from_json(&row.origins),
        return_urls: from_json(&row.return_urls),
        webhook_events: from_json(&row.webhook_events),
        limits: from_json(&row.limits),
        retention_days: u32::try_from(row.retention_days).unwrap_or_default(),
        identity_key_ids: keys.iter().map(|k| k.key_id.clone()).collect(),
        app_id: row.app_id,
        name: row.name,
        privacy_url: row.privacy_url,
        logo_url: row.logo_url,
        webhook_url: row.webhook_url,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

struct ValidSettings {
    name: String,
    origins: Vec<String>,
    privacy_url: String,
    logo_url: String,
    return_urls: Vec<String>,
    retention_days: u32,
}

fn validate_settings(
    name: &str,
    origins: &[String],
    privacy_url: &str,
    logo_url: &str,
    return_urls: &[String],
    retention_days: u32,
) -> Result<ValidSettings, Error> {
    if retention_days > MAX_RETENTION_DAYS {
        return Err(Error::invalid(
            "retention_days",
            format!("must be at most {MAX_RETENTION_DAYS}"),
        ));
    }
    Ok(ValidSettings {
        name: validate::app_name(name)?,
        origins: validate::list("origins", origins, validate::origin)?,
        privacy_url: validate::optional_http_url("privacy_url", privacy_url)?,
        logo_url: validate::optional_http_url("logo_url", logo_url)?,
        return_urls: validate::list("return_urls", return_urls, validate::http_url)?,
        retention_days,
    })
}

/// An API secret names its app: `psk_<app_id>_<random>`.
fn new_api_secret(app_id: &str) -> String {
    format!("psk_{app_id}_{}", random_string(40))
}

fn app_id_of_api_secret(secret: &str) -> Option<&str> {
    secret
        .strip_prefix("psk_")?
        .rsplit_once('_')
        .map(|(app_id, _)| app_id)
}

fn new_identity_key(generation: i64) -> IdentityKeyRow {
    IdentityKeyRow {
        key_id: new_id("ik_", 10),
        secret: secrets::new_token("idk_"),
        generation,
    }
}

async fn hash_api_secret(secret: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || secrets::argon2_hash(&secret))
        .await
        .map_err(|e| Error::internal(&e))?
        .map_err(|e| Error::internal(&std::io::Error::other(e.to_string())))
}

impl Identity {
    #[tracing::instrument(skip_all)]
    pub async fn create_app(&self, new: NewApp) -> Result<CreatedApp, Error> {
        let valid = validate_settings(
            &new.name,
            &new.origins,
            &new.privacy_url,
            &new.logo_url,
            &new.return_urls,
            new.retention_days,
        )?;
        let now = self.now();
        let app_id = new_id("app_", 12);
        let api_secret = new_api_secret(&app_id);
        let key = new_identity_key(1);
        let row = AppRow {
            app_id: app_id.clone(),
            name: valid.name,
            origins: to_json(&valid.origins),
            privacy_url: valid.privacy_url,
            logo_url: valid.logo_url,
            return_urls: to_json(&valid.return_urls),
            retention_days: i64::from(valid.retention_days),
            limits: to_json(&new.limits),
            webhook_url: String::new(),
            webhook_events: "[]".to_owned(),
            webhook_secret: String::new(),
            api_secret_hash: hash_api_secret(api_secret.clone()).await?,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_app(&row, &key).await?;
        let app = app_from_row(row, std::slice::from_ref(&key));
        Ok(CreatedApp {
            app,
            api_secret,
            identity_key: key.secret,
            identity_key_id: key.key_id,
        })
    }

    pub async fn app(&self, app_id: &str) -> Result<App, Error> {
        let row = self
            .store
            .app(app_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no app {app_id:?}")))?;
        let keys = self.store.active_identity_keys(app_id).await?;
        Ok(app_from_row(row, &keys))
    }

    #[tracing::instrument(skip_all, fields(app_id))]
    pub async fn update_app(&self, app_id: &str, update: AppUpdate) -> Result<App, Error> {
        let mut row = self
            .store
            .app(app_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no app {app_id:?}")))?;
        let current = app_from_row(row.clone(), &[]);
        let valid = validate_settings(
            update.name.as_deref().unwrap_or(&current.name),
            update.origins.as_deref().unwrap_or(&current.origins),
            update
                .privacy_url
                .as_deref()
                .unwrap_or(&current.privacy_url),
            update.logo_url.as_deref().unwrap_or(&current.logo_url),
            update
                .return_urls
                .as_deref()
                .unwrap_or(&current.return_urls),
            update.retention_days.unwrap_or(current.retention_days),
        )?;
        row.name = valid.name;
        row.origins = to_json(&valid.origins);
        row.privacy_url = valid.privacy_url;
        row.logo_url = valid.logo_url;
        row.return_urls = to_json(&valid.return_urls);
        row.retention_days = i64::from(valid.retention_days);
        row.limits = to_json(&update.limits.unwrap_or(current.limits));
        row.updated_at = self.now();
        if !self.store.save_app_settings(&row).await? {
            return Err(Error::not_found(format!("no app {app_id:?}")));
        }
        self.app(app_id).await
    }

    pub async fn delete_app(&self, app_id: &str) -> Result<(), Error> {
        if self.store.delete_app(app_id).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("no app {app_id:?}")))
        }
    }

    /// The app an API secret belongs to.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate_app(&self, api_secret: &str) -> Result<App, Error> {
        let invalid = || Error::new(ErrorCode::Unauthenticated, "invalid API secret");
        let app_id = app_id_of_api_secret(api_secret).ok_or_else(invalid)?;
        let row = self.store.app(app_id).await?.ok_or_else(invalid)?;
        let secret_sha = secrets::token_hash(api_secret);
        if !self.api_secrets.matches(&secret_sha, &row.api_secret_hash) {
            let (secret, phc) = (api_secret.to_owned(), row.api_secret_hash.clone());
            let ok = tokio::task::spawn_blocking(move || secrets::argon2_verify(&secret, &phc))
                .await
                .map_err(|e| Error::internal(&e))?;
            if !ok {
                return Err(invalid());
            }
            self.api_secrets
                .remember(secret_sha, row.api_secret_hash.clone());
        }
        let keys = self.store.active_identity_keys(app_id).await?;
        Ok(app_from_row(row, &keys))
    }

    /// A new API secret; the old one stops working at once.
    pub async fn rotate_api_secret(&self, app_id: &str) -> Result<String, Error> {
        let api_secret = new_api_secret(app_id);
        let hash = hash_api_secret(api_secret.clone()).await?;
        if !self
            .store
            .set_api_secret_hash(app_id, &hash, self.now())
            .await?
        {
            return Err(Error::not_found(format!("no app {app_id:?}")));
        }
        Ok(api_secret)
    }

    /// A new identity key. The previous key stays accepted until the next rotation, so
    /// assertions the CMS signed a moment ago still verify.
    pub async fn rotate_identity_key(
        &self,
        app_id: &str,
    ) -> Result<(IdentityKeyRow, Option<String>), Error> {
        self.app(app_id).await?;
        let active = self.store.active_identity_keys(app_id).await?;
        let newest = active.first();
        let key = new_identity_key(newest.map_or(1, |k| k.generation + 1));
        self.store
            .rotate_identity_key(app_id, &key, self.now())
            .await?;
        Ok((key, newest.map(|k| k.key_id.clone())))
    }

    /// Sets (or with an empty URL removes) the app's webhook. The signing secret is made
    /// once and kept across changes of URL or events.
    pub async fn set_webhook(
        &self,
        app_id: &str,
        url: &str,
        events: &[String],
    ) -> Result<Webhook, Error> {
        let row = self
            .store
            .app(app_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no app {app_id:?}")))?;
        let url = validate::optional_http_url("url", url)?;
        let mut valid_events: Vec<String> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if !WEBHOOK_EVENTS.contains(&event.as_str()) {
                return Err(Error::invalid(
                    &format!("events[{i}]"),
                    format!(
                        "unknown event {event:?}; known: {}",
                        WEBHOOK_EVENTS.join(", ")
                    ),
                ));
            }
            if !valid_events.contains(event) {
                valid_events.push(event.clone());
            }
        }
        if !url.is_empty() && valid_events.is_empty() {
            return Err(Error::invalid("events", "name at least one event"));
        }
        let secret = if row.webhook_secret.is_empty() {
            format!("whsec_{}", secrets::random_base64(32))
        } else {
            row.webhook_secret
        };
        self.store
            .set_webhook(app_id, &url, &to_json(&valid_events), &secret, self.now())
            .await?;
        Ok(Webhook {
            url,
            events: valid_events,
            secret,
        })
    }

    pub async fn webhook(&self, app_id: &str) -> Result<Webhook, Error> {
        let row = self
            .store
            .app(app_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no app {app_id:?}")))?;
        Ok(Webhook {
            url: row.webhook_url,
            events: from_json(&row.webhook_events),
            secret: row.webhook_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_secret_names_its_app() {
        let secret = new_api_secret("app_abc123");
        assert_eq!(app_id_of_api_secret(&secret), Some("app_abc123"));
        assert_eq!(app_id_of_api_secret("nonsense"), None);
    }
}
