//! `palaver-presence [serve]`: runs the presence service against NATS (the event bus and
//! the key-value bucket) and the identity service. Configuration comes from the
//! environment (see the crate docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_kit::service::run_from_args::<palaver_presence::PresenceService>().await
}
