//! `cargo bench -p palaver-conversation`: how fast the conversation service persists
//! messages over gRPC on PostgreSQL. Prints figures; asserts nothing.
//!
//! A real identity and conversation service on fresh databases of the PostgreSQL at
//! `PALAVER_TEST_DATABASE_URL` (default: the local one; its `fsync` and
//! `synchronous_commit` are printed, since durability is the point), the in-process bus.
//!
//! - Throughput: `SENDERS` callers, each on its own conversation, send one message after
//!   another for `DURATION`; persisted messages per second are counted in the database.
//! - Latency: messages sent at a steady `RATE` per second (open loop: a slow answer does
//!   not slow the sending) for `DURATION`; p50, p99 and the maximum of SendMessage.

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use palaver_proto::conversation::v1 as pb;

const SENDERS: usize = 64;
const RATE: u64 = 1_000;
const DURATION: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn setting(t: &helpers::TestConversation, name: &str) -> String {
    let (value,): (String,) = sqlx::query_as(&format!("SELECT current_setting('{name}')"))
        .fetch_one(t.store.database().pool())
        .await
        .unwrap();
    value
}

#[tokio::main]
async fn main() {
    let t = helpers::spawn(helpers::Backend::Postgres).await;
    println!(
        "PostgreSQL: fsync={}, synchronous_commit={}",
        setting(&t, "fsync").await,
        setting(&t, "synchronous_commit").await
    );
    let app_id = t.app(90, 0).await;
    let (_, endpoint) = t.member(&app_id, "owner").await;
    let mut chats: Vec<(pb::Caller, String)> = Vec::new();
    for i in 0..SENDERS {
        let visitor = t.visitor(&app_id, &endpoint, &format!("Visitor {i}")).await;
        let conversation = t.start(&visitor, &endpoint).await.unwrap();
        chats.push((visitor, conversation.id));
    }
    for (i, (visitor, id)) in chats.iter().enumerate() {
        t.send(visitor, id, &format!("warm-{i}"), "warming up")
            .await
            .unwrap();
    }

    // Throughput.
    let before = t.counts().await.messages;
    let cpu_before = (own_cpu_seconds(), postgres_cpu_seconds());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let senders: Vec<_> = chats
        .iter()
        .cloned()
        .map(|(visitor, id)| {
            let mut client = t.client();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    helpers::send(
                        &mut client,
                        &visitor,
                        &id,
                        &format!("t{i}"),
                        "How much is it?",
                    )
                    .await
                    .expect("send");
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(DURATION).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let elapsed = started.elapsed();
    let cpu_after = (own_cpu_seconds(), postgres_cpu_seconds());
    let persisted = t.counts().await.messages - before;
    println!(
        "throughput: {SENDERS} concurrent senders, {:.1} s: {persisted} messages persisted, {:.0} messages/s",
        elapsed.as_secs_f64(),
        persisted as f64 / elapsed.as_secs_f64()
    );
    let per_message = |before: f64, after: f64| (after - before) / persisted as f64 * 1e6;
    println!(
        "  CPU per persisted message: {:.0} µs in this process (client, service, relay), {:.0} µs in PostgreSQL (the machine's other load excluded)",
        per_message(cpu_before.0, cpu_after.0),
        per_message(cpu_before.1, cpu_after.1),
    );
    print_metrics(&t).await;
    t.relayed().await;

    // Latency at a steady rate.
    let total = RATE * DURATION.as_secs();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::with_capacity(total as usize);
    for n in 0..total {
        ticks.tick().await;
        let (visitor, id) = chats[n as usize % chats.len()].clone();
        let mut client = t.client();
        calls.push(tokio::spawn(async move {
            let begin = Instant::now();
            helpers::send(
                &mut client,
                &visitor,
                &id,
                &format!("l{n}"),
                "Are you there?",
            )
            .await
            .expect("send");
            begin.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(calls.len());
    for call in calls {
        latencies.push(call.await.unwrap());
    }
    latencies.sort();
    println!(
        "latency at {RATE} messages/s over {} s ({} sends): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        DURATION.as_secs(),
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
    );
    t.relayed().await;
}

/// The group commit's own figures, from the admin port.
async fn print_metrics(t: &helpers::TestConversation) {
    let metrics = reqwest::get(format!("http://{}/metrics", t.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in metrics.lines().filter(|l| {
        (l.starts_with("palaver_conversation_batch_size")
            || l.starts_with("palaver_conversation_commit_seconds")
            || l.starts_with("palaver_conversation_relay_batch_size"))
            && !l.starts_with('#')
    }) {
        println!("  {line}");
    }
}

/// `(comm, utime + stime)` of a `/proc/<pid>/stat` line, in clock ticks.
fn ticks(stat: &str) -> Option<(String, u64)> {
    let (head, rest) = stat.split_once(") ")?;
    let comm = head.split_once(" (")?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU seconds this process has used (Linux, 100 ticks a second).
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    ticks(&stat).map_or(0, |(_, t)| t) as f64 / 100.0
}

/// CPU seconds the live `postgres` processes have used.
fn postgres_cpu_seconds() -> f64 {
    let total: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| ticks(&stat))
        .filter(|(comm, _)| comm == "postgres")
        .map(|(_, t)| t)
        .sum();
    total as f64 / 100.0
}
