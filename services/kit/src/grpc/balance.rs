//! The client side: a channel balanced over every address a name resolves to
//! ([`balanced_channel_with`]), following the name as it changes (add before remove, keep
//! the last good set), each call bounded by the channel's [`Deadline`].

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::Uri;
use tokio::sync::mpsc::Sender;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

use super::{Deadline, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::telemetry::GrpcClientTrace;

/// How long a call on a channel may take unless its [`BalanceOptions`] say otherwise,
/// waiting for an address included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A client channel for generated tonic clients (`IdentityClient::new(channel)`): balanced
/// over every resolved address, each call bounded by the channel's [`Deadline`] and run in
/// a `grpc.client` span whose trace context goes out with the request. Cheap to clone.
pub type GrpcChannel = GrpcClientTrace<Deadline<Channel>>;

/// Resolves `host:port` to the addresses to balance over.
pub type Resolver =
    Arc<dyn Fn(&str) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// How a [`balanced_channel_with`] finds and reaches its servers.
#[derive(Clone)]
pub struct BalanceOptions {
    /// How often the name is resolved again.
    pub resolve_interval: Duration,
    /// How long connecting to one address may take.
    pub connect_timeout: Duration,
    /// How long a call may take, waiting for an address included: the channel's
    /// deadline, which its callers do not set again.
    pub call_timeout: Duration,
    /// Turns `host:port` into addresses; DNS by default.
    pub resolver: Resolver,
}

impl Default for BalanceOptions {
    fn default() -> Self {
        BalanceOptions {
            resolve_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            resolver: dns_resolver(),
        }
    }
}

impl fmt::Debug for BalanceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceOptions")
            .field("resolve_interval", &self.resolve_interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

/// The resolver that asks the system (DNS) for every address of `host:port`.
pub fn dns_resolver() -> Resolver {
    Arc::new(|target: &str| {
        let target = target.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    })
}

/// Why a client channel cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid gRPC URL {url:?}")]
    InvalidUrl {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("gRPC URL {0:?} must be http://host:port")]
    Unsupported(String),
    #[error("a gRPC channel must be built inside a Tokio runtime")]
    NoRuntime,
}

/// A channel to `url` (`http://identity:50051`) that balances over every address the
/// host resolves to, resolved again every 5 s, each call bounded by
/// [`DEFAULT_CALL_TIMEOUT`]. See [`balanced_channel_with`].
pub fn balanced_channel(url: &str) -> Result<GrpcChannel, ChannelError> {
    balanced_channel_with(url, BalanceOptions::default())
}

/// A channel to `url` that balances calls (power of two choices) over every address
/// `options.resolver` returns for its `host:port`, resolved again every
/// `options.resolve_interval`: new addresses are added, vanished ones removed. A failed
/// or empty resolution keeps the previous addresses. Connections are made lazily, so
/// building never fails for an unreachable server; until the first addresses are known,
/// calls wait, as long as `options.call_timeout` lets them. The resolving task stops when
/// the last clone of the channel is dropped. Must be called inside a Tokio runtime.
pub fn balanced_channel_with(
    url: &str,
    options: BalanceOptions,
) -> Result<GrpcChannel, ChannelError> {
    let origin: Uri = url.parse().map_err(|source| ChannelError::InvalidUrl {
        url: url.to_owned(),
        source,
    })?;
    if origin.scheme_str() != Some("http") {
        return Err(ChannelError::Unsupported(url.to_owned()));
    }
    let host = origin
        .host()
        .ok_or_else(|| ChannelError::Unsupported(url.to_owned()))?;
    let target = format!("{host}:{}", origin.port_u16().unwrap_or(80));
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ChannelError::NoRuntime);
    }
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    let endpoint = move |address: SocketAddr| {
        Endpoint::from_shared(format!("http://{address}")).map(|endpoint| {
            endpoint
                .origin(origin.clone())
                .connect_timeout(options.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true)
        })
    };
    tokio::spawn(follow_addresses(
        target,
        options.resolver,
        options.resolve_interval,
        endpoint,
        changes,
    ));
    Ok(GrpcClientTrace::new(Deadline::new(
        channel,
        options.call_timeout,
    )))
}

/// Resolves `target` every `interval` and tells the balancer what changed, until the
/// balancer is gone.
async fn follow_addresses(
    target: String,
    resolver: Resolver,
    interval: Duration,
    endpoint: impl Fn(SocketAddr) -> Result<Endpoint, tonic::transport::Error>,
    changes: Sender<Change<SocketAddr, Endpoint>>,
) {
    let mut current: HashSet<SocketAddr> = HashSet::new();
    let mut failing = false;
    loop {
        let resolved = tokio::select! {
            resolved = resolver(&target) => resolved,
            () = changes.closed() => return,
        };
        match resolved {
            Ok(addresses) if !addresses.is_empty() => {
                failing = false;
                let next: HashSet<SocketAddr> = addresses.into_iter().collect();
                let added: Vec<SocketAddr> = next.difference(&current).copied().collect();
                let removed: Vec<SocketAddr> = current.difference(&next).copied().collect();
                if !added.is_empty() || !removed.is_empty() {
                    tracing::info!(host = %target, ?added, ?removed, "gRPC server addresses changed");
                }
                // Insert before removing, so a complete change of addresses never leaves
                // the balancer empty.
                for address in added {
                    match endpoint(address) {
                        Ok(endpoint) => {
                            if changes
                                .send(Change::Insert(address, endpoint))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(host = %target, %address, %error, "cannot use address")
                        }
                    }
                }
                for address in removed {
                    if changes.send(Change::Remove(address)).await.is_err() {
                        return;
                    }
                }
                current = next;
            }
            Ok(_) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(host = %target, "name resolved to no address; keeping the previous ones");
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(host = %target, %error, "cannot resolve name; keeping the previous addresses");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = changes.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::watch;
    use tokio::task::JoinHandle;
    use tonic::{Request, Response, Status};
    use tonic_health::pb::health_check_response::ServingStatus as Status_;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::health_server::{Health, HealthServer};
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
    use tracing::Instrument as _;

    use tokio::net::TcpListener;
    use tonic::transport::Server;
    use tonic::transport::server::TcpIncoming;

    use super::*;
    use crate::shutdown::Shutdown;
    use crate::telemetry::{self, GrpcServerTraceLayer};

    /// The trace id a handler saw and the `traceparent` its request carried.
    type SeenTrace = Arc<Mutex<Option<(Option<String>, Option<String>)>>>;

    /// A health service that counts the checks it answers and notes the trace it saw.
    #[derive(Default)]
    struct CountingHealth {
        checks: Arc<AtomicUsize>,
        trace: SeenTrace,
    }

    #[tonic::async_trait]
    impl Health for CountingHealth {
        async fn check(
            &self,
            request: Request<HealthCheckRequest>,
        ) -> Result<Response<HealthCheckResponse>, Status> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            let traceparent = request
                .metadata()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            *self.trace.lock().unwrap() = Some((telemetry::current_trace_id(), traceparent));
            Ok(Response::new(HealthCheckResponse {
                status: Status_::Serving.into(),
            }))
        }

        type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;

        async fn watch(
            &self,
            _: Request<HealthCheckRequest>,
        ) -> Result<Response<Self::WatchStream>, Status> {
            Err(Status::unimplemented("watch"))
        }
    }

    /// The health service under another name, since the server layer does not trace
    /// health checks.
    const TRACED_HEALTH: &str = "palaver.test.v1.TracedHealth";

    #[derive(Clone)]
    struct Renamed<S>(S);

    impl<S> tonic::server::NamedService for Renamed<S> {
        const NAME: &'static str = TRACED_HEALTH;
    }

    impl<S: tower::Service<http::Request<B>>, B> tower::Service<http::Request<B>> for Renamed<S> {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), S::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, request: http::Request<B>) -> S::Future {
            self.0
                .call(rename(request, TRACED_HEALTH, "grpc.health.v1.Health"))
        }
    }

    fn rename<B>(mut request: http::Request<B>, from: &str, to: &str) -> http::Request<B> {
        let path = request.uri().path().replacen(from, to, 1);
        *request.uri_mut() = path.parse().unwrap();
        request
    }

    /// A test server on 127.0.0.1, port 0, with the server trace layer, serving
    /// [`CountingHealth`] as the health service and as [`TRACED_HEALTH`].
    struct TestServer {
        address: SocketAddr,
        checks: Arc<AtomicUsize>,
        trace: SeenTrace,
        shutdown: Shutdown,
        task: JoinHandle<Result<(), tonic::transport::Error>>,
    }

    impl TestServer {
        async fn start() -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let health = Arc::new(CountingHealth::default());
            let (checks, trace) = (health.checks.clone(), health.trace.clone());
            let shutdown = Shutdown::new();
            let signal = shutdown.clone();
            let task = tokio::spawn(
                Server::builder()
                    .layer(GrpcServerTraceLayer)
                    .add_service(Renamed(HealthServer::from_arc(health.clone())))
                    .add_service(HealthServer::from_arc(health))
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                        signal.wait().await
                    }),
            );
            TestServer {
                address,
                checks,
                trace,
                shutdown,
                task,
            }
        }

        fn checks(&self) -> usize {
            self.checks.load(Ordering::SeqCst)
        }

        async fn stop(self) {
            self.shutdown.trigger();
            self.task.await.unwrap().unwrap();
        }
    }

    /// A resolver returning whatever `addresses` holds, counting its calls in `calls`.
    fn test_resolver(
        addresses: Arc<Mutex<Vec<SocketAddr>>>,
        calls: watch::Sender<usize>,
    ) -> Resolver {
        Arc::new(move |_: &str| {
            let resolved = addresses.lock().unwrap().clone();
            calls.send_modify(|n| *n += 1);
            Box::pin(async move { Ok(resolved) })
        })
    }

    fn test_options(resolver: Resolver) -> BalanceOptions {
        BalanceOptions {
            resolve_interval: Duration::from_millis(20),
            resolver,
            ..BalanceOptions::default()
        }
    }

    async fn check(client: &mut HealthClient<GrpcChannel>) -> Result<(), Status> {
        // A bound against hanging on a broken balancer, not a speed goal.
        let call = tokio::time::timeout(
            Duration::from_secs(10),
            client.check(HealthCheckRequest::default()),
        );
        let response = call.await.expect("the call is answered")?;
        assert_eq!(response.into_inner().status(), Status_::Serving);
        Ok(())
    }

    /// A call that retries while the balancer picks a server that is gone.
    async fn check_with_retry(client: &mut HealthClient<GrpcChannel>) {
        for _ in 0..40 {
            match check(client).await {
                Ok(()) => return,
                Err(status) if status.code() == tonic::Code::Unavailable => continue,
                Err(status) => panic!("unexpected status {status:?}"),
            }
        }
        panic!("no attempt reached a live server");
    }

    #[tokio::test]
    async fn the_channel_balances_over_every_address_and_follows_the_name() {
        telemetry::init_for_tests();
        let servers = [
            TestServer::start().await,
            TestServer::start().await,
            TestServer::start().await,
        ];
        let addresses = Arc::new(Mutex::new(
            servers.iter().map(|s| s.address).collect::<Vec<_>>(),
        ));
        let (calls, mut resolutions) = watch::channel(0);
        let channel = balanced_channel_with(
            "http://palaver-test:50051",
            test_options(test_resolver(addresses.clone(), calls)),
        )
        .unwrap();
        let mut client = HealthClient::new(channel);

        for _ in 0..60 {
            check(&mut client).await.unwrap();
        }
        let counts: Vec<usize> = servers.iter().map(TestServer::checks).collect();
        assert_eq!(counts.iter().sum::<usize>(), 60);
        assert!(
            counts.iter().all(|&n| n > 0),
            "every server answers some calls: {counts:?}"
        );

        // The name now resolves to the first two only. Once the resolver has run twice
        // more, the removal it reported first has reached the balancer.
        addresses.lock().unwrap().truncate(2);
        let seen = *resolutions.borrow_and_update();
        resolutions.wait_for(|&n| n >= seen + 2).await.unwrap();
        let before: Vec<usize> = servers.iter().map(TestServer::checks).collect();
        for _ in 0..40 {
            check(&mut client).await.unwrap();
        }
        let after: Vec<usize> = servers.iter().map(TestServer::checks).collect();
        assert_eq!(after[2], before[2], "the removed server gets no more calls");
        assert!(
            after[0] > before[0] && after[1] > before[1],
            "{before:?} -> {after:?}"
        );

        // The second server dies while its address is still resolved: calls fail over.
        let [first, second, third] = servers;
        let (second_checks, second_counter) = (second.checks(), second.checks.clone());
        let third_checks = third.checks();
        second.stop().await;
        let before = first.checks();
        for _ in 0..20 {
            check_with_retry(&mut client).await;
        }
        assert_eq!(
            first.checks(),
            before + 20,
            "the live server answers every call"
        );
        assert_eq!(second_counter.load(Ordering::SeqCst), second_checks);
        assert_eq!(third.checks(), third_checks);

        // Dropping the channel stops the resolving task, which drops the resolver.
        drop(client);
        let stopped = tokio::time::timeout(Duration::from_secs(10), async {
            while resolutions.changed().await.is_ok() {}
        });
        stopped
            .await
            .expect("the resolving task stops once the channel is dropped");
        first.stop().await;
        third.stop().await;
    }

    #[tokio::test]
    async fn a_failing_resolution_keeps_the_previous_addresses() {
        let server = TestServer::start().await;
        let address = server.address;
        let (calls, mut resolutions) = watch::channel(0);
        let resolver: Resolver = Arc::new(move |_: &str| {
            let mut n = 0;
            calls.send_modify(|calls| {
                *calls += 1;
                n = *calls;
            });
            Box::pin(async move {
                match n {
                    1 => Ok(vec![address]),
                    2 => Ok(vec![]),
                    _ => Err(io::Error::other("no such host")),
                }
            })
        });
        let channel =
            balanced_channel_with("http://palaver-test:50051", test_options(resolver)).unwrap();
        let mut client = HealthClient::new(channel);
        resolutions.wait_for(|&n| n >= 4).await.unwrap();
        check(&mut client).await.unwrap();
        assert_eq!(server.checks(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn bad_urls_are_refused() {
        for url in [
            "identity:50051",
            "https://identity:50051",
            "http://",
            "not a url",
        ] {
            let error = balanced_channel(url).unwrap_err();
            assert!(
                matches!(
                    error,
                    ChannelError::Unsupported(_) | ChannelError::InvalidUrl { .. }
                ),
                "{url}: {error}"
            );
        }
        assert!(balanced_channel("http://identity:50051").is_ok());
        assert!(balanced_channel("http://[::1]:50051").is_ok());
    }

    #[test]
    fn building_a_channel_needs_a_runtime() {
        assert!(matches!(
            balanced_channel("http://identity:50051"),
            Err(ChannelError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn generated_clients_take_the_channel() {
        let channel = balanced_channel("http://identity:50051").unwrap();
        let _client = palaver_proto::identity::v1::identity_client::IdentityClient::new(channel);
    }

    #[tokio::test]
    async fn the_trace_crosses_a_grpc_call() {
        telemetry::init_for_tests();
        let server = TestServer::start().await;
        let address = server.address;
        let resolver: Resolver =
            Arc::new(move |_: &str| Box::pin(async move { Ok(vec![address]) }));
        let channel =
            balanced_channel_with("http://palaver-test:50051", test_options(resolver)).unwrap();
        let renamed = tower::ServiceBuilder::new()
            .map_request(|request| rename(request, "grpc.health.v1.Health", TRACED_HEALTH))
            .service(channel);
        let mut client = HealthClient::new(renamed);

        let caller = tracing::info_span!("test.caller");
        let caller_trace_id = caller
            .in_scope(telemetry::current_trace_id)
            .expect("the caller is traced");
        let response = client
            .check(HealthCheckRequest::default())
            .instrument(caller)
            .await
            .unwrap();
        assert_eq!(response.into_inner().status(), Status_::Serving);

        let (server_trace_id, traceparent) = server
            .trace
            .lock()
            .unwrap()
            .clone()
            .expect("the server was called");
        assert_eq!(server_trace_id.as_deref(), Some(caller_trace_id.as_str()));
        let traceparent = traceparent.expect("the call carries a traceparent");
        assert!(traceparent.contains(&caller_trace_id), "{traceparent}");
        server.stop().await;
    }
}
