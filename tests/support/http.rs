//! A `votestream serve` child process on a free port, and a tiny blocking
//! HTTP/1.1 client (one request per connection).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::run::command;
use super::wait;
use super::{ADMIN_TOKEN, API_TOKEN, ELECTION};

/// A running `votestream serve`, SIGKILLed and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// `votestream serve` over `store` on a free port, with `extra` flags.
    pub fn start(store: &str, dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(store, dir, extra, |args| {
            let mut cmd = command();
            cmd.args(args);
            cmd
        })
    }

    /// [`start`](Self::start), run by the command `wrap` makes of the
    /// binary's arguments (e.g. under a shell's `ulimit`).
    pub fn start_with(
        store: &str,
        dir: &Path,
        extra: &[&str],
        wrap: impl FnOnce(&[&str]) -> Command,
    ) -> Server {
        let addr_file: PathBuf = dir.join(format!("addr-{}", std::process::id()));
        let _ = std::fs::remove_file(&addr_file);
        let addr_arg = addr_file.display().to_string();
        let mut args = vec![
            "serve",
            "--store",
            store,
            "--listen",
            "127.0.0.1:0",
            "--api-token",
            API_TOKEN,
            "--admin-token",
            ADMIN_TOKEN,
            "--addr-file",
            &addr_arg,
        ];
        args.extend(extra);
        let child = wrap(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("votestream serve starts");
        let mut s = Server {
            child,
            addr: String::new(),
        };
        // Until it is up, `s` (dropped on a failed wait) kills the child.
        wait::until(Duration::from_secs(60), "the server to start", || {
            s.addr = std::fs::read_to_string(&addr_file).unwrap_or_default();
            !s.addr.is_empty()
        });
        s.wait_until(|s| s.get("/readyz").0 == 200, "ready");
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = request(&self.addr, "GET", path, &[], b"");
        (r.status, r.body_text())
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// Casts a ballot with the API token (and an Idempotency-Key when given).
    pub fn cast(&self, body: &[u8], key: Option<&str>) -> Response {
        let auth = format!("Bearer {API_TOKEN}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        request(
            &self.addr,
            "POST",
            &format!("/api/v1/elections/{ELECTION}/ballots"),
            &headers,
            body,
        )
    }

    /// Polls `cond` (no timing assertion: a generous deadline against hangs).
    pub fn wait_until(&self, cond: impl Fn(&Server) -> bool, what: &str) {
        wait::until(Duration::from_secs(60), what, || cond(self));
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body_text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A port free on 127.0.0.1 now (bound, read, let go), for a server that
/// is told its port rather than reporting the one it took.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    // The server may answer (413) before reading a large body.
    let _ = s.write_all(body);
    // Read the head, then Content-Length bytes (some servers keep the
    // connection open whatever we ask), or to the end.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "connection closed before a full response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let length = String::from_utf8_lossy(&raw[..split])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    match length {
        Some(len) => {
            while raw.len() < split + 4 + len {
                let n = s.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            let _ = s.read_to_end(&mut raw);
        }
    }
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A counter's value in `/metrics` text (0 when absent).
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}
