//! The servers tests run against: PostgreSQL and NATS at their configured URLs, or, when
//! nothing answers there, started once per test process from the local binaries, in a
//! temporary directory that a watchdog removes when the process exits.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

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

/// The URL of the maintenance database of a PostgreSQL server that answers.
pub(super) async fn postgres_server() -> &'static str {
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

    #[tokio::test]
    async fn nats_answers_with_jetstream() {
        probe_nats(&nats_url().await).await.unwrap();
    }
}
