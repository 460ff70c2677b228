//! `palaver-conversation [serve|migrate]`: runs the conversation service (the default)
//! or its database migrations. Configuration comes from the environment (see the crate
//! docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_conversation::run_command(std::env::args().nth(1).as_deref()).await
}
