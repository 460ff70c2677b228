//! The chart installed on this machine: fresh PostgreSQL databases and a NATS from
//! `palaver_kit::testing`, `helm template` with the values below (the backends from a
//! Secret that points at them, migrations on, one replica of each service but presence),
//! and the rendered pods started as processes by [`Cluster`].

use std::collections::BTreeMap;

use palaver_kit::grpc::{GrpcChannel, balanced_channel};
use palaver_kit::testing::{self, TestDatabase};
use palaver_proto::identity::v1::identity_client::IdentityClient;

use crate::chart::{self, RELEASE};
use crate::cluster::{self, Cluster, Loopback, RunSpec};

/// The Secret the values name for PostgreSQL and NATS; a real install creates it by hand.
const BACKENDS_SECRET: &str = "palaver-e2e-backends";

/// The values file: everything else is the chart's default.
fn values(public_url: &str, presence_replicas: usize) -> String {
    format!(
        r#"# Written by tests/e2e/tests/chart_run/install.rs.
externalDatabase:
  existingSecret: {BACKENDS_SECRET}
externalNats:
  existingSecret: {BACKENDS_SECRET}
migrations:
  enabled: true
identity:
  replicas: 1
conversation:
  replicas: 1
presence:
  autoscaling:
    enabled: false
  replicas: {presence_replicas}
gateway:
  publicUrl: "{public_url}"
  autoscaling:
    enabled: false
  replicas: 1
"#
    )
}

/// A running install and what driving it takes.
pub struct Install {
    pub cluster: Cluster,
    /// The gateway's Deployment (and Service) name.
    #[allow(dead_code)] // read by benches/websocket.rs, not by the test
    pub gateway: String,
    /// The presence Deployment's name.
    pub presence: String,
    /// The gateway's Service URL, which is also its public URL.
    pub base: String,
    /// The admin API's token, from the gateway's Secret.
    pub admin_token: String,
    /// Identity's gRPC, as the gateway reaches it (the consent page's decisions).
    pub identity: IdentityClient<GrpcChannel>,
    _databases: [TestDatabase; 2],
}

impl Install {
    /// Renders the chart with `presence_replicas` presence pods and starts it.
    pub async fn start(presence_replicas: usize) -> Install {
        let identity_db = testing::postgres().await;
        let conversation_db = testing::postgres().await;
        let nats_url = testing::nats_url().await;
        let bin_dir = cluster::binaries().await;

        // The gateway's Service address is decided first: it is the public URL (what the
        // Ingress host would be in a cluster).
        let loopback = Loopback::random();
        let gateway = format!("{RELEASE}-gateway");
        let services = BTreeMap::from([(gateway.clone(), loopback.service(0))]);
        let public_url = format!("http://{}:8080", loopback.service(0));

        let log_dir = bin_dir.join(format!("e2e-chart-run-{}", testing::unique_prefix()));
        std::fs::create_dir_all(&log_dir).unwrap();
        let values_file = log_dir.join("values.yaml");
        std::fs::write(&values_file, values(&public_url, presence_replicas)).unwrap();
        let rendered = chart::render(&values_file).await;

        let secret = |key: &str, value: &str| {
            (
                (BACKENDS_SECRET.to_owned(), key.to_owned()),
                value.to_owned(),
            )
        };
        let cluster = Cluster::start(RunSpec {
            rendered: &rendered,
            loopback,
            services,
            external_secrets: BTreeMap::from([
                secret("identity-database-url", &identity_db.url),
                secret("conversation-database-url", &conversation_db.url),
                secret("nats-url", &nats_url),
            ]),
            bin_dir,
            log_dir,
        })
        .await;
        let base = cluster.service_url(&gateway, 8080);
        assert_eq!(base, public_url);
        let identity = IdentityClient::new(
            balanced_channel(&cluster.env_of(&gateway, "PALAVER_IDENTITY_URL"))
                .expect("a channel to identity"),
        );
        Install {
            admin_token: cluster.env_of(&gateway, "PALAVER_ADMIN_TOKEN"),
            presence: format!("{RELEASE}-presence"),
            gateway,
            base,
            identity,
            cluster,
            _databases: [identity_db, conversation_db],
        }
    }
}
