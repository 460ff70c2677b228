//! Change events on the bus: what they carry, and how they are coalesced.

use std::time::{Duration, Instant};

use palaver_presence::domain::Policy;
use palaver_proto::presence::v1 as pb;
use pb::Status;

use crate::helpers::{Backend, TestPresence, device, set_status, spawn, spawn_with, test_policy};

/// A window long enough that a test's quick changes all fall inside it.
fn long_window() -> Policy {
    Policy {
        window: Duration::from_secs(1),
        ..test_policy()
    }
}

async fn an_event_carries_the_member_as_visitors_see_them(t: TestPresence) {
    let (app_id, member_id, endpoint) = t.owner().await;
    let mut events = t.events(&app_id, &member_id).await;
    let mut client = t.client();
    let set = set_status(
        &mut client,
        device(&app_id, &member_id, "desk"),
        Status::Idle,
    )
    .await
    .unwrap();
    let event = events.next().await;
    assert_eq!(event, set);
    assert_eq!(
        (
            event.app_id.as_str(),
            event.member_id.as_str(),
            event.endpoint.as_str(),
            event.display_name.as_str()
        ),
        (
            app_id.as_str(),
            member_id.as_str(),
            endpoint.as_str(),
            "Member owner"
        )
    );
    assert!(event.accepts_chats && event.revision > 0);
}

/// Within a window, only the state at its end is published; flapping back to the
/// published status publishes nothing.
async fn changes_within_a_window_publish_only_the_final_state(t: TestPresence) {
    let (app_id, member_id, _) = t.owner().await;
    let mut events = t.events(&app_id, &member_id).await;
    let mut client = t.client();
    let desk = device(&app_id, &member_id, "desk");
    set_status(&mut client, desk.clone(), Status::Online)
        .await
        .unwrap();
    let first = events.next().await;
    assert_eq!(first.status(), Status::Online);

    for status in [Status::Busy, Status::Online, Status::Away] {
        set_status(&mut client, desk.clone(), status).await.unwrap();
    }
    let next = events.next().await;
    assert_eq!(
        next.status(),
        Status::Away,
        "busy and the flap back to online were never published"
    );
    assert!(next.revision > first.revision);

    // Busy and back to the published away: nothing to publish at the window's end.
    set_status(&mut client, desk.clone(), Status::Busy)
        .await
        .unwrap();
    set_status(&mut client, desk.clone(), Status::Away)
        .await
        .unwrap();
    tokio::time::sleep(long_window().window + Duration::from_millis(200)).await;
    set_status(&mut client, desk, Status::Online).await.unwrap();
    assert_eq!(
        events.next().await.status(),
        Status::Online,
        "nothing was published for the flap"
    );
}

/// A device flapping for longer than a window: at most one event per window, and the
/// last event is the final state.
async fn a_flapping_device_publishes_once_per_window_and_ends_on_its_final_state(t: TestPresence) {
    let (app_id, member_id, _) = t.owner().await;
    let window = Duration::from_millis(250);
    let mut events = t.events(&app_id, &member_id).await;
    let mut client = t.client();
    let desk = device(&app_id, &member_id, "desk");
    let started = Instant::now();
    let flips = [Status::Online, Status::Busy];
    for i in 0..40 {
        set_status(&mut client, desk.clone(), flips[i % 2])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    set_status(&mut client, desk, Status::Away).await.unwrap();
    let flapping = started.elapsed();
    let seen = events.until(Status::Away).await;
    let windows = (flapping.as_millis() / window.as_millis()) as usize + 2;
    assert!(
        seen.len() <= windows,
        "{} events in {flapping:?}: more than one per {window:?}",
        seen.len()
    );
    assert!(seen.len() >= 2, "the first change and the final state");
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].revision < pair[1].revision),
        "in revision order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_carries_the_member_as_visitors_see_them_in_memory() {
    an_event_carries_the_member_as_visitors_see_them(spawn(Backend::Memory).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_carries_the_member_as_visitors_see_them_on_nats() {
    an_event_carries_the_member_as_visitors_see_them(spawn(Backend::Nats).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_within_a_window_publish_only_the_final_state_in_memory() {
    changes_within_a_window_publish_only_the_final_state(
        spawn_with(Backend::Memory, long_window()).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_within_a_window_publish_only_the_final_state_on_nats() {
    changes_within_a_window_publish_only_the_final_state(
        spawn_with(Backend::Nats, long_window()).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_device_publishes_once_per_window_in_memory() {
    a_flapping_device_publishes_once_per_window_and_ends_on_its_final_state(
        spawn(Backend::Memory).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_device_publishes_once_per_window_on_nats() {
    a_flapping_device_publishes_once_per_window_and_ends_on_its_final_state(
        spawn(Backend::Nats).await,
    )
    .await;
}
