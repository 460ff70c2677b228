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
//!
//! The servers themselves, found or started, are in `servers`.

mod servers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

use crate::random::new_id;
use servers::postgres_server;
pub use servers::{NatsServer, nats_url};

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
/// ```text
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
}
