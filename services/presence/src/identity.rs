//! The [`Directory`] over the identity service's gRPC API: `GetMember` by member id and
//! `ResolveEndpoints`, through a channel balanced over every identity replica.

use async_trait::async_trait;
use palaver_kit::grpc::GrpcChannel;
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as pb;
use pb::identity_client::IdentityClient;

use crate::domain::directory::{Directory, EndpointInfo, MemberInfo};
use crate::domain::ids::MemberKey;

/// How many endpoints identity resolves in one call.
const ENDPOINTS_PER_CALL: usize = 1000;

/// Asks the identity service.
#[derive(Debug, Clone)]
pub struct IdentityDirectory {
    client: IdentityClient<GrpcChannel>,
}

impl IdentityDirectory {
    pub fn new(channel: GrpcChannel) -> Self {
        IdentityDirectory {
            client: IdentityClient::new(channel),
        }
    }
}

/// Identity's error, as presence reports it: a failure of identity itself is
/// unavailability here, never a verdict on the caller's input.
fn identity_error(status: &tonic::Status) -> Error {
    let error = Error::from_status(status);
    match error.code {
        ErrorCode::Unavailable | ErrorCode::Internal => {
            tracing::warn!(code = ?status.code(), message = status.message(), "identity call failed");
            Error::new(
                ErrorCode::Unavailable,
                "the identity service is unavailable; try again",
            )
        }
        _ => error,
    }
}

#[async_trait]
impl Directory for IdentityDirectory {
    #[tracing::instrument(level = "debug", skip(self), fields(member = %key))]
    async fn member(&self, key: &MemberKey) -> Result<Option<MemberInfo>, Error> {
        let request = pb::GetMemberRequest {
            app_id: key.app_id.clone(),
            key: Some(pb::get_member_request::Key::MemberId(key.member_id.clone())),
        };
        match self.client.clone().get_member(request).await {
            Ok(member) => {
                let member = member.into_inner();
                Ok(Some(MemberInfo {
                    display_name: member.display_name,
                    endpoint: Some(member.endpoint).filter(|e| !e.is_empty()),
                }))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(identity_error(&status)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(endpoints = endpoints.len()))]
    async fn endpoints(&self, endpoints: &[String]) -> Result<Vec<EndpointInfo>, Error> {
        let mut found = Vec::new();
        for chunk in endpoints.chunks(ENDPOINTS_PER_CALL) {
            let resolved = self
                .client
                .clone()
                .resolve_endpoints(pb::ResolveEndpointsRequest {
                    endpoints: chunk.to_vec(),
                })
                .await
                .map_err(|status| identity_error(&status))?
                .into_inner();
            found.extend(resolved.endpoints.into_iter().filter_map(|endpoint| {
                Some(EndpointInfo {
                    member: MemberKey::new(&endpoint.app_id, &endpoint.member_id).ok()?,
                    endpoint: endpoint.endpoint,
                    display_name: endpoint.display_name,
                    open: endpoint.open,
                })
            }));
        }
        Ok(found)
    }
}
