//! `palaver`: the one binary that holds every Palaver service.
//!
//! - `palaver up` runs Palaver on its embedded default: every service that exists in
//!   one process, on SQLite files under `--data-dir`, with a demo app made on first
//!   start.
//! - `palaver identity [serve|migrate]` runs one service as its own binary would
//!   (configured from the environment), so one image serves every Deployment.

mod up;

use clap::{Parser, Subcommand};
use palaver_kit::config::Env;
use palaver_kit::shutdown::{Shutdown, trigger_on_signal};

#[derive(Parser)]
#[command(
    name = "palaver",
    version,
    about = "Self-hosted website chat and presence"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Palaver on its embedded default: one process, SQLite, a demo app.
    Up(up::UpArgs),
    /// Run the identity service (configured from the environment).
    Identity {
        #[command(subcommand)]
        action: Option<ServiceAction>,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum ServiceAction {
    /// Serve (the default).
    Serve,
    /// Run the database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Identity { action } => {
            let config = palaver_identity::IdentityConfig::from_env(&Env::process())
                .unwrap_or_else(|error| {
                    eprintln!("palaver identity: {error}");
                    std::process::exit(2);
                });
            let _telemetry = palaver_kit::telemetry::init("palaver-identity")?;
            match action.unwrap_or(ServiceAction::Serve) {
                ServiceAction::Serve => {
                    let shutdown = Shutdown::new();
                    trigger_on_signal(&shutdown);
                    palaver_identity::IdentityService::build(config)
                        .await?
                        .run_until_stopped(shutdown)
                        .await
                }
                ServiceAction::Migrate => palaver_identity::migrate(&config.database_url).await,
            }
        }
    }
}
