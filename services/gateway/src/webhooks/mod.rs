//! Outgoing webhooks (DESIGN.md, "Webhooks"): the stored bus events an app subscribed
//! to, POSTed to its webhook URL and signed as Standard Webhooks specifies.
//!
//! Every gateway runs a [`WebhookWorker`] on the bus's durable consumer `webhooks`, which
//! all gateways share, so each event is sent by one of them. An event is acknowledged
//! only after a 2xx answer; a failed attempt is negatively acknowledged with the next
//! wait of the [`RetrySchedule`], so the bus (JetStream on NATS) hands it back later,
//! to whichever gateway is running then; after the last attempt it is given up. The
//! events stream keeps events far longer than the schedule lasts (checked at start).
//! Every attempt is recorded in the journal of [`attempts`], which the CMS API lists.
//!
//! Each event needs its app's webhook settings, which identity keeps; the worker keeps
//! them for 5 seconds ([`WEBHOOK_KEPT_FOR`], in the gateway's [`WebhookCache`]) so that a
//! burst of events costs one call (most apps have no webhook). The CMS API forgets an
//! app's settings when it sets them, so a webhook set through this gateway applies to
//! its next event, one set through another gateway within those 5 seconds.
//!
//! Which events exist and their JSON are in [`events`]. Requests time out after
//! [`WebhookConfig::timeout`], follow no redirects, and at most
//! [`WebhookConfig::concurrency`] are in flight per gateway. On the in-process bus of
//! `palaver up` the same happens in memory: pending retries do not survive a restart.
//!
//! Metrics (admin port): `palaver_gateway_webhook_attempts_total{outcome}`
//! (`delivered`, `retrying`, `failed`), `palaver_gateway_webhook_attempt_duration_seconds`
//! and `palaver_gateway_webhook_backlog` (events not yet delivered or given up, retries
//! waiting included).

pub mod attempts;
pub mod events;
pub mod schedule;
pub mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use palaver_kit::bus::{Delivery, DurableConsumer, EventBus, Journal, Settlement};
use palaver_kit::error::error_chain;
use palaver_kit::shutdown::Shutdown;
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::clients::{Clients, ConversationClient, IdentityClient, call};
use attempts::{AttemptOutcome, WebhookAttempt};
use events::{Payload, WebhookEvent};
pub use schedule::RetrySchedule;

/// How long the worker keeps an app's webhook settings.
pub const WEBHOOK_KEPT_FOR: Duration = Duration::from_secs(5);

/// An app's webhook as identity answers it; `None` when the app is gone.
pub type AppWebhook = Option<pb::Webhook>;

/// The webhook settings of the apps whose events were seen lately.
pub type WebhookCache = palaver_kit::cache::Cache<AppWebhook>;

/// The durable consumer every gateway shares.
const CONSUMER: &str = "webhooks";

/// How long one fetch waits for events before looking at the shutdown again.
const FETCH_WAIT: Duration = Duration::from_secs(2);

/// How often the backlog gauge is refreshed, at most.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// How long the bus waits, beyond the request timeout, before it hands an event held by
/// a gateway that stopped answering to another.
const ACK_MARGIN: Duration = Duration::from_secs(30);

/// How webhooks are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The waits between attempts.
    pub retry: RetrySchedule,
    /// How long one request may take, connecting included.
    pub timeout: Duration,
    /// Requests in flight at once, per gateway.
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            retry: RetrySchedule::default(),
            timeout: Duration::from_secs(10),
            concurrency: 16,
        }
    }
}

/// What sending webhooks takes from the gateway: identity (each app's webhook, the
/// members events name), conversation (a message's conversation), the apps' webhook
/// settings as this gateway keeps them, and the journal of attempts. The CMS API shares
/// the last two: it forgets an app's settings when it sets them, and lists the attempts.
#[derive(Clone)]
pub struct WebhookContext {
    pub identity: IdentityClient,
    pub conversation: ConversationClient,
    pub settings: Arc<WebhookCache>,
    pub attempts: Arc<dyn Journal>,
}

impl WebhookContext {
    /// Opens the journal of attempts on `bus`; no app's settings are kept yet.
    pub async fn open(bus: &dyn EventBus, clients: &Clients) -> anyhow::Result<Self> {
        let attempts = bus
            .journal(attempts::JOURNAL, attempts::KEEP_ATTEMPTS_FOR)
            .await
            .context("opening the journal of webhook attempts")?;
        Ok(WebhookContext {
            identity: clients.identity.clone(),
            conversation: clients.conversation.clone(),
            settings: Arc::new(WebhookCache::new(WEBHOOK_KEPT_FOR)),
            attempts,
        })
    }
}

/// Sends the webhook events of the bus's durable consumer, until shut down.
pub struct WebhookWorker {
    consumer: Box<dyn DurableConsumer>,
    sender: Arc<Sender>,
    concurrency: usize,
}

/// What each attempt needs.
struct Sender {
    context: WebhookContext,
    http: reqwest::Client,
    retry: RetrySchedule,
}

impl WebhookWorker {
    /// Joins the shared consumer (creating it the first time) so that events published
    /// from now on are sent; fails when the bus would drop events before the retry
    /// schedule ends.
    pub async fn open(
        config: &WebhookConfig,
        bus: &dyn EventBus,
        context: WebhookContext,
    ) -> anyhow::Result<Self> {
        let needed = config.retry.span() + config.timeout * config.retry.attempts() as u32;
        anyhow::ensure!(
            needed < bus.retention(),
            "the webhook retry schedule lasts {needed:?}, longer than the event stream keeps events ({:?})",
            bus.retention()
        );
        let consumer = bus
            .durable_consumer(CONSUMER, config.timeout + ACK_MARGIN)
            .await
            .context("opening the webhook consumer")?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Palaver-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("making the webhook HTTP client")?;
        Ok(WebhookWorker {
            consumer,
            sender: Arc::new(Sender {
                context,
                http,
                retry: config.retry.clone(),
            }),
            concurrency: config.concurrency.max(1),
        })
    }

    /// Sends events until `shutdown`, then waits for the attempts in flight (each ends
    /// within the request timeout). Events not fetched yet stay with the bus (those
    /// already on their way to this gateway come back after the acknowledgement wait).
    pub async fn run(mut self, shutdown: Shutdown) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut in_flight = JoinSet::new();
        let mut backlog_read = Instant::now() - BACKLOG_EVERY;
        loop {
            while in_flight.try_join_next().is_some() {}
            let first = tokio::select! {
                () = shutdown.wait() => break,
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore stays open"),
            };
            let free = 1 + slots.available_permits();
            let fetched = tokio::select! {
                () = shutdown.wait() => break,
                fetched = self.consumer.fetch(free, FETCH_WAIT) => fetched,
            };
            let mut first = Some(first);
            match fetched {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        let slot = match first.take() {
                            Some(slot) => slot,
                            None => slots
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("the semaphore stays open"),
                        };
                        let sender = self.sender.clone();
                        in_flight.spawn(async move {
                            sender.attempt(delivery).await;
                            drop(slot);
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "cannot fetch webhook events; trying again");
                    tokio::select! {
                        () = shutdown.wait() => break,
                        () = tokio::time::sleep(FETCH_WAIT) => {}
                    }
                }
            }
            if backlog_read.elapsed() >= BACKLOG_EVERY {
                backlog_read = Instant::now();
                match self.consumer.backlog().await {
                    Ok(backlog) => {
                        metrics::gauge!("palaver_gateway_webhook_backlog").set(backlog as f64)
                    }
                    Err(error) => {
                        tracing::debug!(error = %error_chain(&error), "cannot read the webhook backlog")
                    }
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
    }
}

/// What one attempt came to.
struct Tried {
    url: Option<String>,
    status: Option<u16>,
    error: Option<String>,
}

impl Sender {
    /// One attempt at one event, recorded, then settled with the bus.
    async fn attempt(&self, delivery: Delivery) {
        let started = Instant::now();
        let attempted_at = SystemTime::now();
        let event = match events::decode(&delivery.event) {
            Ok(Some(event)) => event,
            Ok(None) => return self.settle(delivery, Settlement::Ignored).await,
            Err(error) => {
                tracing::error!(%error, "dropping a stored event that cannot be read");
                return self.settle(delivery, Settlement::Ignored).await;
            }
        };
        let tried = match self.webhook(&event.app_id).await {
            // The app is gone, and its events with it.
            Ok(None) => return self.settle(delivery, Settlement::Ignored).await,
            Err(error) => Tried {
                url: None,
                status: None,
                error: Some(format!("the app's webhook could not be read: {error}")),
            },
            Ok(Some(webhook))
                if webhook.url.is_empty()
                    || !webhook.events.iter().any(|e| e == event.kind.name()) =>
            {
                return self.settle(delivery, Settlement::Ignored).await;
            }
            Ok(Some(webhook)) => self.send(&event, webhook).await,
        };
        let delivered = tried
            .status
            .is_some_and(|status| (200..300).contains(&status));
        let (settlement, outcome, next) = if delivered {
            (Settlement::Done, AttemptOutcome::Delivered, None)
        } else if let Some(wait) = self.retry.after_failure(delivery.attempt) {
            let next = SystemTime::now() + wait;
            (
                Settlement::RetryAfter(wait),
                AttemptOutcome::Retrying,
                Some(next),
            )
        } else {
            (Settlement::GiveUp, AttemptOutcome::Failed, None)
        };
        let duration = started.elapsed();
        metrics::counter!("palaver_gateway_webhook_attempts_total", "outcome" => outcome_label(outcome))
            .increment(1);
        metrics::histogram!("palaver_gateway_webhook_attempt_duration_seconds")
            .record(duration.as_secs_f64());
        tracing::info!(
            event_id = %event.event_id,
            event_type = event.kind.name(),
            attempt = delivery.attempt,
            status = tried.status,
            error = tried.error.as_deref(),
            outcome = outcome_label(outcome),
            "webhook attempt"
        );
        let record = WebhookAttempt {
            event_id: event.event_id.clone(),
            event_type: event.kind.name().to_owned(),
            url: tried.url,
            attempt: delivery.attempt,
            status: tried.status,
            error: tried.error,
            duration_ms: duration.as_millis().try_into().unwrap_or(u64::MAX),
            attempted_at: rfc3339(attempted_at),
            outcome,
            next_attempt_at: next.map(rfc3339),
        };
        // The attempt is settled even when it cannot be recorded: the record is for
        // people, the settlement is what keeps the event.
        if let Err(error) =
            attempts::record(self.context.attempts.as_ref(), &event.app_id, &record).await
        {
            tracing::error!(error = %error_chain(&error), event_id = %event.event_id, "cannot record a webhook attempt");
        }
        self.settle(delivery, settlement).await;
    }

    /// The app's webhook, as the gateway keeps it ([`WebhookContext::settings`]) or
    /// else read from identity; `None` when the app is gone.
    async fn webhook(&self, app_id: &str) -> Result<AppWebhook, Error> {
        let mut identity = self.context.identity.clone();
        let request = pb::GetWebhookRequest {
            app_id: app_id.to_owned(),
        };
        let fetch = || async move {
            match call(identity.get_webhook(request)).await {
                Ok(webhook) => Ok(Some(webhook)),
                Err(error) if error.code == ErrorCode::NotFound => Ok(None),
                Err(error) => Err(error),
            }
        };
        self.context.settings.get(app_id, fetch).await
    }

    /// POSTs the event to the app's webhook URL, signed with its secret.
    async fn send(&self, event: &WebhookEvent, webhook: pb::Webhook) -> Tried {
        let failed = |error: String| Tried {
            url: Some(webhook.url.clone()),
            status: None,
            error: Some(error),
        };
        let data = match event.data(&self.context).await {
            Ok(data) => data,
            Err(error) => return failed(format!("the event could not be completed: {error}")),
        };
        let body = serde_json::to_vec(&Payload {
            kind: event.kind.name(),
            timestamp: event
                .at
                .map_or_else(|| rfc3339(SystemTime::now()), |at| at.to_string()),
            data: &data,
        })
        .expect("a payload serializes");
        let sent_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        let signature = match signature::sign(&webhook.secret, &event.event_id, sent_at, &body) {
            Ok(signature) => signature,
            Err(error) => return failed(format!("the webhook secret is unusable: {error}")),
        };
        let response = self
            .http
            .post(&webhook.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &event.event_id)
            .header("webhook-timestamp", sent_at.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) => Tried {
                url: Some(webhook.url.clone()),
                status: Some(response.status().as_u16()),
                error: None,
            },
            Err(error) => failed(request_error(&error)),
        }
    }

    async fn settle(&self, delivery: Delivery, settlement: Settlement) {
        if let Err(error) = delivery.settle(settlement).await {
            // Unsettled, the bus hands the event out again.
            tracing::warn!(error = %error_chain(&error), "cannot settle a webhook event");
        }
    }
}

/// Why a request got no answer, in words for the attempt log.
fn request_error(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "no answer within the timeout"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    format!("{what}: {}", error_chain(error))
}

fn outcome_label(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::Retrying => "retrying",
        AttemptOutcome::Failed => "failed",
    }
}

fn rfc3339(at: SystemTime) -> String {
    prost_types::Timestamp::from(at).to_string()
}
