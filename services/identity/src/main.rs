//! `palaver-identity [serve|migrate]`: runs the identity service (the default) or its
//! database migrations. Configuration comes from the environment (see the crate docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_identity::run_command(std::env::args().nth(1).as_deref()).await
}
