//! `palaver`: the one binary that holds every Palaver service.
//!
//! - `palaver up` runs Palaver on its embedded default: every service in one process,
//!   on SQLite files under `--data-dir` and an in-process event bus, with a demo app
//!   made on first start and the demo site (`demo`) that plays its CMS.
//! - `palaver <service> [command]` runs one service exactly as its own binary
//!   (`palaver-<service>`) would, configured from the environment, so one image serves
//!   every Deployment.

mod demo;
mod up;

use clap::{Parser, Subcommand};
use palaver_kit::service::{Command as ServiceCommand, run};

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
    /// Run Palaver on its embedded default: one process, SQLite, a demo site.
    Up(up::UpArgs),
    /// Run the identity service: `serve` (the default) or `migrate`.
    Identity {
        #[arg(value_enum)]
        command: Option<ServiceCommand>,
    },
    /// Run the presence service: `serve` (the default).
    Presence {
        #[arg(value_enum)]
        command: Option<ServiceCommand>,
    },
    /// Run the conversation service: `serve` (the default) or `migrate`.
    Conversation {
        #[arg(value_enum)]
        command: Option<ServiceCommand>,
    },
    /// Run the gateway: `serve` (the default).
    Gateway {
        #[arg(value_enum)]
        command: Option<ServiceCommand>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Identity { command } => run::<palaver_identity::IdentityService>(command).await,
        Command::Presence { command } => run::<palaver_presence::PresenceService>(command).await,
        Command::Conversation { command } => {
            run::<palaver_conversation::ConversationService>(command).await
        }
        Command::Gateway { command } => run::<palaver_gateway::GatewayService>(command).await,
    }
}
