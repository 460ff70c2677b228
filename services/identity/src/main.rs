//! `palaver-identity [serve|migrate]`: runs the identity service (the default) or its
//! database migrations. Configuration comes from the environment (see the crate docs).

use anyhow::Context;
use palaver_identity::{IdentityConfig, IdentityService};
use palaver_kit::config::Env;
use palaver_kit::shutdown::{Shutdown, trigger_on_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match IdentityConfig::from_env(&Env::process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("palaver-identity: {error}");
            std::process::exit(2);
        }
    };
    let _telemetry = palaver_kit::telemetry::init("palaver-identity")?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let service = IdentityService::build(config).await?;
            let shutdown = Shutdown::new();
            trigger_on_signal(&shutdown);
            service.run_until_stopped(shutdown).await
        }
        Some("migrate") => palaver_identity::migrate(&config.database_url)
            .await
            .context("migrations failed"),
        Some(other) => {
            eprintln!("palaver-identity: unknown command {other:?}; use `serve` or `migrate`");
            std::process::exit(2);
        }
    }
}
