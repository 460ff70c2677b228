//! The public HTTP API: one router per area, merged into one with the middleware every
//! answer goes through.
//!
//! | area | module | credential |
//! | --- | --- | --- |
//! | admin API | `admin` | admin token |
//! | CMS API | `cms`, `consent`, `conversations` | API secret |
//! | member API | `me`, `conversations` | permission token; operator access token for `/v1/me/tokens` and the console's conversation routes (which also read with a permission token) |
//! | operator sign-in | `operators` | a login link's token or a personal access token |
//! | visitors (browser-facing) | `visitors`, `presence` | none (a visitor session token for offline messages): the app's origins, rate limits |
//! | WebSocket | `ws` | a visitor session token or an operator access token in `hello` |
//! | discovery | `discovery` | none |
//! | pages: widget, console | `pages` | none (the console signs in through the API) |
//! | the consent page | `consent_page` | the consent request in its link; a CSRF cookie |
//!
//! Routes are registered through `utoipa-axum`, so each one is in the OpenAPI document
//! by construction (`GET /v1/openapi.json`). Every error, including unknown paths,
//! wrong methods, malformed bodies and wrong content types, is problem+json (`error`);
//! `extract` holds the extractors that make it so, `cors` the origin rules and
//! `observe` tracing, metrics and security headers.

mod admin;
mod cms;
mod consent;
mod consent_page;
mod conversations;
mod cors;
mod discovery;
mod error;
mod extract;
mod me;
pub(crate) mod model;
mod observe;
mod operators;
mod pages;
mod presence;
mod visitors;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::middleware::{from_fn, from_fn_with_state};
use palaver_kit::error::PROBLEM_JSON;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, ServerBuilder};
use utoipa_axum::router::OpenApiRouter;

use crate::http::discovery::OpenApiDocument;
use crate::http::error::ProblemSchema;
use crate::state::AppState;

/// The document's own parts; the routes add their paths and schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Palaver",
        description = "Website chat and presence. Errors are `application/problem+json` (RFC 9457) with a stable `code` member, except on the OAuth token endpoint, which answers RFC 6749 errors.",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later"),
    ),
    components(schemas(ProblemSchema)),
    tags(
        (name = "admin", description = "Apps (`Authorization: Bearer <admin token>`)."),
        (name = "cms", description = "Members, login links, webhook, keys (`Authorization: Bearer <API secret>`; server to server)."),
        (name = "consent", description = "The consent flow, permission tokens (OAuth 2.0 with PKCE) and permissions."),
        (name = "member", description = "The member's own API (`Authorization: Bearer <permission token>`; its conversation routes also take an operator access token)."),
        (name = "operator", description = "Operator sign-in and personal access tokens."),
        (name = "visitor", description = "Web visitors, from the app's pages only."),
        (name = "realtime", description = "The WebSocket of the widget, the console and the CLI (JSON frames; see the protocol in DESIGN.md). Visitors connect from the app's pages; operators from the console or a native client."),
        (name = "discovery", description = "Public keys and this document."),
        (name = "webhooks", description = "What Palaver POSTs to the app's webhook URL (see `webhooks`)."),
    ),
)]
struct ApiDoc;

/// The public router, with `state`.
pub fn router(state: AppState) -> Router {
    let (router, openapi) = routes(&state);
    let document = OpenApiDocument(Arc::from(
        finish(openapi, &state).to_json().unwrap_or_default(),
    ));
    let router = router.fallback(error::no_route);
    observe::with_security_headers(router)
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(observe::span)
                        .on_response(observe::on_response),
                )
                .layer(from_fn(observe::metrics))
                .layer(DefaultBodyLimit::max(state.max_body_bytes()))
                .layer(Extension(document)),
        )
        .with_state(state)
}

/// Every route and its documentation. A group's origin rules wrap whole paths (`layer`,
/// not `route_layer`), so they also see the methods a path does not take, preflights
/// among them; the 405 answer is set before the rules wrap it, so it stays behind them.
fn routes(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut openapi = ApiDoc::openapi();
    let mut group = |routes: OpenApiRouter<AppState>| {
        let (router, documented) = routes.split_for_parts();
        openapi.merge(documented);
        router.method_not_allowed_fallback(error::method_not_allowed)
    };
    let server_to_server = group(
        admin::routes()
            .merge(cms::routes())
            .merge(consent::routes())
            .merge(conversations::routes())
            .merge(me::routes())
            .merge(operators::routes()),
    )
    .layer(from_fn_with_state(state.clone(), cors::server_to_server));
    let browser = group(visitors::routes().merge(presence::routes())).layer(from_fn(cors::browser));
    let public = group(discovery::routes().merge(ws::routes()));
    let pages = pages::routes()
        .merge(consent_page::routes())
        .method_not_allowed_fallback(error::method_not_allowed);
    (
        server_to_server.merge(browser).merge(public).merge(pages),
        openapi,
    )
}

/// What the routes cannot say about themselves: the server, the security schemes, and
/// that any operation may answer an error as problem+json.
fn finish(mut openapi: utoipa::openapi::OpenApi, state: &AppState) -> utoipa::openapi::OpenApi {
    crate::webhooks::events::document(&mut openapi);
    openapi.servers = Some(vec![
        ServerBuilder::new().url(state.public_link("", &[])).build(),
    ]);
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    let components = openapi.components.get_or_insert_default();
    components.add_security_scheme(
        "admin_token",
        bearer("The deployment's admin token (`PALAVER_ADMIN_TOKEN`)."),
    );
    components.add_security_scheme(
        "api_secret",
        bearer(
            "The app's API secret (`psk_…`), shown when the app was created or the secret rotated.",
        ),
    );
    components.add_security_scheme(
        "permission_token",
        bearer("A member's permission token, from the token endpoint."),
    );
    components.add_security_scheme(
        "operator_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An operator access token, from `POST /v1/operator-sessions`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "client_basic",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some("OAuth client credentials: the app id as user name, the API secret as password (token endpoint only)."))
                .build(),
        ),
    );
    let problem = ResponseBuilder::new()
        .description("An error: problem+json with a stable `code`.")
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation
                .responses
                .responses
                .entry("default".to_owned())
                .or_insert_with(|| problem.clone().into());
        }
    }
    openapi
}
