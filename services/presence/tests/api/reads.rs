//! Reading presence as visitors see it: one target or a batch, by member or endpoint.

use palaver_kit::ErrorCode;
use palaver_proto::presence::v1 as pb;
use pb::Status;

use crate::helpers::{TestPresence, by_endpoint, by_member, code_of, device, get, set_status};
use crate::on_both_backends;

on_both_backends!(
    a_batch_is_answered_in_request_order_without_unknown_or_closed_targets,
    |t: TestPresence| async move {
        let (app_id, owner, owner_endpoint) = t.owner().await;
        let helper = t.member(&app_id, "helper").await;
        let helper_endpoint = t.grant(&app_id, "helper").await;
        let ungranted = t.member(&app_id, "ungranted").await;
        let other_app = t.app().await;
        t.member(&other_app, "elsewhere").await;
        let elsewhere_endpoint = t.grant(&other_app, "elsewhere").await;
        let mut client = t.client();
        set_status(&mut client, device(&app_id, &owner, "desk"), Status::Online)
            .await
            .unwrap();
        set_status(&mut client, device(&app_id, &helper, "desk"), Status::Busy)
            .await
            .unwrap();

        let answer = client
            .batch_get(pb::BatchGetRequest {
                app_id: app_id.clone(),
                targets: vec![
                    by_endpoint(&helper_endpoint),
                    by_endpoint("ce_unknown"),
                    by_member(&owner),
                    by_endpoint(&elsewhere_endpoint),
                    by_member("mem_nobody"),
                    by_member(&ungranted),
                    by_endpoint(&owner_endpoint),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        let seen: Vec<(&str, &str, Status)> = answer
            .presences
            .iter()
            .map(|p| (p.member_id.as_str(), p.endpoint.as_str(), p.status()))
            .collect();
        assert_eq!(
            seen,
            [
                (helper.as_str(), helper_endpoint.as_str(), Status::Busy),
                (owner.as_str(), owner_endpoint.as_str(), Status::Online),
                (ungranted.as_str(), "", Status::Offline),
                (owner.as_str(), owner_endpoint.as_str(), Status::Online),
            ]
        );

        let too_many = client
            .batch_get(pb::BatchGetRequest {
                app_id: app_id.clone(),
                targets: vec![by_member(&owner); 1001],
            })
            .await;
        assert_eq!(code_of(too_many), ErrorCode::InvalidArgument);
        let malformed = client
            .batch_get(pb::BatchGetRequest {
                app_id,
                targets: vec![by_member(&owner), by_endpoint("ce one")],
            })
            .await
            .expect_err("a malformed target fails the batch");
        assert_eq!(
            palaver_kit::Error::from_status(&malformed).violations[0].field,
            "targets[1].endpoint"
        );
    }
);

on_both_backends!(
    an_endpoint_without_a_valid_permission_token_reads_not_found,
    |t: TestPresence| async move {
        let (app_id, member_id, endpoint) = t.owner().await;
        let mut client = t.client();
        set_status(
            &mut client,
            device(&app_id, &member_id, "desk"),
            Status::Online,
        )
        .await
        .unwrap();
        assert_eq!(
            get(&mut client, &app_id, by_endpoint(&endpoint))
                .await
                .unwrap()
                .status(),
            Status::Online
        );

        t.revoke(&app_id, "owner").await;
        assert_eq!(
            code_of(get(&mut client, &app_id, by_endpoint(&endpoint)).await),
            ErrorCode::NotFound
        );
        let batch = client
            .batch_get(pb::BatchGetRequest {
                app_id: app_id.clone(),
                targets: vec![by_endpoint(&endpoint)],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(batch.presences.is_empty());
        assert_eq!(
            get(&mut client, &app_id, by_member(&member_id))
                .await
                .unwrap()
                .status(),
            Status::Online,
            "the member still has a presence; only the public endpoint closed"
        );

        t.grant(&app_id, "owner").await;
        assert_eq!(
            get(&mut client, &app_id, by_endpoint(&endpoint))
                .await
                .unwrap()
                .status(),
            Status::Online,
            "a new grant reopens the same endpoint"
        );
    }
);
