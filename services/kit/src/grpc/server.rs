//! The server side: [`serve`] runs a tonic server with the gRPC health-checking service,
//! the server trace layer, HTTP/2 keep-alive and graceful shutdown.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use super::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::shutdown::Shutdown;
use crate::telemetry::GrpcServerTraceLayer;

/// Serves `routes` and the gRPC health-checking service on `listener` until `shutdown`
/// triggers, then drains: the health of `""` and of every name in `health_services` turns
/// `NOT_SERVING`, no new connection is accepted, and the future resolves once the calls
/// in flight have finished (bound that wait with [`crate::shutdown::drain`]; a health
/// `Watch` stream stays open until its client leaves).
///
/// Each call runs in a `grpc.server` span continuing the caller's trace.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    health_services: &[&str],
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let local_addr = listener
        .local_addr()
        .context("cannot read the gRPC listener's address")?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let mut names = vec![String::new()];
    for name in health_services {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
        names.push((*name).to_owned());
    }
    let draining = async move {
        shutdown.wait().await;
        for name in &names {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        tracing::info!(%local_addr, "gRPC server draining");
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tracing::info!(%local_addr, "gRPC server listening");
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(GrpcServerTraceLayer)
        .add_routes(routes.add_service(health_service))
        .serve_with_incoming_shutdown(incoming, draining)
        .await
        .with_context(|| format!("gRPC server on {local_addr} failed"))?;
    tracing::info!(%local_addr, "gRPC server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt as _;
    use tonic::transport::Endpoint;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Status_;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    #[tokio::test]
    async fn serve_reports_health_and_stops_gracefully() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(
            listener,
            Routes::default(),
            &["palaver.test.v1.Thing"],
            shutdown.clone(),
        ));

        let channel = Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let status = |service: &str| HealthCheckRequest {
            service: service.to_owned(),
        };
        for service in ["", "palaver.test.v1.Thing"] {
            let response = client.check(status(service)).await.unwrap().into_inner();
            assert_eq!(response.status(), Status_::Serving, "{service:?}");
        }
        let unknown = client
            .check(status("palaver.test.v1.Other"))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);

        let mut watch = client.watch(status("")).await.unwrap().into_inner();
        assert_eq!(
            watch.next().await.unwrap().unwrap().status(),
            Status_::Serving
        );
        assert!(!server.is_finished());
        shutdown.trigger();
        assert_eq!(
            watch.next().await.unwrap().unwrap().status(),
            Status_::NotServing
        );
        drop(watch);
        drop(client);

        let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
        stopped
            .expect("the server stops once its clients are gone")
            .unwrap()
            .unwrap();
        let refused = Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await;
        assert!(refused.is_err(), "the listener is closed");
    }
}
