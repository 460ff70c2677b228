//! One socket that said hello: its state, and the loop that reads the client's frames
//! and the bus events meant for it, and writes what they start, until the socket ends.
//! What each frame and event does is in the `conversations`, `presence` and `events`
//! parts; every one of them answers a [`Step`], what the loop does next.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::SplitStream;
use palaver_kit::bus::{Event, MemberKind, Subject};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::conversation::v1 as conv;
use palaver_proto::presence::v1 as presence;
use rangemap::RangeInclusiveSet;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::frames::{ClientFrame, ServerFrame, You};
use super::hello::{Party, SocketKind};
use super::writer::{Closed, Closing, Outgoing};
use crate::clients::call;
use crate::domain::limits::Limits;
use crate::domain::status::Status;
use crate::http::extract::visitor_caller;
use crate::realtime::fanout::{Outbox, SocketId};
use crate::realtime::sockets::OpenSocket;
use crate::state::AppState;

/// What the session's loop does next, after a client frame, a bus event or a timer.
pub enum Step {
    /// Reads on.
    Continue,
    /// Tells the client that its frame did nothing, and why (an `error` frame, with the
    /// frame's `ref` where it has one), then reads on.
    Reply(Error),
    /// Ends the session, closing the socket as [`Closing`] says.
    Close(Closing),
}

/// A frame was written, or the connection is gone.
impl From<Result<(), Closed>> for Step {
    fn from(written: Result<(), Closed>) -> Self {
        match written {
            Ok(()) => Step::Continue,
            Err(Closed) => Step::Close(Closing::Quietly),
        }
    }
}

/// A frame's work was done, or it failed and the client is told why.
impl From<Result<(), Error>> for Step {
    fn from(done: Result<(), Error>) -> Self {
        match done {
            Ok(()) => Step::Continue,
            Err(error) => Step::Reply(error),
        }
    }
}

/// One socket that said hello.
pub struct Session {
    pub(super) state: AppState,
    id: SocketId,
    kind: SocketKind,
    /// How the conversation service knows the caller (a watcher never calls it): the
    /// app, and the visitor or member of the token (a watcher has none).
    pub(super) caller: conv::Caller,
    /// When the socket closes because its token expired; a watcher's never does.
    expires: Option<Instant>,
    /// The language of presence frames' `status_text`.
    pub(super) lang: String,
    pub(super) limits: Limits,
    pub(super) out: Outgoing,
    outbox: Outbox,
    /// The subjects this socket watches.
    subjects: HashSet<String>,
    /// The conversations this socket may see, by id.
    pub(super) conversations: HashSet<String>,
    /// The sequence numbers delivered, per conversation: as ranges, which merge as
    /// messages arrive in order, so a socket open for days stays small.
    pub(super) delivered: HashMap<String, RangeInclusiveSet<u64>>,
    /// The newest presence revision sent, per member.
    pub(super) revisions: HashMap<String, u64>,
    /// The operator's presence device.
    pub(super) device: Option<presence::Device>,
    /// True while a ping is unanswered.
    awaiting_pong: bool,
    /// Tells the session when the gateway shuts down; the drain waits while it is held.
    open: OpenSocket,
}

impl Session {
    /// The session of `party`, admitted with its app's `limits`.
    pub fn new(
        state: AppState,
        party: Party,
        limits: Limits,
        out: Outgoing,
        outbox: Outbox,
        open: OpenSocket,
    ) -> Self {
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
            open,
        }
    }

    /// What the socket is.
    pub(super) fn kind(&self) -> SocketKind {
        self.kind
    }

    pub(super) fn is_operator(&self) -> bool {
        self.kind == SocketKind::Operator
    }

    pub(super) fn app(&self) -> &str {
        &self.caller.app_id
    }

    /// The member or visitor id of the token (a watcher's is empty).
    pub(super) fn subject(&self) -> &str {
        match &self.caller.who {
            Some(conv::caller::Who::VisitorId(id) | conv::caller::Who::MemberId(id)) => id,
            None => "",
        }
    }

    /// Welcomes the socket as `you`, serves it until it ends, and closes it. What the
    /// socket does now and then (starting, a frame, an event, closing) is boxed while
    /// it runs, so the future an idle socket keeps is only its waiting state.
    pub async fn serve(
        mut self,
        you: You,
        stream: &mut SplitStream<WebSocket>,
        events: mpsc::Receiver<Arc<Event>>,
    ) {
        let closing = match Box::pin(self.start(you)).await {
            Ok(()) => self.run(stream, events).await,
            Err(error) => {
                let _ = self.out.send(&ServerFrame::of_error(&error, None)).await;
                Closing::Quietly
            }
        };
        Box::pin(self.close(closing)).await;
    }

    /// An operator comes online as a new device and hears of new chats; then welcome.
    async fn start(&mut self, you: You) -> Result<(), Error> {
        if self.is_operator() {
            let member = self.subject().to_owned();
            self.watch(Subject::member(self.app(), &member, MemberKind::Inbox))
                .await?;
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
    /// device at once.
    async fn close(&mut self, closing: Closing) {
        self.out.close(closing).await;
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
    /// the socket closes, falls behind, stops answering pings or its token expires, or
    /// the gateway shuts down; answers how to close the socket.
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        mut events: mpsc::Receiver<Arc<Event>>,
    ) -> Closing {
        let slow = self.out.slow().clone();
        let ping_every = self.state.ws_ping_every();
        let ping = tokio::time::sleep(ping_every);
        let expired = tokio::time::sleep_until(self.expires.unwrap_or_else(Instant::now));
        tokio::pin!(ping, expired);
        loop {
            let step = tokio::select! {
                () = self.open.closing() => Step::Close(Closing::GoingAway),
                () = slow.raised() => Step::Close(Closing::Quietly),
                flushed = self.out.flush(), if self.out.is_unflushed() => flushed.into(),
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => Box::pin(self.on_text(text.as_str())).await,
                    Some(Ok(Message::Binary(_))) => {
                        Step::Reply(Error::invalid("frame", "frames are JSON text"))
                    }
                    Some(Ok(Message::Pong(_))) => {
                        self.awaiting_pong = false;
                        Step::Continue
                    }
                    Some(Ok(Message::Ping(_))) => Step::Continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => Step::Close(Closing::Quietly),
                },
                Some(event) = events.recv() => Box::pin(self.on_event(&event)).await,
                () = &mut ping => {
                    ping.as_mut().reset(Instant::now() + ping_every);
                    self.ping().await
                }
                () = &mut expired, if self.expires.is_some() => {
                    let error = Error::new(ErrorCode::TokenExpired, "the token expired; reconnect");
                    let _ = self.out.send(&ServerFrame::of_error(&error, None)).await;
                    Step::Close(Closing::Quietly)
                }
            };
            let step = match step {
                Step::Reply(error) => self.reply(&error, None).await,
                step => step,
            };
            if let Step::Close(closing) = step {
                return closing;
            }
        }
    }

    /// Tells the client why a frame did nothing.
    async fn reply(&mut self, error: &Error, reference: Option<String>) -> Step {
        self.out
            .send(&ServerFrame::of_error(error, reference))
            .await
            .into()
    }

    /// Pings the client, unless it has not answered the last ping: then it is dropped.
    async fn ping(&mut self) -> Step {
        if self.awaiting_pong {
            return Step::Close(Closing::Quietly);
        }
        self.awaiting_pong = true;
        self.out
            .write(Message::Ping(Bytes::from_static(b"palaver")))
            .await
            .into()
    }

    async fn on_text(&mut self, text: &str) -> Step {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(error) => {
                return Step::Reply(Error::invalid(
                    "frame",
                    format!("not a client frame: {error}"),
                ));
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
            Step::Reply(error) => self.reply(&error, reference).await,
            step => step,
        }
    }

    /// Carries out one client frame.
    async fn on_frame(&mut self, frame: ClientFrame) -> Step {
        let watches = matches!(frame, ClientFrame::Ping | ClientFrame::PresenceWatch { .. });
        if self.kind == SocketKind::Watcher && !watches {
            return Step::Reply(Error::new(
                ErrorCode::Unauthenticated,
                format!(
                    "{} needs a visitor session: say hello with a token",
                    frame.kind()
                ),
            ));
        }
        match frame {
            ClientFrame::Hello { .. } => {
                Step::Reply(Error::invalid("type", "hello was already said"))
            }
            ClientFrame::Ping => self.out.send(&ServerFrame::Pong).await.into(),
            ClientFrame::PresenceWatch { endpoints } => self.watch_presence(endpoints).await,
            ClientFrame::PresenceSet { status } => self.presence_set(&status).await,
            ClientFrame::ConversationOpen { endpoint } => self.open(endpoint).await,
            ClientFrame::MessageSend {
                conversation,
                client_id,
                text,
            } => self.send_message(conversation, client_id, text).await,
            ClientFrame::Typing { conversation } => self.typing(conversation).await.into(),
            ClientFrame::Read { conversation, seq } => self.read(conversation, seq).await.into(),
            ClientFrame::Resume {
                conversation,
                after_seq,
            } => self.resume(conversation, after_seq).await,
        }
    }

    /// Makes the bus events of `subject` reach this socket.
    pub(super) async fn watch(&mut self, subject: Subject) -> Result<(), Error> {
        let subject = subject.to_string();
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
