//! Devices that stop heartbeating go offline after the TTL plus grace; heartbeats keep
//! them alive.

use std::time::Duration;

use palaver_presence::domain::Policy;
use palaver_proto::presence::v1 as pb;
use pb::Status;

use crate::helpers::{
    Backend, TestPresence, by_member, device, get, set_status, spawn_with, test_policy,
};

/// A TTL short enough to wait for.
fn short_ttl() -> Policy {
    Policy {
        ttl: Duration::from_millis(1000),
        grace: Duration::from_millis(600),
        ..test_policy()
    }
}

async fn a_silent_device_goes_offline_while_a_heartbeating_one_stays(t: TestPresence) {
    let (app_id, silent_member, _) = t.owner().await;
    let kept_member = t.member(&app_id, "kept").await;
    let mut silent_events = t.events(&app_id, &silent_member).await;
    let mut client = t.client();
    set_status(
        &mut client,
        device(&app_id, &silent_member, "desk"),
        Status::Busy,
    )
    .await
    .unwrap();
    set_status(
        &mut client,
        device(&app_id, &kept_member, "desk"),
        Status::Online,
    )
    .await
    .unwrap();

    let heartbeats = {
        let (mut client, kept) = (client.clone(), device(&app_id, &kept_member, "desk"));
        tokio::spawn(async move {
            loop {
                let alive = client
                    .heartbeat(pb::HeartbeatRequest {
                        device: Some(kept.clone()),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .alive;
                assert!(alive, "a heartbeating device stays alive");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let seen: Vec<Status> = silent_events
        .until(Status::Offline)
        .await
        .iter()
        .map(|p| p.status())
        .collect();
    assert_eq!(seen, [Status::Busy, Status::Offline]);
    let silent = get(&mut client, &app_id, by_member(&silent_member))
        .await
        .unwrap();
    assert_eq!(silent.status(), Status::Offline);
    let kept = get(&mut client, &app_id, by_member(&kept_member))
        .await
        .unwrap();
    assert_eq!(kept.status(), Status::Online, "heartbeats kept it alive");
    assert!(!heartbeats.is_finished());
    heartbeats.abort();

    let late = client
        .batch_heartbeat(pb::BatchHeartbeatRequest {
            devices: vec![
                device(&app_id, &kept_member, "desk"),
                device(&app_id, &silent_member, "desk"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(late.expired, [device(&app_id, &silent_member, "desk")]);

    let metrics = t.metrics(0).await;
    assert!(
        metrics.contains("palaver_presence_devices_expired_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("palaver_presence_changes_published_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_while_a_heartbeating_one_stays_in_memory() {
    a_silent_device_goes_offline_while_a_heartbeating_one_stays(
        spawn_with(Backend::Memory, short_ttl()).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_while_a_heartbeating_one_stays_on_nats() {
    a_silent_device_goes_offline_while_a_heartbeating_one_stays(
        spawn_with(Backend::Nats, short_ttl()).await,
    )
    .await;
}

crate::on_both_backends!(
    a_batched_heartbeat_names_the_devices_that_are_not_live,
    |t: TestPresence| async move {
        let (app_id, member_id, _) = t.owner().await;
        let other = t.member(&app_id, "other").await;
        let mut client = t.client();
        for (member, device_id) in [(&member_id, "desk"), (&member_id, "phone"), (&other, "cli")] {
            set_status(
                &mut client,
                device(&app_id, member, device_id),
                Status::Online,
            )
            .await
            .unwrap();
        }
        let before = get(&mut client, &app_id, by_member(&member_id))
            .await
            .unwrap();
        let answer = client
            .batch_heartbeat(pb::BatchHeartbeatRequest {
                devices: vec![
                    device(&app_id, &member_id, "desk"),
                    device(&app_id, &member_id, "never-set"),
                    device(&app_id, "mem_nobody", "desk"),
                    device(&app_id, &member_id, "phone"),
                    device(&app_id, &other, "cli"),
                    device(&app_id, &member_id, "desk"),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.expired,
            [
                device(&app_id, &member_id, "never-set"),
                device(&app_id, "mem_nobody", "desk"),
            ]
        );
        let after = get(&mut client, &app_id, by_member(&member_id))
            .await
            .unwrap();
        assert_eq!(after.status(), Status::Online);
        assert!(
            after.revision > before.revision,
            "the heartbeat was written"
        );
    }
);
