//! `palaver up`: the embedded default. Every service that exists runs in this process
//! on loopback ports, on SQLite files under the data directory and one in-process event
//! bus; a demo app is created
//! on first start and its details kept in `demo-app.json` beside the databases.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use palaver_conversation::{ConversationConfig, ConversationService};
use palaver_gateway::{GatewayConfig, GatewayService, ServiceUrls};
use palaver_identity::domain::apps::NewApp;
use palaver_identity::{IdentityConfig, IdentityService};
use palaver_kit::bus::{EventBus, LocalBus};
use palaver_kit::config::{CommonConfig, SecretString};
use palaver_kit::shutdown::{Shutdown, trigger_on_signal};
use palaver_presence::{Backends, PresenceConfig, PresenceService};
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the public HTTP API will listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the demo site will listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    demo_listen: SocketAddr,
    /// Where the SQLite databases and the demo app's details are kept.
    #[arg(long, default_value = "./palaver-data")]
    data_dir: PathBuf,
}

/// The demo app's id and secrets, shown once by the API and so kept here.
#[derive(Serialize, Deserialize)]
struct DemoApp {
    app_id: String,
    api_secret: String,
    identity_key: String,
    identity_key_id: String,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let _telemetry = palaver_kit::telemetry::init("palaver")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let identity_db = sqlite_url(&args.data_dir, "identity.db");
    palaver_identity::migrate(&identity_db).await?;
    let identity = IdentityService::build(IdentityConfig::ephemeral(&identity_db))
        .await
        .context("starting the identity service")?;
    let identity_url = format!("http://{}", identity.grpc_addr());
    let bus: Arc<dyn EventBus> = Arc::new(LocalBus::new());
    let presence = PresenceService::build(
        PresenceConfig::ephemeral(&identity_url),
        Backends::in_memory(bus.clone()),
    )
    .await
    .context("starting the presence service")?;
    let conversation_db = sqlite_url(&args.data_dir, "conversation.db");
    palaver_conversation::migrate(&conversation_db).await?;
    let conversation = ConversationService::build(
        ConversationConfig::ephemeral(&conversation_db, &identity_url),
        bus.clone(),
    )
    .await
    .context("starting the conversation service")?;
    let (admin_token, generated) = match std::env::var("PALAVER_ADMIN_TOKEN") {
        Ok(token) if !token.trim().is_empty() => (token, false),
        _ => (palaver_identity::domain::secrets::random_string(32), true),
    };
    let public_url = url::Url::parse(&format!("http://{}", args.listen)).context("--listen")?;
    let gateway = GatewayService::build(
        GatewayConfig {
            common: CommonConfig {
                listen: args.listen,
                ..CommonConfig::ephemeral()
            },
            public_url: Some(public_url.clone()),
            ..GatewayConfig::ephemeral(
                ServiceUrls {
                    identity: identity_url.clone(),
                    presence: format!("http://{}", presence.grpc_addr()),
                    conversation: format!("http://{}", conversation.grpc_addr()),
                },
                SecretString::from(admin_token.clone()),
            )
        },
        bus.clone(),
    )
    .await
    .context("starting the gateway")?;
    let demo = demo_app(&args, &identity).await?;

    println!();
    println!(
        "Palaver is running on its embedded default (data in {}).",
        args.data_dir.display()
    );
    println!("  API              {public_url}v1/openapi.json");
    println!("  WebSocket        ws://{}/v1/ws", args.listen);
    println!(
        "  demo app         {} (its secrets are in {})",
        demo.app_id,
        args.data_dir.join("demo-app.json").display()
    );
    if generated {
        println!("  admin token      {admin_token}  (set PALAVER_ADMIN_TOKEN to choose it)");
    }
    println!(
        "  internal gRPC    identity {identity_url}, presence http://{}, conversation http://{}",
        presence.grpc_addr(),
        conversation.grpc_addr()
    );
    println!(
        "The demo site (on {}) joins when the pages land.",
        args.demo_listen
    );
    println!("Press Ctrl-C to stop.");
    println!();

    let shutdown = Shutdown::new();
    trigger_on_signal(&shutdown);
    tokio::try_join!(
        identity.run_until_stopped(shutdown.clone()),
        presence.run_until_stopped(shutdown.clone()),
        conversation.run_until_stopped(shutdown.clone()),
        gateway.run_until_stopped(shutdown.clone()),
    )?;
    Ok(())
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

/// The demo app: read from the data directory, or created on first start.
async fn demo_app(args: &UpArgs, identity: &IdentityService) -> anyhow::Result<DemoApp> {
    let path = args.data_dir.join("demo-app.json");
    if let Ok(raw) = std::fs::read(&path) {
        return serde_json::from_slice(&raw).with_context(|| format!("reading {}", path.display()));
    }
    let demo_origin = format!("http://{}", args.demo_listen);
    let created = identity
        .identity()
        .create_app(NewApp {
            name: "Palaver demo site".into(),
            origins: vec![demo_origin.clone()],
            privacy_url: format!("{demo_origin}/privacy"),
            logo_url: String::new(),
            return_urls: vec![format!("{demo_origin}/account/palaver")],
            retention_days: 30,
            limits: Default::default(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo app: {e}"))?;
    let demo = DemoApp {
        app_id: created.app.app_id,
        api_secret: created.api_secret,
        identity_key: created.identity_key,
        identity_key_id: created.identity_key_id,
    };
    std::fs::write(&path, serde_json::to_vec_pretty(&demo)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(demo)
}
