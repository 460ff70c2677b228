//! The rendered chart run on this machine: every pod of every Deployment is a process of
//! the real binary, started with the container's command, args, env and ports exactly as
//! rendered, except for the loopback mapping that stands in for the pod network:
//!
//! - **Pods.** Each pod gets its own loopback address `127.A.B.(10+n)` (A, B random per
//!   run, so parallel runs do not meet), its pod IP. The rendered `PALAVER_LISTEN` and
//!   `PALAVER_ADMIN_LISTEN` say `0.0.0.0:<port>`; on one machine two replicas would
//!   collide there, so the host (and only the host) becomes the pod's address. Ports stay
//!   as rendered (50051…, 8080, 9090).
//! - **Services.** Each rendered Service gets its own address `127.A.B.(100+n)` and, on
//!   each of its ports, a TCP forwarder in this test that hands each new connection to the
//!   next pod its selector matches (round-robin on the target port): what kube-proxy
//!   does for a ClusterIP. Headless Services are served the same way, since a name cannot
//!   be made to resolve to several pod addresses for one process without editing
//!   /etc/hosts or DNS; so the services' balancing over DNS answers is not exercised here
//!   (the kit's `balanced_channel` tests cover it), but every replica is reachable.
//!   In every env value, `://<service>:` and `@<service>:` become the Service's address.
//! - **Secrets.** `secretKeyRef`s resolve from the rendered Secrets (the generated admin
//!   token), else from the Secret the values name for NATS and PostgreSQL, which a real
//!   install creates by hand and this test fills with its own backends.
//! - **Binaries.** `command[0]` (`palaver-identity`, …, on the image's PATH) is the binary
//!   of that name in this build's target directory (see [`binaries`]).
//!
//! The migrations Job's containers run first, one after the other, each to success; then
//! every pod starts at once (as Kubernetes starts them) and the run is up when every pod's
//! readiness probe (`GET /readyz` on its admin port) answers 200. Every process is killed
//! when the [`Cluster`] is dropped (`kill_on_drop`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::chart::{Container, Rendered};

/// The packages whose binaries the chart runs.
const PACKAGES: [&str; 4] = [
    "palaver-identity",
    "palaver-presence",
    "palaver-conversation",
    "palaver-gateway",
];

/// How long a process may take to get ready or a migration to finish: a guard against
/// hanging, not a timing assertion.
const START_GUARD: Duration = Duration::from_secs(180);

/// How often a pod that exits before it is ready is started again.
const MAX_RESTARTS: u32 = 3;

/// The loopback addresses of one run: `127.A.B.x`.
#[derive(Clone, Copy)]
pub struct Loopback {
    a: u8,
    b: u8,
}

impl Loopback {
    pub fn random() -> Self {
        let mut rng = rand::rng();
        Loopback {
            a: rng.random_range(1..=254),
            b: rng.random_range(0..=255),
        }
    }

    fn pod(self, n: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            127,
            self.a,
            self.b,
            u8::try_from(10 + n).expect("< 90 pods"),
        )
    }

    /// The address of the `n`th Service.
    pub fn service(self, n: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            127,
            self.a,
            self.b,
            u8::try_from(100 + n).expect("< 150 Services"),
        )
    }
}

/// The directory the binaries are in, after building them into this test's own target
/// directory and profile (see [`palaver_kit::testing::binaries`]).
pub async fn binaries() -> PathBuf {
    palaver_kit::testing::binaries(&PACKAGES).await
}

/// A pod: its process and where it is.
struct Pod {
    name: String,
    deployment: String,
    addr: Ipv4Addr,
    container: Container,
    env: Vec<(String, String)>,
    child: Child,
    log: PathBuf,
    /// How many times the process was started again after it exited.
    restarts: u32,
}

/// The chart's Deployments running as local processes, behind their Services.
pub struct Cluster {
    pods: Vec<Pod>,
    /// Service name → its address.
    services: BTreeMap<String, Ipv4Addr>,
    forwarders: Vec<JoinHandle<()>>,
    bin_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for forwarder in &self.forwarders {
            forwarder.abort();
        }
        for pod in &mut self.pods {
            let _ = pod.child.start_kill();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// What a run needs besides the rendered chart.
pub struct RunSpec<'a> {
    pub rendered: &'a Rendered,
    pub loopback: Loopback,
    /// The Service addresses decided before rendering (the gateway's public URL), by name.
    pub services: BTreeMap<String, Ipv4Addr>,
    /// (Secret name, key) → value: the Secret a real install creates by hand.
    pub external_secrets: BTreeMap<(String, String), String>,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Cluster {
    /// Runs the migrations Job, then every pod; answers once all are ready.
    pub async fn start(spec: RunSpec<'_>) -> Cluster {
        let rendered = spec.rendered;
        // Services: an address each (the pre-decided ones kept), in the rendered order.
        let mut services = spec.services.clone();
        let mut next = services.len();
        for service in rendered.services() {
            services.entry(service.name.clone()).or_insert_with(|| {
                next += 1;
                spec.loopback.service(next - 1)
            });
        }
        let mut cluster = Cluster {
            pods: Vec::new(),
            services,
            forwarders: Vec::new(),
            bin_dir: spec.bin_dir.clone(),
            log_dir: spec.log_dir.clone(),
        };
        std::fs::create_dir_all(&spec.log_dir).expect("the log directory");

        for (n, container) in rendered.job_containers().into_iter().enumerate() {
            let name = format!("migrations-{n}-{}", container.name);
            let env = cluster.env(&spec, &container, &name, Ipv4Addr::LOCALHOST);
            let log = spec.log_dir.join(format!("{name}.log"));
            let mut child = launch(&spec.bin_dir, &container, &name, &env, &log);
            let status = tokio::time::timeout(START_GUARD, child.wait())
                .await
                .unwrap_or_else(|_| panic!("{name} did not finish:\n{}", tail(&log)))
                .expect("waiting for a migration");
            assert!(
                status.success(),
                "{name} failed ({status}):\n{}",
                tail(&log)
            );
        }

        let mut n = 0;
        for deployment in rendered.deployments() {
            for replica in 0..deployment.replicas {
                let name = format!("{}-{replica}", deployment.name);
                let addr = spec.loopback.pod(n);
                n += 1;
                let env = cluster.env(&spec, &deployment.container, &name, addr);
                let log = spec.log_dir.join(format!("{name}.log"));
                let child = launch(&spec.bin_dir, &deployment.container, &name, &env, &log);
                cluster.pods.push(Pod {
                    name,
                    deployment: deployment.name.clone(),
                    addr,
                    container: deployment.container.clone(),
                    env,
                    child,
                    log,
                    restarts: 0,
                });
            }
        }

        for service in rendered.services() {
            let deployment = rendered.deployments().into_iter().find(|d| {
                service
                    .selector
                    .iter()
                    .all(|(k, v)| d.labels.get(k) == Some(v))
            });
            let Some(deployment) = deployment else {
                continue;
            };
            let addr = cluster.services[&service.name];
            for port in &service.ports {
                let backends: Vec<SocketAddr> = cluster
                    .pods
                    .iter()
                    .filter(|p| p.deployment == deployment.name)
                    .map(|p| SocketAddr::new(p.addr.into(), p.container.port(&port.target)))
                    .collect();
                let listener = TcpListener::bind((addr, port.port))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("Service {} on {addr}:{}: {e}", service.name, port.port)
                    });
                cluster
                    .forwarders
                    .push(tokio::spawn(forward(listener, backends)));
            }
        }

        for n in 0..cluster.pods.len() {
            cluster.ready(n).await;
        }
        cluster
    }

    /// `http://<address>:<port>` of a Service.
    pub fn service_url(&self, name: &str, port: u16) -> String {
        format!("http://{}:{port}", self.services[name])
    }

    /// An environment variable of a Deployment's first pod, as the pod got it.
    pub fn env_of(&self, deployment: &str, var: &str) -> String {
        let pod = self
            .pods
            .iter()
            .find(|p| p.deployment == deployment)
            .unwrap_or_else(|| panic!("no Deployment {deployment}"));
        pod.env
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{deployment} has no {var}"))
    }

    /// The first pod of a Deployment: its address and process id (the load bench talks
    /// to it past the Service's forwarder, and reads its memory).
    #[allow(dead_code)] // used by benches/websocket.rs, not by the test
    pub fn pod(&self, deployment: &str) -> (Ipv4Addr, Option<u32>) {
        let pod = self
            .pods
            .iter()
            .find(|p| p.deployment == deployment)
            .unwrap_or_else(|| panic!("no Deployment {deployment}"));
        (pod.addr, pod.child.id())
    }

    /// How many pods of a Deployment run.
    pub fn replicas(&self, deployment: &str) -> usize {
        self.pods
            .iter()
            .filter(|p| p.deployment == deployment)
            .count()
    }

    /// What each pod printed (for a failing test's message).
    pub fn logs(&self) -> String {
        self.pods
            .iter()
            .map(|p| format!("--- {} ({})\n{}", p.name, p.addr, tail(&p.log)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A container's environment as the kubelet would give it, mapped to loopback.
    fn env(
        &self,
        spec: &RunSpec<'_>,
        container: &Container,
        pod: &str,
        addr: Ipv4Addr,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        for var in &container.env {
            let name = var["name"].as_str().expect("an env name").to_owned();
            let value = if let Some(value) = var["value"].as_str() {
                expand(value, &env)
            } else if let Some(secret) = var["valueFrom"].get("secretKeyRef") {
                let (secret, key) = (
                    secret["name"].as_str().expect("a Secret name"),
                    secret["key"].as_str().expect("a Secret key"),
                );
                spec.rendered
                    .secret(secret, key)
                    .or_else(|| {
                        spec.external_secrets
                            .get(&(secret.to_owned(), key.to_owned()))
                            .cloned()
                    })
                    .unwrap_or_else(|| panic!("{name}: no key {key} in Secret {secret}"))
            } else if let Some(field) = var["valueFrom"].get("fieldRef") {
                match field["fieldPath"].as_str() {
                    Some("metadata.name") => pod.to_owned(),
                    Some("status.podIP") => addr.to_string(),
                    other => panic!("{name}: unsupported fieldRef {other:?}"),
                }
            } else {
                panic!("{name}: unsupported env source {var}")
            };
            let value = match name.as_str() {
                // The pod's own address in place of the rendered 0.0.0.0 (its pod IP).
                "PALAVER_LISTEN" | "PALAVER_ADMIN_LISTEN" => {
                    let (_, port) = value.rsplit_once(':').expect("host:port");
                    format!("{addr}:{port}")
                }
                _ => self.map_services(&value),
            };
            env.push((name, value));
        }
        env
    }

    /// `value` with every Service name in a URL replaced by the Service's address.
    fn map_services(&self, value: &str) -> String {
        let mut names: Vec<&String> = self.services.keys().collect();
        // Longest first: `x-headless` before `x`.
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut value = value.to_owned();
        for name in names {
            let addr = self.services[name];
            for sep in ["://", "@"] {
                value = value.replace(&format!("{sep}{name}:"), &format!("{sep}{addr}:"));
            }
        }
        value
    }

    /// Waits until pod `n`'s readiness probe answers 200.
    async fn ready(&mut self, n: usize) {
        let pod = &mut self.pods[n];
        let probe = pod
            .container
            .readiness
            .clone()
            .unwrap_or_else(|| panic!("{} has no httpGet readiness probe", pod.name));
        let port = pod.container.port(&probe["port"]);
        let url = format!(
            "http://{}:{port}{}",
            pod.addr,
            probe["path"].as_str().unwrap_or("/")
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        loop {
            if let Ok(Some(status)) = pod.child.try_wait() {
                // restartPolicy: Always (a Deployment's), as the kubelet does, without
                // its back-off; a pod that keeps failing fails the test.
                assert!(
                    pod.restarts < MAX_RESTARTS,
                    "{} exited ({status}) {} times:\n{}",
                    pod.name,
                    pod.restarts + 1,
                    tail(&pod.log)
                );
                pod.restarts += 1;
                eprintln!(
                    "chart_run: {} exited ({status}) before it was ready; restarting it as \
                     the kubelet would (restart {}). Its log:\n{}",
                    pod.name,
                    pod.restarts,
                    tail(&pod.log)
                );
                pod.child = launch(&self.bin_dir, &pod.container, &pod.name, &pod.env, &pod.log);
                continue;
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < START_GUARD,
                "{} is not ready at {url}:\n{}",
                pod.name,
                tail(&pod.log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Kubernetes' `$(VAR)` references to variables defined before.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut value = value.to_owned();
    for (name, defined) in env {
        value = value.replace(&format!("$({name})"), defined);
    }
    value
}

/// A ClusterIP Service: each connection goes to the next backend.
async fn forward(listener: TcpListener, backends: Vec<SocketAddr>) {
    let mut next = 0;
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let backend = backends[next % backends.len()];
        next += 1;
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(backend).await {
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// The end of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Starts `container`'s command with `env`, its output appended to `log`.
fn launch(
    bin_dir: &Path,
    container: &Container,
    name: &str,
    env: &[(String, String)],
    log: &Path,
) -> Child {
    let (program, args) = container
        .command
        .split_first()
        .unwrap_or_else(|| panic!("{name}: the chart gives no command"));
    let binary = bin_dir.join(program);
    assert!(binary.is_file(), "{name}: no binary {}", binary.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("a log file");
    Command::new(&binary)
        .args(args)
        .args(&container.args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(log.parent().expect("the log directory"))
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("the log file"))
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot run {}: {e}", binary.display()))
}
