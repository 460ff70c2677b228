//! The admin HTTP server every service runs on `PALAVER_ADMIN_LISTEN`:
//!
//! - `/healthz`: 200 while the process runs (liveness);
//! - `/readyz`: 200 when every [`ReadinessCheck`] passes, else 503 with a JSON body
//!   naming the failing checks (`{"ready":false,"failing":{"database":"…"}}`); also 503
//!   once shutdown is triggered;
//! - `/metrics`: Prometheus text of everything recorded through the `metrics` crate,
//!   and of the service's [instance gauges](AdminServer::with_gauge).
//!
//! One Prometheus recorder serves the whole process (`palaver up` runs every service in
//! one), installed by the first [`AdminServer::bind`] or [`metrics_handle`] call: bind the
//! admin server before recording metrics, since the `metrics` macros drop what they
//! record while no recorder is installed. A gauge of a service instance's own state (its
//! open streams, its subscriptions) is read from that instance when scraped instead, so
//! two instances in one process (`palaver up`, tests) each report their own.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value, json};

use crate::bus::EventBus;
use crate::shutdown::Shutdown;

/// How long `/readyz` waits for one check before calling it failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Something a service needs before it can take traffic, such as its database.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// The name `/readyz` reports a failure under.
    fn name(&self) -> &str;

    /// Ok when ready; else why not.
    async fn check(&self) -> Result<(), String>;
}

/// The database answers `SELECT 1`.
#[derive(Debug, Clone)]
pub struct DatabaseCheck(pub sqlx::AnyPool);

#[async_trait]
impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.0)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }
}

/// The event bus is [ready](EventBus::ready).
#[derive(Clone)]
pub struct BusCheck(pub Arc<dyn EventBus>);

#[async_trait]
impl ReadinessCheck for BusCheck {
    fn name(&self) -> &str {
        "bus"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ready().await.map_err(|error| error.to_string())
    }
}

/// The process's Prometheus handle, installing the global recorder on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics will stay empty");
        }
        handle
    })
}

/// The admin HTTP server, bound and ready to [run](AdminServer::run).
pub struct AdminServer {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    gauges: Vec<InstanceGauge>,
}

/// A gauge read from the service instance's state each time `/metrics` is scraped.
struct InstanceGauge {
    name: &'static str,
    read: Box<dyn Fn() -> f64 + Send + Sync>,
}

struct AdminState {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    gauges: Vec<InstanceGauge>,
    shutdown: Shutdown,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port) and installs the metrics recorder.
    pub async fn bind(
        addr: SocketAddr,
        checks: Vec<Arc<dyn ReadinessCheck>>,
    ) -> io::Result<AdminServer> {
        metrics_handle();
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(AdminServer {
            listener,
            local_addr,
            checks,
            gauges: Vec::new(),
        })
    }

    /// Adds the gauge `name`, whose value `read` takes from this service instance's
    /// state whenever `/metrics` is scraped.
    pub fn with_gauge(
        mut self,
        name: &'static str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> AdminServer {
        self.gauges.push(InstanceGauge {
            name,
            read: Box::new(read),
        });
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` triggers, then finishes the requests in flight (a
    /// `/readyz` among them answers 503) and returns.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let state = Arc::new(AdminState {
            checks: self.checks,
            gauges: self.gauges,
            shutdown: shutdown.clone(),
        });
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(state);
        tracing::info!(addr = %self.local_addr, "admin server listening");
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
            .with_context(|| format!("admin server on {}", self.local_addr))
    }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> (StatusCode, Json<Value>) {
    let mut failing = Map::new();
    if !state.shutdown.is_triggered() {
        let results = futures::future::join_all(state.checks.iter().map(|check| async move {
            let result = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (check.name(), result)
        }))
        .await;
        for (name, result) in results {
            if let Err(error) = result {
                tracing::warn!(check = name, %error, "not ready");
                failing.insert(name.to_owned(), Value::String(error));
            }
        }
    }
    if state.shutdown.is_triggered() {
        failing.insert(
            "shutdown".to_owned(),
            Value::from("the service is shutting down"),
        );
    }
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": failing.is_empty(), "failing": failing })),
    )
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let handle = metrics_handle();
    handle.run_upkeep();
    let mut text = handle.render();
    for gauge in &state.gauges {
        let (name, value) = (gauge.name, (gauge.read)());
        text.push_str(&format!("# TYPE {name} gauge\n{name} {value}\n"));
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::{Notify, oneshot};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::bus::LocalBus;

    /// A check that passes or fails as told.
    struct Fixed(&'static str, Result<(), String>);

    #[async_trait]
    impl ReadinessCheck for Fixed {
        fn name(&self) -> &str {
            self.0
        }

        async fn check(&self) -> Result<(), String> {
            self.1.clone()
        }
    }

    async fn start(
        checks: Vec<Arc<dyn ReadinessCheck>>,
    ) -> (String, Shutdown, JoinHandle<anyhow::Result<()>>) {
        let server = AdminServer::bind("127.0.0.1:0".parse().unwrap(), checks)
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let shutdown = Shutdown::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        (base, shutdown, task)
    }

    async fn get(url: String) -> (StatusCode, String) {
        let response = reqwest::get(url).await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn healthz_answers_while_running() {
        let (base, _shutdown, _task) =
            start(vec![Arc::new(Fixed("broken", Err("down".into())))]).await;
        assert_eq!(
            get(format!("{base}/healthz")).await,
            (StatusCode::OK, "ok".to_owned())
        );
    }

    #[tokio::test]
    async fn ready_when_every_check_passes() {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect("sqlite::memory:").await.unwrap();
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(DatabaseCheck(pool)),
            Arc::new(BusCheck(Arc::new(LocalBus::new()))),
        ];
        let (base, _shutdown, _task) = start(checks).await;
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({ "ready": true, "failing": {} }));
    }

    #[tokio::test]
    async fn not_ready_names_the_failing_checks() {
        sqlx::any::install_default_drivers();
        let unreachable = sqlx::any::AnyPoolOptions::new()
            .acquire_timeout(Duration::from_millis(500))
            .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
            .unwrap();
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(DatabaseCheck(unreachable)),
            Arc::new(Fixed("cache", Ok(()))),
        ];
        let (base, _shutdown, _task) = start(checks).await;
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["ready"], false);
        let failing = body["failing"].as_object().unwrap();
        assert_eq!(failing.keys().collect::<Vec<_>>(), ["database"], "{body}");
    }

    /// A check that waits, so a probe is in flight when shutdown triggers.
    struct Gate {
        entered: Mutex<Option<oneshot::Sender<()>>>,
        release: Arc<Notify>,
    }

    #[async_trait]
    impl ReadinessCheck for Gate {
        fn name(&self) -> &str {
            "gate"
        }

        async fn check(&self) -> Result<(), String> {
            if let Some(entered) = self.entered.lock().unwrap().take() {
                let _ = entered.send(());
            }
            self.release.notified().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn not_ready_once_shutdown_is_triggered_then_stopped() {
        let (entered, on_entered) = oneshot::channel();
        let release = Arc::new(Notify::new());
        let gate = Gate {
            entered: Mutex::new(Some(entered)),
            release: release.clone(),
        };
        let (base, shutdown, task) = start(vec![Arc::new(gate)]).await;

        let probe = tokio::spawn(get(format!("{base}/readyz")));
        on_entered.await.unwrap();
        shutdown.trigger();
        release.notify_one();
        let (status, body) = probe.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["failing"]["shutdown"].is_string(), "{body}");

        task.await.unwrap().unwrap();
        assert!(
            reqwest::get(format!("{base}/healthz")).await.is_err(),
            "the server has stopped"
        );
    }

    #[tokio::test]
    async fn metrics_are_rendered_for_prometheus() {
        let (base, _shutdown, _task) = start(vec![]).await;
        metrics::counter!("palaver_admin_test_requests_total").increment(3);
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let body = response.text().await.unwrap();
        assert!(
            body.contains("palaver_admin_test_requests_total 3"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn each_server_reports_its_own_instance_gauges() {
        let bind = || AdminServer::bind("127.0.0.1:0".parse().unwrap(), vec![]);
        let streams = Arc::new(std::sync::atomic::AtomicUsize::new(2));
        let read = streams.clone();
        let first = bind()
            .await
            .unwrap()
            .with_gauge("palaver_admin_test_streams", move || {
                read.load(std::sync::atomic::Ordering::Relaxed) as f64
            });
        let second = bind()
            .await
            .unwrap()
            .with_gauge("palaver_admin_test_streams", || 7.0);
        let urls = [first.local_addr(), second.local_addr()].map(|a| format!("http://{a}/metrics"));
        let shutdown = Shutdown::new();
        let _tasks = [first, second].map(|server| tokio::spawn(server.run(shutdown.clone())));

        let (_, body) = get(urls[0].clone()).await;
        assert!(
            body.contains(
                "# TYPE palaver_admin_test_streams gauge\npalaver_admin_test_streams 2\n"
            ),
            "{body}"
        );
        streams.store(3, std::sync::atomic::Ordering::Relaxed);
        let (_, body) = get(urls[0].clone()).await;
        assert!(body.contains("palaver_admin_test_streams 3\n"), "{body}");
        let (_, body) = get(urls[1].clone()).await;
        assert!(body.contains("palaver_admin_test_streams 7\n"), "{body}");
    }
}
