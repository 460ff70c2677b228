//! The demo site's client of the gateway's public CMS API, over HTTP with the demo app's
//! API secret, exactly as a CMS plugin would call it: nothing here reaches into a
//! service directly.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

/// Every webhook event there is; the demo site listens to all of them.
pub const WEBHOOK_EVENTS: [&str; 5] = [
    "conversation.started",
    "message.created",
    "message.offline",
    "conversation.closed",
    "member.permission_changed",
];

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// The API answered with an error: its status, `code` (or OAuth `error`) and detail.
    #[error("the Palaver API answered {status} {code}: {detail}")]
    Api {
        status: StatusCode,
        code: String,
        detail: String,
    },
    #[error("the Palaver API could not be reached or answered nonsense: {0}")]
    Transport(#[from] reqwest::Error),
}

impl CmsError {
    /// The problem `code` or OAuth `error` of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            CmsError::Api { code, .. } => Some(code),
            CmsError::Transport(_) => None,
        }
    }
}

/// A member's permission, as `GET /v1/cms/members/{id}/permission` answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct Permission {
    /// `none`, `valid`, `expired` or `revoked`.
    pub status: String,
    pub expires_at: Option<String>,
    pub endpoint: Option<String>,
}

impl Permission {
    pub fn is_valid(&self) -> bool {
        self.status == "valid"
    }
}

/// What the token endpoint gives.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

#[derive(Deserialize)]
struct Link {
    url: String,
}

#[derive(Deserialize)]
struct ConsentRequest {
    consent_url: String,
}

#[derive(Deserialize)]
struct Webhook {
    secret: Option<String>,
}

/// The CMS API at one gateway, as one app.
pub struct Cms {
    http: reqwest::Client,
    /// The gateway's base URL, without the final `/`.
    base: String,
    api_secret: String,
}

impl Cms {
    pub fn new(base: &Url, api_secret: String) -> Self {
        Cms {
            http: reqwest::Client::new(),
            base: base.as_str().trim_end_matches('/').to_owned(),
            api_secret,
        }
    }

    /// A request to `path` (which starts with `/v1/cms/`).
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.api_secret)
    }

    /// Makes the member unless they exist already.
    pub async fn ensure_member(
        &self,
        external_id: &str,
        display_name: &str,
    ) -> Result<(), CmsError> {
        let response = self
            .request(Method::POST, "/v1/cms/members")
            .json(&json!({"external_id": external_id, "display_name": display_name}))
            .send()
            .await?;
        if response.status() == StatusCode::CONFLICT {
            return Ok(());
        }
        let _: Value = answer(response).await?;
        Ok(())
    }

    pub async fn permission(&self, external_id: &str) -> Result<Permission, CmsError> {
        let path = format!("/v1/cms/members/{}/permission", segment(external_id));
        answer(self.request(Method::GET, &path).send().await?).await
    }

    pub async fn revoke(&self, external_id: &str) -> Result<Permission, CmsError> {
        let path = format!("/v1/cms/members/{}/permission", segment(external_id));
        answer(self.request(Method::DELETE, &path).send().await?).await
    }

    /// Asks the member for consent: the page to send them to.
    pub async fn consent_url(
        &self,
        external_id: &str,
        return_url: &str,
        state: &str,
        code_challenge: &str,
    ) -> Result<String, CmsError> {
        let path = format!("/v1/cms/members/{}/consent-requests", segment(external_id));
        let response = self
            .request(Method::POST, &path)
            .json(&json!({
                "return_url": return_url,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }))
            .send()
            .await?;
        let request: ConsentRequest = answer(response).await?;
        Ok(request.consent_url)
    }

    /// The token endpoint, with a form as RFC 6749 has it.
    pub async fn token(&self, form: &[(&str, &str)]) -> Result<Tokens, CmsError> {
        let response = self
            .request(Method::POST, "/v1/cms/oauth/token")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(serde_urlencoded::to_string(form).unwrap_or_default())
            .send()
            .await?;
        answer(response).await
    }

    /// A one-time console login link for the member.
    pub async fn login_link(&self, external_id: &str) -> Result<String, CmsError> {
        let path = format!("/v1/cms/members/{}/login-links", segment(external_id));
        let link: Link = answer(self.request(Method::POST, &path).send().await?).await?;
        Ok(link.url)
    }

    /// Points the app's webhook at `url` for every event: the signing secret.
    pub async fn set_webhook(&self, url: &str) -> Result<String, CmsError> {
        let response = self
            .request(Method::PUT, "/v1/cms/webhook")
            .json(&json!({"url": url, "events": WEBHOOK_EVENTS}))
            .send()
            .await?;
        let webhook: Webhook = answer(response).await?;
        webhook.secret.ok_or_else(|| CmsError::Api {
            status: StatusCode::OK,
            code: "no_secret".to_owned(),
            detail: "the webhook came back without a signing secret".to_owned(),
        })
    }
}

/// An external id as one path segment.
fn segment(external_id: &str) -> String {
    url::form_urlencoded::byte_serialize(external_id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The body of a successful answer, or the error the API explained (problem+json's
/// `code` and `detail`, or OAuth's `error` and `error_description`).
async fn answer<T: DeserializeOwned>(response: Response) -> Result<T, CmsError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response.json().await?);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let text = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|key| body[*key].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Err(CmsError::Api {
        status,
        code: text(["code", "error"]),
        detail: text(["detail", "error_description"]),
    })
}
