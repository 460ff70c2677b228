//! The open WebSockets of the process, as shutdown sees them: when the gateway stops,
//! [`Sockets::close_all`] tells every socket to close and waits until the last one has
//! ended (its close frame sent and, for an operator, its presence device gone), so the
//! drain covers them as it covers requests in flight.

use palaver_kit::shutdown::Shutdown;
use tokio::sync::watch;

/// The sockets this process serves.
pub struct Sockets {
    closing: Shutdown,
    /// Each open socket holds a receiver; the sender sees when the last is dropped.
    open: watch::Sender<()>,
}

/// One socket being served: it hears when sockets must close, and the drain waits for
/// it until it is dropped.
pub struct OpenSocket {
    closing: Shutdown,
    _open: watch::Receiver<()>,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            closing: Shutdown::new(),
            open: watch::Sender::new(()),
        }
    }
}

impl Sockets {
    /// Counts a socket in until the answer is dropped.
    pub fn open(&self) -> OpenSocket {
        OpenSocket {
            closing: self.closing.clone(),
            _open: self.open.subscribe(),
        }
    }

    /// Tells every socket (and any opened from now on) to close, and waits until each
    /// has ended.
    pub async fn close_all(&self) {
        self.closing.trigger();
        self.open.closed().await;
    }
}

impl OpenSocket {
    /// Resolves once the sockets must close.
    pub async fn closing(&self) {
        self.closing.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// A guard against hanging, not a timing assertion.
    const GUARD: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn closing_all_waits_until_every_socket_has_ended() {
        let sockets = Sockets::default();
        let ended = Arc::new(AtomicBool::new(false));
        let socket = sockets.open();
        let session = tokio::spawn({
            let ended = ended.clone();
            async move {
                socket.closing().await;
                ended.store(true, Ordering::SeqCst);
                drop(socket);
            }
        });
        tokio::time::timeout(GUARD, sockets.close_all())
            .await
            .expect("the socket ends once told");
        assert!(
            ended.load(Ordering::SeqCst),
            "close_all waited for the socket"
        );
        session.await.unwrap();
    }

    #[tokio::test]
    async fn a_socket_opened_while_closing_is_told_at_once() {
        let sockets = Sockets::default();
        tokio::time::timeout(GUARD, sockets.close_all())
            .await
            .expect("nothing to wait for");
        let late = sockets.open();
        tokio::time::timeout(GUARD, late.closing())
            .await
            .expect("a late socket closes too");
    }
}
