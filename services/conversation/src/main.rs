//! `palaver-conversation [serve|migrate]`: runs the conversation service (the default)
//! or its database migrations. Configuration comes from the environment (see the crate
//! docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_kit::service::run_from_args::<palaver_conversation::ConversationService>().await
}
