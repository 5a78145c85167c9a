//! Needs: nothing.
//!
//! What a client may hold of a real `votestream serve`: half-sent headers, a
//! stalled body and idle connections are closed after their timeouts; past the
//! connection cap (and the open-file limit) a connection gets a clean 503, and
//! so does an SSE viewer past the viewer cap; every refusal is counted.
//! Waits are bounded (against hangs), never timing assertions.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// Whether the server closes `s` before `within` passes (reading and
/// dropping whatever it says first).
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return true, // reset
        }
    }
    false
}

/// Everything the server sends on `s` until it closes it (bounded).
fn read_all(s: &mut TcpStream, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn metrics_text(server: &Server) -> String {
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200);
    text
}

#[test]
fn half_sent_headers_a_stalled_body_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(
        &store,
        dir.path(),
        &[
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--idle-timeout",
            "2",
        ],
    );
    let bound = Duration::from_secs(30);

    // Half-sent headers.
    let mut half = TcpStream::connect(&server.addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(&server.addr).unwrap();
    // A kept-alive connection after one answered request.
    let mut kept = TcpStream::connect(&server.addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A ballot whose body stops halfway.
    let mut stalled = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/v1/elections/{ELECTION}/ballots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"voter_id\":"
    );
    stalled.write_all(head.as_bytes()).unwrap();

    assert!(closed_by_server(&mut half, bound), "half-sent headers held");
    assert!(
        closed_by_server(&mut silent, bound),
        "silent connection held"
    );
    let kept_said = read_all(&mut kept, bound);
    assert!(kept_said.starts_with("HTTP/1.1 200"), "{kept_said}");
    let stalled_said = read_all(&mut stalled, bound);
    assert!(
        stalled_said.contains("body timeout"),
        "a stalled body must be answered with its reason and closed: {stalled_said:?}"
    );

    // The server still answers, and says what it closed.
    let text = metrics_text(&server);
    for reason in ["header_timeout", "idle_timeout", "body_timeout"] {
        let n = metric(
            &text,
            &format!("votestream_http_connections_closed_total{{reason=\"{reason}\"}}"),
        );
        assert!(n >= 1.0, "{reason} not counted:\n{text}");
    }
}

#[test]
fn past_the_connection_cap_a_connection_gets_a_clean_503_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(&store, dir.path(), &["--max-connections", "20"]);
    let held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    // Every slot is taken by an idle connection (the idle timeout is 60 s).
    let mut extra = TcpStream::connect(&server.addr).unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let said = read_all(&mut extra, Duration::from_secs(30));
    assert!(said.starts_with("HTTP/1.1 503"), "{said:?}");
    assert!(said.contains("too_many_connections"), "{said:?}");
    drop(held);
    server.wait_until(|s| s.get("/healthz").0 == 200, "a free slot again");
    let text = metrics_text(&server);
    assert!(
        metric(&text, "votestream_http_connections_refused_total") >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "votestream_http_max_connections"),
        20.0,
        "{text}"
    );
}

/// `votestream serve` under `ulimit`, like a server started from a default shell.
fn serve_under_ulimit(ulimit: &str, store: &str, dir: &std::path::Path) -> Server {
    Server::start_with(store, dir, &[], |args| {
        let mut cmd = scrubbed("bash");
        cmd.args(["-c", &format!("ulimit {ulimit} && exec \"$0\" \"$@\"")])
            .arg(bin())
            .args(args);
        cmd
    })
}

#[test]
fn with_a_low_open_file_limit_idle_sockets_never_stop_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    // Soft and hard limit 256: the server cannot raise it, so it lowers its
    // connection cap instead of letting `accept` fail.
    let server = serve_under_ulimit("-n 256", &store, dir.path());
    let held: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    let mut probe = TcpStream::connect(&server.addr).unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let said = read_all(&mut probe, Duration::from_secs(30));
    assert!(
        said.starts_with("HTTP/1.1 503") && said.contains("too_many_connections"),
        "a health check must get a clean answer, got {said:?}"
    );
    drop(held);
    server.wait_until(|s| s.get("/healthz").0 == 200, "healthy again");
    let text = metrics_text(&server);
    assert_eq!(
        metric(&text, "votestream_open_files_limit"),
        256.0,
        "{text}"
    );
    assert!(
        metric(&text, "votestream_http_max_connections") < 256.0,
        "{text}"
    );
    assert!(metric(&text, "votestream_http_connections_refused_total") >= 1.0);
}

#[test]
fn the_open_file_soft_limit_is_raised_to_the_hard_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads into a struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_max <= 300 {
        panic!(
            "this test needs a hard open-file limit above 300, have {}",
            lim.rlim_max
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = serve_under_ulimit("-S -n 300", &store, dir.path());
    let text = metrics_text(&server);
    assert_eq!(
        metric(&text, "votestream_open_files_limit"),
        lim.rlim_max as f64,
        "{text}"
    );
}

#[test]
fn past_the_viewer_cap_a_new_sse_viewer_gets_503_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(&store, dir.path(), &["--max-sse-viewers", "2"]);
    let path = format!("/api/v1/elections/{ELECTION}/results/stream");
    let open_viewer = || {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("the viewer gets an answer");
            assert!(n > 0, "closed before the head");
            head.extend_from_slice(&buf[..n]);
        }
        (s, String::from_utf8_lossy(&head).into_owned())
    };
    let (first, a) = open_viewer();
    let (_second, b) = open_viewer();
    assert!(
        a.starts_with("HTTP/1.1 200") && b.starts_with("HTTP/1.1 200"),
        "{a}{b}"
    );
    let (status, body) = server.get(&path);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many live viewers"), "{body}");
    // A viewer leaving frees its place.
    drop(first);
    server.wait_until(
        |s| {
            let mut s = TcpStream::connect(&s.addr).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            let mut buf = [0u8; 64];
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let n = s.read(&mut buf).unwrap_or(0);
            buf[..n].starts_with(b"HTTP/1.1 200")
        },
        "a free viewer place",
    );
    let text = metrics_text(&server);
    assert!(
        metric(&text, "votestream_sse_refused_total") >= 1.0,
        "{text}"
    );
}
