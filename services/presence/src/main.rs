//! `palaver-presence [serve]`: runs the presence service against NATS (the event bus and
//! the key-value bucket) and the identity service. Configuration comes from the
//! environment (see the crate docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_presence::run_command(std::env::args().nth(1).as_deref()).await
}
