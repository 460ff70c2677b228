//! `palaver up` as a child process: the real binary, built into this build's target
//! directory, listening on ports of its own choosing, with a data directory of its own.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use url::Url;

/// How long `palaver up` may take to print its URLs: a guard against hanging.
const START_GUARD: Duration = Duration::from_secs(120);

/// How many of the last output lines a failing test prints.
const LOG_TAIL: usize = 200;

/// A running `palaver up`.
pub struct Palaver {
    /// The demo site's base URL (it plays the CMS; its origin is the demo app's).
    pub demo: Url,
    /// The one-time console login link `palaver up` printed.
    pub console_login: Url,
    /// The public API's base URL (the gateway: widget, console, consent page).
    pub api: Url,
    output: Arc<Mutex<Vec<String>>>,
    _process: Child,
    _data_dir: TempDir,
}

impl Palaver {
    /// Builds the `palaver` binary if needed, starts `palaver up` and waits for the URLs
    /// it prints.
    pub async fn up() -> Palaver {
        let binary = palaver_kit::testing::binaries(&["palaver"])
            .await
            .join("palaver");
        let data_dir = tempfile::tempdir().expect("a temporary data directory");
        let mut process = Command::new(&binary)
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--demo-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (lines, mut printed) = mpsc::unbounded_channel();
        tokio::spawn(collect(
            process.stdout.take().expect("piped stdout"),
            output.clone(),
            Some(lines),
        ));
        tokio::spawn(collect(
            process.stderr.take().expect("piped stderr"),
            output.clone(),
            None,
        ));
        let banner = tokio::time::timeout(START_GUARD, async {
            let mut banner = Banner::default();
            while let Some(line) = printed.recv().await {
                banner.read(&line);
                if banner.is_complete() || line.contains("Ctrl-C") {
                    break;
                }
            }
            banner
        })
        .await
        .unwrap_or_default();
        let (Some(demo), Some(console_login), Some(api)) =
            (banner.demo, banner.console_login, banner.api)
        else {
            panic!(
                "`palaver up` did not print the demo site, console login and API URLs; its output:\n{}",
                tail(&output)
            );
        };
        Palaver {
            demo,
            console_login,
            api,
            output,
            _process: process,
            _data_dir: data_dir,
        }
    }

    /// A page of the demo site, e.g. `demo_page("/account")`.
    pub fn demo_page(&self, path: &str) -> Url {
        self.demo.join(path).expect("a demo site path")
    }
}

impl Drop for Palaver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- the last lines of `palaver up` ---\n{}",
                tail(&self.output)
            );
        }
    }
}

/// The URLs read from `palaver up`'s banner, whatever order and labels it prints them
/// with: the console login link by its path, the API by its label or `/v1/` path, the
/// demo site by its label.
#[derive(Default)]
struct Banner {
    demo: Option<Url>,
    console_login: Option<Url>,
    api: Option<Url>,
}

impl Banner {
    fn read(&mut self, line: &str) {
        let lower = line.to_ascii_lowercase();
        for url in urls_in(line) {
            if url.path().starts_with("/console/login") {
                self.console_login.get_or_insert(url);
            } else if url.path().starts_with("/v1/") || lower.contains("api") {
                self.api.get_or_insert(origin_of(&url));
            } else if lower.contains("demo") {
                self.demo.get_or_insert(origin_of(&url));
            }
        }
    }

    fn is_complete(&self) -> bool {
        self.demo.is_some() && self.console_login.is_some() && self.api.is_some()
    }
}

fn urls_in(line: &str) -> impl Iterator<Item = Url> + '_ {
    line.split_whitespace()
        .map(|word| word.trim_matches(|c: char| "()<>[],;'\"".contains(c)))
        .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
        .filter_map(|word| Url::parse(word).ok())
}

fn origin_of(url: &Url) -> Url {
    Url::parse(&url.origin().ascii_serialization()).expect("an origin is a URL")
}

/// Keeps every line a stream prints, and hands them on while someone listens.
async fn collect(
    stream: impl AsyncRead + Unpin,
    output: Arc<Mutex<Vec<String>>>,
    mut listener: Option<mpsc::UnboundedSender<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(sender) = &listener
            && sender.send(line.clone()).is_err()
        {
            listener = None;
        }
        output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }
}

fn tail(output: &Mutex<Vec<String>>) -> String {
    let lines = output
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_yields_the_three_urls() {
        let mut banner = Banner::default();
        for line in [
            "Palaver is running on its embedded default (data in /tmp/x).",
            "  API              http://127.0.0.1:40001/v1/openapi.json",
            "  WebSocket        ws://127.0.0.1:40001/v1/ws",
            "  demo site        http://127.0.0.1:40002/",
            "  console          http://127.0.0.1:40001/console/login?token=abc (one use)",
        ] {
            banner.read(line);
        }
        assert!(banner.is_complete());
        assert_eq!(banner.api.unwrap().as_str(), "http://127.0.0.1:40001/");
        assert_eq!(banner.demo.unwrap().as_str(), "http://127.0.0.1:40002/");
        assert_eq!(
            banner.console_login.unwrap().as_str(),
            "http://127.0.0.1:40001/console/login?token=abc"
        );
    }

    #[test]
    fn a_banner_without_the_demo_site_is_incomplete() {
        let mut banner = Banner::default();
        banner.read("  API              http://127.0.0.1:40001/v1/openapi.json");
        banner.read("The demo site (on 127.0.0.1:0) joins when the pages land.");
        assert!(!banner.is_complete());
        assert!(banner.demo.is_none());
    }
}
