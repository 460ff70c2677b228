//! `make bench`: one presence replica on the local NATS (key-value bucket and bus) with a
//! real identity service, driven over loopback gRPC on `CONNECTIONS` connections (as
//! from that many gateways). Prints figures; asserts nothing.
//!
//! - transitions: `CALLERS` callers each flip their own members (one device each)
//!   between two statuses for `PHASE`; every call changes the member's status.
//! - batched transitions: `HEARTBEATERS` callers send `BatchSetStatus`es of `BATCH`
//!   changes (one per member, each a change) for `PHASE`, as a gateway does when many
//!   of its sockets change at once.
//! - heartbeats: `HEARTBEATERS` callers send `BatchHeartbeat`s of `BATCH` devices (four
//!   per member, so one write per four devices) for `PHASE`.
//! - change to watcher: a Watch stream over `WATCHED` members while each of them gets a
//!   new status every 50–400 ms; the time from sending SetStatus to the watch item
//!   showing that change (or a later one), coalescing window (250 ms) included. Run
//!   once alone and once beside `BACKGROUND_RATE` transitions per second on other
//!   members.
//!
//! The machine may be shared, so each throughput phase also reports the CPU time it
//! took in this process (client, presence, identity) and the local nats-server, per
//! change, and the rate that cost allows on the machine's cores when nothing else
//! runs.

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use palaver_presence::domain::Policy;
use palaver_proto::presence::v1 as pb;
use pb::Status;
use rand::Rng;
use tokio::sync::Mutex;

const MEMBERS: usize = 2000;
const CALLERS: usize = 128;
/// Client connections, as from this many gateways.
const CONNECTIONS: usize = 4;
const HEARTBEATERS: usize = 4;
const BATCH: usize = 1000;
const DEVICES_PER_MEMBER: usize = 4;
const WATCHED: usize = 50;
const BACKGROUND_RATE: u64 = 5000;
const BACKGROUND_WORKERS: usize = 64;
const PHASE: Duration = Duration::from_secs(10);

const CYCLE: [Status; 7] = [
    Status::Online,
    Status::Away,
    Status::Idle,
    Status::BeRightBack,
    Status::Busy,
    Status::OutToLunch,
    Status::OnThePhone,
];

/// One watched member: changes sent and not yet seen on the watch, the latest item
/// seen, and the latencies measured.
#[derive(Default)]
struct Probe {
    sent: VecDeque<(u64, Instant)>,
    seen: Option<(u64, Instant)>,
    latencies: Vec<Duration>,
}

impl Probe {
    /// A change written at `revision`: the watch may already have shown it (the event
    /// can beat the answer), else it waits for an item at that revision or later.
    fn sent(&mut self, revision: u64, at: Instant) {
        match self.seen {
            Some((seen, seen_at)) if seen >= revision => {
                self.latencies.push(seen_at.saturating_duration_since(at));
            }
            _ => self.sent.push_back((revision, at)),
        }
    }

    fn seen(&mut self, revision: u64, at: Instant) {
        self.seen = Some((revision, at));
        while self.sent.front().is_some_and(|(sent, _)| *sent <= revision) {
            if let Some((_, sent_at)) = self.sent.pop_front() {
                self.latencies.push(at - sent_at);
            }
        }
    }
}

/// CPU seconds used so far by this process and every local nats-server (Linux
/// `/proc`, at the usual 100 ticks per second).
fn cpu_seconds() -> f64 {
    let nats = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "nats-server")
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned());
    let ticks: u64 = std::iter::once("self".to_owned())
        .chain(nats)
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0
}

/// The CPU cost of `count` units (changes, devices) since `cpu_before`, and the rate it
/// allows.
fn cost(count: f64, unit: &str, cpu_before: f64) -> String {
    let per_change = (cpu_seconds() - cpu_before) / count;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{:.0} µs CPU per {unit} here and in nats-server, {:.0}/s on {cores} free cores",
        per_change * 1e6,
        cores as f64 / per_change
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn set(client: &mut helpers::Client, device: pb::Device, status: Status) -> u64 {
    helpers::set_status(client, device, status)
        .await
        .expect("set status")
        .revision
}

#[tokio::main]
async fn main() {
    let t = helpers::spawn_with(helpers::Backend::Nats, Policy::default()).await;
    let app_id = t.app().await;
    let members: Vec<String> = futures::stream::iter(0..MEMBERS)
        .map(|i| {
            let (t, app_id) = (&t, &app_id);
            async move { t.member(app_id, &format!("m{i}")).await }
        })
        .buffered(16)
        .collect()
        .await;
    let clients: Vec<helpers::Client> = (0..CONNECTIONS).map(|_| t.client()).collect();
    let client = clients[0].clone();
    on_devices(&client, &app_id, &members, 0..1, Some(Status::Online)).await;
    println!(
        "presence bench: one replica on NATS at {}, {MEMBERS} members",
        palaver_kit::testing::nats_url().await
    );

    transitions(&clients, &app_id, &members).await;
    batched_transitions(&clients, &app_id, &members).await;
    on_devices(
        &client,
        &app_id,
        &members,
        1..DEVICES_PER_MEMBER,
        Some(Status::Online),
    )
    .await;
    heartbeats(&clients, &app_id, &members).await;
    on_devices(&client, &app_id, &members, 1..DEVICES_PER_MEMBER, None).await;
    change_to_watcher(&client, &app_id, &members, 0).await;
    change_to_watcher(&client, &app_id, &members, BACKGROUND_RATE).await;
}

/// Sets a status on devices `d<n>` of every member, or disconnects them.
async fn on_devices(
    client: &helpers::Client,
    app_id: &str,
    members: &[String],
    devices: std::ops::Range<usize>,
    status: Option<Status>,
) {
    futures::stream::iter(members)
        .for_each_concurrent(64, |member| {
            let mut client = client.clone();
            let devices = devices.clone();
            async move {
                for d in devices {
                    let device = helpers::device(app_id, member, &format!("d{d}"));
                    match status {
                        Some(status) => {
                            set(&mut client, device, status).await;
                        }
                        None => {
                            client
                                .disconnect(pb::DisconnectRequest {
                                    device: Some(device),
                                })
                                .await
                                .expect("disconnect");
                        }
                    }
                }
            }
        })
        .await;
}

/// Status transitions ingested per second.
async fn transitions(clients: &[helpers::Client], app_id: &str, members: &[String]) {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (mut client, stop) = (clients[c % clients.len()].clone(), stop.clone());
            let own: Vec<pb::Device> = members
                .iter()
                .skip(c)
                .step_by(CALLERS)
                .map(|member| helpers::device(app_id, member, "d0"))
                .collect();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let device = own[i % own.len()].clone();
                    let status = [Status::Busy, Status::Online][(i / own.len()) % 2];
                    let begin = Instant::now();
                    set(&mut client, device, status).await;
                    latencies.push(begin.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(PHASE).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for caller in callers {
        latencies.extend(caller.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "status transitions (SetStatus, each a change): {:.0}/s ({} in {:.1} s, {CALLERS} callers; p50 {:.2} ms, p99 {:.2} ms per call; {})",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        cost(latencies.len() as f64, "change", cpu),
    );
}

/// Status transitions ingested per second, in batches.
async fn batched_transitions(clients: &[helpers::Client], app_id: &str, members: &[String]) {
    let devices: Vec<pb::Device> = members
        .iter()
        .map(|member| helpers::device(app_id, member, "d0"))
        .collect();
    let batches: Arc<Vec<Vec<pb::Device>>> = Arc::new(
        devices
            .chunks(BATCH / DEVICES_PER_MEMBER)
            .map(<[_]>::to_vec)
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let changed = Arc::new(AtomicU64::new(0));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let callers: Vec<_> = (0..HEARTBEATERS)
        .map(|c| {
            let (mut client, stop, changed, batches) = (
                clients[c % clients.len()].clone(),
                stop.clone(),
                changed.clone(),
                batches.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let status = [Status::Away, Status::Idle][(i / batches.len()) % 2];
                    let changes: Vec<pb::SetStatusRequest> = batches[i % batches.len()]
                        .iter()
                        .map(|device| pb::SetStatusRequest {
                            device: Some(device.clone()),
                            status: status as i32,
                        })
                        .collect();
                    let sent = changes.len() as u64;
                    let begin = Instant::now();
                    let results = client
                        .batch_set_status(pb::BatchSetStatusRequest { changes })
                        .await
                        .expect("batch set status")
                        .into_inner()
                        .results;
                    assert!(
                        results.iter().all(|r| matches!(
                            r.result,
                            Some(pb::set_status_result::Result::Presence(_))
                        )),
                        "every change is applied"
                    );
                    latencies.push(begin.elapsed());
                    changed.fetch_add(sent, Ordering::Relaxed);
                    i += HEARTBEATERS;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(PHASE).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for caller in callers {
        latencies.extend(caller.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "status transitions (BatchSetStatus of {} members, each a change): {:.0}/s ({} batches in {:.1} s, {HEARTBEATERS} callers; p50 {:.1} ms, p99 {:.1} ms per batch; {})",
        BATCH / DEVICES_PER_MEMBER,
        changed.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        cost(changed.load(Ordering::Relaxed) as f64, "change", cpu),
    );
}

/// Device heartbeats per second, in batches.
async fn heartbeats(clients: &[helpers::Client], app_id: &str, members: &[String]) {
    let devices: Vec<pb::Device> = members
        .iter()
        .flat_map(|member| {
            (0..DEVICES_PER_MEMBER).map(move |d| helpers::device(app_id, member, &format!("d{d}")))
        })
        .collect();
    let batches: Arc<Vec<Vec<pb::Device>>> =
        Arc::new(devices.chunks(BATCH).map(<[_]>::to_vec).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let beaten = Arc::new(AtomicU64::new(0));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let callers: Vec<_> = (0..HEARTBEATERS)
        .map(|c| {
            let (mut client, stop, beaten, batches) = (
                clients[c % clients.len()].clone(),
                stop.clone(),
                beaten.clone(),
                batches.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let batch = batches[i % batches.len()].clone();
                    let sent = batch.len() as u64;
                    let begin = Instant::now();
                    let expired = client
                        .batch_heartbeat(pb::BatchHeartbeatRequest { devices: batch })
                        .await
                        .expect("batch heartbeat")
                        .into_inner()
                        .expired;
                    assert!(expired.is_empty(), "every device is live");
                    latencies.push(begin.elapsed());
                    beaten.fetch_add(sent, Ordering::Relaxed);
                    i += HEARTBEATERS;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(PHASE).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for caller in callers {
        latencies.extend(caller.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let beaten = beaten.load(Ordering::Relaxed) as f64;
    println!(
        "heartbeats (BatchHeartbeat of {BATCH} devices, {} members each): {:.0} devices/s, {:.0} member writes/s ({} batches in {:.1} s, {HEARTBEATERS} callers; p50 {:.1} ms, p99 {:.1} ms per batch; {})",
        BATCH / DEVICES_PER_MEMBER,
        beaten / elapsed.as_secs_f64(),
        beaten / DEVICES_PER_MEMBER as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        cost(beaten, "device", cpu),
    );
}

/// Time from SetStatus to the change arriving on a Watch stream.
async fn change_to_watcher(
    client: &helpers::Client,
    app_id: &str,
    members: &[String],
    background_rate: u64,
) {
    let (watched, others) = members.split_at(WATCHED);
    let mut stream = client
        .clone()
        .watch(pb::WatchRequest {
            app_id: app_id.to_owned(),
            targets: watched.iter().map(|m| helpers::by_member(m)).collect(),
        })
        .await
        .expect("watch")
        .into_inner();
    for _ in 0..WATCHED {
        stream.message().await.unwrap().unwrap();
    }
    let probes: Arc<Mutex<HashMap<String, Probe>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Paced workers, so a slow service gets less load instead of a growing queue.
    let background_done = Arc::new(AtomicU64::new(0));
    let background_started = Instant::now();
    let background: Vec<_> = (0..BACKGROUND_WORKERS)
        .filter(|_| background_rate > 0)
        .map(|w| {
            let (mut client, stop, done) = (client.clone(), stop.clone(), background_done.clone());
            let own: Vec<pb::Device> = others
                .iter()
                .skip(w)
                .step_by(BACKGROUND_WORKERS)
                .map(|member| helpers::device(app_id, member, "d0"))
                .collect();
            let period = Duration::from_secs(BACKGROUND_WORKERS as u64) / background_rate as u32;
            tokio::spawn(async move {
                let mut every = tokio::time::interval(period);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    let status = [Status::Busy, Status::Away][(i / own.len()) % 2];
                    set(&mut client, own[i % own.len()].clone(), status).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let senders: Vec<_> = watched
        .iter()
        .enumerate()
        .map(|(w, member)| {
            let (mut client, probes, stop) = (client.clone(), probes.clone(), stop.clone());
            let device = helpers::device(app_id, member, "d0");
            let member = member.clone();
            tokio::spawn(async move {
                let mut k = w;
                while !stop.load(Ordering::Relaxed) {
                    let wait = rand::rng().random_range(50..400);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    k += 1;
                    let sent = Instant::now();
                    let revision = set(&mut client, device.clone(), CYCLE[k % CYCLE.len()]).await;
                    probes
                        .lock()
                        .await
                        .entry(member.clone())
                        .or_default()
                        .sent(revision, sent);
                }
            })
        })
        .collect();

    let deadline = tokio::time::Instant::now() + PHASE;
    while let Ok(Some(Ok(item))) = tokio::time::timeout_at(deadline, stream.next()).await {
        probes
            .lock()
            .await
            .entry(item.member_id)
            .or_default()
            .seen(item.revision, Instant::now());
    }
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    for worker in background {
        worker.await.unwrap();
    }
    let mut latencies: Vec<Duration> = probes
        .lock()
        .await
        .values_mut()
        .flat_map(|probe| std::mem::take(&mut probe.latencies))
        .collect();
    latencies.sort();
    let load = if background_rate > 0 {
        let rate = background_done.load(Ordering::Relaxed) as f64
            / background_started.elapsed().as_secs_f64();
        format!("beside {rate:.0} transitions/s on other members")
    } else {
        "alone".to_owned()
    };
    println!(
        "SetStatus to Watch item, {load}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} changes of {WATCHED} members, window 250 ms)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        latencies.len(),
    );
}
