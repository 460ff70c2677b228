//! The route of the WebSocket, and a socket's life from the upgrade to the close: the
//! hello, then the session.

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::HeaderMap;
use palaver_kit::Error;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::hello::hello;
use super::session::Session;
use super::writer::{Closing, Outgoing};
use crate::http::cors::request_origin;
use crate::http::error::ApiError;
use crate::realtime::fanout::Outbox;
use crate::state::AppState;

/// The largest frame or message a client may send: a message's 4,000 characters and
/// their JSON with room to spare.
const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Small socket buffers: many idle sockets per process. The read buffer is allocated
/// up front and kept for the socket's life; a larger frame grows it as it arrives.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The WebSocket route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(websocket))
}

/// The WebSocket (JSON text frames; see DESIGN.md, "WebSocket protocol"). The first
/// frame is `{"type":"hello","token":…}` with a visitor session token or an operator
/// access token. Additions to DESIGN.md's protocol:
///
/// - **Watch-only hello** `{"type":"hello","app_id":…}` without a token, from a page of
///   one of the app's origins (or the gateway's own widget frame): the welcome's `you`
///   is `{"kind":"watcher","app_id":…,"verified":false}`, and the socket may send only
///   `presence.watch` (endpoints of that app) and `ping`; any other frame is answered
///   with `error{code:"unauthenticated"}`. A widget shows live presence this way and
///   starts a visitor session only when someone chats. Without an allowed `Origin`,
///   the hello is refused with `origin_not_allowed`; an unknown app with `not_found`.
/// - **`lang`** on either hello (`en`, `de`, `fr`, `es`, `ru`; others read English):
///   the language of `status_text` in this socket's `presence` frames.
/// - **Token expiry**: when the hello's token runs out, the socket is sent
///   `error{code:"token_expired"}` and closed; reconnect with a fresh token and `resume`.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "realtime",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "Not a WebSocket upgrade request (`invalid_argument`).",
            body = crate::http::error::ProblemSchema, content_type = "application/problem+json"),
    )
)]
async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::from(Error::invalid(
                "upgrade",
                format!("GET /v1/ws is a WebSocket: {}", rejection.body_text()),
            ))
            .into_response();
        }
    };
    let origin = request_origin(&headers).map(str::to_owned);
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(state, socket, origin))
}

/// Serves one socket until it closes, or until the gateway shuts down: then it is
/// closed with 1001 ("going away"), and the drain waits until it is.
async fn serve(state: AppState, socket: WebSocket, origin: Option<String>) {
    let open = state.sockets().open();
    metrics::gauge!("palaver_gateway_ws_connections").increment(1.0);
    let (sink, mut stream) = socket.split();
    let (outbox, events, slow) = Outbox::new(state.ws_send_queue());
    let mut out = Outgoing::new(sink, slow);
    // Boxed while it runs, as the session boxes what it does now and then.
    let admitted = tokio::select! {
        admitted = Box::pin(hello(&state, &mut stream, &mut out, origin)) => {
            admitted.ok_or(Closing::Quietly)
        }
        () = open.closing() => Err(Closing::GoingAway),
    };
    match admitted {
        Ok((party, limits)) => {
            let you = party.you();
            Session::new(state, party, limits, out, outbox, open)
                .serve(you, &mut stream, events)
                .await;
        }
        Err(closing) => Box::pin(out.close(closing)).await,
    }
    metrics::gauge!("palaver_gateway_ws_connections").decrement(1.0);
}
