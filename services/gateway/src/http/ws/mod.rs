//! `GET /v1/ws`: the WebSocket of the widget, the console and the CLI (DESIGN.md,
//! "WebSocket protocol").
//!
//! A connection is one task: the session reads client frames, calls the services, turns
//! bus events into frames and writes them, in order, into the socket's write buffer,
//! which it flushes while it goes on reading. An idle connection costs little memory:
//! small socket buffers, and the work a frame or an event starts is allocated only while
//! it runs. Bus events reach the session through the process-wide fan-out
//! ([`crate::realtime::fanout`]) and a bounded queue; when the queue is full the session
//! sends `error{code:"slow_consumer"}` and closes, and the client catches up with
//! `resume`. Each socket delivers a message once (by sequence number per conversation),
//! whether it came live or from `resume`. The server pings every
//! `PALAVER_WS_PING_SECONDS`; a client that has not answered by the next ping is
//! dropped. When the token of the hello expires (past the verifier's leeway, so that a
//! hello with it again is refused too), the session sends `error{code:"token_expired"}`
//! and closes; the client says hello again with a fresh token and resumes.
//! When the gateway shuts down, every socket, said hello or not, is closed with 1001
//! ("going away") and an operator's device leaves presence at once; the drain waits
//! for them.
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
//! Tracing: each client frame but `ping` is handled in a `ws.receive` span (a new
//! trace, which the calls it makes carry on), and each bus event is turned into frames
//! in a `ws.deliver` span parented on the trace the event carries
//! ([`palaver_kit::bus::Event::parent_context`]), so a message is one trace from the
//! sender's socket to the receiver's.
//!
//! The parts: `upgrade` is the route and a socket's life from the upgrade to the close;
//! `writer` its writing side; `hello` the first frame and who may say it; `session` the
//! loop of a socket that said hello, which carries out the frames of `conversations`
//! and `presence` and turns bus `events` into frames; `frames` are the JSON frames.

mod conversations;
mod events;
mod frames;
mod hello;
mod presence;
mod session;
mod upgrade;
mod writer;

pub use upgrade::routes;
