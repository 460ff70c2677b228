//! Devices setting statuses and disconnecting; how a member's devices aggregate; bad
//! input.

use palaver_kit::ErrorCode;
use palaver_proto::presence::v1 as pb;
use pb::Status;

use crate::helpers::{TestPresence, by_endpoint, by_member, code_of, device, get, set_status};
use crate::on_both_backends;

on_both_backends!(
    a_status_is_read_by_member_and_by_endpoint,
    |t: TestPresence| async move {
        let (app_id, member_id, endpoint) = t.owner().await;
        let mut client = t.client();
        let never_seen = get(&mut client, &app_id, by_member(&member_id))
            .await
            .unwrap();
        assert_eq!(never_seen.status(), Status::Offline);
        assert!(!never_seen.accepts_chats);
        assert_eq!(never_seen.updated_at, None);

        let set = set_status(
            &mut client,
            device(&app_id, &member_id, "desk"),
            Status::Online,
        )
        .await
        .unwrap();
        assert_eq!(set.status(), Status::Online);
        assert!(set.accepts_chats);
        assert_eq!(set.endpoint, endpoint);
        assert_eq!(set.display_name, "Member owner");
        assert!(set.updated_at.is_some());

        let by_id = get(&mut client, &app_id, by_member(&member_id))
            .await
            .unwrap();
        let by_ep = get(&mut client, &app_id, by_endpoint(&endpoint))
            .await
            .unwrap();
        assert_eq!(by_id, set);
        assert_eq!(by_ep, set);
    }
);

on_both_backends!(
    visitors_see_each_status_as_designed,
    |t: TestPresence| async move {
        let (app_id, member_id, endpoint) = t.owner().await;
        let mut client = t.client();
        let cases = [
            (Status::Online, Status::Online, true),
            (Status::Away, Status::Away, true),
            (Status::Idle, Status::Idle, true),
            (Status::BeRightBack, Status::BeRightBack, true),
            (Status::Busy, Status::Busy, true),
            (Status::OutToLunch, Status::OutToLunch, true),
            (Status::OnThePhone, Status::OnThePhone, true),
            (Status::Invisible, Status::Offline, false),
            (Status::Offline, Status::Offline, false),
        ];
        for (set, seen, accepts_chats) in cases {
            set_status(&mut client, device(&app_id, &member_id, "desk"), set)
                .await
                .unwrap();
            let presence = get(&mut client, &app_id, by_endpoint(&endpoint))
                .await
                .unwrap();
            assert_eq!(
                (presence.status(), presence.accepts_chats),
                (seen, accepts_chats),
                "{set:?}"
            );
        }
    }
);

on_both_backends!(
    a_member_shows_the_most_available_live_device,
    |t: TestPresence| async move {
        let (app_id, member_id, _) = t.owner().await;
        let mut client = t.client();
        let set = |device_id: &'static str, status| {
            let mut client = client.clone();
            let device = device(&app_id, &member_id, device_id);
            async move {
                set_status(&mut client, device, status)
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(set("phone", Status::Busy).await, Status::Busy);
        assert_eq!(set("desk", Status::Away).await, Status::Away);
        assert_eq!(set("cli", Status::Invisible).await, Status::Away);
        assert_eq!(set("laptop", Status::Idle).await, Status::Idle);
        assert_eq!(set("tablet", Status::OnThePhone).await, Status::Idle);

        let disconnect = |device_id: &'static str| {
            let device = device(&app_id, &member_id, device_id);
            let mut client = client.clone();
            async move {
                client
                    .disconnect(pb::DisconnectRequest {
                        device: Some(device),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .status()
            }
        };
        assert_eq!(disconnect("laptop").await, Status::Away);
        assert_eq!(disconnect("desk").await, Status::OnThePhone);
        assert_eq!(disconnect("tablet").await, Status::Busy);
        assert_eq!(
            disconnect("phone").await,
            Status::Offline,
            "only invisible is left"
        );
        assert_eq!(
            disconnect("phone").await,
            Status::Offline,
            "a second disconnect is fine"
        );
        let presence = get(&mut client, &app_id, by_member(&member_id))
            .await
            .unwrap();
        assert_eq!(presence.status(), Status::Offline);
    }
);

on_both_backends!(a_disconnect_counts_at_once, |t: TestPresence| async move {
    let (app_id, member_id, _) = t.owner().await;
    let mut events = t.events(&app_id, &member_id).await;
    let mut client = t.client();
    set_status(
        &mut client,
        device(&app_id, &member_id, "desk"),
        Status::Online,
    )
    .await
    .unwrap();
    let gone = client
        .disconnect(pb::DisconnectRequest {
            device: Some(device(&app_id, &member_id, "desk")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.status(), Status::Offline);
    let read = get(&mut client, &app_id, by_member(&member_id))
        .await
        .unwrap();
    assert_eq!(read.status(), Status::Offline);
    let seen: Vec<Status> = events
        .until(Status::Offline)
        .await
        .iter()
        .map(|p| p.status())
        .collect();
    assert_eq!(seen, [Status::Online, Status::Offline]);
    let alive = client
        .heartbeat(pb::HeartbeatRequest {
            device: Some(device(&app_id, &member_id, "desk")),
        })
        .await
        .unwrap()
        .into_inner()
        .alive;
    assert!(!alive, "a disconnected device must set its status again");
});

on_both_backends!(
    bad_input_gets_its_code_and_changes_nothing,
    |t: TestPresence| async move {
        let (app_id, member_id, endpoint) = t.owner().await;
        let other_app = t.app().await;
        let stranger = t.member(&other_app, "stranger").await;
        let mut events = t.events(&app_id, &member_id).await;
        let mut client = t.client();
        let before = set_status(
            &mut client,
            device(&app_id, &member_id, "desk"),
            Status::Online,
        )
        .await
        .unwrap();
        assert_eq!(events.next().await.status(), Status::Online);

        let cases: Vec<(&str, pb::SetStatusRequest, ErrorCode)> = vec![
            (
                "unknown member",
                pb::SetStatusRequest {
                    device: Some(device(&app_id, "mem_nobody", "desk")),
                    status: Status::Online as i32,
                },
                ErrorCode::NotFound,
            ),
            (
                "a member of another app",
                pb::SetStatusRequest {
                    device: Some(device(&app_id, &stranger, "desk")),
                    status: Status::Online as i32,
                },
                ErrorCode::NotFound,
            ),
            (
                "a device of another app",
                pb::SetStatusRequest {
                    device: Some(device(&other_app, &member_id, "desk")),
                    status: Status::Busy as i32,
                },
                ErrorCode::NotFound,
            ),
            (
                "unknown status",
                pb::SetStatusRequest {
                    device: Some(device(&app_id, &member_id, "desk")),
                    status: 42,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                "no status",
                pb::SetStatusRequest {
                    device: Some(device(&app_id, &member_id, "desk")),
                    status: 0,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                "no device",
                pb::SetStatusRequest {
                    device: None,
                    status: Status::Busy as i32,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                "no device id",
                pb::SetStatusRequest {
                    device: Some(device(&app_id, &member_id, "")),
                    status: Status::Busy as i32,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                "a member id that is no subject token",
                pb::SetStatusRequest {
                    device: Some(device(&app_id, "m.*", "desk")),
                    status: Status::Busy as i32,
                },
                ErrorCode::InvalidArgument,
            ),
        ];
        for (case, request, code) in cases {
            assert_eq!(code_of(client.set_status(request).await), code, "{case}");
        }
        let unknown = device(&app_id, "mem_nobody", "desk");
        assert_eq!(
            code_of(
                client
                    .heartbeat(pb::HeartbeatRequest {
                        device: Some(unknown.clone())
                    })
                    .await
            ),
            ErrorCode::NotFound
        );
        assert_eq!(
            code_of(
                client
                    .disconnect(pb::DisconnectRequest {
                        device: Some(unknown)
                    })
                    .await
            ),
            ErrorCode::NotFound
        );
        assert_eq!(
            code_of(
                client
                    .disconnect(pb::DisconnectRequest {
                        device: Some(device(&other_app, &member_id, "desk"))
                    })
                    .await
            ),
            ErrorCode::NotFound,
            "the device is of this app, not the other"
        );
        let invalid_batch = client
            .batch_heartbeat(pb::BatchHeartbeatRequest {
                devices: vec![
                    device(&app_id, &member_id, "desk"),
                    device(&app_id, &member_id, "a b"),
                ],
            })
            .await
            .expect_err("a malformed device fails the batch");
        let error = palaver_kit::Error::from_status(&invalid_batch);
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert_eq!(error.violations[0].field, "devices[1].device_id");
        for (target, app) in [
            (by_member("mem_nobody"), &app_id),
            (by_member(&stranger), &app_id),
            (by_member(&member_id), &other_app),
            (by_endpoint("ce_nothing"), &app_id),
            (by_endpoint(&endpoint), &other_app),
        ] {
            assert_eq!(
                code_of(get(&mut client, app, target.clone()).await),
                ErrorCode::NotFound,
                "{target:?} in {app}"
            );
        }
        assert_eq!(
            code_of(get(&mut client, &app_id, pb::Target { target: None }).await),
            ErrorCode::InvalidArgument
        );

        let after = get(&mut client, &app_id, by_member(&member_id))
            .await
            .unwrap();
        assert_eq!(after, before, "the same state at the same revision");
        assert_eq!(
            get(&mut client, &other_app, by_member(&stranger))
                .await
                .unwrap()
                .revision,
            0,
            "nothing was written for the other app"
        );
        set_status(
            &mut client,
            device(&app_id, &member_id, "desk"),
            Status::Busy,
        )
        .await
        .unwrap();
        assert_eq!(
            events.next().await.status(),
            Status::Busy,
            "no event was published for the bad input"
        );
    }
);

on_both_backends!(
    a_batch_of_changes_is_written_per_member_in_order,
    |t: TestPresence| async move {
        let (app_id, owner, _) = t.owner().await;
        let helper = t.member(&app_id, "helper").await;
        let mut events = t.events(&app_id, &owner).await;
        let mut client = t.client();
        let change = |member: &str, device_id: &str, status: Status| pb::SetStatusRequest {
            device: Some(device(&app_id, member, device_id)),
            status: status as i32,
        };
        let answer = client
            .batch_set_status(pb::BatchSetStatusRequest {
                changes: vec![
                    change(&owner, "desk", Status::Busy),
                    change(&helper, "cli", Status::Idle),
                    change("mem_nobody", "desk", Status::Online),
                    change(&owner, "phone", Status::Away),
                    change(&owner, "desk", Status::OnThePhone),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        let results: Vec<Result<(String, Status), String>> = answer
            .results
            .iter()
            .map(|result| match result.result.as_ref().unwrap() {
                pb::set_status_result::Result::Presence(p) => Ok((p.member_id.clone(), p.status())),
                pb::set_status_result::Result::Error(e) => Err(e.code.clone()),
            })
            .collect();
        assert_eq!(
            results,
            [
                Ok((owner.clone(), Status::Away)),
                Ok((helper.clone(), Status::Idle)),
                Err("not_found".to_owned()),
                Ok((owner.clone(), Status::Away)),
                Ok((owner.clone(), Status::Away)),
            ]
        );
        assert_eq!(
            events.next().await.status(),
            Status::Away,
            "one write, one event"
        );
        let desk_left = client
            .disconnect(pb::DisconnectRequest {
                device: Some(device(&app_id, &owner, "phone")),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            desk_left.status(),
            Status::OnThePhone,
            "the later change won"
        );

        let malformed = client
            .batch_set_status(pb::BatchSetStatusRequest {
                changes: vec![
                    change(&helper, "cli", Status::Busy),
                    pb::SetStatusRequest {
                        device: Some(device(&app_id, &owner, "desk")),
                        status: 42,
                    },
                ],
            })
            .await
            .expect_err("a malformed change fails the batch");
        let error = palaver_kit::Error::from_status(&malformed);
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert_eq!(error.violations[0].field, "changes[1].status");
        assert_eq!(
            get(&mut client, &app_id, by_member(&helper))
                .await
                .unwrap()
                .status(),
            Status::Idle,
            "nothing of the refused batch was applied"
        );
    }
);
