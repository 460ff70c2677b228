//! What every service's process does the same way, written once:
//!
//! - the command line, `palaver-<service> [serve|migrate]` (also `palaver <service> …`),
//!   parsed by clap ([`ServiceArgs`]); `serve` is the default, `migrate` runs the
//!   embedded migrations of a service with a database;
//! - [`run`]: reading the configuration from the environment (a bad value exits with
//!   status 2 and a message naming the variable), starting telemetry, and serving until
//!   SIGTERM or SIGINT, or migrating;
//! - [`Listeners`]: binding the service's own address and the admin server (port 0 works;
//!   the real addresses are read back);
//! - [`Listeners::run`]: serving both until shutdown, then draining within
//!   `PALAVER_DRAIN_SECONDS`: what must end before the server can (open sockets), the
//!   server's calls in flight, then the service's own work, then the admin server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::admin::{AdminServer, ReadinessCheck};
use crate::config::{CommonConfig, ConfigError, Env};
use crate::db::{Database, Migrations};
use crate::shutdown::{Shutdown, drain, trigger_on_signal};

/// What a service's process is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Command {
    /// Serve until SIGTERM or SIGINT (the default).
    Serve,
    /// Run the database migrations, then exit.
    Migrate,
}

/// The arguments of a service's binary.
#[derive(Debug, clap::Parser)]
pub struct ServiceArgs {
    /// `serve` (the default) or `migrate`.
    #[arg(value_enum)]
    pub command: Option<Command>,
}

/// One Palaver service, as [`run`] runs it.
pub trait Service: Sized + Send {
    /// The process name: `palaver-identity`, …
    const NAME: &'static str;

    /// Its configuration.
    type Config: Send;

    /// Reads the configuration; the error names the variable that is wrong.
    fn config(env: &Env) -> Result<Self::Config, ConfigError>;

    /// Connects what the service needs and binds its listeners.
    fn start(config: Self::Config) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Serves until `shutdown` triggers, then drains.
    fn run_until_stopped(
        self,
        shutdown: Shutdown,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The migrations `migrate` runs on `PALAVER_DATABASE_URL`; `None` for a service
    /// without a database.
    fn migrations() -> Option<Migrations> {
        None
    }
}

/// What the binary of the service `S` does: [`run`] with the command its arguments name.
pub async fn run_from_args<S: Service>() -> anyhow::Result<()> {
    use clap::Parser as _;
    let args = ServiceArgs::parse();
    run::<S>(args.command).await
}

/// Runs `command` for the service `S`: `serve` (the default) or `migrate`.
pub async fn run<S: Service>(command: Option<Command>) -> anyhow::Result<()> {
    let env = Env::process();
    match command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = S::config(&env).unwrap_or_else(|error| exit(S::NAME, &error));
            let _telemetry = crate::telemetry::init(S::NAME)?;
            let service = S::start(config).await?;
            let shutdown = Shutdown::new();
            trigger_on_signal(&shutdown);
            service.run_until_stopped(shutdown).await
        }
        Command::Migrate => {
            let Some(migrations) = S::migrations() else {
                exit(
                    S::NAME,
                    &format_args!("has no database to migrate; use `serve`"),
                )
            };
            let database_url = env
                .required_url(
                    "PALAVER_DATABASE_URL",
                    &["postgres", "postgresql", "sqlite"],
                )
                .unwrap_or_else(|error| exit(S::NAME, &error));
            let _telemetry = crate::telemetry::init(S::NAME)?;
            migrate(&database_url, &migrations)
                .await
                .context("migrations failed")
        }
    }
}

/// Connects to the database at `database_url` and runs `migrations` on it.
pub async fn migrate(database_url: &str, migrations: &Migrations) -> anyhow::Result<()> {
    let db = Database::connect(database_url)
        .await
        .context("connecting to the database")?;
    db.migrate(migrations)
        .await
        .context("migrating the database")
}

fn exit(name: &str, error: &dyn std::fmt::Display) -> ! {
    eprintln!("{name}: {error}");
    std::process::exit(2);
}

/// A service's own listener and its admin server, bound and not yet serving.
pub struct Listeners {
    /// The service's address (`PALAVER_LISTEN`): gRPC, or HTTP for the gateway.
    pub listener: TcpListener,
    /// Where `listener` listens (port 0 resolved).
    pub addr: SocketAddr,
    /// The admin server (`PALAVER_ADMIN_LISTEN`).
    pub admin: AdminServer,
    drain: Duration,
}

impl Listeners {
    /// Binds `common`'s addresses; the admin server's `/readyz` runs `checks`.
    pub async fn bind(
        common: &CommonConfig,
        checks: Vec<Arc<dyn ReadinessCheck>>,
    ) -> anyhow::Result<Listeners> {
        let listener = TcpListener::bind(common.listen)
            .await
            .with_context(|| format!("binding {} (PALAVER_LISTEN)", common.listen))?;
        let addr = listener
            .local_addr()
            .context("reading the service's address")?;
        let admin = AdminServer::bind(common.admin_listen, checks)
            .await
            .with_context(|| format!("binding {} (PALAVER_ADMIN_LISTEN)", common.admin_listen))?;
        Ok(Listeners {
            listener,
            addr,
            admin,
            drain: common.drain,
        })
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// Runs `serve` (the service's server on [`Listeners::listener`], which must stop
    /// taking calls and finish those in flight when `shutdown` triggers) and the admin
    /// server until `shutdown` triggers. Then, within the drain time, runs `closing`
    /// (what the server waits for: the gateway closes its WebSockets), waits for the
    /// server, then for `wind_down` (the service's own work: queues, background tasks),
    /// then for the admin server; past the drain time it gives up and says so.
    pub async fn run<S, C, W>(
        self,
        name: &str,
        shutdown: Shutdown,
        serve: impl FnOnce(TcpListener) -> S,
        closing: C,
        wind_down: W,
    ) -> anyhow::Result<()>
    where
        S: Future<Output = anyhow::Result<()>> + Send + 'static,
        C: Future<Output = ()>,
        W: Future<Output = ()>,
    {
        tracing::info!(addr = %self.addr, admin = %self.admin.local_addr(), "{name} listening");
        let server = tokio::spawn(serve(self.listener));
        let admin = tokio::spawn(self.admin.run(shutdown.clone()));
        shutdown.wait().await;
        let finished = drain(
            async {
                closing.await;
                let server = server.await;
                wind_down.await;
                (server, admin.await)
            },
            self.drain,
        )
        .await;
        let Some((server, admin)) = finished else {
            tracing::warn!("{name} stopped before its work drained");
            return Ok(());
        };
        server.context("server task")?.context("server")?;
        admin.context("admin server task")?.context("admin server")
    }

    /// [`Listeners::run`] for a gRPC service: serves `routes` (with the standard health
    /// service reporting `health_names`), and nothing to close before the server drains.
    pub async fn run_grpc<W: Future<Output = ()>>(
        self,
        name: &str,
        shutdown: Shutdown,
        routes: tonic::service::Routes,
        health_names: &'static [&'static str],
        wind_down: W,
    ) -> anyhow::Result<()> {
        let stop = shutdown.clone();
        self.run(
            name,
            shutdown,
            |listener| crate::grpc::serve(listener, routes, health_names, stop),
            std::future::ready(()),
            wind_down,
        )
        .await
    }
}
