//! The widget's figures (issue 6, item 6), printed, never asserted: the size of
//! `widget.js` as served compressed (`gzip -9`), and the time from inserting its script
//! tag into a page to the badge showing the member's status, in headless Chromium against
//! `palaver up` (the demo site's profile page of a member with a chat box).
//!
//! `cargo bench -p palaver-browser-tests --bench widget` (part of `make bench`). Each run
//! inserts a new tag and waits for the badge; "cold" runs load the script under a new URL
//! (fetched from the gateway), "warm" runs under one URL (from the browser's cache). The
//! badge needs the presence answer too, so every run includes one presence request.

use std::path::Path;
use std::process::Command;

use palaver_browser_tests::Scene;

/// Runs of each kind; the median is printed.
const RUNS: usize = 15;

fn main() {
    let widget_js =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../services/gateway/assets/widget.js");
    let raw = std::fs::metadata(&widget_js)
        .unwrap_or_else(|e| panic!("{}: {e}", widget_js.display()))
        .len();
    let gzipped = Command::new("gzip")
        .arg("-9c")
        .arg(&widget_js)
        .output()
        .expect("gzip runs");
    assert!(gzipped.status.success(), "gzip -9c failed");
    println!(
        "widget.js: {raw} bytes, {} bytes with gzip -9",
        gzipped.stdout.len()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(time_to_badge());
}

async fn time_to_badge() {
    let scene = Scene::start().await;
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
    scene.close().await;
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
