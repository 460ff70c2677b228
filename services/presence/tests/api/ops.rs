//! What operations see: gRPC health and the admin port's readiness.

use palaver_presence::SERVICE_NAME;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{Backend, TestPresence, spawn};
use crate::on_both_backends;

on_both_backends!(
    health_and_readiness_report_serving,
    |t: TestPresence| async move {
        let channel =
            palaver_kit::grpc::balanced_channel(&format!("http://{}", t.addr(0))).unwrap();
        let mut health = HealthClient::new(channel);
        for service in ["", SERVICE_NAME] {
            let answer = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
        }
        let (status, body) = t.readyz(0).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ready"], true);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_without_its_bucket() {
    let t = spawn(Backend::Nats).await;
    assert_eq!(t.readyz(0).await.0, 200);
    t.kv_store().await.delete_bucket().await.unwrap();
    let (status, body) = t.readyz(0).await;
    assert_eq!(status, 503, "{body}");
    let failing: Vec<&String> = body["failing"].as_object().unwrap().keys().collect();
    assert_eq!(failing, ["presence_store"], "{body}");
}
