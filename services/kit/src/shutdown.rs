//! Graceful shutdown: one signal feeds every server and long-lived task.
//!
//! A [`Shutdown`] is a cloneable handle; `trigger()` (or SIGTERM/SIGINT through
//! [`shutdown_signal`]) tells every holder to stop taking new work, and [`drain`]
//! bounds how long the process waits for work in flight.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A cloneable stop signal shared by a service's servers and tasks.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(CancellationToken::new())
    }

    /// Tells every holder to stop.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once the shutdown is triggered.
    pub async fn wait(&self) {
        self.0.cancelled().await
    }

    /// A shutdown that triggers with this one, and can also be triggered alone.
    pub fn child(&self) -> Shutdown {
        Shutdown(self.0.child_token())
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Triggers `shutdown` on SIGTERM or SIGINT.
pub fn trigger_on_signal(shutdown: &Shutdown) {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.trigger();
    });
}

/// Awaits `work` (servers finishing in-flight requests, tasks stopping) for at most
/// `timeout` after the shutdown was triggered. Returns `None` when the drain timed out.
pub async fn drain<F: Future>(work: F, timeout: Duration) -> Option<F::Output> {
    match tokio::time::timeout(timeout, work).await {
        Ok(output) => Some(output),
        Err(_) => {
            tracing::warn!(
                timeout_s = timeout.as_secs_f64(),
                "drain timed out; stopping with work in flight"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_every_clone_and_child() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        let child = shutdown.child();
        assert!(!clone.is_triggered());
        shutdown.trigger();
        clone.wait().await;
        child.wait().await;
        assert!(child.is_triggered());
    }

    #[tokio::test]
    async fn drain_is_bounded() {
        assert_eq!(drain(async { 7 }, Duration::from_secs(1)).await, Some(7));
        assert_eq!(
            drain(std::future::pending::<()>(), Duration::from_millis(20)).await,
            None
        );
    }
}
