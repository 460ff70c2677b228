//! The deadline of a channel's calls ([`BalanceOptions::call_timeout`](super::BalanceOptions::call_timeout)).

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::HeaderValue;
use tower::{BoxError, Service};

/// A channel's call deadline: each call carries it to the server as `grpc-timeout`, so
/// the server gives up on it too, and fails with `CANCELLED` ("Timeout expired", as
/// tonic's own timeouts do) once it has passed, however long the wait for an address.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
    header: HeaderValue,
}

impl<S> Deadline<S> {
    /// Bounds every call on `inner` by `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Deadline {
            inner,
            timeout,
            header: grpc_timeout(timeout),
        }
    }
}

/// `grpc-timeout` for `timeout`: at most eight digits and a unit, in milliseconds while
/// they fit.
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let millis = timeout.as_millis();
    let value = if millis <= MAX {
        format!("{millis}m")
    } else {
        format!("{}S", u128::from(timeout.as_secs()).min(MAX))
    };
    HeaderValue::from_str(&value).expect("digits and a unit make a header value")
}

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request
            .headers_mut()
            .insert("grpc-timeout", self.header.clone());
        let call = tokio::time::timeout(self.timeout, self.inner.call(request));
        Box::pin(async move {
            match call.await {
                Ok(answer) => answer.map_err(Into::into),
                Err(_) => Err(tonic::TimeoutExpired(()).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::net::TcpListener;
    use tonic::transport::Server;
    use tonic::transport::server::TcpIncoming;
    use tonic::{Request, Response, Status};
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::health_server::{Health, HealthServer};
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

    use super::*;
    use crate::grpc::{BalanceOptions, GrpcChannel, Resolver, balanced_channel_with};

    /// A health service that never answers, noting the `grpc-timeout` of each call.
    #[derive(Default)]
    struct Stalling {
        deadlines: Arc<Mutex<Vec<Option<String>>>>,
    }

    #[tonic::async_trait]
    impl Health for Stalling {
        async fn check(
            &self,
            request: Request<HealthCheckRequest>,
        ) -> Result<Response<HealthCheckResponse>, Status> {
            let deadline = request
                .metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.deadlines.lock().unwrap().push(deadline);
            std::future::pending().await
        }

        type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;

        async fn watch(
            &self,
            _: Request<HealthCheckRequest>,
        ) -> Result<Response<Self::WatchStream>, Status> {
            Err(Status::unimplemented("watch"))
        }
    }

    /// A channel whose calls may take 200 ms.
    fn short_deadline(resolver: Resolver) -> GrpcChannel {
        let options = BalanceOptions {
            call_timeout: Duration::from_millis(200),
            resolve_interval: Duration::from_millis(20),
            resolver,
            ..BalanceOptions::default()
        };
        balanced_channel_with("http://palaver-test:50051", options).unwrap()
    }

    /// The failure of a call that gets no answer; bounded against a deadline that does
    /// not end it, not a speed goal.
    async fn unanswered(client: &mut HealthClient<GrpcChannel>) -> Status {
        let call = tokio::time::timeout(
            Duration::from_secs(10),
            client.check(HealthCheckRequest::default()),
        );
        call.await
            .expect("the channel's deadline ends the call")
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_call_the_server_never_answers_ends_at_the_channel_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stalling = Arc::new(Stalling::default());
        let deadlines = stalling.deadlines.clone();
        let server = tokio::spawn(
            Server::builder()
                .add_service(HealthServer::from_arc(stalling))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        let resolver: Resolver =
            Arc::new(move |_: &str| Box::pin(async move { Ok(vec![address]) }));
        let mut client = HealthClient::new(short_deadline(resolver));

        let status = unanswered(&mut client).await;
        assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
        assert_eq!(
            *deadlines.lock().unwrap(),
            [Some("200m".to_owned())],
            "the server is told the deadline"
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_call_waiting_for_an_address_ends_at_the_channel_deadline() {
        let nowhere: Resolver = Arc::new(|_: &str| Box::pin(async { Ok(Vec::new()) }));
        let mut client = HealthClient::new(short_deadline(nowhere));
        let status = unanswered(&mut client).await;
        assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    }

    #[test]
    fn deadlines_are_written_as_grpc_timeouts() {
        assert_eq!(grpc_timeout(Duration::from_secs(5)), "5000m");
        assert_eq!(grpc_timeout(Duration::from_millis(1)), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(100_000_000)), "99999999S");
        assert_eq!(grpc_timeout(Duration::from_secs(100_000)), "100000S");
    }
}
