//! The writing side of a socket. A frame goes into the WebSocket's write buffer, which
//! the session's loop flushes while it goes on reading, so frames leave in order and a
//! socket needs no task of its own to write; a frame waits only while the buffer (the
//! upgrade's `WRITE_BUFFER_BYTES`) is full and the client takes nothing. Once the
//! socket is flagged a slow consumer, nothing is written but the `slow_consumer` error.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::SinkExt;
use futures::stream::SplitSink;
use palaver_kit::ErrorCode;

use super::frames::ServerFrame;
use crate::realtime::fanout::SlowFlag;

/// How long a closing socket gets to take its last frames (a slow consumer its
/// `slow_consumer` error) before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The connection ended (the client left, was dropped, or fell behind).
pub struct Closed;

/// How the gateway closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// With an empty close frame: the client left, was dropped, fell behind or stopped
    /// answering, or was told why in an `error` frame.
    Quietly,
    /// With 1001, "going away": the gateway is shutting down; the client reconnects (to
    /// another gateway) and resumes.
    GoingAway,
}

/// The writing side of a socket.
pub struct Outgoing {
    sink: SplitSink<WebSocket, Message>,
    slow: Arc<SlowFlag>,
    /// Frames were written since the buffer was last flushed.
    unflushed: bool,
}

impl Outgoing {
    /// Writes into `sink`; nothing but the `slow_consumer` error once `slow` is raised.
    pub fn new(sink: SplitSink<WebSocket, Message>, slow: Arc<SlowFlag>) -> Self {
        Outgoing {
            sink,
            slow,
            unflushed: false,
        }
    }

    /// The flag raised when the socket falls behind.
    pub fn slow(&self) -> &Arc<SlowFlag> {
        &self.slow
    }

    /// Whether frames were written since the buffer was last flushed.
    pub fn is_unflushed(&self) -> bool {
        self.unflushed
    }

    /// Writes a frame.
    pub async fn send(&mut self, frame: &ServerFrame) -> Result<(), Closed> {
        self.write(Message::text(frame.to_json())).await
    }

    /// Writes a WebSocket message.
    pub async fn write(&mut self, message: Message) -> Result<(), Closed> {
        self.unflushed = true;
        tokio::select! {
            biased;
            () = self.slow.raised() => Err(Closed),
            written = self.sink.feed(message) => written.map_err(|_| Closed),
        }
    }

    /// Sends what was written.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        let flushed = self.sink.flush().await;
        self.unflushed = false;
        flushed.map_err(|_| Closed)
    }

    /// Sends what is left, tells a slow consumer why, and closes as `closing` says; a
    /// client that takes none of it is cut after [`CLOSE_GRACE`].
    pub async fn close(&mut self, closing: Closing) {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if self.slow.is_raised() {
                let frame = ServerFrame::error(
                    ErrorCode::SlowConsumer.as_str(),
                    "the connection fell behind; reconnect and resume",
                    None,
                );
                self.sink.feed(Message::text(frame.to_json())).await?;
            }
            if closing == Closing::GoingAway {
                let frame = CloseFrame {
                    code: close_code::AWAY,
                    reason: "the server is shutting down; reconnect".into(),
                };
                self.sink.feed(Message::Close(Some(frame))).await?;
            }
            self.sink.close().await
        })
        .await;
    }
}
