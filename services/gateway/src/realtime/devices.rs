//! The operator devices of this gateway process: each operator socket is one presence
//! device of its member. The registry remembers each device's status so that one
//! `BatchHeartbeat` per interval keeps them all alive, and a device presence reports
//! as expired is set again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use palaver_kit::shutdown::Shutdown;
use palaver_proto::presence::v1 as pb;

use crate::clients::{PresenceClient, call};

/// The live operator devices, by device id.
#[derive(Default)]
pub struct Devices {
    live: Mutex<HashMap<String, (pb::Device, pb::Status)>>,
}

impl Devices {
    /// Remembers a device and its status (a new one, or a `presence.set`).
    pub fn set(&self, device: &pb::Device, status: pb::Status) {
        self.lock()
            .insert(device.device_id.clone(), (device.clone(), status));
    }

    /// Forgets a device (its socket closed).
    pub fn remove(&self, device: &pb::Device) {
        self.lock().remove(&device.device_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (pb::Device, pb::Status)>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Heartbeats every device in one call; sets again those presence says expired.
    pub async fn heartbeat(&self, presence: &PresenceClient) {
        let devices: Vec<pb::Device> = self.lock().values().map(|(d, _)| d.clone()).collect();
        if devices.is_empty() {
            return;
        }
        let mut client = presence.clone();
        metrics::counter!("palaver_gateway_presence_heartbeat_batches_total").increment(1);
        let expired =
            match call(client.batch_heartbeat(pb::BatchHeartbeatRequest { devices })).await {
                Ok(answer) => answer.expired,
                Err(error) => {
                    tracing::warn!(%error, "cannot heartbeat the operator devices");
                    return;
                }
            };
        let changes: Vec<pb::SetStatusRequest> = {
            let live = self.lock();
            expired
                .iter()
                .filter_map(|device| live.get(&device.device_id))
                .map(|(device, status)| pb::SetStatusRequest {
                    device: Some(device.clone()),
                    status: (*status).into(),
                })
                .collect()
        };
        if changes.is_empty() {
            return;
        }
        if let Err(error) =
            call(client.batch_set_status(pb::BatchSetStatusRequest { changes })).await
        {
            tracing::warn!(%error, "cannot set the expired operator devices again");
        }
    }

    /// Heartbeats every `period` until `shutdown`.
    pub async fn run(&self, presence: PresenceClient, period: Duration, shutdown: Shutdown) {
        let mut every = tokio::time::interval(period);
        every.tick().await;
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = every.tick() => self.heartbeat(&presence).await,
            }
        }
    }
}
