//! `make bench`: how fast identity issues visitor sessions over gRPC on PostgreSQL, and
//! how fast a service verifies access tokens locally. Prints figures; asserts nothing.
//!
//! Sessions: a real identity service on a fresh PostgreSQL database, driven over
//! loopback gRPC by `CONCURRENCY` callers for `DURATION`. Verification: a
//! `TokenVerifier` with its keys cached, on every core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use palaver_identity::testing::{TestIdentity, anonymous_session};

const CONCURRENCY: usize = 64;
const DURATION: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let t = TestIdentity::spawn(palaver_kit::testing::postgres().await).await;
    let app_id = t.app().await.app.unwrap().app_id;
    t.member(&app_id, "owner").await;
    let endpoint = t.grant(&app_id, "owner").await.endpoint;

    // Warm up connections and caches.
    for _ in 0..50 {
        t.anonymous_session(&app_id, &endpoint, "Warm")
            .await
            .expect("session");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let callers: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let mut client = t.client();
            let (app_id, endpoint, stop) = (app_id.clone(), endpoint.clone(), stop.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut tokens = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let begin = Instant::now();
                    let session =
                        anonymous_session(&mut client, &app_id, &endpoint, &format!("Visitor {i}"))
                            .await
                            .expect("session");
                    latencies.push(begin.elapsed());
                    if tokens.len() < 100 {
                        tokens.push(session.session_token);
                    }
                }
                (latencies, tokens)
            })
        })
        .collect();
    tokio::time::sleep(DURATION).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut tokens = Vec::new();
    for caller in callers {
        let (l, tk) = caller.await.unwrap();
        latencies.extend(l);
        tokens.extend(tk);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "visitor sessions over gRPC on PostgreSQL: {:.0}/s ({} in {:.1} s, {CONCURRENCY} callers; p50 {:.2} ms, p99 {:.2} ms)",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );

    let verifier = t.verifier();
    verifier.verify(&tokens[0]).await.unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tokens = Arc::new(tokens);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let (verifier, tokens) = (verifier.clone(), tokens.clone());
            tokio::spawn(async move {
                let mut count = 0u64;
                let begin = Instant::now();
                while begin.elapsed() < Duration::from_secs(5) {
                    for token in tokens.iter().skip(w % 7) {
                        verifier.verify(token).await.expect("valid token");
                        count += 1;
                    }
                }
                count
            })
        })
        .collect();
    let mut verified = 0;
    for worker in workers {
        verified += worker.await.unwrap();
    }
    println!(
        "access tokens verified locally: {:.0}/s on {threads} tasks ({verified} in {:.1} s)",
        verified as f64 / started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
