//! `palaver-conversation [serve|migrate]`: runs the conversation service (the default)
//! or its database migrations. Configuration comes from the environment (see the crate
//! docs).

use std::sync::Arc;

use anyhow::Context;
use palaver_conversation::{ConversationConfig, ConversationService};
use palaver_kit::bus::{DEFAULT_PREFIX, NatsBus};
use palaver_kit::config::Env;
use palaver_kit::shutdown::{Shutdown, trigger_on_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => serve(&env).await,
        Some("migrate") => {
            let database_url = env
                .required_url(
                    "PALAVER_DATABASE_URL",
                    &["postgres", "postgresql", "sqlite"],
                )
                .unwrap_or_else(|error| exit(&error.to_string()));
            let _telemetry = palaver_kit::telemetry::init("palaver-conversation")?;
            palaver_conversation::migrate(&database_url)
                .await
                .context("migrations failed")
        }
        Some(other) => exit(&format!(
            "unknown command {other:?}; use `serve` or `migrate`"
        )),
    }
}

async fn serve(env: &Env) -> anyhow::Result<()> {
    let config = ConversationConfig::from_env(env).unwrap_or_else(|error| exit(&error.to_string()));
    let _telemetry = palaver_kit::telemetry::init("palaver-conversation")?;
    let nats_url = config
        .nats_url
        .clone()
        .context("PALAVER_NATS_URL must be set")?;
    let bus = NatsBus::connect(&nats_url, DEFAULT_PREFIX)
        .await
        .context("connecting to NATS (PALAVER_NATS_URL)")?;
    let service = ConversationService::build(config, Arc::new(bus)).await?;
    let shutdown = Shutdown::new();
    trigger_on_signal(&shutdown);
    service.run_until_stopped(shutdown).await
}

fn exit(message: &str) -> ! {
    eprintln!("palaver-conversation: {message}");
    std::process::exit(2);
}
