//! The pages and scripts people see, compiled into the binary: files in `assets/` (in
//! debug builds they are read from disk, so they can be edited live), and the two scripts
//! that `build.rs` assembles from `scripts/` (a change to them takes a rebuild):
//!
//! | path | file | who |
//! | --- | --- | --- |
//! | `/widget.js` | `scripts/widget.js` | the loader a site's page embeds; renders into a shadow root |
//! | `/widget/frame` | `assets/widget/frame.html` | the widget in an iframe, for pages with a strict CSP |
//! | `/console`, `/console/login` | `assets/console/index.html` | the operator console |
//! | `/console/console.js` | `scripts/console.js` | its script |
//! | `/console/{file}` | `assets/console/{file}` | its styles, manifest, service worker, icons |
//! | `/pages.css` | `assets/pages.css` | the styles of the consent page (`consent_page`) |
//!
//! Pages carry a CSP that allows only the gateway's own scripts, styles and connections;
//! the console is never framed, the widget's frame only by its app's origins.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use crate::clients::call;
use crate::domain::origins;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// A script assembled by `build.rs`, with its ETag.
struct Script {
    source: &'static str,
    etag: String,
}

impl Script {
    fn new(source: &'static str) -> Script {
        Script {
            source,
            etag: etag(&Sha256::digest(source)),
        }
    }
}

static WIDGET_JS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!(concat!(env!("OUT_DIR"), "/widget.js"))));

static CONSOLE_JS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!(concat!(env!("OUT_DIR"), "/console.js"))));

/// The type of the scripts.
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Pages of the gateway's own origin: its scripts, styles, images and sockets only.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; media-src 'self' data:; manifest-src 'self'; \
    worker-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How long browsers may keep a file before asking again (they revalidate by ETag).
const FILE_MAX_AGE: &str = "public, max-age=300";

/// The pages' routes (not in the OpenAPI document: they are pages, not API).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/widget.js", get(widget_js))
        .route("/widget/frame", get(widget_frame))
        .route("/console", get(console))
        .route("/console/login", get(console))
        .route("/console/console.js", get(console_js))
        .route("/console/{file}", get(console_file))
        .route("/pages.css", get(pages_css))
        .layer(CompressionLayer::new())
}

async fn widget_js(headers: HeaderMap) -> Response {
    script(&WIDGET_JS, &headers, None)
}

/// Which app's pages may frame the widget.
#[derive(Deserialize)]
struct FrameQuery {
    app: Option<String>,
}

async fn widget_frame(
    State(state): State<AppState>,
    Query(query): Query<FrameQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app_id = query
        .app
        .filter(|app| !app.is_empty())
        .ok_or_else(|| Error::invalid("app", "name the app whose page frames the widget"))?;
    let app = call(state.identity().get_app(pb::GetAppRequest { app_id })).await?;
    let ancestors: Vec<String> = app
        .origins
        .iter()
        .filter_map(|origin| origins::canonical(origin))
        .collect();
    if ancestors.is_empty() {
        return Err(Error::new(
            ErrorCode::OriginNotAllowed,
            "the app has no origins that may frame the widget",
        )
        .into());
    }
    let csp = PAGE_CSP
        .replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
        .replace(
            "frame-ancestors 'none'",
            &format!("frame-ancestors {}", ancestors.join(" ")),
        );
    Ok(file("widget/frame.html", &headers, Some(&csp)))
}

async fn pages_css(headers: HeaderMap) -> Response {
    file("pages.css", &headers, None)
}

async fn console(headers: HeaderMap) -> Response {
    file("console/index.html", &headers, Some(PAGE_CSP))
}

async fn console_js(headers: HeaderMap) -> Response {
    script(&CONSOLE_JS, &headers, Some(PAGE_CSP))
}

async fn console_file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if name == "index.html" {
        return ApiError::from(Error::new(ErrorCode::NotFound, "no such file")).into_response();
    }
    let response = file(&format!("console/{name}"), &headers, Some(PAGE_CSP));
    if name == "sw.js" {
        // The service worker controls the whole console.
        let mut response = response;
        response.headers_mut().insert(
            "service-worker-allowed",
            HeaderValue::from_static("/console"),
        );
        return response;
    }
    response
}

/// The embedded file `path`, with its type, ETag and caching; 304 when the browser has
/// it already; 404 problem+json when there is no such file.
fn file(path: &str, request: &HeaderMap, csp: Option<&str>) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::from(Error::new(ErrorCode::NotFound, "no such file")).into_response();
    };
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    let etag = etag(&file.metadata.sha256_hash());
    answer(file.data, &content_type, &etag, request, csp)
}

/// An assembled script, as [`file`] answers a file.
fn script(script: &Script, request: &HeaderMap, csp: Option<&str>) -> Response {
    let body = Cow::Borrowed(script.source.as_bytes());
    answer(body, JAVASCRIPT, &script.etag, request, csp)
}

/// `body` with its type, ETag and caching; 304 when the browser has it already.
fn answer(
    body: Cow<'static, [u8]>,
    content_type: &str,
    etag: &str,
    request: &HeaderMap,
    csp: Option<&str>,
) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(FILE_MAX_AGE));
    if let Some(csp) = csp.and_then(|csp| HeaderValue::from_str(csp).ok()) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    (headers, body.into_owned()).into_response()
}

/// The ETag of a body whose SHA-256 is `hash`.
fn etag(hash: &[u8]) -> String {
    let hex: String = hash
        .iter()
        .take(12)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("\"{hex}\"")
}
