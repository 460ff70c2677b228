//! `palaver-gateway [serve]`: runs the gateway on the NATS bus of `PALAVER_NATS_URL`.
//! Configuration comes from the environment (see the crate docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_gateway::run_command(std::env::args().nth(1).as_deref()).await
}
