//! The demo site's webhook receiver, as a CMS would have one: `POST /webhooks` checks
//! the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) with the secret the API gave when the webhook was set, and keeps
//! what verified; `GET /webhooks` lists it, newest first.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::demo::html::esc;
use crate::demo::state::{self, ReceivedWebhook};
use crate::demo::{Site, Visit, WEBHOOK_PATH};

pub fn router() -> Router<Arc<Site>> {
    Router::new().route(&format!("/{WEBHOOK_PATH}"), get(list).post(receive))
}

/// The Standard Webhooks payload.
#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    data: serde_json::Value,
}

/// 204 and kept when the signature verifies (once per `webhook-id`: retries are not
/// kept twice); 401 and nothing kept when it does not; 400 for a signed body that is not
/// a webhook payload.
async fn receive(State(site): State<Arc<Site>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Some(secret) = site.store.read(|saved| saved.webhook_secret.clone()).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no webhook secret yet\n").into_response();
    };
    if id.is_empty() {
        return (StatusCode::UNAUTHORIZED, "webhook-id is missing\n").into_response();
    }
    if let Err(error) = palaver_gateway::webhooks::signature::verify(
        &secret,
        &id,
        &timestamp,
        &signature,
        &body,
        state::now(),
    ) {
        tracing::warn!(%error, webhook_id = %id, "refused a webhook delivery");
        return (StatusCode::UNAUTHORIZED, format!("{error}\n")).into_response();
    }
    let payload: Payload = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a webhook payload {{\"type\",\"timestamp\",\"data\"}}: {e}\n"),
            )
                .into_response();
        }
    };
    let received = ReceivedWebhook {
        id,
        event_type: payload.event_type,
        timestamp: payload.timestamp,
        data: payload.data,
    };
    let kept = site
        .store
        .update(|saved| {
            if !saved.webhooks.iter().any(|w| w.id == received.id) {
                saved.webhooks.insert(0, received);
            }
        })
        .await;
    match kept {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            // Not acknowledged, so the gateway delivers it again.
            tracing::error!(
                error = format!("{error:#}"),
                "could not keep a webhook event"
            );
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn list(State(site): State<Arc<Site>>, visit: Visit) -> Response {
    let received = site.store.read(|saved| saved.webhooks.clone()).await;
    let mut content = format!(
        r#"<p>Palaver POSTs events to <code>{url}</code>, signed as in Standard Webhooks. Only deliveries whose signature verified are listed, newest first; a wrong signature is refused with 401.</p>"#,
        url = esc(&site.link(WEBHOOK_PATH)),
    );
    if received.is_empty() {
        content.push_str(r#"<p id="no-webhooks">Nothing yet. Start a chat, or leave a message for a member who is offline, and reload this page.</p>"#);
    } else {
        content.push_str(r#"<ol class="webhooks" id="webhooks">"#);
        for webhook in &received {
            let data = serde_json::to_string_pretty(&webhook.data).unwrap_or_default();
            content.push_str(&format!(
                r#"<li class="webhook" data-type="{kind}" data-id="{id}">
<strong class="type">{kind}</strong>
<div class="meta"><code>{id}</code> · {timestamp} · <span class="verified">signature verified</span></div>
<pre>{data}</pre>
</li>"#,
                kind = esc(&webhook.event_type),
                id = esc(&webhook.id),
                timestamp = esc(&webhook.timestamp),
                data = esc(&data),
            ));
        }
        content.push_str("</ol>");
    }
    visit.page(&site, "Webhooks", &content)
}
