//! `palaver-presence`: runs the presence service against NATS (the event bus and the
//! key-value bucket) and the identity service. Configuration comes from the environment
//! (see the crate docs).

use anyhow::Context;
use palaver_kit::bus::DEFAULT_PREFIX;
use palaver_kit::config::Env;
use palaver_kit::shutdown::{Shutdown, trigger_on_signal};
use palaver_presence::{Backends, PresenceConfig, PresenceService};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match PresenceConfig::from_env(&Env::process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("palaver-presence: {error}");
            std::process::exit(2);
        }
    };
    if let Some(command) = std::env::args().nth(1).filter(|c| c != "serve") {
        eprintln!("palaver-presence: unknown command {command:?}; use `serve`");
        std::process::exit(2);
    }
    let _telemetry = palaver_kit::telemetry::init("palaver-presence")?;
    let nats_url = config
        .nats_url
        .clone()
        .context("PALAVER_NATS_URL must be set")?;
    let backends = Backends::nats(&nats_url, DEFAULT_PREFIX, config.kv.clone()).await?;
    let service = PresenceService::build(config, backends).await?;
    let shutdown = Shutdown::new();
    trigger_on_signal(&shutdown);
    service.run_until_stopped(shutdown).await
}
