//! Test support for every service's integration tests (feature `testing`): a fresh
//! database per test, the NATS server to test against, a subject prefix per test, and
//! the workspace's binaries built for the tests that run them as processes.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `PALAVER_TEST_DATABASE_URL` | a PostgreSQL server whose user may create databases | `postgres://postgres@127.0.0.1:5432/postgres` |
//! | `PALAVER_TEST_NATS_URL` | a NATS server with JetStream | `nats://127.0.0.1:4222` |
//!
//! When nothing answers at the configured URL, the harness starts its own server once per
//! test process, from the locally installed `initdb`/`pg_ctl` (as an unprivileged user
//! when run as root) or `nats-server`, in a temporary directory. A watchdog process stops
//! it and removes the directory when the test process exits, however it exits. If no
//! server can be started either, the test panics saying why: tests never skip silently.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;
use tokio::sync::OnceCell;

use crate::random::new_id;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A database for one test. Keep it alive for as long as the test uses `url`: dropping
/// it removes a SQLite file and, best effort, a PostgreSQL database.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the fresh database, for `PALAVER_DATABASE_URL`.
    pub url: String,
    postgres: Option<FreshPostgres>,
    _dir: Option<TempDir>,
}

#[derive(Debug)]
struct FreshPostgres {
    server_url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(FreshPostgres { server_url, name }) = self.postgres.take() else {
            return;
        };
        // A thread of its own, since Drop must not block and the test's runtime may be
        // shutting down; the process may exit before it is done, which is fine.
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut connection) = PgConnection::connect(&server_url).await {
                    let _ = connection
                        .execute(
                            format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
                        )
                        .await;
                    let _ = connection.close().await;
                }
            });
        });
    }
}

/// A fresh, empty PostgreSQL database with a random name.
pub async fn postgres() -> TestDatabase {
    let server_url = postgres_server().await;
    let name = new_id("test_", 16);
    let mut connection = PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|error| {
            panic!("cannot connect to the test PostgreSQL at {server_url}: {error}")
        });
    connection
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap_or_else(|error| panic!("cannot create database {name} at {server_url}: {error}"));
    let _ = connection.close().await;
    TestDatabase {
        url: with_database(server_url, &name),
        postgres: Some(FreshPostgres {
            server_url: server_url.to_owned(),
            name,
        }),
        _dir: None,
    }
}

/// A fresh SQLite database file in a temporary directory.
pub fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
    TestDatabase {
        url,
        postgres: None,
        _dir: Some(dir),
    }
}

/// The URL of a NATS server with JetStream for tests.
pub async fn nats_url() -> String {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        let configured = std::env::var("PALAVER_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned());
        let Err(unreachable) = probe_nats(&configured).await else { return configured };
        start_nats().await.unwrap_or_else(|error| {
            panic!(
                "NATS with JetStream is not reachable at {configured} ({unreachable}; set PALAVER_TEST_NATS_URL), \
                 and a local nats-server could not be started: {error}"
            )
        })
    })
    .await
    .clone()
}

/// A subject prefix (and stream-name part) unique to one test, e.g. `t4k2x9q0m1z7b`.
pub fn unique_prefix() -> String {
    new_id("t", 12)
}

/// Installs the test tracing subscriber once per process: trace context propagates, and
/// logs show only with `TEST_LOG=1` (see [`crate::telemetry::init_for_tests`]).
pub fn init_logs() {
    crate::telemetry::init_for_tests();
}

/// How long [`eventually`] waits for what must happen: a guard against hanging, far
/// above what any step needs, never a speed goal.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The pause between two looks while [`eventually`] waits.
const POLL: Duration = Duration::from_millis(50);

/// Looks with `attempt` until it answers `Ok`, and returns that; panics with `what` and
/// the last answer once [`PATIENCE`] has passed. The one poll-until loop of every test.
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("waited {PATIENCE:?} for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// A PKCE verifier (RFC 7636: 64 unreserved characters) and its S256 challenge, as a
/// CMS makes them for the consent flow.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    /// A fresh random verifier and its challenge.
    pub fn generate() -> Self {
        use base64::Engine as _;
        use sha2::Digest as _;
        let verifier = crate::random::random_string(64);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// The value of the query parameter `name` of `url`, decoded; `None` when `url` is not a
/// URL or has no such parameter.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Runs one async test body against each backend a test crate names, as a module of
/// one `#[tokio::test]` per backend:
///
/// ```ignore
/// palaver_kit::on_each_backend!(a_test, [postgres: Postgres, sqlite: Sqlite], |t| async move { … });
/// ```
///
/// Each test calls the crate's `crate::helpers::spawn(crate::helpers::Backend::…)` and
/// hands what it answers to the body. Test crates wrap it in an `on_both_backends!` of
/// their own that names their backends.
#[macro_export]
// `crate` here is the calling test crate, whose helpers spawn the service: on purpose.
#[allow(clippy::crate_in_macro_def)]
macro_rules! on_each_backend {
    ($name:ident, [$($test:ident: $backend:ident),+ $(,)?], $body:expr) => {
        mod $name {
            use super::*;

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = crate::helpers::spawn(crate::helpers::Backend::$backend).await;
                    ($body)(t).await;
                }
            )+
        }
    };
}

/// The directory the binaries of `packages` are in, after building them: `cargo build
/// --bins` of those packages into the calling test's own target directory and profile (a
/// test executable is `<target>/<profile>/deps/<name>-…`), so they are as fresh as the
/// tree. Cargo sets `CARGO_BIN_EXE_*` only for a package's own binaries, hence the build
/// step; when nothing changed it is a quick no-op.
pub async fn binaries(packages: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps")
        .to_owned();
    let target_dir = profile_dir.parent().expect("<target>").to_owned();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => panic!("no profile directory in {}", exe.display()),
    };
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command
        .current_dir(workspace_root)
        .args(["build", "--bins", "--profile", &profile, "--target-dir"])
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    // What cargo sets for the test process (its package's CARGO_PKG_*, …) must not reach
    // the build: build scripts that watch those variables (ring's) would run again, and
    // the next build of the tests would rebuild them once more.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name == "OUT_DIR"
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name)
        {
            command.env_remove(name);
        }
    }
    let status = command.status().await.expect("cargo runs");
    assert!(
        status.success(),
        "building the binaries of {} failed",
        packages.join(", ")
    );
    profile_dir
}

/// `url` with its database (path) replaced by `name`, query parameters kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut result = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

/// The URL of the maintenance database of a PostgreSQL server that answers.
async fn postgres_server() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        let configured =
            std::env::var("PALAVER_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let Err(unreachable) = probe_postgres(&configured).await else { return configured };
        start_postgres().await.unwrap_or_else(|error| {
            panic!(
                "PostgreSQL is not reachable at {configured} ({unreachable}; set PALAVER_TEST_DATABASE_URL), \
                 and a local one could not be started: {error}"
            )
        })
    })
    .await
}

async fn probe_postgres(url: &str) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

async fn probe_nats(url: &str) -> Result<(), String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(PROBE_TIMEOUT)
        .connect(url)
        .await
        .map_err(|error| error.to_string())?;
    // The raw account-info request, since async-nats's typed one fails to parse the
    // answer of older servers such as Debian's nats-server 2.9.
    let request = client.request("$JS.API.INFO", bytes::Bytes::new());
    let answer = match tokio::time::timeout(PROBE_TIMEOUT, request).await {
        Ok(Ok(message)) => message.payload,
        Ok(Err(error)) => return Err(format!("JetStream: {error}")),
        Err(_) => return Err(format!("JetStream did not answer within {PROBE_TIMEOUT:?}")),
    };
    let answer: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|e| format!("JetStream: {e}"))?;
    match answer.get("error") {
        None => Ok(()),
        Some(error) => Err(format!("JetStream: {error}")),
    }
}

/// Starts PostgreSQL with trust authentication in a temporary directory.
async fn start_postgres() -> Result<String, String> {
    let bin = postgres_bin_dir();
    let user = if running_as_root()? {
        Some(unprivileged_user()?)
    } else {
        None
    };
    let dir = temp_dir("palaver-test-postgres-", user)?;
    let data = dir.join("data");
    let pg_ctl = bin.join("pg_ctl");
    stop_at_exit(
        r#""$1" stop -D "$2" -m immediate; rm -rf "$3""#,
        &[pg_ctl.as_os_str(), data.as_os_str(), dir.as_os_str()],
        user,
    )?;

    let port = free_port()?;
    let initdb = [OsStr::new("-D"), data.as_os_str()].into_iter().chain(
        [
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        .map(OsStr::new),
    );
    run(bin.join("initdb"), initdb, &dir, user).await?;
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off",
        dir.display()
    );
    let log = dir.join("postgres.log");
    let start = [
        OsStr::new("start"),
        OsStr::new("-w"),
        OsStr::new("-t"),
        OsStr::new("60"),
        OsStr::new("-D"),
    ]
    .into_iter()
    .chain([
        data.as_os_str(),
        OsStr::new("-l"),
        log.as_os_str(),
        OsStr::new("-o"),
        OsStr::new(&options),
    ]);
    if let Err(error) = run(&pg_ctl, start, &dir, user).await {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("{error}\n{log}"));
    }
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// Starts the process's own nats-server, which a watchdog stops (and whose store it
/// removes) when the test process exits.
async fn start_nats() -> Result<String, String> {
    let server = NatsServer::start().await?;
    let pid = server
        .process
        .as_ref()
        .map(|p| p.id().to_string())
        .unwrap_or_default();
    stop_at_exit(
        r#"kill "$1"; sleep 1; rm -rf "$2""#,
        &[OsStr::new(&pid), server.dir.as_os_str()],
        None,
    )?;
    let url = server.url();
    // The watchdog owns it from here: it outlives every test of the process.
    std::mem::forget(server);
    Ok(url)
}

/// A nats-server with JetStream on a free loopback port, its store in a temporary
/// directory that outlives restarts: the process's own test server, and a server of its
/// own for a test that stops and starts NATS. Stopped when dropped.
pub struct NatsServer {
    dir: PathBuf,
    port: u16,
    process: Option<std::process::Child>,
}

impl NatsServer {
    /// Starts a server and waits until JetStream answers.
    pub async fn start() -> Result<NatsServer, String> {
        let mut server = NatsServer {
            dir: temp_dir("palaver-test-nats-", None)?,
            port: free_port()?,
            process: None,
        };
        server.resume().await?;
        Ok(server)
    }

    /// Its URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and store (after [`NatsServer::stop`])
    /// and waits until JetStream answers.
    pub async fn resume(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.join("nats.log"))
            .map_err(|e| format!("cannot create nats.log: {e}"))?;
        let binary = find_binary("nats-server", &["/usr/sbin", "/usr/local/bin", "/usr/bin"]);
        let server = self.process.insert(
            std::process::Command::new(&binary)
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-sd",
                ])
                .arg(&self.dir)
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", binary.display()))?,
        );
        let url = format!("nats://127.0.0.1:{}", self.port);
        let mut last_error = String::new();
        for _ in 0..100 {
            if let Ok(Some(status)) = server.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
                return Err(format!("nats-server exited ({status}):\n{log}"));
            }
            match probe_nats(&url).await {
                Ok(()) => return Ok(()),
                Err(error) => last_error = error,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "nats-server at {url} did not become ready: {last_error}"
        ))
    }

    /// Stops the server at once, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A user id and group id to run PostgreSQL as, since it refuses to run as root.
#[derive(Debug, Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
}

fn running_as_root() -> Result<bool, String> {
    // /proc/self belongs to the process's effective user.
    let metadata =
        std::fs::metadata("/proc/self").map_err(|e| format!("cannot read /proc/self: {e}"))?;
    Ok(metadata.uid() == 0)
}

/// The `postgres` user if there is one, else `nobody`.
fn unprivileged_user() -> Result<User, String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    let users: Vec<Vec<&str>> = passwd
        .lines()
        .map(|line| line.split(':').collect())
        .collect();
    ["postgres", "nobody"]
        .iter()
        .find_map(|name| {
            let fields = users
                .iter()
                .find(|fields| fields.len() > 3 && fields[0] == *name)?;
            Some(User {
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        })
        .ok_or_else(|| {
            "running as root, and there is neither a postgres nor a nobody user to run as"
                .to_owned()
        })
}

/// The newest `/usr/lib/postgresql/<version>/bin`, else the directory of `initdb` on the
/// `PATH` (an empty path: the commands are looked up on the `PATH`).
fn postgres_bin_dir() -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| {
            versions
                .filter_map(|entry| {
                    let entry = entry.ok()?;
                    let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .max_by_key(|(version, _)| *version)
        });
    newest.map(|(_, bin)| bin).unwrap_or_default()
}

/// `name` on the `PATH`, else in one of `extra_dirs`, else `name` as it is.
fn find_binary(name: &str, extra_dirs: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A temporary directory that outlives this process's statics (the watchdog removes it),
/// owned by `user` when given.
fn temp_dir(prefix: &str, user: Option<User>) -> Result<PathBuf, String> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?
        .keep();
    if let Some(user) = user {
        std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot hand {} to uid {}: {e}", dir.display(), user.uid))?;
    }
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Runs a command to completion (as `user` when given), failing with its output.
async fn run(
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    dir: &Path,
    user: Option<User>,
) -> Result<(), String> {
    let program = program.as_ref();
    let mut command = tokio::process::Command::new(program);
    command.args(args).current_dir(dir).stdin(Stdio::null());
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
    }
    let output = command
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} failed ({}):\n{}{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Runs `script` (a `sh` script; `$1`… are `args`) when this process exits: a watchdog
/// waits for the end of a pipe that only this process holds open, so it also fires when
/// the process is killed.
fn stop_at_exit(script: &str, args: &[&OsStr], user: Option<User>) -> Result<(), String> {
    static WATCHDOGS: Mutex<Vec<Child>> = Mutex::new(Vec::new());
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("cat >/dev/null; {script}"))
        .arg("palaver-test-cleanup")
        .args(args)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C of the tests does not kill it before it cleans up.
        .process_group(0);
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
    }
    let watchdog = command
        .spawn()
        .map_err(|e| format!("cannot start the cleanup watchdog: {e}"))?;
    WATCHDOGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(watchdog);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
        assert_eq!(
            with_database("postgres://h?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }

    #[test]
    fn prefixes_are_nats_tokens_and_unique() {
        let (a, b) = (unique_prefix(), unique_prefix());
        assert_ne!(a, b);
        assert!(a.starts_with('t') && a.len() == 13);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{a}"
        );
    }

    #[tokio::test]
    async fn postgres_databases_are_fresh_and_usable() {
        let (one, two) = (postgres().await, postgres().await);
        assert_ne!(one.url, two.url);
        let mut connection = PgConnection::connect(&one.url).await.unwrap();
        connection.execute("CREATE TABLE t (id INT)").await.unwrap();
        let mut other = PgConnection::connect(&two.url).await.unwrap();
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
                .fetch_one(&mut other)
                .await
                .unwrap();
        assert_eq!(tables, 0, "each database starts empty");
    }

    #[tokio::test]
    async fn sqlite_databases_are_fresh_files() {
        sqlx::any::install_default_drivers();
        let database = sqlite();
        let mut connection = sqlx::AnyConnection::connect(&database.url).await.unwrap();
        connection
            .execute("CREATE TABLE t (id INTEGER)")
            .await
            .unwrap();
        connection.close().await.unwrap();
        let path = database
            .url
            .trim_start_matches("sqlite://")
            .trim_end_matches("?mode=rwc")
            .to_owned();
        assert!(Path::new(&path).is_file());
        drop(database);
        assert!(
            !Path::new(&path).exists(),
            "the file goes with the TestDatabase"
        );
    }

    #[tokio::test]
    async fn nats_answers_with_jetstream() {
        probe_nats(&nats_url().await).await.unwrap();
    }
}
