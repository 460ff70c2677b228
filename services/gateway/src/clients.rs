//! The services behind the gateway as it calls them: balanced, traced gRPC channels
//! (kit's [`balanced_channel`], whose deadline bounds every call) to identity, presence
//! and conversation, errors read back into kit's codes, and the readiness checks of
//! `/readyz`.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use palaver_kit::Error;
use palaver_kit::admin::ReadinessCheck;
use palaver_kit::bus::EventBus;
use palaver_kit::grpc::{ChannelError, GrpcChannel, balanced_channel};
use palaver_proto::identity::v1 as pb;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The generated identity client over kit's balanced channel; cheap to clone.
pub type IdentityClient = pb::identity_client::IdentityClient<GrpcChannel>;

/// The generated presence client over kit's balanced channel; cheap to clone.
pub type PresenceClient = palaver_proto::presence::v1::presence_client::PresenceClient<GrpcChannel>;

/// The generated conversation client over kit's balanced channel; cheap to clone.
pub type ConversationClient =
    palaver_proto::conversation::v1::conversations_client::ConversationsClient<GrpcChannel>;

/// The clients of the services behind the gateway.
#[derive(Clone)]
pub struct Clients {
    pub identity: IdentityClient,
    pub presence: PresenceClient,
    pub conversation: ConversationClient,
}

/// A channel balanced over every address `url` resolves to, for a service's client and
/// its health check.
pub fn connect(url: &str) -> Result<GrpcChannel, ChannelError> {
    balanced_channel(url)
}

/// Awaits a call and reads a failure back into its stable code; a call past the
/// channel's deadline fails as `CANCELLED`, which reads back as `unavailable`.
pub async fn call<T>(
    rpc: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Error> {
    rpc.await
        .map(tonic::Response::into_inner)
        .map_err(|status| Error::from_status(&status))
}

/// Ready when a service's gRPC health check answers `SERVING`.
pub struct ServiceReady {
    name: &'static str,
    service: &'static str,
    health: HealthClient<GrpcChannel>,
}

impl ServiceReady {
    /// The check named `name` of the gRPC service `service` (its full name) on `channel`.
    pub fn new(name: &'static str, service: &'static str, channel: GrpcChannel) -> Self {
        ServiceReady {
            name,
            service,
            health: HealthClient::new(channel),
        }
    }
}

#[async_trait]
impl ReadinessCheck for ServiceReady {
    fn name(&self) -> &str {
        self.name
    }

    async fn check(&self) -> Result<(), String> {
        let request = HealthCheckRequest {
            service: self.service.to_owned(),
        };
        let response = self
            .health
            .clone()
            .check(request)
            .await
            .map_err(|status| format!("health check failed: {}", status.message()))?;
        match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("{} is {}", self.name, other.as_str_name())),
        }
    }
}

/// Ready when the event bus can publish and deliver.
pub struct BusReady(pub Arc<dyn EventBus>);

#[async_trait]
impl ReadinessCheck for BusReady {
    fn name(&self) -> &str {
        "bus"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ready().await.map_err(|e| e.to_string())
    }
}
