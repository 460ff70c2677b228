//! The log of webhook attempts: one record per attempt, kept per app in the bus's
//! journal `webhook_attempts` for [`KEEP_ATTEMPTS_FOR`], read newest first by
//! `GET /v1/cms/webhook/deliveries`.

use std::time::Duration;

use bytes::Bytes;
use palaver_kit::bus::{BusError, Journal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The journal of attempts.
pub const JOURNAL: &str = "webhook_attempts";

/// How long an attempt stays listed.
pub const KEEP_ATTEMPTS_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// What an attempt left the event in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The receiver answered 2xx: the event is not sent again.
    Delivered,
    /// It failed and is tried again at `next_attempt_at`.
    Retrying,
    /// It failed and was the last attempt: the event is given up.
    Failed,
}

/// One attempt to deliver a webhook event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttempt {
    /// The event's id: its `webhook-id`, the same on every attempt.
    pub event_id: String,
    /// The event's type, e.g. `message.created`.
    pub event_type: String,
    /// Where it was sent; null when the app's webhook could not be read.
    pub url: Option<String>,
    /// 1 for the first attempt.
    pub attempt: u64,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed, when the receiver did not answer (or the event could not
    /// be made).
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub duration_ms: u64,
    #[schema(format = DateTime)]
    pub attempted_at: String,
    pub outcome: AttemptOutcome,
    /// When it is tried again (`retrying` only).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
}

/// Stores `attempt` under its app.
pub async fn record(
    journal: &dyn Journal,
    app_id: &str,
    attempt: &WebhookAttempt,
) -> Result<(), BusError> {
    let record = serde_json::to_vec(attempt).expect("an attempt serializes");
    journal.append(app_id, Bytes::from(record)).await
}
