//! Headless Chromium through chromedriver (WebDriver, driven by fantoccini), and the
//! ways the tests look at a page: by waiting until what they expect is there.

use std::path::PathBuf;
use std::process::Stdio;

use fantoccini::elements::{Element, ShadowRoot};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use crate::{PATIENCE, eventually, save_png};

/// Chromium's flags: headless, no sandbox (tests may run as root in a container), no
/// shared memory file system needed, nothing fetched in the background, one window size
/// for every screenshot.
const CHROMIUM_ARGS: [&str; 6] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--window-size=1280,900",
];

/// The script of [`Page::embed_widget_again`] (WebDriver's async script: the callback
/// is the last argument). The new tag goes where the page's own was, so the widget
/// renders in the same place.
const EMBED_AGAIN: &str = r#"
    const [data, cacheKey, done] = arguments;
    const original = document.querySelector('script[src*="/widget.js"]');
    if (!original) return done({ error: 'the page embeds no widget.js' });
    for (const host of document.querySelectorAll('.palaver-widget')) host.remove();
    const script = document.createElement('script');
    for (const { name, value } of original.attributes) script.setAttribute(name, value);
    for (const [name, value] of Object.entries(data)) script.setAttribute(name, value);
    const url = new URL(original.src);
    url.searchParams.set('run', cacheKey);
    script.src = url.href;
    const status = () => {
        const host = document.querySelector('.palaver-widget');
        const shown = host && host.shadowRoot && host.shadowRoot.querySelector('[data-part="status"]');
        return shown && shown.textContent.trim();
    };
    const start = performance.now();
    const check = () => status() ? done({ ms: performance.now() - start }) : requestAnimationFrame(check);
    script.addEventListener('error', () => done({ error: 'widget.js did not load' }));
    original.parentNode.appendChild(script);
    check();
"#;

/// A running chromedriver; every [`session`](Chromium::session) is a Chromium of its own.
pub struct Chromium {
    driver: Child,
    webdriver_url: String,
    chromium: PathBuf,
    profiles: TempDir,
}

impl Chromium {
    /// Starts chromedriver; panics saying which of Chromium and chromedriver is missing
    /// (`make test` installs both): a browser test never skips.
    pub async fn start() -> Chromium {
        let chromium = on_path("chromium");
        let chromedriver = on_path("chromedriver");
        let (Some(chromium), Some(chromedriver)) = (chromium.clone(), chromedriver.clone()) else {
            let missing: Vec<&str> = [("chromium", &chromium), ("chromedriver", &chromedriver)]
                .into_iter()
                .filter_map(|(name, found)| found.is_none().then_some(name))
                .collect();
            panic!(
                "{} not found on PATH: the browser tests need them (`make test` installs them)",
                missing.join(" and ")
            );
        };
        // Its own process group, so that dropping it ends the Chromiums it started too.
        let mut driver = Command::new(&chromedriver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let mut lines = BufReader::new(driver.stdout.take().expect("piped stdout")).lines();
        let port = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                // "ChromeDriver was started successfully on port 41235."
                if let Some((_, port)) = line.split_once("started successfully on port ") {
                    return port.trim_end_matches('.').parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver says which port it listens on");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Chromium {
            driver,
            webdriver_url: format!("http://127.0.0.1:{port}"),
            chromium,
            profiles: tempfile::tempdir().expect("a temporary directory for profiles"),
        }
    }

    /// A new headless Chromium with an empty profile of its own: one person.
    pub async fn session(&self) -> Page {
        let profile = tempfile::tempdir_in(self.profiles.path()).expect("a profile directory");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.keep().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": self.chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.webdriver_url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
        Page { client }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The Chromiums are chromedriver's children in its process group; chromedriver
        // itself is killed on drop, but they would be left behind.
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// One browser window, and what the tests do in it.
pub struct Page {
    /// The WebDriver session, for what the helpers below do not cover.
    pub client: Client,
}

impl Page {
    /// Loads `url` and waits for it to finish loading.
    pub async fn goto(&self, url: &Url) {
        self.client
            .goto(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot load {url}: {e}"));
    }

    /// Loads the page again.
    pub async fn reload(&self) {
        self.client.refresh().await.expect("reload");
    }

    /// Where the window is now.
    pub async fn url(&self) -> Url {
        self.client.current_url().await.expect("the current URL")
    }

    /// Waits until the window's URL satisfies `test` (`what` says what is awaited);
    /// returns that URL.
    pub async fn wait_for_url(&self, what: &str, test: impl Fn(&Url) -> bool) -> Url {
        eventually(what, || async {
            let now = self.url().await;
            if test(&now) {
                Ok(now)
            } else {
                Err(now.to_string())
            }
        })
        .await
    }

    /// Waits until the window shows a page whose path is `path` on the origin of `base`.
    pub async fn wait_until_at(&self, base: &Url, path: &str) -> Url {
        self.wait_for_url(&format!("the window to show {path} on {base}"), |now| {
            now.origin() == base.origin() && now.path() == path
        })
        .await
    }

    /// Waits for an element matching the CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        eventually(&format!("an element {css}"), || async {
            self.client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// The button (a `<button>`, a submit or button `<input>`, or a link) whose label is
    /// exactly `label`, when it is there now.
    pub async fn try_button(&self, label: &str) -> Result<Element, String> {
        let q = xpath_literal(label);
        let xpath = format!(
            "//button[normalize-space(.)={q}] | //input[(@type='submit' or @type='button') and @value={q}] | //a[normalize-space(.)={q}]"
        );
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .map_err(|e| format!("no button {label:?}: {e}"))
    }

    /// Waits for the button labelled `label` (see [`Page::try_button`]).
    pub async fn button(&self, label: &str) -> Element {
        eventually(&format!("a button {label:?}"), || self.try_button(label)).await
    }

    /// Clicks the button labelled `label` (see [`Page::button`]).
    pub async fn click_button(&self, label: &str) {
        let button = self.button(label).await;
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {label:?}: {e}"));
    }

    /// Waits until the element matching `css` has a text for which `test` holds; returns
    /// that text.
    pub async fn wait_for_text(
        &self,
        css: &str,
        what: &str,
        test: impl Fn(&str) -> bool,
    ) -> String {
        eventually(&format!("{css} to show {what}"), || async {
            let element = self
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            let text = element.text().await.map_err(|e| e.to_string())?;
            if test(&text) { Ok(text) } else { Err(text) }
        })
        .await
    }

    /// Types `text` into the element matching `css` (after waiting for it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    /// Runs a script in the page and returns its JSON answer.
    pub async fn script(&self, script: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("the script failed: {e}\n{script}"))
    }

    /// Replaces the page's widget with a new one: a copy of the page's own `widget.js`
    /// script tag, with the `data-*` attributes in `data` added or changed, loaded as
    /// `widget.js?run=<cache_key>` (a new key fetches the script again, a known one may
    /// come from the browser's cache). Answers the milliseconds from inserting the tag to
    /// the badge showing the member's status, measured in the page.
    pub async fn embed_widget_again(&self, data: &[(&str, &str)], cache_key: &str) -> f64 {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(name, value)| (format!("data-{name}"), json!(value)))
            .collect();
        let answer = self
            .client
            .execute_async(EMBED_AGAIN, vec![json!(data), json!(cache_key)])
            .await
            .unwrap_or_else(|e| panic!("embedding the widget again failed: {e}"));
        match answer.get("ms").and_then(serde_json::Value::as_f64) {
            Some(ms) => ms,
            None => panic!("embedding the widget again failed: {answer}"),
        }
    }

    /// The widget whose host element is the first `.palaver-widget` on the page.
    pub fn widget(&self) -> Widget<'_> {
        Widget { page: self }
    }

    /// A screenshot of the whole window, saved as `<name>.png` in the artifacts.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        save_png(name, &png)
    }

    /// Ends the session (and its Chromium).
    pub async fn close(self) {
        self.client.close().await.expect("closing the session");
    }
}

/// The chat widget on a page: its parts, each with a `data-part` attribute, inside the
/// shadow root of its host element.
pub struct Widget<'a> {
    page: &'a Page,
}

impl Widget<'_> {
    /// The host element, when it is there.
    async fn host(&self) -> Result<Element, String> {
        self.page
            .client
            .find(Locator::Css(".palaver-widget"))
            .await
            .map_err(|e| format!("no widget host: {e}"))
    }

    async fn root(&self) -> Result<ShadowRoot, String> {
        let host = self.host().await?;
        host.shadow_root()
            .await
            .map_err(|e| format!("the widget host has no shadow root yet: {e}"))
    }

    /// The first element matching `css` in the shadow root, when it is there now.
    pub async fn try_find(&self, css: &str) -> Result<Element, String> {
        self.root()
            .await?
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("nothing matches {css} in the widget: {e}"))
    }

    /// The part named `part`, when it is there now.
    pub async fn try_part(&self, part: &str) -> Result<Element, String> {
        self.try_find(&format!("[data-part=\"{part}\"]")).await
    }

    /// Waits for the part named `part` to be shown.
    pub async fn visible_part(&self, part: &str) -> Element {
        eventually(&format!("the widget's {part:?} to be shown"), || async {
            let element = self.try_part(part).await?;
            match element.is_displayed().await {
                Ok(true) => Ok(element),
                Ok(false) => Err(format!("{part:?} is hidden")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Whether the part named `part` is there and shown now.
    pub async fn shows(&self, part: &str) -> bool {
        match self.try_part(part).await {
            Ok(element) => element.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Waits until the part's text satisfies `test`; returns that text.
    pub async fn wait_for_text(
        &self,
        part: &str,
        what: &str,
        test: impl Fn(&str) -> bool,
    ) -> String {
        eventually(&format!("the widget's {part:?} to show {what}"), || async {
            let element = self.try_part(part).await?;
            let text = element.text().await.map_err(|e| e.to_string())?;
            if test(&text) { Ok(text) } else { Err(text) }
        })
        .await
    }

    /// Clicks the part once it is shown.
    pub async fn click(&self, part: &str) {
        let element = self.visible_part(part).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click the widget's {part:?}: {e}"));
    }

    /// Types into the part once it is shown.
    pub async fn type_into(&self, part: &str, text: &str) {
        let element = self.visible_part(part).await;
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into the widget's {part:?}: {e}"));
    }

    /// An attribute of the widget's host element, once the host is there.
    pub async fn host_attr(&self, name: &str) -> Option<String> {
        let host = eventually("the widget host", || self.host()).await;
        host.attr(name)
            .await
            .unwrap_or_else(|e| panic!("cannot read the host's {name}: {e}"))
    }

    /// An attribute of the first element matching `css` in the shadow root, once it is
    /// there.
    pub async fn attr_of(&self, css: &str, name: &str) -> Option<String> {
        let element = eventually(&format!("{css} in the widget"), || self.try_find(css)).await;
        element
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("cannot read {name} of {css}: {e}"))
    }
}

/// `text` as an XPath string literal (XPath 1.0 has no escapes: quotes need `concat`).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    if !text.contains('"') {
        return format!("\"{text}\"");
    }
    let parts: Vec<String> = text.split('\'').map(|part| format!("'{part}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}

#[cfg(test)]
mod tests {
    use super::xpath_literal;

    #[test]
    fn xpath_literals_quote_what_they_must() {
        assert_eq!(xpath_literal("Approve"), "'Approve'");
        assert_eq!(xpath_literal("Sam's"), "\"Sam's\"");
        assert_eq!(xpath_literal("a'b\"c"), "concat('a', \"'\", 'b\"c')");
    }
}
