//! Watch streams: the current state first, then changes; shared subscriptions that end
//! with the last watcher.

use palaver_kit::ErrorCode;
use palaver_proto::presence::v1 as pb;
use pb::Status;

use crate::helpers::{
    TestPresence, by_endpoint, by_member, code_of, device, metric, next_watched, set_status,
    wait_for_metric,
};
use crate::on_both_backends;

fn seen(presence: &pb::MemberPresence) -> (String, String, Status) {
    (
        presence.member_id.clone(),
        presence.endpoint.clone(),
        presence.status(),
    )
}

on_both_backends!(
    a_watch_sends_the_current_state_then_each_change,
    |t: TestPresence| async move {
        let (app_id, owner, endpoint) = t.owner().await;
        let helper = t.member(&app_id, "helper").await;
        let mut client = t.client();
        set_status(&mut client, device(&app_id, &owner, "desk"), Status::Online)
            .await
            .unwrap();
        let mut watch = client
            .watch(pb::WatchRequest {
                app_id: app_id.clone(),
                targets: vec![
                    by_endpoint(&endpoint),
                    by_member(&helper),
                    by_member(&owner),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(seen(&next_watched(&mut watch).await.unwrap()));
        }
        assert_eq!(
            first,
            [
                (owner.clone(), endpoint.clone(), Status::Online),
                (helper.clone(), String::new(), Status::Offline),
                (owner.clone(), endpoint.clone(), Status::Online),
            ]
        );

        set_status(&mut client, device(&app_id, &helper, "cli"), Status::Busy)
            .await
            .unwrap();
        let change = next_watched(&mut watch).await.unwrap();
        assert_eq!(seen(&change), (helper.clone(), String::new(), Status::Busy));
        assert_eq!(change.display_name, "Member helper");

        set_status(
            &mut client,
            device(&app_id, &owner, "desk"),
            Status::Invisible,
        )
        .await
        .unwrap();
        let mut hidden = vec![
            seen(&next_watched(&mut watch).await.unwrap()),
            seen(&next_watched(&mut watch).await.unwrap()),
        ];
        hidden.sort();
        assert_eq!(
            hidden,
            vec![(owner.clone(), endpoint.clone(), Status::Offline); 2],
            "invisible reads offline, once per target"
        );

        let metrics = t.metrics(0).await;
        assert_eq!(
            metric(&metrics, "palaver_presence_watch_streams"),
            Some(1.0)
        );
        assert_eq!(
            metric(&metrics, "palaver_presence_bus_subscriptions"),
            Some(2.0),
            "one subscription per member"
        );
    }
);

on_both_backends!(
    watchers_share_subscriptions_and_leave_none_behind,
    |t: TestPresence| async move {
        let (app_id, owner, endpoint) = t.owner().await;
        let mut client = t.client();
        let mut watches = Vec::new();
        for target in [by_endpoint(&endpoint), by_member(&owner), by_member(&owner)] {
            let mut watch = client
                .watch(pb::WatchRequest {
                    app_id: app_id.clone(),
                    targets: vec![target],
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                next_watched(&mut watch).await.unwrap().status(),
                Status::Offline
            );
            watches.push(watch);
        }
        let metrics = t.metrics(0).await;
        assert_eq!(
            metric(&metrics, "palaver_presence_watch_streams"),
            Some(3.0)
        );
        assert_eq!(
            metric(&metrics, "palaver_presence_bus_subscriptions"),
            Some(1.0)
        );

        set_status(&mut client, device(&app_id, &owner, "desk"), Status::Away)
            .await
            .unwrap();
        for watch in &mut watches {
            assert_eq!(next_watched(watch).await.unwrap().status(), Status::Away);
        }
        watches.pop();
        wait_for_metric(&t, 0, "palaver_presence_watch_streams", 2.0).await;
        assert_eq!(
            metric(&t.metrics(0).await, "palaver_presence_bus_subscriptions"),
            Some(1.0)
        );
        watches.clear();
        wait_for_metric(&t, 0, "palaver_presence_watch_streams", 0.0).await;
        wait_for_metric(&t, 0, "palaver_presence_bus_subscriptions", 0.0).await;
    }
);

on_both_backends!(
    a_watch_of_anything_unknown_or_closed_is_refused,
    |t: TestPresence| async move {
        let (app_id, owner, endpoint) = t.owner().await;
        let client = t.client();
        let watch = |targets: Vec<pb::Target>| {
            let mut client = client.clone();
            let app_id = app_id.clone();
            async move { client.watch(pb::WatchRequest { app_id, targets }).await }
        };
        assert_eq!(
            code_of(watch(vec![by_member(&owner), by_endpoint("ce_unknown")]).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code_of(watch(vec![by_member("mem_nobody")]).await),
            ErrorCode::NotFound
        );
        assert_eq!(code_of(watch(vec![]).await), ErrorCode::InvalidArgument);
        t.revoke(&app_id, "owner").await;
        assert_eq!(
            code_of(watch(vec![by_endpoint(&endpoint)]).await),
            ErrorCode::NotFound
        );
        let metrics = t.metrics(0).await;
        assert_eq!(
            metric(&metrics, "palaver_presence_bus_subscriptions").unwrap_or(0.0),
            0.0,
            "a refused watch subscribes to nothing"
        );
    }
);

on_both_backends!(
    a_watch_ends_unavailable_when_its_replica_stops,
    |t: TestPresence| async move {
        let (app_id, owner, _) = t.owner().await;
        let mut watch = t
            .client()
            .watch(pb::WatchRequest {
                app_id,
                targets: vec![by_member(&owner)],
            })
            .await
            .unwrap()
            .into_inner();
        next_watched(&mut watch).await.unwrap();
        t.kill(0).await;
        let ended = next_watched(&mut watch).await.unwrap_err();
        assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    }
);
