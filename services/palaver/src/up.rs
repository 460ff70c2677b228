//! `palaver up`: the embedded default. Identity, presence, conversation and the gateway
//! run in this process on loopback ports, on SQLite files under the data directory and
//! one in-process event bus, with the demo site (`crate::demo`) on a port of its own.
//! A demo app is created on first start and its id and secrets kept in
//! `demo-app.json` beside the databases (the demo site keeps its own state in
//! `demo-site.json`); when the demo site's address changes between starts, the app's
//! origin, return URL and privacy URL follow it.
//!
//! Both listeners are bound before anything else, so port 0 works for either: the
//! addresses printed, the gateway's public URL and the demo app's settings are the real
//! ones.
//!
//! When everything is up, it prints a first screen whose lines a program may read: each
//! line of the table is two spaces, a label padded to 14 characters, the value (never
//! containing a space), and optionally two spaces and a note in parentheses. The
//! labels, in order:
//!
//! | label | value |
//! | --- | --- |
//! | `demo site` | the demo site's base URL (start here) |
//! | `console` | a one-time login link (10 minutes) to the site owner's console, `…/console/login?token=…` |
//! | `API` | the OpenAPI document, `…/v1/openapi.json` |
//! | `admin token` | the admin API's token; only when it was generated (else it is `PALAVER_ADMIN_TOKEN`) |
//! | `WebSocket` | `ws://…/v1/ws` |
//! | `demo app` | the demo app's id |
//! | `identity`, `presence`, `conversation` | the services' internal gRPC addresses, `http://…` |
//!
//! The screen ends with the line `Press Ctrl-C to stop.`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use palaver_conversation::{ConversationConfig, ConversationService};
use palaver_gateway::{GatewayConfig, GatewayService, ServiceUrls};
use palaver_identity::domain::apps::{AppUpdate, NewApp};
use palaver_identity::{IdentityConfig, IdentityService};
use palaver_kit::ErrorCode;
use palaver_kit::bus::{EventBus, LocalBus};
use palaver_kit::config::{CommonConfig, SecretString};
use palaver_kit::shutdown::{Shutdown, trigger_on_signal};
use palaver_presence::{Backends, PresenceConfig, PresenceService};
use tokio::net::TcpListener;
use url::Url;

use crate::demo::{CONSENT_RETURN_PATH, DemoApp, DemoSite, PRIVACY_PATH};

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

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let _telemetry = palaver_kit::telemetry::init("palaver")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let demo_listener = TcpListener::bind(args.demo_listen)
        .await
        .with_context(|| format!("binding the demo site to {}", args.demo_listen))?;
    let demo_url = base_url(
        demo_listener
            .local_addr()
            .context("the demo site's address")?,
    )?;
    let public_url = public_url(args.listen)?;

    let identity_db = sqlite_url(&args.data_dir, "identity.db");
    palaver_identity::migrate(&identity_db).await?;
    let identity = IdentityService::build(IdentityConfig::ephemeral(&identity_db))
        .await
        .context("starting the identity service")?;
    let identity_url = format!("http://{}", identity.grpc_addr());
    let app = demo_app(&args.data_dir, &identity, &demo_url).await?;
    let bus: Arc<dyn EventBus> = Arc::new(LocalBus::new());
    let presence = PresenceService::build(
        PresenceConfig::ephemeral(&identity_url),
        Backends::in_memory(bus.clone()),
    )
    .await
    .context("starting the presence service")?;
    let presence_url = format!("http://{}", presence.grpc_addr());
    let conversation_db = sqlite_url(&args.data_dir, "conversation.db");
    palaver_conversation::migrate(&conversation_db).await?;
    let conversation = ConversationService::build(
        ConversationConfig::ephemeral(&conversation_db, &identity_url),
        bus.clone(),
    )
    .await
    .context("starting the conversation service")?;
    let conversation_url = format!("http://{}", conversation.grpc_addr());
    let (admin_token, generated) = match std::env::var("PALAVER_ADMIN_TOKEN") {
        Ok(token) if !token.trim().is_empty() => (token, false),
        _ => (palaver_kit::random::random_string(32), true),
    };
    let gateway = GatewayService::build(
        GatewayConfig {
            common: CommonConfig {
                listen: args.listen,
                ..CommonConfig::ephemeral()
            },
            public_url,
            ..GatewayConfig::ephemeral(
                ServiceUrls {
                    identity: identity_url.clone(),
                    presence: presence_url.clone(),
                    conversation: conversation_url.clone(),
                },
                SecretString::from(admin_token.clone()),
            )
        },
        bus.clone(),
    )
    .await
    .context("starting the gateway")?;
    let gateway_addr = browsable(gateway.http_addr());
    let gateway_url = base_url(gateway.http_addr())?;
    let demo = DemoSite::build(
        demo_listener,
        demo_url,
        gateway_url.clone(),
        app.clone(),
        args.data_dir.join("demo-site.json"),
    )
    .await?;

    let shutdown = Shutdown::new();
    trigger_on_signal(&shutdown);
    let stopping = shutdown.clone();
    let services = tokio::spawn(async move {
        let result = tokio::try_join!(
            identity.run_until_stopped(stopping.clone()),
            presence.run_until_stopped(stopping.clone()),
            conversation.run_until_stopped(stopping.clone()),
            gateway.run_until_stopped(stopping.clone()),
        );
        // One service failing stops the others and the demo site.
        stopping.trigger();
        result.map(|_| ())
    });
    // The services answer from here on: the demo site sets itself up through the API.
    let console = match prepare(&demo).await {
        Ok(console) => console,
        Err(error) => {
            shutdown.trigger();
            services.await.context("the services' task")??;
            return Err(error);
        }
    };

    let line = |label: &str, value: &str, note: &str| {
        if note.is_empty() {
            println!("  {label:<14}{value}");
        } else {
            println!("  {label:<14}{value}  ({note})");
        }
    };
    println!();
    println!(
        "Palaver is running on its embedded default (data in {}).",
        args.data_dir.display()
    );
    println!();
    line(
        "demo site",
        demo.url().as_str(),
        "start here: sign in as a demo user, then open My Account",
    );
    line(
        "console",
        &console,
        "the site owner's messenger; the link works once, for 10 minutes",
    );
    line(
        "API",
        &format!("{gateway_url}v1/openapi.json"),
        "the CMS API takes the demo app's API secret",
    );
    if generated {
        line(
            "admin token",
            &admin_token,
            "set PALAVER_ADMIN_TOKEN to choose it",
        );
    }
    println!();
    line("WebSocket", &format!("ws://{gateway_addr}/v1/ws"), "");
    line(
        "demo app",
        &app.app_id,
        &format!(
            "its secrets are in {}",
            args.data_dir.join("demo-app.json").display()
        ),
    );
    line("identity", &identity_url, "internal gRPC");
    line("presence", &presence_url, "internal gRPC");
    line("conversation", &conversation_url, "internal gRPC");
    println!();
    println!("Press Ctrl-C to stop.");

    let stopping = shutdown.clone();
    let site = async move {
        let result = demo.run_until_stopped(stopping.clone()).await;
        stopping.trigger();
        result
    };
    let (services, site) = tokio::join!(services, site);
    services.context("the services' task")??;
    site
}

/// The demo site's members and webhook, then a login link for the owner's console.
async fn prepare(demo: &DemoSite) -> anyhow::Result<String> {
    demo.prepare().await?;
    demo.owner_login_link().await
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

/// An address a browser on this machine can open: "every interface" becomes loopback.
fn browsable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// `http://<address>/`, browsable.
fn base_url(addr: SocketAddr) -> anyhow::Result<Url> {
    Url::parse(&format!("http://{}/", browsable(addr)))
        .with_context(|| format!("making a URL of {addr}"))
}

/// The gateway's public URL: `None` lets it use the address it binds, unless that is
/// every interface, which links cannot name.
fn public_url(listen: SocketAddr) -> anyhow::Result<Option<Url>> {
    if !listen.ip().is_unspecified() {
        return Ok(None);
    }
    anyhow::ensure!(
        listen.port() != 0,
        "--listen {listen}: give a port when listening on every interface, for the links to name"
    );
    base_url(listen).map(Some)
}

/// The demo app: read from the data directory (its origin, return URL and privacy URL
/// moved to `demo_url` when the demo site moved), or created on first start.
async fn demo_app(
    data_dir: &Path,
    identity: &IdentityService,
    demo_url: &Url,
) -> anyhow::Result<DemoApp> {
    let path = data_dir.join("demo-app.json");
    let origins = vec![demo_url.origin().ascii_serialization()];
    let return_urls = vec![demo_url.join(CONSENT_RETURN_PATH)?.to_string()];
    let privacy_url = demo_url.join(PRIVACY_PATH)?.to_string();
    let identity = identity.identity();
    match std::fs::read(&path) {
        Ok(raw) => {
            let app: DemoApp = serde_json::from_slice(&raw)
                .with_context(|| format!("reading {}", path.display()))?;
            match identity.app(&app.app_id).await {
                Ok(current) => {
                    let moved = current.origins != origins
                        || current.return_urls != return_urls
                        || current.privacy_url != privacy_url;
                    if moved {
                        identity
                            .update_app(
                                &app.app_id,
                                AppUpdate {
                                    origins: Some(origins),
                                    return_urls: Some(return_urls),
                                    privacy_url: Some(privacy_url),
                                    ..AppUpdate::default()
                                },
                            )
                            .await
                            .map_err(|e| anyhow::anyhow!("moving the demo app: {e}"))?;
                    }
                    return Ok(app);
                }
                // The databases were removed but not this file: the app is made anew.
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(anyhow::anyhow!("reading the demo app: {e}")),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let created = identity
        .create_app(NewApp {
            name: "Palaver demo site".into(),
            origins,
            privacy_url,
            logo_url: String::new(),
            return_urls,
            retention_days: 30,
            limits: Default::default(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo app: {e}"))?;
    let app = DemoApp {
        app_id: created.app.app_id,
        api_secret: created.api_secret,
        identity_key: created.identity_key,
        identity_key_id: created.identity_key_id,
    };
    std::fs::write(&path, serde_json::to_vec_pretty(&app)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(app)
}
