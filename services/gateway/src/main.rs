//! `palaver-gateway [serve]`: runs the gateway on the NATS bus of `PALAVER_NATS_URL`.
//! Configuration comes from the environment (see the crate docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    palaver_kit::service::run_from_args::<palaver_gateway::GatewayService>().await
}
