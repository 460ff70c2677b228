//! Several replicas against one NATS: requests spread over all of them, any replica
//! answers for any member, a replica can die without losing state, and a silent device
//! is settled exactly once by whichever replica gets there.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palaver_kit::grpc::{BalanceOptions, Resolver, balanced_channel_with};
use palaver_presence::domain::Policy;
use palaver_presence::grpc::REPLICA_METADATA;
use palaver_proto::presence::v1 as pb;
use pb::Status;

use crate::helpers::{
    Backend, Client, by_endpoint, by_member, device, next_watched, set_status, spawn_with,
    test_policy,
};

/// A client balancing over whatever addresses `addresses` holds, as over a headless
/// Service's DNS name.
fn balanced_client(addresses: Arc<Mutex<Vec<std::net::SocketAddr>>>) -> Client {
    let resolver: Resolver = Arc::new(move |_: &str| {
        let resolved = addresses.lock().unwrap().clone();
        Box::pin(async move { Ok(resolved) })
    });
    let channel = balanced_channel_with(
        "http://presence.test:50052",
        BalanceOptions {
            resolve_interval: Duration::from_millis(50),
            resolver,
            ..BalanceOptions::default()
        },
    )
    .unwrap();
    pb::presence_client::PresenceClient::new(channel)
}

/// Calls until a call reaches a live replica, as a client does while the balancer
/// still knows a replica that has gone.
async fn with_retry<T, F, Fut>(mut call: F) -> tonic::Response<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    for _ in 0..50 {
        match call().await {
            Ok(response) => return response,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("unexpected status {status:?}"),
        }
    }
    panic!("no attempt reached a live replica");
}

fn replica_of<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get(REPLICA_METADATA)
        .expect("the replica names itself")
        .to_str()
        .unwrap()
        .to_owned()
}

/// What a reader sees, leaving out the revision: settling a pending event may write
/// the record again between two reads without changing what it shows.
fn shown(presence: &pb::MemberPresence) -> (Status, bool, Option<prost_types::Timestamp>, String) {
    (
        presence.status(),
        presence.accepts_chats,
        presence.updated_at,
        presence.display_name.clone(),
    )
}

const STATUSES: [Status; 7] = [
    Status::Online,
    Status::Away,
    Status::Idle,
    Status::BeRightBack,
    Status::Busy,
    Status::OutToLunch,
    Status::OnThePhone,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_requests_and_any_one_can_die() {
    let t = spawn_with(Backend::Nats, test_policy()).await;
    t.add_replica().await;
    t.add_replica().await;
    let names: Vec<String> = (0..3).map(|i| t.replica_name(i)).collect();
    let addresses = Arc::new(Mutex::new((0..3).map(|i| t.addr(i)).collect::<Vec<_>>()));
    let mut client = balanced_client(addresses.clone());
    let app_id = t.app().await;
    let mut members = Vec::new();
    for i in 0..6 {
        members.push(t.member(&app_id, &format!("m{i}")).await);
    }

    let mut answered: HashMap<String, usize> = HashMap::new();
    for i in 0..60 {
        let request = pb::SetStatusRequest {
            device: Some(device(&app_id, &members[i % 6], &format!("d{}", i % 4))),
            status: STATUSES[i % 7] as i32,
        };
        let response = client.set_status(request).await.unwrap();
        *answered.entry(replica_of(&response)).or_default() += 1;
    }
    assert_eq!(answered.values().sum::<usize>(), 60);
    for name in &names {
        assert!(
            answered.get(name).copied().unwrap_or(0) > 0,
            "{name} answered nothing: {answered:?}"
        );
    }

    // Every replica answers the same for every member, whoever wrote it.
    let mut before = Vec::new();
    for member in &members {
        let mut answers = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let answer = t
                .client_of(i)
                .get(pb::GetRequest {
                    app_id: app_id.clone(),
                    target: Some(by_member(member)),
                })
                .await
                .unwrap();
            assert_eq!(&replica_of(&answer), name);
            answers.push(shown(&answer.into_inner()));
        }
        assert!(
            answers.windows(2).all(|pair| pair[0] == pair[1]),
            "{answers:?}"
        );
        assert_ne!(answers[0].0, Status::Offline);
        before.push(answers.remove(0));
    }

    t.kill(1).await;
    let mut after_kill: HashMap<String, usize> = HashMap::new();
    for i in 0..30 {
        let request = pb::SetStatusRequest {
            device: Some(device(&app_id, &members[i % 3], "after")),
            status: Status::Online as i32,
        };
        let response = with_retry(|| {
            let (mut client, request) = (client.clone(), request.clone());
            async move { client.set_status(request).await }
        })
        .await;
        *after_kill.entry(replica_of(&response)).or_default() += 1;
    }
    assert!(
        !after_kill.contains_key(&names[1]),
        "the dead replica answered"
    );
    for (member, before) in members.iter().zip(&before).skip(3) {
        let answer = with_retry(|| {
            let mut client = client.clone();
            let request = pb::GetRequest {
                app_id: app_id.clone(),
                target: Some(by_member(member)),
            };
            async move { client.get(request).await }
        })
        .await
        .into_inner();
        assert_eq!(&shown(&answer), before, "the state outlived the replica");
    }
    for member in &members[..3] {
        let answer = with_retry(|| {
            let mut client = client.clone();
            let request = pb::GetRequest {
                app_id: app_id.clone(),
                target: Some(by_member(member)),
            };
            async move { client.get(request).await }
        })
        .await
        .into_inner();
        assert_eq!(answer.status(), Status::Online);
    }
    addresses.lock().unwrap().remove(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_silent_after_heartbeating_through_one_replica_is_reported_offline_by_another_once()
 {
    let policy = Policy {
        ttl: Duration::from_millis(1000),
        grace: Duration::from_millis(600),
        takeover: Duration::from_millis(300),
        ..test_policy()
    };
    let t = spawn_with(Backend::Nats, policy.clone()).await;
    t.add_replica().await;
    t.add_replica().await;
    let (app_id, owner, endpoint) = t.owner().await;
    let mut events = t.events(&app_id, &owner).await;
    let (mut a, mut b) = (t.client_of(0), t.client_of(1));
    let desk = device(&app_id, &owner, "desk");
    set_status(&mut a, desk.clone(), Status::Online)
        .await
        .unwrap();
    for _ in 0..3 {
        let alive = a
            .heartbeat(pb::HeartbeatRequest {
                device: Some(desk.clone()),
            })
            .await
            .unwrap()
            .into_inner()
            .alive;
        assert!(alive);
    }
    let mut watch = b
        .watch(pb::WatchRequest {
            app_id: app_id.clone(),
            targets: vec![by_endpoint(&endpoint)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next_watched(&mut watch).await.unwrap().status(),
        Status::Online
    );

    // A, the device's replica and the record's last writer, dies with the device.
    t.kill(0).await;
    assert_eq!(
        next_watched(&mut watch).await.unwrap().status(),
        Status::Offline
    );
    let read = b
        .get(pb::GetRequest {
            app_id: app_id.clone(),
            target: Some(by_member(&owner)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.status(), Status::Offline);
    let seen: Vec<Status> = events
        .until(Status::Offline)
        .await
        .iter()
        .map(|p| p.status())
        .collect();
    assert_eq!(seen, [Status::Online, Status::Offline]);

    // Give every surviving replica's settle timer its chance to publish again.
    tokio::time::sleep(policy.takeover * 2).await;
    set_status(&mut b, desk, Status::Busy).await.unwrap();
    assert_eq!(
        events.next().await.status(),
        Status::Busy,
        "the expiry was published once"
    );
}
