//! Needs: Chromium.
//!
//! The dashboard in headless Chromium, driven over WebDriver (chromedriver;
//! Debian's `chromium` and `chromium-driver`, installed by
//! scripts/browser.sh). Fails, never skips, when they are missing.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use support::*;

struct Driver {
    child: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run `bash scripts/browser.sh` (the suite needs headless Chromium)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
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

    fn goto(&self, url: &str) {
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            Some(json!({"url": url})),
        );
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(json!({"script": script, "args": []})),
        )
    }

    fn text(&self, id: &str) -> String {
        self.js(&format!(
            "return document.getElementById('{id}').textContent"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    fn wait(&self, what: &str, cond: impl Fn(&Driver) -> bool) {
        wait::until_every(
            Duration::from_secs(60),
            Duration::from_millis(100),
            what,
            || cond(self),
            String::new,
        );
    }

    fn screenshot(&self, path: &std::path::Path) {
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

fn digits(s: &str) -> i64 {
    s.chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or(-1)
}

#[test]
fn the_dashboard_shows_the_tallies_updates_live_and_pages_through_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("d.db").display());
    votestream_ok(&[
        "run",
        "--store",
        &store,
        "--voters",
        "20000",
        "--rate",
        "max",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
        "--late-share",
        "0",
    ]);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let results = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    let driver = Driver::start();
    driver.goto(&server.url("/"));

    // The tallies match the results API.
    let accepted = results["accepted"].as_i64().unwrap();
    driver.wait("the first snapshot", |d| {
        digits(&d.text("n-accepted")) == accepted
    });
    assert_eq!(
        digits(&driver.text("n-received")),
        results["received"].as_i64().unwrap()
    );
    assert_eq!(
        digits(&driver.text("n-registered")),
        results["registered_voters"].as_i64().unwrap()
    );
    for c in results["candidates"].as_array().unwrap() {
        let id = c["candidate_id"].as_str().unwrap();
        let shown = driver.js(&format!(
            "return document.querySelector('#cand-table tr[data-candidate=\"{id}\"] .votes').textContent"
        ));
        assert_eq!(
            digits(shown.as_str().unwrap()),
            c["total_votes"].as_i64().unwrap(),
            "{id}"
        );
    }
    let mut ranked: Vec<&Value> = results["candidates"].as_array().unwrap().iter().collect();
    ranked.sort_by_key(|c| -c["total_votes"].as_i64().unwrap());
    assert_eq!(
        driver.text("leader-name"),
        ranked[0]["candidate_name"].as_str().unwrap()
    );
    assert_eq!(
        driver.js("return document.querySelectorAll('#map g[data-state]').length"),
        json!(51)
    );

    // Pagination reaches the last page; sorted by name, it ends with the last state.
    let mut states: Vec<String> = results["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_string())
        .collect();
    states.sort();
    let pages = states.len().div_ceil(10);
    driver.js("document.getElementById('page-last').click()");
    assert_eq!(
        driver.text("page-label"),
        format!("Page {pages} of {pages}")
    );
    let last_row = driver.js("const r = document.querySelectorAll('#state-table tbody tr'); return r[r.length-1].dataset.state");
    assert_eq!(last_row.as_str().unwrap(), states.last().unwrap());
    assert_eq!(
        driver.js("return document.getElementById('page-next').disabled"),
        json!(true)
    );
    driver.js("document.getElementById('page-first').click()");

    // A live update arrives without a reload: votes cast now show up in the
    // same page (the marker survives only if the page was not reloaded).
    driver.js("window.__noReload = 42");
    let mut cast = 0;
    for i in 19_000..19_400u64 {
        let body = json!({"voter_id": voter_id(i), "candidate_id": "c-savior"}).to_string();
        if server.cast(body.as_bytes(), None).status == 202 {
            cast += 1;
        }
    }
    assert!(cast > 0, "some of these voters had not voted yet");
    driver.wait("the live update", |d| {
        digits(&d.text("n-accepted")) == accepted + cast
    });
    assert_eq!(driver.js("return window.__noReload"), json!(42));

    let shot =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/dashboard.png");
    driver.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}
