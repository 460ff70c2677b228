//! What the tests of `palaver up` drive it with: the running binary and its first screen
//! ([`Up`]), a browser without scripts ([`Browser`]) and the pages it gets back ([`Page`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ADMIN_TOKEN: &str = "a-test-admin-token-long-enough";

/// A running `palaver up` and what its first screen said.
pub struct Up {
    child: Child,
    /// The demo site's base URL, ending with `/`.
    pub demo: String,
    /// The gateway's base URL, ending with `/`.
    pub gateway: String,
    /// The site owner's console login link.
    pub console: String,
    pub app: Value,
}

impl Up {
    /// Starts `palaver up` on port 0 with `data_dir` and reads its first screen.
    pub async fn start(data_dir: &Path) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_palaver"))
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--demo-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("PALAVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("palaver up starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut screen = Vec::new();
        loop {
            let line = lines
                .next_line()
                .await
                .expect("reading palaver up's output")
                .unwrap_or_else(|| panic!("palaver up stopped before it was ready: {screen:#?}"));
            if line == "Press Ctrl-C to stop." {
                break;
            }
            screen.push(line);
        }
        // Logs keep coming; the pipe must not fill up.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let field = |label: &str| {
            screen
                .iter()
                .find_map(|line| {
                    let rest = line.strip_prefix("  ")?;
                    (rest.get(..14)?.trim_end() == label)
                        .then(|| rest[14..].split_whitespace().next().map(str::to_owned))?
                })
                .unwrap_or_else(|| panic!("no {label:?} line in {screen:#?}"))
        };
        let demo = field("demo site");
        let api = field("API");
        let console = field("console");
        assert!(
            screen.iter().all(|line| !line.starts_with("  admin token")),
            "the admin token came from the environment: {screen:#?}"
        );
        let gateway = api
            .strip_suffix("v1/openapi.json")
            .unwrap_or_else(|| panic!("the API line names the OpenAPI document: {api}"))
            .to_owned();
        let app: Value =
            serde_json::from_slice(&std::fs::read(data_dir.join("demo-app.json")).unwrap())
                .unwrap();
        assert_eq!(field("demo app"), app["app_id"].as_str().unwrap());
        Up {
            child,
            demo,
            gateway,
            console,
            app,
        }
    }

    pub fn app_id(&self) -> &str {
        self.app["app_id"].as_str().unwrap()
    }

    /// The demo site's origin, as the app's settings spell it.
    pub fn demo_origin(&self) -> &str {
        self.demo.trim_end_matches('/')
    }

    pub async fn stop(mut self) {
        self.child.kill().await.expect("stopping palaver up");
    }
}

/// What came back for one request.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub csp: Option<String>,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.location
            .as_deref()
            .unwrap_or_else(|| panic!("a redirect, got {}: {}", self.status, self.body))
    }

    /// The value of the first form field `name` in the page.
    pub fn field(&self, name: &str) -> String {
        self.field_after(&format!("name=\"{name}\" value=\""))
    }

    /// The attribute value that follows `marker` in the page.
    pub fn field_after(&self, marker: &str) -> String {
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    /// The opening tag of the element with this id.
    pub fn tag(&self, id: &str) -> &str {
        let marker = format!("id=\"{id}\"");
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no element #{id} in {}", self.body));
        let start = self.body[..at].rfind('<').unwrap();
        let end = self.body[at..].find('>').unwrap() + at;
        &self.body[start..=end]
    }
}

/// A browser without scripts: keeps cookies (by name: every port of 127.0.0.1 shares
/// them, as in a real browser), follows no redirects, sends forms.
pub struct Browser {
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut cookies = self.cookies.lock().unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        Page {
            status: response.status(),
            location: header(LOCATION),
            csp: header(CONTENT_SECURITY_POLICY),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        self.send(self.http.get(url)).await
    }

    /// Posts a form; pages of the demo site and of the gateway alike send their origin.
    pub async fn post(&self, url: &str, fields: &[(&str, &str)]) -> Page {
        let origin = reqwest::Url::parse(url)
            .unwrap()
            .origin()
            .ascii_serialization();
        self.send(
            self.http
                .post(url)
                .header("origin", origin)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(fields).unwrap()),
        )
        .await
    }

    /// Signs in on the demo site as a demo user.
    pub async fn sign_in(&self, up: &Up, external_id: &str) {
        let page = self.get(&format!("{}signin", up.demo)).await;
        assert_eq!(page.status, StatusCode::OK);
        let signed_in = self
            .post(
                &format!("{}signin", up.demo),
                &[("csrf", &page.field("csrf")), ("user", external_id)],
            )
            .await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.body
        );
        assert_eq!(signed_in.location(), "/account");
    }

    pub async fn account(&self, up: &Up) -> Page {
        let page = self.get(&format!("{}account", up.demo)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page
    }

    /// Presses a one-button form of My Account (`path` is its action).
    pub async fn press(&self, up: &Up, path: &str) -> Page {
        let csrf = self.account(up).await.field("csrf");
        self.post(
            &format!("{}{}", up.demo, path.trim_start_matches('/')),
            &[("csrf", &csrf)],
        )
        .await
    }

    /// Starts the consent flow from My Account and answers on the gateway's consent
    /// page: the demo site's answer to the return URL.
    pub async fn consent(&self, up: &Up, decision: &str) -> Page {
        let started = self.press(up, "/account/permission").await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
        let consent_url = started.location().to_owned();
        assert!(
            consent_url.starts_with(&format!("{}consent?request=", up.gateway)),
            "{consent_url}"
        );
        let page = self.get(&consent_url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let decided = self
            .post(
                &format!("{}consent", up.gateway),
                &[
                    ("request", &page.field("request")),
                    ("csrf", &page.field("csrf")),
                    ("decision", decision),
                ],
            )
            .await;
        assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.body);
        let back = decided.location().to_owned();
        assert!(
            back.starts_with(&format!("{}account/consent?", up.demo)),
            "{back}"
        );
        self.get(&back).await
    }
}

pub fn status_of(account: &Page) -> String {
    let tag = account.tag("permission-status");
    let start = tag.find("data-status=\"").unwrap() + "data-status=\"".len();
    tag[start..start + tag[start..].find('"').unwrap()].to_owned()
}

pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("palaver-data");
    (dir, path)
}
