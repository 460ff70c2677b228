//! The widget's figures (issue 6, item 6), printed, never asserted: the size of
//! `widget.js` as the gateway serves it (assembled when the gateway is built), raw and
//! with `gzip -9`, and the time from inserting its script tag into a page to the badge
//! showing the member's status, in headless Chromium against `palaver up` (the demo
//! site's profile page of a member with a chat box).
//!
//! `cargo bench -p palaver-browser-tests --bench widget` (part of `make bench`). Each run
//! inserts a new tag and waits for the badge; "cold" runs load the script under a new URL
//! (fetched from the gateway), "warm" runs under one URL (from the browser's cache). The
//! badge needs the presence answer too, so every run includes one presence request.

use std::io::Write;
use std::process::{Command, Stdio};

use palaver_browser_tests::Scene;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// Runs of each kind; the median is printed.
const RUNS: usize = 15;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let scene = Scene::start().await;
        let widget_js = fetch(&scene.palaver.api, "/widget.js").await;
        println!(
            "widget.js: {} bytes, {} bytes with gzip -9",
            widget_js.len(),
            gzip(&widget_js).len()
        );
        time_to_badge(&scene).await;
        scene.close().await;
    });
}

/// The body of `path` on `base`, as the gateway serves it to a client that asks for no
/// compression (HTTP/1.0: the answer ends when the connection closes).
async fn fetch(base: &Url, path: &str) -> Vec<u8> {
    let host = base.host_str().expect("a host");
    let port = base.port_or_known_default().expect("a port");
    let mut stream = TcpStream::connect((host, port))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {base}: {e}"));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sending the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .expect("reading the answer");
    let end = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..end]);
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    answer.split_off(end + 4)
}

/// `data` compressed with `gzip -9`.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gzip = Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    gzip.stdin
        .take()
        .expect("piped stdin")
        .write_all(data)
        .expect("writing to gzip");
    let output = gzip.wait_with_output().expect("gzip finishes");
    assert!(output.status.success(), "gzip -9c failed");
    output.stdout
}

async fn time_to_badge(scene: &Scene) {
    scene.visitor.goto(&scene.profile).await;

    let mut cold = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        cold.push(
            scene
                .visitor
                .embed_widget_again(&[], &format!("cold-{run}"))
                .await,
        );
    }
    // The first load under the warm URL fills the cache.
    scene.visitor.embed_widget_again(&[], "warm").await;
    let mut warm = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        warm.push(scene.visitor.embed_widget_again(&[], "warm").await);
    }
    println!(
        "script tag to a rendered badge, median of {RUNS} (min–max): cold {} ms, warm {} ms",
        summary(&mut cold),
        summary(&mut warm)
    );
}

/// "median (min–max)" in milliseconds.
fn summary(samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "{:.1} ({:.1}–{:.1})",
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1]
    )
}
