//! The harness of Palaver's browser tests: the real pages in headless Chromium, against
//! the real `palaver` binary.
//!
//! - [`Palaver::up`] builds and runs `palaver up` on port 0 with a fresh data directory
//!   and reads the URLs it prints (demo site, console login link, API); the process is
//!   killed when the value is dropped, also when a test panics.
//! - [`Chromium::start`] runs chromedriver on a port of its choosing; each
//!   [`Chromium::session`] is a headless Chromium window with a profile of its own (one
//!   per person in a scenario: a visitor, a member), driven over WebDriver by
//!   fantoccini. Without Chromium or chromedriver, `start` fails saying which is missing
//!   (`make test` installs both): no browser test skips.
//! - [`Page`] and [`Widget`] find things by waiting for them: every expectation polls
//!   ([`eventually`]) until it holds or a generous guard expires; no fixed sleeps.
//!   The widget lives in a shadow root, reached with WebDriver's shadow-root commands.
//!
//! - [`demo`] and [`console`] are the flows of the demo site and the operator console,
//!   done as a person does them.
//! - [`Stage`] (chromedriver and `palaver up`) and [`Scene`] (on a stage, the member
//!   [`demo::MEMBER`] with a chat box and a visitor) are how a test begins.
//!
//! Screenshots go to `<target>/browser-artifacts/` ([`artifacts_dir`]), one PNG per shot.

mod browser;
pub mod console;
pub mod demo;
mod palaver;
mod scene;

use std::path::{Path, PathBuf};

pub use browser::{Chromium, Page, Widget};
pub use palaver::Palaver;
pub use scene::{Scene, Stage};

pub use palaver_kit::testing::{PATIENCE, eventually};

/// `<target>/browser-artifacts/`, created if needed: the target directory of this build
/// (the test executable is `<target>/<profile>/deps/<name>-…`).
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps");
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Writes one PNG into [`artifacts_dir`] as `<name>.png` and returns its path.
pub fn save_png(name: &str, png: &[u8]) -> PathBuf {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot {name} is not a PNG"
    );
    let path = artifacts_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}
