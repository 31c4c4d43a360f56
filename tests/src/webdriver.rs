//! A small W3C WebDriver client (the few commands the browser tests use), talking to Debian's
//! chromedriver driving headless Chromium.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C key for element references in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

#[derive(Clone)]
pub struct Element(String);

fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with a fresh profile.
    pub fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/test-tools.sh installs Debian's chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < until, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": chromium_args(profile.path()) }
        }}});
        let answer: Value = ureq::post(&format!("{base}/session"))
            .send_json(caps)
            .expect("new browser session")
            .into_json()
            .expect("session JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => r
                .into_json::<Value>()
                .map(|v| v["value"].clone())
                .map_err(|e| e.to_string()),
            Err(ureq::Error::Status(code, r)) => {
                Err(format!("{code}: {}", r.into_string().unwrap_or_default()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .expect("navigate");
    }

    /// Loads the page afresh at `url` (not a hash change inside the page already open).
    pub fn open_fresh(&self, url: &str) {
        self.goto("about:blank");
        self.goto(url);
    }

    /// The page's address after its `#`, with the `#`.
    pub fn hash(&self) -> String {
        let h = self.script("return window.location.hash;", json!([]));
        h.as_str().unwrap_or_default().to_string()
    }

    /// Waits up to `limit` for the tab button `#id` to be the active one.
    pub fn wait_for_tab(&self, id: &str, limit: Duration) {
        crate::wait_for(id, limit, || {
            let tab = self.try_find(&format!("#{id}"), Duration::ZERO)?;
            self.attr(&tab, "class")?.contains("active").then_some(())
        });
    }

    /// The first element matching the CSS selector, waiting up to `limit` for it.
    pub fn find(&self, css: &str, limit: Duration) -> Element {
        self.try_find(css, limit)
            .unwrap_or_else(|| panic!("no element `{css}` after {limit:?}"))
    }

    pub fn try_find(&self, css: &str, limit: Duration) -> Option<Element> {
        let until = Instant::now() + limit;
        loop {
            if let Ok(v) = self.cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            ) {
                if let Some(id) = v[ELEMENT_KEY].as_str() {
                    return Some(Element(id.to_string()));
                }
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v[ELEMENT_KEY].as_str().map(|s| Element(s.to_string())))
        .collect()
    }

    pub fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .expect("click");
    }

    pub fn clear(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(json!({})))
            .expect("clear");
    }

    pub fn type_text(&self, e: &Element, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .expect("type");
    }

    /// Replaces an input's text as a user does (select all, type, Enter): WebDriver's clear
    /// would commit the empty field first.
    pub fn commit(&self, e: &Element, text: &str) {
        self.type_text(e, &format!("\u{E009}a\u{E000}{text}\u{E007}"));
    }

    pub fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/element/{}/attribute/{name}", e.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// A DOM property as text (an input's current `value`, which the attribute is not).
    pub fn property(&self, e: &Element, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/element/{}/property/{name}", e.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// The text of the dialog the page shows (`alert`, `confirm`, "leave the page?"), if one
    /// is open.
    pub fn dialog(&self) -> Option<String> {
        self.cmd("GET", "/alert/text", None)
            .ok()
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// Answers the open dialog with OK.
    pub fn accept_dialog(&self) {
        self.cmd("POST", "/alert/accept", Some(json!({})))
            .expect("accept the dialog");
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn script(&self, js: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": args })),
        )
        .expect("script")
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let b64 = self.cmd("GET", "/screenshot", None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artefact folder");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.cmd("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
