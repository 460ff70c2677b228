//! The presence gRPC server: proto messages in, domain calls, proto messages out.
//! Every answer carries the `palaver-replica` metadata naming the replica that gave it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use palaver_kit::Error;
use palaver_kit::shutdown::Shutdown;
use palaver_proto::presence::v1 as pb;
use pb::presence_server::Presence as PresenceRpc;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status as GrpcStatus};

use crate::domain::ids::{DeviceKey, MemberKey, Target};
use crate::domain::record::Millis;
use crate::domain::{MemberPresence, Presence};
use palaver_kit::status::Status;

/// The metadata key naming the replica that answered.
pub const REPLICA_METADATA: &str = "palaver-replica";

/// The tonic service over the domain.
pub struct PresenceServer {
    presence: Arc<Presence>,
    replica: MetadataValue<tonic::metadata::Ascii>,
    shutdown: Shutdown,
    watch_streams: WatchStreams,
}

/// How many watch streams a presence instance has open (`palaver_presence_watch_streams`).
#[derive(Debug, Clone, Default)]
pub struct WatchStreams(Arc<AtomicUsize>);

impl WatchStreams {
    /// The number open now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts a stream until the answer is dropped.
    fn open(&self) -> OpenWatch {
        self.0.fetch_add(1, Ordering::Relaxed);
        OpenWatch(self.0.clone())
    }
}

/// One open watch stream of [`WatchStreams`].
struct OpenWatch(Arc<AtomicUsize>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PresenceServer {
    /// Watch streams end (with `UNAVAILABLE`, so clients watch again elsewhere) when
    /// `shutdown` triggers; `watch_streams` counts them while they are open.
    pub fn new(
        presence: Arc<Presence>,
        shutdown: Shutdown,
        watch_streams: WatchStreams,
    ) -> pb::presence_server::PresenceServer<PresenceServer> {
        let replica = MetadataValue::try_from(presence.replica())
            .unwrap_or_else(|_| MetadataValue::from_static("unnamed"));
        pb::presence_server::PresenceServer::new(PresenceServer {
            presence,
            replica,
            shutdown,
            watch_streams,
        })
    }

    fn answer<T>(&self, value: T) -> Result<Response<T>, GrpcStatus> {
        let mut response = Response::new(value);
        response
            .metadata_mut()
            .insert(REPLICA_METADATA, self.replica.clone());
        Ok(response)
    }
}

type Rpc<T> = Result<Response<T>, GrpcStatus>;

fn status_from(field: &str, value: i32) -> Result<Status, Error> {
    let status = pb::Status::try_from(value)
        .map_err(|_| Error::invalid(field, format!("unknown status {value}")))?;
    Status::try_from(status).map_err(|_| Error::invalid(field, "is required"))
}

fn device_from(field: &str, device: Option<pb::Device>) -> Result<DeviceKey, Error> {
    let device = device.ok_or_else(|| Error::invalid(field, "is required"))?;
    DeviceKey::new(field, &device.app_id, &device.member_id, &device.device_id)
}

fn device_to(device: DeviceKey) -> pb::Device {
    pb::Device {
        app_id: device.member.app_id,
        member_id: device.member.member_id,
        device_id: device.device_id,
    }
}

fn target_from(field: &str, target: Option<pb::Target>) -> Result<Target, Error> {
    match target.and_then(|t| t.target) {
        Some(pb::target::Target::MemberId(id)) => Ok(Target::Member(id)),
        Some(pb::target::Target::Endpoint(endpoint)) => Ok(Target::Endpoint(endpoint)),
        None => Err(Error::invalid(field, "name a member_id or an endpoint")),
    }
}

fn targets_from(targets: Vec<pb::Target>) -> Result<Vec<Target>, Error> {
    targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| target_from(&format!("targets[{i}]"), Some(target)))
        .collect()
}

fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// A domain presence as it goes out in answers and events.
pub(crate) fn presence_to_pb(presence: MemberPresence) -> pb::MemberPresence {
    pb::MemberPresence {
        accepts_chats: presence.accepts_chats(),
        app_id: presence.member.app_id,
        member_id: presence.member.member_id,
        endpoint: presence.endpoint.unwrap_or_default(),
        status: pb::Status::from(presence.status) as i32,
        updated_at: presence.updated_at.map(timestamp),
        display_name: presence.display_name,
        revision: presence.revision,
    }
}

/// A presence from an event; `None` when it names no member or no status.
pub(crate) fn presence_from_pb(presence: pb::MemberPresence) -> Option<MemberPresence> {
    Some(MemberPresence {
        member: MemberKey::new(&presence.app_id, &presence.member_id).ok()?,
        endpoint: Some(presence.endpoint).filter(|e| !e.is_empty()),
        status: status_from("status", presence.status).ok()?,
        updated_at: presence
            .updated_at
            .map(|t| t.seconds * 1000 + Millis::from(t.nanos / 1_000_000)),
        display_name: presence.display_name,
        revision: presence.revision,
    })
}

/// Names the device on the handler's span.
fn record_device(device: &DeviceKey) {
    let span = tracing::Span::current();
    span.record("app_id", device.member.app_id.as_str());
    span.record("member_id", device.member.member_id.as_str());
    span.record("device_id", device.device_id.as_str());
}

#[tonic::async_trait]
impl PresenceRpc for PresenceServer {
    #[tracing::instrument(
        name = "presence.set_status",
        skip_all,
        fields(app_id, member_id, device_id, status)
    )]
    async fn set_status(&self, request: Request<pb::SetStatusRequest>) -> Rpc<pb::MemberPresence> {
        let r = request.into_inner();
        let device = device_from("device", r.device)?;
        let status = status_from("status", r.status)?;
        record_device(&device);
        tracing::Span::current().record("status", status.as_str());
        let presence = self.presence.set_status(&device, status).await?;
        self.answer(presence_to_pb(presence))
    }

    #[tracing::instrument(name = "presence.batch_set_status", skip_all, fields(changes))]
    async fn batch_set_status(
        &self,
        request: Request<pb::BatchSetStatusRequest>,
    ) -> Rpc<pb::BatchSetStatusResponse> {
        let r = request.into_inner();
        tracing::Span::current().record("changes", r.changes.len());
        let changes = r
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, change)| {
                let device = device_from(&format!("changes[{i}].device"), change.device)?;
                let status = status_from(&format!("changes[{i}].status"), change.status)?;
                Ok((device, status))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let answers = self.presence.set_status_many(&changes).await?;
        let results = answers
            .into_iter()
            .map(|answer| pb::SetStatusResult {
                result: Some(match answer {
                    Ok(presence) => {
                        pb::set_status_result::Result::Presence(presence_to_pb(presence))
                    }
                    Err(error) => pb::set_status_result::Result::Error(pb::ChangeError {
                        code: error.code.as_str().to_owned(),
                        message: error.message,
                    }),
                }),
            })
            .collect();
        self.answer(pb::BatchSetStatusResponse { results })
    }

    #[tracing::instrument(
        name = "presence.heartbeat",
        skip_all,
        fields(app_id, member_id, device_id)
    )]
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Rpc<pb::HeartbeatResponse> {
        let device = device_from("device", request.into_inner().device)?;
        record_device(&device);
        let alive = self.presence.heartbeat(&device).await?;
        self.answer(pb::HeartbeatResponse { alive })
    }

    #[tracing::instrument(name = "presence.batch_heartbeat", skip_all, fields(devices))]
    async fn batch_heartbeat(
        &self,
        request: Request<pb::BatchHeartbeatRequest>,
    ) -> Rpc<pb::BatchHeartbeatResponse> {
        let r = request.into_inner();
        tracing::Span::current().record("devices", r.devices.len());
        let devices = r
            .devices
            .into_iter()
            .enumerate()
            .map(|(i, device)| device_from(&format!("devices[{i}]"), Some(device)))
            .collect::<Result<Vec<_>, Error>>()?;
        let expired = self.presence.heartbeat_many(&devices).await?;
        self.answer(pb::BatchHeartbeatResponse {
            expired: expired.into_iter().map(device_to).collect(),
        })
    }

    #[tracing::instrument(
        name = "presence.disconnect",
        skip_all,
        fields(app_id, member_id, device_id)
    )]
    async fn disconnect(&self, request: Request<pb::DisconnectRequest>) -> Rpc<pb::MemberPresence> {
        let device = device_from("device", request.into_inner().device)?;
        record_device(&device);
        let presence = self.presence.disconnect(&device).await?;
        self.answer(presence_to_pb(presence))
    }

    #[tracing::instrument(name = "presence.get", skip_all, fields(app_id, target))]
    async fn get(&self, request: Request<pb::GetRequest>) -> Rpc<pb::MemberPresence> {
        let r = request.into_inner();
        let target = target_from("target", r.target)?;
        let span = tracing::Span::current();
        span.record("app_id", r.app_id.as_str());
        span.record("target", tracing::field::debug(&target));
        let presence = self.presence.get(&r.app_id, &target).await?;
        self.answer(presence_to_pb(presence))
    }

    #[tracing::instrument(name = "presence.batch_get", skip_all, fields(app_id, targets))]
    async fn batch_get(&self, request: Request<pb::BatchGetRequest>) -> Rpc<pb::BatchGetResponse> {
        let r = request.into_inner();
        let span = tracing::Span::current();
        span.record("app_id", r.app_id.as_str());
        span.record("targets", r.targets.len());
        let targets = targets_from(r.targets)?;
        let presences = self.presence.batch_get(&r.app_id, &targets).await?;
        self.answer(pb::BatchGetResponse {
            presences: presences.into_iter().map(presence_to_pb).collect(),
        })
    }

    type WatchStream = BoxStream<'static, Result<pb::MemberPresence, GrpcStatus>>;

    #[tracing::instrument(name = "presence.watch", skip_all, fields(app_id, targets))]
    async fn watch(&self, request: Request<pb::WatchRequest>) -> Rpc<Self::WatchStream> {
        let r = request.into_inner();
        let span = tracing::Span::current();
        span.record("app_id", r.app_id.as_str());
        span.record("targets", r.targets.len());
        let targets = targets_from(r.targets)?;
        let changes = self.presence.watch(&r.app_id, &targets).await?;
        let open = self.watch_streams.open();
        let shutdown = self.shutdown.clone();
        let stopped = Box::pin(async move { shutdown.wait().await });
        let ended = stream::once(async move {
            drop(open);
            Err(GrpcStatus::unavailable(
                "the watch ended (the replica is stopping); watch again",
            ))
        });
        let stream = changes
            .map(|presence| Ok(presence_to_pb(presence)))
            .take_until(stopped)
            .chain(ended);
        self.answer(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use palaver_kit::ErrorCode;

    use super::*;

    #[test]
    fn every_status_maps_both_ways() {
        for status in Status::BY_AVAILABILITY {
            assert_eq!(
                status_from("status", pb::Status::from(status) as i32).unwrap(),
                status
            );
        }
        let unknown = status_from("status", 42).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::InvalidArgument);
        assert_eq!(unknown.violations[0].field, "status");
        assert!(unknown.message.contains("42"), "{}", unknown.message);
        assert_eq!(
            status_from("status", 0).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let t = timestamp(1_700_000_000_123);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
    }

    #[test]
    fn a_missing_device_or_target_is_invalid() {
        assert_eq!(
            device_from("device", None).unwrap_err().violations[0].field,
            "device"
        );
        let error = target_from("targets[1]", Some(pb::Target { target: None })).unwrap_err();
        assert_eq!(error.violations[0].field, "targets[1]");
    }
}
