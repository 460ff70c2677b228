//! What the conversation service asks identity: the chat endpoint behind a handle (and
//! whether it is open), and an app's settings (retention, limits), cached briefly.

use std::time::Duration;

use palaver_kit::cache::Cache;
use palaver_kit::grpc::GrpcChannel;
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use pb::identity_client::IdentityClient;

/// A member's chat endpoint, as identity resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEndpoint {
    pub endpoint: String,
    pub app_id: String,
    pub member_id: String,
    pub display_name: String,
    /// True while the member holds a valid permission token.
    pub open: bool,
}

/// What the conversation service reads from an app's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSettings {
    /// Days messages are kept; 0 keeps them until they are erased.
    pub retention_days: u32,
    /// The app's own limit; 0 means the deployment's default.
    pub open_conversations_per_visitor: u32,
}

/// The identity service, as the conversation service uses it.
pub struct Directory {
    client: IdentityClient<GrpcChannel>,
    apps: Cache<AppSettings>,
}

impl Directory {
    /// Reads identity over `channel`, keeping app settings for `app_ttl`.
    pub fn new(channel: GrpcChannel, app_ttl: Duration) -> Self {
        Directory {
            client: IdentityClient::new(channel),
            apps: Cache::new(app_ttl),
        }
    }

    /// The chat endpoint `endpoint`, open or closed; `not_found` when unknown.
    #[tracing::instrument(skip(self))]
    pub async fn chat_endpoint(&self, endpoint: &str) -> Result<ChatEndpoint, Error> {
        let resolved = self
            .client
            .clone()
            .resolve_endpoint(pb::ResolveEndpointRequest {
                endpoint: endpoint.to_owned(),
            })
            .await
            .map_err(|status| identity_error(&status))?
            .into_inner();
        Ok(ChatEndpoint {
            endpoint: resolved.endpoint,
            app_id: resolved.app_id,
            member_id: resolved.member_id,
            display_name: resolved.display_name,
            open: resolved.open,
        })
    }

    /// An app's settings, from the cache when fetched recently.
    #[tracing::instrument(skip(self))]
    pub async fn app(&self, app_id: &str) -> Result<AppSettings, Error> {
        let mut client = self.client.clone();
        let request = pb::GetAppRequest {
            app_id: app_id.to_owned(),
        };
        let fetch = || async move {
            let app = client
                .get_app(request)
                .await
                .map_err(|status| identity_error(&status))?
                .into_inner();
            Ok(AppSettings {
                retention_days: app.retention_days,
                open_conversations_per_visitor: app
                    .limits
                    .map_or(0, |limits| limits.open_conversations_per_visitor),
            })
        };
        self.apps.get(app_id, fetch).await
    }
}

/// Identity's answer as an error of this service: what identity did not find is not
/// found here either; anything else unexpected means identity is unavailable.
fn identity_error(status: &tonic::Status) -> Error {
    let error = Error::from_status(status);
    match error.code {
        ErrorCode::NotFound | ErrorCode::EndpointClosed | ErrorCode::InvalidArgument => error,
        _ => {
            tracing::warn!(%error, "identity call failed");
            Error::new(ErrorCode::Unavailable, "identity is unavailable")
        }
    }
}
