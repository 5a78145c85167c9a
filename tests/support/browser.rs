//! Headless Chromium driven over WebDriver (chromedriver; Debian's
//! `chromium` and `chromium-driver`, installed by scripts/browser.sh): a
//! session of its own per test, ended and its driver killed when dropped.
//! Fails, never skips, when they are missing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::http::request;
use super::wait;

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    child: Child,
    addr: String,
    pub session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    pub fn start() -> Driver {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run `bash scripts/browser.sh` (the suite needs headless Chromium)"
            );
        }
        let port = super::http::free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        wait::until(Duration::from_secs(30), "chromedriver to listen", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--window-size=1600,2200",
                     format!("--user-data-dir={}", profile.path().display())]}}}});
        let mut d = Driver {
            child,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().expect("a session").to_string();
        d
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = request(
            &self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert_eq!(
            r.status,
            200,
            "WebDriver {method} {path}: {}",
            r.body_text()
        );
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            Some(json!({"url": url})),
        );
    }

    pub fn js(&self, script: &str) -> Value {
        self.js_with(script, json!([]))
    }

    /// `script` with `args` as its `arguments` (WebDriver passes them as JSON).
    pub fn js_with(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The page's viewport, through Chromium's device emulation: a headless
    /// window is not made narrower than 500 px, a phone is.
    pub fn viewport(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &format!("/session/{}/goog/cdp/execute", self.session),
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}}),
            ),
        );
    }

    pub fn text(&self, id: &str) -> String {
        self.js(&format!(
            "return document.getElementById('{id}').textContent"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    pub fn wait(&self, what: &str, cond: impl Fn(&Driver) -> bool) {
        wait::until_every(
            Duration::from_secs(60),
            Duration::from_millis(100),
            what,
            || cond(self),
            String::new,
        );
    }

    /// A WebDriver reference to the element `css` selects.
    pub fn element(&self, css: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/element", self.session),
            Some(json!({"using": "css selector", "value": css})),
        )
    }

    /// Clicks the element `css` selects, as a user would.
    pub fn click(&self, css: &str) {
        let id = &self.element(css)[ELEMENT];
        let id = id.as_str().expect("an element id");
        let path = format!("/session/{}/element/{id}/click", self.session);
        self.call("POST", &path, Some(json!({})));
    }

    /// Drags with the mouse from `from` to `to`, each an x offset from the
    /// centre of the element `css` selects.
    pub fn drag(&self, css: &str, from: i64, to: i64) {
        let el = self.element(css);
        let at =
            |x: i64| json!({"type": "pointerMove", "duration": 50, "origin": el, "x": x, "y": 0});
        let actions = json!({"actions": [{"type": "pointer", "id": "mouse",
            "parameters": {"pointerType": "mouse"}, "actions": [
                at(from), {"type": "pointerDown", "button": 0}, at((from + to) / 2), at(to),
                {"type": "pointerUp", "button": 0}]}]});
        self.call(
            "POST",
            &format!("/session/{}/actions", self.session),
            Some(actions),
        );
    }

    pub fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.call(
            "GET",
            &format!("/session/{}/screenshot", self.session),
            None,
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                &[],
                b"",
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number a figure shows, its separators dropped (-1 if none).
pub fn digits(s: &str) -> i64 {
    s.chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or(-1)
}
