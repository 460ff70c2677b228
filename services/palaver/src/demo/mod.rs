//! The demo site of `palaver up`: a small website that plays the CMS of DESIGN.md
//! through the gateway's public CMS API over HTTP, with the demo app's API secret, as a
//! real CMS plugin would. It shows a newcomer the whole story: sign in as a demo user,
//! acquire a permission token through the consent flow on My Account, enable chat on
//! the profile, see the chat box on the public profile and beside the contact form,
//! answer in the console, and watch the webhook events arrive.
//!
//! - `cms` is the client of the CMS API.
//! - `state` is what the site remembers (a JSON file in the data directory).
//! - `pages` holds the pages and their forms; `webhooks` the webhook receiver and the
//!   page listing what it received; `html` the layout, escaping and page headers.
//!
//! Who is signed in is kept server-side by session id (a `SameSite=Lax` cookie); every
//! form carries a CSRF token derived from the session id with the site's own key.

mod cms;
mod html;
mod pages;
mod state;
mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::header::{COOKIE, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use palaver_kit::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpListener;
use url::Url;

use crate::demo::cms::Cms;
use crate::demo::html::Chrome;
use crate::demo::state::Store;

/// The demo app's id and secrets, shown once by the API and so kept in the data
/// directory (`demo-app.json`).
#[derive(Serialize, Deserialize, Clone)]
pub struct DemoApp {
    pub app_id: String,
    pub api_secret: String,
    pub identity_key: String,
    pub identity_key_id: String,
}

/// A person of the demo site.
pub struct DemoUser {
    pub external_id: &'static str,
    pub display_name: &'static str,
    pub bio: &'static str,
}

/// The site owner's external id.
pub const OWNER: &str = "owner";

/// The demo users: the site owner and two members.
pub const USERS: [DemoUser; 3] = [
    DemoUser {
        external_id: OWNER,
        display_name: "Olivia Owner",
        bio: "Runs this site. Ask her anything about it: her chat box is on the Contact page.",
    },
    DemoUser {
        external_id: "sam",
        display_name: "Sam Member",
        bio: "Writes about bicycles and bread. Happy to chat about either.",
    },
    DemoUser {
        external_id: "rita",
        display_name: "Rita Reader",
        bio: "Reads everything, comments on most of it.",
    },
];

/// The demo user with this external id.
pub fn user(external_id: &str) -> Option<&'static DemoUser> {
    USERS.iter().find(|user| user.external_id == external_id)
}

/// Where the consent flow sends members back to (one of the app's return URLs).
pub const CONSENT_RETURN_PATH: &str = "account/consent";
/// The privacy page (the app's privacy-policy URL).
pub const PRIVACY_PATH: &str = "privacy";
/// The webhook receiver.
pub const WEBHOOK_PATH: &str = "webhooks";

/// The session cookie (named apart from anything the gateway sets: browsers share
/// cookies between ports of one host).
const SESSION_COOKIE: &str = "palaver_demo_session";
/// The length of a session id.
const SESSION_CHARS: usize = 32;
/// How long a visitor identity assertion is valid for (DESIGN.md allows 24 h).
const ASSERTION_SECONDS: i64 = 12 * 3600;

/// What every page handler shares.
pub struct Site {
    /// The demo site's own base URL (ends with `/`).
    base: Url,
    /// The gateway's public base URL (ends with `/`).
    gateway: Url,
    app: DemoApp,
    cms: Cms,
    store: Store,
    csp: HeaderValue,
}

impl Site {
    /// An absolute URL of this site.
    fn link(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// The CSRF token of a session: an HMAC of its id, so nothing more is stored.
    async fn csrf_token(&self, session: &str) -> String {
        let mac = self.csrf_mac(session).await;
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    async fn csrf_mac(&self, session: &str) -> Hmac<Sha256> {
        let key = self.store.read(|saved| saved.csrf_key.clone()).await;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
        mac.update(session.as_bytes());
        mac
    }

    /// Whether `token` is the session's CSRF token (compared in constant time).
    async fn csrf_matches(&self, session: &str, token: &str) -> bool {
        let Ok(token) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        self.csrf_mac(session).await.verify_slice(&token).is_ok()
    }

    /// A visitor identity assertion for `visitor` (DESIGN.md "Identity assertion"):
    /// HS256 with the app's identity key, naming the key.
    fn assertion(&self, visitor: &DemoUser) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            sub: &'a str,
            name: &'a str,
            aud: &'a str,
            iat: i64,
            exp: i64,
        }
        let now = state::now();
        let header = jsonwebtoken::Header {
            kid: Some(self.app.identity_key_id.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        };
        let claims = Claims {
            sub: visitor.external_id,
            name: visitor.display_name,
            aud: &self.app.app_id,
            iat: now,
            exp: now + ASSERTION_SECONDS,
        };
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.app.identity_key.as_bytes()),
        )
        .context("signing a visitor identity assertion")
    }
}

/// The browser's session, set by [`sessions`].
#[derive(Clone)]
struct Session {
    id: String,
    fresh: bool,
}

/// Who is looking, and the CSRF token their forms carry.
pub struct Visit {
    session: String,
    viewer: Option<&'static DemoUser>,
    csrf: String,
}

impl Visit {
    fn chrome<'a>(&'a self, site: &'a Site) -> Chrome<'a> {
        Chrome {
            csp: &site.csp,
            viewer: self.viewer,
            csrf: &self.csrf,
        }
    }
}

impl FromRequestParts<Arc<Site>> for Visit {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, site: &Arc<Site>) -> Result<Self, StatusCode> {
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        let viewer = site
            .store
            .read(|saved| {
                saved
                    .sessions
                    .get(&session.id)
                    .and_then(|signed_in| user(&signed_in.external_id))
            })
            .await;
        Ok(Visit {
            csrf: site.csrf_token(&session.id).await,
            session: session.id,
            viewer,
        })
    }
}

/// Gives every browser a session id (a new one when its cookie is missing or not one
/// of ours), for the handlers to read from the request's extensions.
async fn sessions(mut request: Request, next: Next) -> Response {
    let existing = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|id| id.len() == SESSION_CHARS && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    let session = match existing {
        Some(id) => Session { id, fresh: false },
        None => Session {
            id: new_session_id(),
            fresh: true,
        },
    };
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    let replaced = response.extensions().get::<Session>().is_some();
    if session.fresh && !replaced {
        response
            .headers_mut()
            .append(SET_COOKIE, session_cookie(&session.id));
    }
    response
}

fn new_session_id() -> String {
    palaver_kit::random::random_string(SESSION_CHARS)
}

/// The cookie that carries a session id: not readable by scripts, not sent along with
/// cross-site POSTs.
fn session_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"
    ))
    .expect("a session id is ASCII letters and digits")
}

/// The demo site, bound and ready to run.
pub struct DemoSite {
    listener: TcpListener,
    site: Arc<Site>,
}

impl DemoSite {
    /// The site on `listener` (already bound: its address is in the demo app's origins
    /// and return URLs), calling the API at `gateway` as `app`, remembering what it
    /// must in `state_file`.
    pub async fn build(
        listener: TcpListener,
        base: Url,
        gateway: Url,
        app: DemoApp,
        state_file: PathBuf,
    ) -> anyhow::Result<Self> {
        let csp = HeaderValue::from_str(&html::content_security_policy(&gateway))
            .context("the gateway's URL does not fit in a CSP header")?;
        let site = Site {
            cms: Cms::new(&gateway, app.api_secret.clone()),
            store: Store::open(state_file).await?,
            base,
            gateway,
            app,
            csp,
        };
        Ok(DemoSite {
            listener,
            site: Arc::new(site),
        })
    }

    /// The site's base URL.
    pub fn url(&self) -> &Url {
        &self.site.base
    }

    /// Through the API, makes the demo users members (when they are not yet) and points
    /// the app's webhook at this site, keeping its signing secret. The gateway must be
    /// serving.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        for user in &USERS {
            self.site
                .cms
                .ensure_member(user.external_id, user.display_name)
                .await
                .with_context(|| format!("making the demo member {}", user.external_id))?;
        }
        let secret = self
            .site
            .cms
            .set_webhook(&self.site.link(WEBHOOK_PATH))
            .await
            .context("setting the demo app's webhook")?;
        self.site
            .store
            .update(|saved| saved.webhook_secret = Some(secret))
            .await?;
        Ok(())
    }

    /// A fresh one-time console login link for the site owner.
    pub async fn owner_login_link(&self) -> anyhow::Result<String> {
        self.site
            .cms
            .login_link(OWNER)
            .await
            .context("making the site owner's console login link")
    }

    /// Serves until `shutdown` triggers.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let router = pages::router()
            .merge(webhooks::router())
            .layer(axum::middleware::from_fn(sessions))
            .with_state(self.site);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
            .context("the demo site's HTTP server")
    }
}
