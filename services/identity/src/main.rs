//! `palaver-identity [serve|migrate]`: runs the identity service (the default) or its
//! database migrations. Configuration comes from the environment (see the crate docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_kit::service::run_from_args::<palaver_identity::IdentityService>().await
}
