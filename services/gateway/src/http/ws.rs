//! `GET /v1/ws`: the WebSocket of the widget, the console and the CLI (DESIGN.md,
//! "WebSocket protocol").
//!
//! A connection is one task: the session reads client frames, calls the services, turns
//! bus events into frames and writes them, in order, into the socket's write buffer,
//! which it flushes while it goes on reading. An idle connection costs little memory:
//! small socket buffers, and the work a frame or an event starts is allocated only while
//! it runs. Bus events reach the session through the process-wide fan-out
//! ([`crate::realtime::fanout`]) and a bounded queue; when the queue is full the session sends
//! `error{code:"slow_consumer"}` and closes, and the client catches up with `resume`.
//! Each socket delivers a message once (by sequence number per conversation), whether it
//! came live or from `resume`. The server pings every `PALAVER_WS_PING_SECONDS`; a client
//! that has not answered by the next ping is dropped. When the token of the hello
//! expires (past the verifier's leeway, so that a hello with it again is refused too),
//! the session sends `error{code:"token_expired"}` and closes; the client says hello
//! again with a fresh token and resumes.
//!
//! The first frame is `hello` with a visitor session token or an operator access token,
//! verified locally, or, for a page that only shows presence (the widget before anyone
//! chats), with the app's id and no token: a watcher, which may only `presence.watch`.
//! A visitor's or a watcher's socket must come from one of its app's origins or the
//! gateway's own (the widget's frame page); a socket without `Origin` is for operators
//! only. An operator's socket is one presence device of the member
//! ([`crate::realtime::devices`]): `online` at hello, `presence.set` changes it, and it
//! disconnects when the socket closes.
//!
//! Tracing: each client frame but `ping` is handled in a `ws.receive` span (a new trace, which the
//! calls it makes carry on), and each bus event is turned into frames in a `ws.deliver`
//! span parented on the trace the event carries ([`Event::parent_context`]), so a
//! message is one trace from the sender's socket to the receiver's.

mod frames;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use opentelemetry::trace::TraceContextExt as _;
use palaver_kit::bus::Event;
use palaver_kit::tokens::{Claims, TokenKind};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::events::v1 as events;
use palaver_proto::identity::v1 as idpb;
use palaver_proto::presence::v1 as presence;
use prost::Message as _;
use rangemap::RangeInclusiveSet;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clients::call;
use crate::domain::limits::Limits;
use crate::domain::origins;
use crate::domain::status::{Status, StatusText};
use crate::http::cors::request_origin;
use crate::http::error::ApiError;
use crate::http::extract::visitor_caller;
use crate::http::model::{overrides, sender_name, state_name, status_of, timestamp};
use crate::realtime::fanout::{Outbox, SlowFlag, SocketId};
use crate::state::AppState;
use crate::subjects::{self, ConversationSubject, Topic};
use frames::{ClientFrame, ServerFrame, VisitorFrame, You};

/// The largest frame or message a client may send: a message's 4,000 characters and
/// their JSON with room to spare.
const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Small socket buffers: many idle sockets per process. The read buffer is allocated
/// up front and kept for the socket's life; a larger frame grows it as it arrives.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// How long a new socket has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket gets to take its last frames (a slow consumer its
/// `slow_consumer` error) before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The most endpoints one `presence.watch` may name.
const MAX_WATCHED_ENDPOINTS: usize = 100;
/// Messages per `ListMessages` page while resuming.
const RESUME_PAGE: u32 = 200;

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
            body = super::error::ProblemSchema, content_type = "application/problem+json"),
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

/// The connection ended (the client left, was dropped, or fell behind).
struct Closed;

/// Serves one socket until it closes.
async fn serve(state: AppState, socket: WebSocket, origin: Option<String>) {
    metrics::gauge!("palaver_gateway_ws_connections").increment(1.0);
    let (sink, mut stream) = socket.split();
    let (outbox, events, slow) = Outbox::new(state.ws_send_queue());
    let mut out = Outgoing {
        sink,
        slow,
        unflushed: false,
    };
    // What a socket does now and then (hello, a frame, an event, closing) is boxed while
    // it runs, so the future an idle socket keeps is only its waiting state.
    match Box::pin(hello(&state, &mut stream, &mut out, origin)).await {
        Some((party, limits)) => {
            let you = party.you();
            let mut session = Session::new(state, party, limits, out, outbox);
            match Box::pin(session.start(you)).await {
                Ok(()) => session.run(&mut stream, events).await,
                Err(error) => {
                    let _ = session.out.send(&error_frame(&error, None)).await;
                }
            }
            Box::pin(session.close()).await;
        }
        None => Box::pin(out.close()).await,
    }
    metrics::gauge!("palaver_gateway_ws_connections").decrement(1.0);
}

/// The writing side of a socket. A frame goes into the WebSocket's write buffer, which
/// the session's loop flushes while it goes on reading, so frames leave in order and a
/// socket needs no task of its own to write; a frame waits only while the buffer is
/// full ([`WRITE_BUFFER_BYTES`]) and the client takes nothing. Once the socket is
/// flagged a slow consumer, nothing is written but the `slow_consumer` error.
struct Outgoing {
    sink: SplitSink<WebSocket, Message>,
    slow: Arc<SlowFlag>,
    /// Frames were written since the buffer was last flushed.
    unflushed: bool,
}

impl Outgoing {
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Closed> {
        self.write(Message::text(frame.to_json())).await
    }

    async fn write(&mut self, message: Message) -> Result<(), Closed> {
        self.unflushed = true;
        tokio::select! {
            biased;
            () = self.slow.raised() => Err(Closed),
            written = self.sink.feed(message) => written.map_err(|_| Closed),
        }
    }

    /// Sends what was written.
    async fn flush(&mut self) -> Result<(), Closed> {
        let flushed = self.sink.flush().await;
        self.unflushed = false;
        flushed.map_err(|_| Closed)
    }

    /// Sends what is left, tells a slow consumer why, and closes; a client that takes
    /// none of it is cut after [`CLOSE_GRACE`].
    async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if self.slow.is_raised() {
                let frame = ServerFrame::error(
                    ErrorCode::SlowConsumer.as_str(),
                    "the connection fell behind; reconnect and resume",
                    None,
                );
                self.sink.feed(Message::text(frame.to_json())).await?;
            }
            self.sink.close().await
        })
        .await;
    }
}

/// What a socket is, by its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocketKind {
    Visitor,
    Operator,
    /// A page watching presence, without a token.
    Watcher,
}

impl SocketKind {
    fn as_str(self) -> &'static str {
        match self {
            SocketKind::Visitor => "visitor",
            SocketKind::Operator => "operator",
            SocketKind::Watcher => "watcher",
        }
    }
}

/// Who said hello.
struct Party {
    kind: SocketKind,
    app: String,
    /// The token's claims; a watcher has none.
    claims: Option<Claims>,
    /// The language of presence frames' `status_text`.
    lang: String,
}

impl Party {
    /// Who the welcome says the socket belongs to.
    fn you(&self) -> You {
        You {
            kind: self.kind.as_str(),
            app_id: self.app.clone(),
            id: self.claims.as_ref().map(|claims| claims.sub.clone()),
            display_name: self.claims.as_ref().map(|claims| claims.name.clone()),
            verified: self.claims.as_ref().is_some_and(|claims| claims.verified),
        }
    }
}

/// Reads the first frame: who says hello, or why the socket is refused (`None`: it
/// closed without a word).
async fn read_hello(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
) -> Option<Result<Party, Error>> {
    let first = match tokio::time::timeout(HELLO_TIMEOUT, next_text(stream)).await {
        Ok(Some(Ok(text))) => text,
        Ok(Some(Err(error))) => return Some(Err(error)),
        Ok(None) => return None,
        Err(_) => {
            return Some(Err(Error::new(
                ErrorCode::Unauthenticated,
                "no hello in time",
            )));
        }
    };
    let Ok(ClientFrame::Hello {
        token,
        app_id,
        lang,
    }) = serde_json::from_str::<ClientFrame>(&first)
    else {
        return Some(Err(Error::invalid(
            "type",
            "the first frame must be {\"type\":\"hello\",\"token\":…}, or {\"type\":\"hello\",\"app_id\":…} to only watch presence",
        )));
    };
    let lang = lang.unwrap_or_default();
    Some(match (token, app_id) {
        (Some(token), None) => state.verifier().verify(&token).await.map(|claims| Party {
            kind: match claims.kind {
                TokenKind::Visitor => SocketKind::Visitor,
                TokenKind::Operator => SocketKind::Operator,
            },
            app: claims.app.clone(),
            claims: Some(claims),
            lang,
        }),
        (None, Some(app)) => Ok(Party {
            kind: SocketKind::Watcher,
            app,
            claims: None,
            lang,
        }),
        _ => Err(Error::invalid(
            "hello",
            "give either a token, or an app_id to only watch presence",
        )),
    })
}

/// Waits for `hello`, checks the token and the origin; who said it and the app's
/// limits, or `None` when the socket is refused (it was told why).
async fn hello(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
    out: &mut Outgoing,
    origin: Option<String>,
) -> Option<(Party, Limits)> {
    let admitted = match read_hello(state, stream).await? {
        Ok(party) => admit(state, party, origin.as_deref()).await,
        Err(error) => Err(error),
    };
    match admitted {
        Ok(admitted) => Some(admitted),
        Err(error) => {
            let _ = out.send(&error_frame(&error, None)).await;
            None
        }
    }
}

/// Checks that the party's app exists and allows the socket's origin; answers the
/// app's limits.
async fn admit(
    state: &AppState,
    party: Party,
    origin: Option<&str>,
) -> Result<(Party, Limits), Error> {
    let app = call(state.identity().get_app(idpb::GetAppRequest {
        app_id: party.app.clone(),
    }))
    .await?;
    check_origin(state, party.kind, origin, &app.origins)?;
    let limits = state.limits_for(&overrides(app.limits));
    Ok((party, limits))
}

/// A visitor's or a watcher's socket comes from one of the app's origins or the
/// gateway's own (the widget's frame page); an operator's from none (a native client),
/// the gateway's own (the console) or one of the app's.
fn check_origin(
    state: &AppState,
    kind: SocketKind,
    origin: Option<&str>,
    allowed: &[String],
) -> Result<(), Error> {
    let ok = match origin {
        None => kind == SocketKind::Operator,
        Some(origin) => origins::canonical(origin)
            .is_some_and(|o| o == state.public_origin() || origins::is_allowed(&o, allowed)),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::OriginNotAllowed,
            match origin {
                None => format!(
                    "a {}'s WebSocket must come from one of the app's web pages",
                    kind.as_str()
                ),
                Some(origin) => format!("the origin {origin} is not one of the app's origins"),
            },
        ))
    }
}

/// The next text frame; `None` when the socket closed. Binary frames are refused.
async fn next_text(stream: &mut SplitStream<WebSocket>) -> Option<Result<String, Error>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(Ok(text.as_str().to_owned())),
            Ok(Message::Binary(_)) => {
                return Some(Err(Error::invalid("frame", "frames are JSON text")));
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

/// When the socket of a token whose `exp` is `exp` (Unix seconds) closes, on this
/// process's clock: once a new hello with the token would be refused.
fn expiry(exp: i64) -> Option<Instant> {
    let at = UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::try_from(exp).ok()?))?
        // The verifier's leeway, and a second more: it compares whole seconds.
        .checked_add(Duration::from_secs(palaver_kit::tokens::LEEWAY_SECONDS + 1))?;
    Instant::now().checked_add(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn error_frame(error: &Error, reference: Option<String>) -> ServerFrame {
    ServerFrame::error(error.code.as_str(), error.message.clone(), reference)
}

/// One socket that said hello.
struct Session {
    state: AppState,
    id: SocketId,
    kind: SocketKind,
    /// How the conversation service knows the caller (a watcher never calls it): the
    /// app, and the visitor or member of the token (a watcher has none).
    caller: conv::Caller,
    /// When the socket closes because its token expired; a watcher's never does.
    expires: Option<Instant>,
    /// The language of presence frames' `status_text`.
    lang: String,
    limits: Limits,
    out: Outgoing,
    outbox: Outbox,
    /// The subjects this socket watches.
    subjects: HashSet<String>,
    /// The conversations this socket may see, by id.
    conversations: HashSet<String>,
    /// The sequence numbers delivered, per conversation: as ranges, which merge as
    /// messages arrive in order, so a socket open for days stays small.
    delivered: HashMap<String, RangeInclusiveSet<u64>>,
    /// The newest presence revision sent, per member.
    revisions: HashMap<String, u64>,
    /// The operator's presence device.
    device: Option<presence::Device>,
    /// True while a ping is unanswered.
    awaiting_pong: bool,
}

impl Session {
    fn new(state: AppState, party: Party, limits: Limits, out: Outgoing, outbox: Outbox) -> Self {
        let caller = match (&party.claims, party.kind) {
            (Some(claims), SocketKind::Visitor) => visitor_caller(claims),
            (Some(claims), _) => conv::Caller {
                app_id: claims.app.clone(),
                who: Some(conv::caller::Who::MemberId(claims.sub.clone())),
                display_name: claims.name.clone(),
                ..conv::Caller::default()
            },
            (None, _) => conv::Caller {
                app_id: party.app,
                ..conv::Caller::default()
            },
        };
        Session {
            id: state.next_socket_id(),
            state,
            kind: party.kind,
            caller,
            expires: party.claims.and_then(|claims| expiry(claims.exp)),
            lang: party.lang,
            limits,
            out,
            outbox,
            subjects: HashSet::new(),
            conversations: HashSet::new(),
            delivered: HashMap::new(),
            revisions: HashMap::new(),
            device: None,
            awaiting_pong: false,
        }
    }

    fn is_operator(&self) -> bool {
        self.kind == SocketKind::Operator
    }

    fn app(&self) -> &str {
        &self.caller.app_id
    }

    /// The member or visitor id of the token (a watcher's is empty).
    fn subject(&self) -> &str {
        match &self.caller.who {
            Some(conv::caller::Who::VisitorId(id) | conv::caller::Who::MemberId(id)) => id,
            None => "",
        }
    }

    /// An operator comes online as a new device and hears of new chats; then welcome.
    async fn start(&mut self, you: You) -> Result<(), Error> {
        if self.is_operator() {
            let member = self.subject().to_owned();
            self.watch(subjects::inbox(self.app(), &member)).await?;
            let device = presence::Device {
                app_id: self.app().to_owned(),
                member_id: member,
                device_id: format!("ws-{:016x}-{}", self.state.process_token(), self.id),
            };
            self.device = Some(device.clone());
            self.set_status(Status::Online).await?;
        }
        self.out
            .send(&ServerFrame::Welcome { you })
            .await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "the connection closed"))
    }

    /// Closes the socket, leaves every subject and, for an operator, disconnects the
    /// device.
    async fn close(&mut self) {
        self.out.close().await;
        let subjects: Vec<String> = self.subjects.drain().collect();
        self.state.fanout().leave(subjects, self.id).await;
        if let Some(device) = self.device.take() {
            self.state.devices().remove(&device);
            let disconnected = call(self.state.presence().disconnect(
                presence::DisconnectRequest {
                    device: Some(device),
                },
            ))
            .await;
            if let Err(error) = disconnected {
                tracing::warn!(%error, "cannot disconnect an operator device");
            }
        }
    }

    /// Reads the client's frames and the bus events, and writes what they start, until
    /// the socket closes, falls behind, stops answering pings or its token expires.
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        mut events: mpsc::Receiver<Arc<Event>>,
    ) {
        let slow = self.out.slow.clone();
        let ping_every = self.state.ws_ping_every();
        let ping = tokio::time::sleep(ping_every);
        let expired = tokio::time::sleep_until(self.expires.unwrap_or_else(Instant::now));
        tokio::pin!(ping, expired);
        loop {
            let step = tokio::select! {
                () = slow.raised() => Err(Closed),
                flushed = self.out.flush(), if self.out.unflushed => flushed,
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => Box::pin(self.on_text(text.as_str())).await,
                    Some(Ok(Message::Binary(_))) => {
                        let error = Error::invalid("frame", "frames are JSON text");
                        self.out.send(&error_frame(&error, None)).await
                    }
                    Some(Ok(Message::Pong(_))) => {
                        self.awaiting_pong = false;
                        Ok(())
                    }
                    Some(Ok(Message::Ping(_))) => Ok(()),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => Err(Closed),
                },
                Some(event) = events.recv() => {
                    let span = deliver_span(&event, self.kind);
                    Box::pin(self.on_event(&event).instrument(span)).await
                }
                () = &mut ping => {
                    ping.as_mut().reset(Instant::now() + ping_every);
                    self.ping().await
                }
                () = &mut expired, if self.expires.is_some() => {
                    let error = Error::new(ErrorCode::TokenExpired, "the token expired; reconnect");
                    self.out.send(&error_frame(&error, None)).await.and(Err(Closed))
                }
            };
            if step.is_err() {
                return;
            }
        }
    }

    async fn ping(&mut self) -> Result<(), Closed> {
        if self.awaiting_pong {
            return Err(Closed);
        }
        self.awaiting_pong = true;
        self.out
            .write(Message::Ping(Bytes::from_static(b"palaver")))
            .await
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Closed> {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(error) => {
                let error = Error::invalid("frame", format!("not a client frame: {error}"));
                return self.out.send(&error_frame(&error, None)).await;
            }
        };
        let reference = match &frame {
            ClientFrame::MessageSend { client_id, .. } => Some(client_id.clone()),
            ClientFrame::Typing { conversation }
            | ClientFrame::Read { conversation, .. }
            | ClientFrame::Resume { conversation, .. } => Some(conversation.clone()),
            ClientFrame::ConversationOpen { endpoint } => Some(endpoint.clone()),
            _ => None,
        };
        // A client's keep-alive pings would bury the real traces.
        let span = if frame == ClientFrame::Ping {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "ws.receive",
                otel.name = format!("ws {}", frame.kind()),
                otel.kind = "server",
                ws.frame = frame.kind(),
            )
        };
        match self.on_frame(frame).instrument(span).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => self.out.send(&error_frame(&error, reference)).await,
            Err(Closed) => Err(Closed),
        }
    }

    /// Carries out one client frame: `Err` when the connection is gone, `Ok(Err)` for
    /// an error the client is told of.
    async fn on_frame(&mut self, frame: ClientFrame) -> Result<Result<(), Error>, Closed> {
        let watches = matches!(frame, ClientFrame::Ping | ClientFrame::PresenceWatch { .. });
        if self.kind == SocketKind::Watcher && !watches {
            return Ok(Err(Error::new(
                ErrorCode::Unauthenticated,
                format!(
                    "{} needs a visitor session: say hello with a token",
                    frame.kind()
                ),
            )));
        }
        match frame {
            ClientFrame::Hello { .. } => Ok(Err(Error::invalid("type", "hello was already said"))),
            ClientFrame::Ping => self.out.send(&ServerFrame::Pong).await.map(Ok),
            ClientFrame::PresenceWatch { endpoints } => self.watch_presence(endpoints).await,
            ClientFrame::PresenceSet { status } => {
                if !self.is_operator() {
                    return Ok(Err(operators_only("presence.set")));
                }
                match status.parse::<Status>() {
                    Ok(status) => Ok(self.set_status(status).await),
                    Err(error) => Ok(Err(Error::invalid("status", error.to_string()))),
                }
            }
            ClientFrame::ConversationOpen { endpoint } => self.open(endpoint).await,
            ClientFrame::MessageSend {
                conversation,
                client_id,
                text,
            } => self.send_message(conversation, client_id, text).await,
            ClientFrame::Typing { conversation } => Ok(self.typing(conversation).await),
            ClientFrame::Read { conversation, seq } => Ok(self.read(conversation, seq).await),
            ClientFrame::Resume {
                conversation,
                after_seq,
            } => self.resume(conversation, after_seq).await,
        }
    }

    async fn watch(&mut self, subject: String) -> Result<(), Error> {
        if self.subjects.contains(&subject) {
            return Ok(());
        }
        self.state
            .fanout()
            .watch(&subject, self.id, &self.outbox)
            .await
            .map_err(|error| {
                tracing::warn!(%error, %subject, "cannot subscribe");
                Error::new(ErrorCode::Unavailable, "events are unavailable; try again")
            })?;
        self.subjects.insert(subject);
        Ok(())
    }

    async fn set_status(&mut self, status: Status) -> Result<(), Error> {
        let Some(device) = self.device.clone() else {
            return Err(operators_only("presence.set"));
        };
        call(
            self.state
                .presence()
                .set_status(presence::SetStatusRequest {
                    device: Some(device.clone()),
                    status: presence::Status::from(status).into(),
                }),
        )
        .await?;
        self.state
            .devices()
            .set(&device, presence::Status::from(status));
        Ok(())
    }

    async fn watch_presence(
        &mut self,
        endpoints: Vec<String>,
    ) -> Result<Result<(), Error>, Closed> {
        if endpoints.is_empty() || endpoints.len() > MAX_WATCHED_ENDPOINTS {
            return Ok(Err(Error::invalid(
                "endpoints",
                format!("name 1 to {MAX_WATCHED_ENDPOINTS} chat endpoints"),
            )));
        }
        let resolved = match call(self.state.identity().resolve_endpoints(
            idpb::ResolveEndpointsRequest {
                endpoints: endpoints.clone(),
            },
        ))
        .await
        {
            Ok(resolved) => resolved.endpoints,
            Err(error) => return Ok(Err(error)),
        };
        let open: Vec<idpb::ChatEndpoint> = resolved
            .into_iter()
            .filter(|e| e.open && e.app_id == self.app())
            .collect();
        for endpoint in &endpoints {
            if !open.iter().any(|e| &e.endpoint == endpoint) {
                let error = Error::new(
                    ErrorCode::NotFound,
                    format!("no open chat endpoint {endpoint} in this app"),
                );
                self.out
                    .send(&error_frame(&error, Some(endpoint.clone())))
                    .await?;
            }
        }
        if open.is_empty() {
            return Ok(Ok(()));
        }
        for endpoint in &open {
            let subject = subjects::presence(self.app(), &endpoint.member_id);
            if let Err(error) = self.watch(subject).await {
                return Ok(Err(error));
            }
        }
        let current = call(
            self.state.presence().batch_get(presence::BatchGetRequest {
                app_id: self.app().to_owned(),
                targets: open
                    .iter()
                    .map(|e| presence::Target {
                        target: Some(presence::target::Target::MemberId(e.member_id.clone())),
                    })
                    .collect(),
            }),
        )
        .await;
        match current {
            Ok(current) => {
                for member in current.presences {
                    self.on_presence(member).await?;
                }
                Ok(Ok(()))
            }
            Err(error) => Ok(Err(error)),
        }
    }

    async fn on_presence(&mut self, member: presence::MemberPresence) -> Result<(), Closed> {
        let newest = self.revisions.entry(member.member_id.clone()).or_default();
        if member.revision != 0 && member.revision <= *newest {
            return Ok(());
        }
        *newest = member.revision;
        if member.endpoint.is_empty() {
            return Ok(());
        }
        let status = status_of(member.status()).visible();
        self.out
            .send(&ServerFrame::Presence {
                endpoint: member.endpoint,
                status: status.as_str(),
                status_text: status.text(&self.lang),
                accepts_chats: status.accepts_chats(),
            })
            .await
    }

    async fn open(&mut self, endpoint: String) -> Result<Result<(), Error>, Closed> {
        if self.is_operator() {
            return Ok(Err(Error::new(
                ErrorCode::PermissionDenied,
                "conversation.open is for visitors",
            )));
        }
        let started = call(self.state.conversation().start_conversation(
            conv::StartConversationRequest {
                caller: Some(self.caller.clone()),
                endpoint,
            },
        ))
        .await;
        let conversation = match started {
            Ok(conversation) => conversation,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = self.watch_conversation(&conversation.id).await {
            return Ok(Err(error));
        }
        self.send_conversation(conversation).await.map(Ok)
    }

    async fn send_conversation(&mut self, c: conv::Conversation) -> Result<(), Closed> {
        let visitor = c.visitor.clone().unwrap_or_default();
        self.out
            .send(&ServerFrame::Conversation {
                state: state_name(c.state()),
                id: c.id,
                endpoint: c.endpoint,
                visitor: VisitorFrame {
                    id: visitor.visitor_id,
                    display_name: visitor.display_name,
                    verified: visitor.verified,
                },
            })
            .await
    }

    /// Watches the events of a conversation this socket may see.
    async fn watch_conversation(&mut self, id: &str) -> Result<(), Error> {
        if self.conversations.contains(id) {
            return Ok(());
        }
        for subject in ConversationSubject::ALL {
            self.watch(subjects::conversation(self.app(), id, subject))
                .await?;
        }
        self.conversations.insert(id.to_owned());
        Ok(())
    }

    /// Checks (once) that the caller takes part in the conversation, then watches it.
    async fn join(&mut self, id: &str) -> Result<(), Error> {
        if self.conversations.contains(id) {
            return Ok(());
        }
        call(
            self.state
                .conversation()
                .get_conversation(conv::GetConversationRequest {
                    caller: Some(self.caller.clone()),
                    conversation_id: id.to_owned(),
                }),
        )
        .await?;
        self.watch_conversation(id).await
    }

    async fn send_message(
        &mut self,
        conversation: String,
        client_id: String,
        text: String,
    ) -> Result<Result<(), Error>, Closed> {
        let key = (self.app().to_owned(), self.subject().to_owned());
        if let Err(limited) = self
            .state
            .ws_messages()
            .check(self.limits.message_rate(), &key)
        {
            metrics::counter!("palaver_gateway_rate_limited_total", "limit" => "messages")
                .increment(1);
            return Ok(Err(Error::new(
                ErrorCode::RateLimited,
                format!(
                    "too many messages; try again in {} s",
                    limited.retry_after_seconds()
                ),
            )));
        }
        if let Err(error) = self.join(&conversation).await {
            return Ok(Err(error));
        }
        let sent = call(
            self.state
                .conversation()
                .send_message(conv::SendMessageRequest {
                    caller: Some(self.caller.clone()),
                    conversation_id: conversation,
                    client_id,
                    text,
                }),
        )
        .await;
        match sent {
            Ok(sent) => {
                let message = sent.message.unwrap_or_default();
                self.out
                    .send(&ServerFrame::MessageAck {
                        client_id: message.client_id.clone(),
                        id: message.id.clone(),
                        seq: message.seq,
                    })
                    .await?;
                self.deliver(message).await.map(Ok)
            }
            Err(error) => Ok(Err(error)),
        }
    }

    async fn typing(&mut self, conversation: String) -> Result<(), Error> {
        self.join(&conversation).await?;
        let from = if self.is_operator() {
            conv::Sender::Member
        } else {
            conv::Sender::Visitor
        };
        self.state
            .publisher()
            .typing(self.app(), &conversation, from)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot publish typing");
                Error::new(ErrorCode::Unavailable, "typing could not be sent")
            })
    }

    async fn read(&mut self, conversation: String, seq: u64) -> Result<(), Error> {
        self.join(&conversation).await?;
        call(self.state.conversation().mark_read(conv::MarkReadRequest {
            caller: Some(self.caller.clone()),
            conversation_id: conversation,
            seq,
        }))
        .await?;
        Ok(())
    }

    async fn resume(
        &mut self,
        conversation: String,
        after_seq: u64,
    ) -> Result<Result<(), Error>, Closed> {
        if let Err(error) = self.join(&conversation).await {
            return Ok(Err(error));
        }
        self.catch_up(&conversation, after_seq).await
    }

    /// Delivers every message of a watched conversation after `after_seq` that this
    /// socket did not have yet.
    async fn catch_up(
        &mut self,
        conversation: &str,
        after_seq: u64,
    ) -> Result<Result<(), Error>, Closed> {
        let mut after = after_seq;
        loop {
            let page = call(
                self.state
                    .conversation()
                    .list_messages(conv::ListMessagesRequest {
                        caller: Some(self.caller.clone()),
                        conversation_id: conversation.to_owned(),
                        page: Some(conv::list_messages_request::Page::AfterSeq(after)),
                        limit: RESUME_PAGE,
                    }),
            )
            .await;
            let page = match page {
                Ok(page) => page,
                Err(error) => return Ok(Err(error)),
            };
            let last = page.messages.last().map(|m| m.seq);
            for message in page.messages {
                self.deliver(message).await?;
            }
            match last {
                Some(seq) if page.more => after = seq,
                _ => return Ok(Ok(())),
            }
        }
    }

    /// Sends a message frame unless this socket had it already.
    async fn deliver(&mut self, message: conv::Message) -> Result<(), Closed> {
        let delivered = self
            .delivered
            .entry(message.conversation_id.clone())
            .or_default();
        if delivered.contains(&message.seq) {
            return Ok(());
        }
        delivered.insert(message.seq..=message.seq);
        self.out
            .send(&ServerFrame::Message {
                from: sender_name(message.from()),
                conversation: message.conversation_id,
                seq: message.seq,
                id: message.id,
                client_id: message.client_id,
                text: message.text,
                sent_at: timestamp(message.sent_at),
            })
            .await
    }

    async fn on_event(&mut self, event: &Event) -> Result<(), Closed> {
        let payload = &event.payload[..];
        let Some((_, topic)) = subjects::topic(&event.subject) else {
            return Ok(());
        };
        match topic {
            Topic::Inbox => {
                let Ok(inbox) = events::InboxEvent::decode(payload) else {
                    return Ok(());
                };
                if let Some(events::inbox_event::Kind::ConversationStarted(c)) = inbox.kind {
                    let id = c.id.clone();
                    let new = !self.conversations.contains(&id);
                    if self.watch_conversation(&id).await.is_err() {
                        return Ok(());
                    }
                    self.send_conversation(c).await?;
                    // The first messages may have been published before this socket's
                    // subscription existed: fetched once, and repeats are not delivered.
                    if new && let Err(error) = self.catch_up(&id, 0).await? {
                        tracing::debug!(%error, conversation = %id, "cannot fetch a new conversation's first messages");
                    }
                }
            }
            Topic::Conversation(ConversationSubject::Messages) => {
                let Ok(message) = events::MessageEvent::decode(payload) else {
                    return Ok(());
                };
                if let Some(events::message_event::Kind::Created(m)) = message.kind {
                    return self.deliver(m).await;
                }
            }
            Topic::Conversation(ConversationSubject::State | ConversationSubject::Typing) => {
                let Ok(state) = events::ConversationStateEvent::decode(payload) else {
                    return Ok(());
                };
                return self.on_state(state).await;
            }
            Topic::Presence => {
                let Ok(changed) = events::PresenceChanged::decode(payload) else {
                    return Ok(());
                };
                if let Some(member) = changed.presence {
                    return self.on_presence(member).await;
                }
            }
            Topic::Permission => {}
        }
        Ok(())
    }

    async fn on_state(&mut self, state: events::ConversationStateEvent) -> Result<(), Closed> {
        use events::conversation_state_event::Kind;
        let conversation = state.conversation_id;
        match state.kind {
            Some(Kind::Opened(c) | Kind::Closed(c)) => self.send_conversation(c).await,
            Some(Kind::Read(read)) => {
                self.out
                    .send(&ServerFrame::Read {
                        conversation,
                        seq: read.seq,
                        by: sender_name(read.by()),
                    })
                    .await
            }
            Some(Kind::Typing(typing)) => {
                let own = if self.is_operator() {
                    conv::Sender::Member
                } else {
                    conv::Sender::Visitor
                };
                if typing.from() == own {
                    return Ok(());
                }
                self.out
                    .send(&ServerFrame::Typing {
                        conversation,
                        from: sender_name(typing.from()),
                    })
                    .await
            }
            None => Ok(()),
        }
    }
}

/// The span in which a bus event becomes frames for a socket of `receiver`: a child of
/// the span that published the event, when it carries one.
fn deliver_span(event: &Event, receiver: SocketKind) -> tracing::Span {
    let span = tracing::info_span!(
        "ws.deliver",
        otel.name = format!("deliver {}", event.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %event.subject,
        ws.receiver = receiver.as_str(),
    );
    let parent = event.parent_context();
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

fn operators_only(frame: &str) -> Error {
    Error::new(
        ErrorCode::PermissionDenied,
        format!("{frame} is for operators"),
    )
}
