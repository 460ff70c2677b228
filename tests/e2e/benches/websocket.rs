//! `cargo bench -p palaver-e2e --bench websocket` (part of `make bench`): what one gateway
//! holds and how fast it delivers, measured by a load generator that speaks the WebSocket
//! protocol. Prints figures; asserts nothing.
//!
//! The chart runs as in `tests/chart_run.rs` (the release binaries as processes, one pod
//! per service, the PostgreSQL and NATS of `palaver_kit::testing`). The load generator
//! connects to the gateway's pod itself, not through the Service's forwarder, which would
//! hold two more sockets per connection in this process.
//!
//! 1. Idle connections: visitor sockets that say hello (one visitor session shared, a
//!    visitor with many tabs) and watch the member's presence, opened from several
//!    127.0.0.x source addresses (one address runs out of ephemeral ports near 28,000).
//!    The gateway's resident memory before and after, per connection. How many sockets
//!    one process may hold is capped by its open-file limit, which is printed.
//! 2. Latency: with [`LATENCY_IDLE`] idle sockets open, [`CHATS`] visitors send [`RATE`]
//!    messages a second in all (open loop) for [`DURATION`] to [`MEMBERS`] members, each
//!    with an operator socket: p50/p99/max from `message.send` to the operator's
//!    `message` frame, and to its `message.ack`.
//! 3. Throughput: the same visitors keep [`WINDOW`] messages each in flight for
//!    [`DURATION`]: messages delivered to the operators per second.
//!
//! `PALAVER_BENCH_IDLE` sets how many idle sockets to aim for at the end (default 100,000,
//! or as many as the open-file limit allows).

#[allow(dead_code)]
#[path = "../tests/chart_run/chart.rs"]
mod chart;
#[allow(dead_code)]
#[path = "../tests/chart_run/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../tests/chart_run/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../tests/chart_run/install.rs"]
mod install;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, SplitSink};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use client::{SITE, Site, approve};
use install::Install;

/// Idle sockets open while latency is measured.
const LATENCY_IDLE: usize = 10_000;
/// Visitors chatting during the latency and throughput runs, and the members they chat
/// with (each signed in once).
const CHATS: usize = 200;
const MEMBERS: usize = 20;
/// Messages per second in all, during the latency run.
const RATE: u64 = 1_000;
/// Messages each visitor keeps unacknowledged during the throughput run.
const WINDOW: usize = 4;
const DURATION: Duration = Duration::from_secs(10);
/// Source addresses the load generator's sockets come from.
const SOURCES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 11),
    Ipv4Addr::new(127, 0, 0, 12),
    Ipv4Addr::new(127, 0, 0, 13),
    Ipv4Addr::new(127, 0, 0, 14),
];
/// Sockets being opened at once.
const OPENING: usize = 64;
/// Files this process keeps for itself beside the sockets (backends, logs, the runtime).
const RESERVED_FILES: usize = 500;

type Socket = WebSocketStream<TcpStream>;

/// A socket to the gateway pod at `addr` from `source`, from a page at `origin` (none: a
/// native client). The client's buffers are small: this process holds as many sockets as
/// the gateway.
async fn connect(
    addr: SocketAddr,
    source: Ipv4Addr,
    origin: Option<&str>,
) -> anyhow::Result<Socket> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    let stream = socket.connect(addr).await?;
    let mut request = format!("ws://{addr}/v1/ws").into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse()?);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0);
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(socket)
}

/// The next text frame as JSON.
async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str())?),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.into()),
            None => anyhow::bail!("the socket closed"),
        }
    }
}

async fn send_json(socket: &mut Socket, frame: Value) -> anyhow::Result<()> {
    Ok(socket.send(Message::text(frame.to_string())).await?)
}

/// An idle socket: hello, `presence.watch`, the first `presence` frame; then it only
/// answers the gateway's pings, in a task of its own.
async fn idle(
    addr: SocketAddr,
    source: Ipv4Addr,
    token: &str,
    endpoint: &str,
) -> anyhow::Result<JoinHandle<()>> {
    let mut socket = connect(addr, source, Some(SITE)).await?;
    send_json(&mut socket, json!({"type": "hello", "token": token})).await?;
    let welcome = next_json(&mut socket).await?;
    anyhow::ensure!(welcome["type"] == "welcome", "{welcome}");
    send_json(
        &mut socket,
        json!({"type": "presence.watch", "endpoints": [endpoint]}),
    )
    .await?;
    let presence = next_json(&mut socket).await?;
    anyhow::ensure!(presence["type"] == "presence", "{presence}");
    Ok(tokio::spawn(async move {
        while let Some(Ok(_)) = socket.next().await {}
    }))
}

/// Opens idle sockets until `target` are open, spread over [`SOURCES`]; answers how
/// many failed.
async fn open_idle(
    sockets: &mut Vec<JoinHandle<()>>,
    target: usize,
    addr: SocketAddr,
    token: &str,
    endpoint: &str,
) -> usize {
    let opened: Vec<anyhow::Result<JoinHandle<()>>> = stream::iter(sockets.len()..target)
        .map(|n| idle(addr, SOURCES[n % SOURCES.len()], token, endpoint))
        .buffer_unordered(OPENING)
        .collect()
        .await;
    let mut failed = 0;
    let mut first_error = None;
    for outcome in opened {
        match outcome {
            Ok(socket) => sockets.push(socket),
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        println!("  {failed} sockets failed to open; the first: {error:#}");
    }
    failed
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// How many files this process may open, its soft limit raised to the hard one (the
/// gateway's process, started after, inherits it).
fn file_limit() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// A chatting visitor: sends what the driver asks through its own socket, and hears
/// its acknowledgements (recording how long each took in `deliveries`).
struct Chat {
    conversation: String,
    frames: mpsc::UnboundedSender<Value>,
    acks: mpsc::UnboundedReceiver<()>,
}

/// Opens a visitor's conversation with the member; its socket's writer and reader run
/// in tasks of their own.
async fn chat(
    addr: SocketAddr,
    source: Ipv4Addr,
    token: String,
    endpoint: &str,
    deliveries: Arc<Deliveries>,
) -> Chat {
    let mut socket = connect(addr, source, Some(SITE))
        .await
        .expect("a visitor socket");
    send_json(&mut socket, json!({"type": "hello", "token": token}))
        .await
        .unwrap();
    next_json(&mut socket).await.unwrap();
    send_json(
        &mut socket,
        json!({"type": "conversation.open", "endpoint": endpoint}),
    )
    .await
    .unwrap();
    let opened = loop {
        let frame = next_json(&mut socket).await.unwrap();
        if frame["type"] == "conversation" {
            break frame;
        }
        assert_ne!(frame["type"], "error", "{frame}");
    };
    let (sink, mut stream) = socket.split();
    let (frames, outgoing) = mpsc::unbounded_channel();
    tokio::spawn(write(sink, outgoing));
    let (acked, acks) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                match frame["type"].as_str() {
                    Some("message.ack") => {
                        let client_id = frame["client_id"].as_str().unwrap_or_default();
                        let sent = deliveries.unacked.lock().unwrap().remove(client_id);
                        if let Some(sent) = sent {
                            deliveries
                                .ack_latencies
                                .lock()
                                .unwrap()
                                .push(sent.elapsed());
                        }
                        let _ = acked.send(());
                    }
                    Some("error") => eprintln!("visitor error frame: {frame}"),
                    _ => {}
                }
            }
        }
    });
    Chat {
        conversation: opened["id"].as_str().unwrap().to_owned(),
        frames,
        acks,
    }
}

async fn write(mut sink: SplitSink<Socket, Message>, mut frames: mpsc::UnboundedReceiver<Value>) {
    while let Some(frame) = frames.recv().await {
        if sink.send(Message::text(frame.to_string())).await.is_err() {
            return;
        }
    }
}

/// When each message was sent, by client id (until the operator has it, and until it
/// is acknowledged), and how long each took to the operator and to the acknowledgement.
#[derive(Default)]
struct Deliveries {
    sent: Mutex<HashMap<String, Instant>>,
    unacked: Mutex<HashMap<String, Instant>>,
    latencies: Mutex<Vec<Duration>>,
    ack_latencies: Mutex<Vec<Duration>>,
    delivered: AtomicU64,
}

/// An operator's socket: records each visitor message's delivery.
fn operator_reader(mut socket: Socket, deliveries: Arc<Deliveries>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let frame = match next_json(&mut socket).await {
                Ok(frame) => frame,
                Err(error) => {
                    eprintln!("an operator's socket ended: {error:#}");
                    return;
                }
            };
            if frame["type"] == "error" {
                eprintln!("an operator's error frame: {frame}");
            }
            if frame["type"] != "message" || frame["from"] != "visitor" {
                continue;
            }
            let Some(client_id) = frame["client_id"].as_str() else {
                continue;
            };
            let sent = deliveries.sent.lock().unwrap().remove(client_id);
            if let Some(sent) = sent {
                deliveries.latencies.lock().unwrap().push(sent.elapsed());
            }
            deliveries.delivered.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn message(chat: &Chat, client_id: &str, deliveries: &Deliveries) {
    let now = Instant::now();
    deliveries
        .sent
        .lock()
        .unwrap()
        .insert(client_id.to_owned(), now);
    deliveries
        .unacked
        .lock()
        .unwrap()
        .insert(client_id.to_owned(), now);
    let _ = chat.frames.send(json!({
        "type": "message.send",
        "conversation": chat.conversation,
        "client_id": client_id,
        "text": "How much is the blue one?",
    }));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn kib(bytes: f64) -> f64 {
    bytes / 1024.0
}

#[tokio::main]
async fn main() {
    let files = file_limit();
    let wanted: usize = std::env::var("PALAVER_BENCH_IDLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let idle_target = wanted.min(files.saturating_sub(CHATS + RESERVED_FILES));
    println!("open-file limit of this process and the gateway's: {files}");

    let install = Install::start(1).await;
    let (pod_addr, pid) = install.cluster.pod(&install.gateway);
    let pid = pid.expect("the gateway's process");
    let addr = SocketAddr::new(pod_addr.into(), 8080);
    let limits = json!({"limits": {
        "sessions_per_ip_per_minute": 1_000_000,
        "messages_per_second": 1_000_000,
        "message_burst": 1_000_000,
        "open_conversations_per_visitor": 1_000,
    }});
    let site = Site::create(&install.base, &install.admin_token, limits).await;
    let deliveries = Arc::new(Deliveries::default());
    let mut endpoints = Vec::with_capacity(MEMBERS);
    let mut readers = Vec::with_capacity(MEMBERS);
    for m in 0..MEMBERS {
        let identity = install.identity.clone();
        let member = format!("member-{m}");
        let endpoint = site
            .member_with_permission(&member, &format!("Member {m}"), |url| {
                approve(identity, url)
            })
            .await;
        let mut operator = connect(addr, SOURCES[m % SOURCES.len()], None)
            .await
            .expect("an operator's socket");
        let token = site.operator_token(&member).await;
        send_json(&mut operator, json!({"type": "hello", "token": token}))
            .await
            .unwrap();
        let welcome = next_json(&mut operator).await.unwrap();
        assert_eq!(welcome["you"]["kind"], "operator", "{welcome}");
        readers.push(operator_reader(operator, deliveries.clone()));
        endpoints.push(endpoint);
    }
    let endpoint = endpoints[0].clone();

    let mut chats = Vec::with_capacity(CHATS);
    for n in 0..CHATS {
        let endpoint = &endpoints[n % MEMBERS];
        let token = site.visitor(endpoint, &format!("Visitor {n}")).await;
        let source = SOURCES[n % SOURCES.len()];
        chats.push(chat(addr, source, token, endpoint, deliveries.clone()).await);
    }
    // Warm up: every conversation once.
    for (n, chat) in chats.iter().enumerate() {
        message(chat, &format!("warm-{n}"), &deliveries);
    }
    while deliveries.delivered.load(Ordering::Relaxed) < CHATS as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deliveries.latencies.lock().unwrap().clear();
    deliveries.ack_latencies.lock().unwrap().clear();

    // 1. Idle connections, first LATENCY_IDLE of them.
    let idle_token = site.visitor(&endpoint, "Idle visitor").await;
    let mut idle_sockets = Vec::new();
    let settle = || tokio::time::sleep(Duration::from_secs(2));
    settle().await;
    let base_rss = rss(pid);
    let started = Instant::now();
    let first = LATENCY_IDLE.min(idle_target);
    open_idle(&mut idle_sockets, first, addr, &idle_token, &endpoint).await;
    let opened_in = started.elapsed();
    settle().await;
    let per_connection = |rss_now: u64, count: usize| {
        kib(rss_now.saturating_sub(base_rss) as f64 / count.max(1) as f64)
    };
    println!(
        "idle: {} sockets open in {:.1} s; gateway RSS {:.1} MiB → {:.1} MiB: {:.2} KiB per connection",
        idle_sockets.len(),
        opened_in.as_secs_f64(),
        kib(base_rss as f64) / 1024.0,
        kib(rss(pid) as f64) / 1024.0,
        per_connection(rss(pid), idle_sockets.len()),
    );

    // 2. Latency at RATE a second, open loop, beside the idle sockets.
    let interval = Duration::from_secs(1) / u32::try_from(RATE).unwrap();
    let mut tick = tokio::time::interval(interval);
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < DURATION {
        tick.tick().await;
        message(&chats[n % CHATS], &format!("l-{n}"), &deliveries);
        n += 1;
    }
    let sent = n;
    let drain_until = Instant::now() + Duration::from_secs(10);
    while deliveries.latencies.lock().unwrap().len() < sent && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = std::mem::take(&mut *deliveries.latencies.lock().unwrap());
    latencies.sort();
    let mut ack_latencies = std::mem::take(&mut *deliveries.ack_latencies.lock().unwrap());
    ack_latencies.sort();
    if latencies.is_empty() {
        println!("latency: nothing was delivered");
    } else {
        println!(
            "latency at {RATE} msg/s with {} idle sockets ({CHATS} visitors, {MEMBERS} operators): {} of {sent} delivered; visitor → operator p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            idle_sockets.len(),
            latencies.len(),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap()),
        );
    }
    if !ack_latencies.is_empty() {
        println!(
            "  of which visitor → message.ack (stored): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(percentile(&ack_latencies, 0.50)),
            ms(percentile(&ack_latencies, 0.99)),
            ms(*ack_latencies.last().unwrap()),
        );
    }
    deliveries.sent.lock().unwrap().clear();
    deliveries.unacked.lock().unwrap().clear();

    // 3. Throughput: WINDOW in flight per visitor.
    let before = deliveries.delivered.load(Ordering::Relaxed);
    let started = Instant::now();
    let senders: Vec<_> = chats
        .into_iter()
        .enumerate()
        .map(|(c, mut chat)| {
            tokio::spawn(async move {
                while chat.acks.try_recv().is_ok() {}
                let send = |n: usize| {
                    chat.frames.send(json!({
                        "type": "message.send",
                        "conversation": chat.conversation,
                        "client_id": format!("t-{c}-{n}"),
                        "text": "How much is the blue one?",
                    }))
                };
                let mut n = 0;
                while n < WINDOW {
                    let _ = send(n);
                    n += 1;
                }
                while started.elapsed() < DURATION && chat.acks.recv().await.is_some() {
                    let _ = send(n);
                    n += 1;
                }
            })
        })
        .collect();
    for sender in senders {
        let _ = sender.await;
    }
    let elapsed = started.elapsed();
    let delivered = deliveries.delivered.load(Ordering::Relaxed) - before;
    println!(
        "throughput: {delivered} messages delivered to operators in {:.1} s: {:.0} msg/s ({CHATS} visitors, {MEMBERS} operators, {WINDOW} in flight each)",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64()
    );

    // 1, continued: as many idle sockets as allowed.
    if idle_target > idle_sockets.len() {
        let started = Instant::now();
        open_idle(&mut idle_sockets, idle_target, addr, &idle_token, &endpoint).await;
        let opened_in = started.elapsed();
        settle().await;
        println!(
            "idle: {} sockets open ({:.1} s for the last {}); gateway RSS {:.1} MiB: {:.2} KiB per connection",
            idle_sockets.len(),
            opened_in.as_secs_f64(),
            idle_target - first,
            kib(rss(pid) as f64) / 1024.0,
            per_connection(rss(pid), idle_sockets.len()),
        );
    }
    if wanted > idle_target {
        println!(
            "(aimed at {wanted} idle sockets; the open-file limit of {files} allows {idle_target})"
        );
    }
    for reader in readers {
        reader.abort();
    }
}
