//! Needs: nothing.
//!
//! HTTP/2 without TLS (prior knowledge) on the same port as HTTP/1.1, as a
//! proxy in front would use it: many results streams on one connection,
//! ballots answered as over HTTP/1.1, the viewer cap counted per stream,
//! a connection that sends only part of the preface closed after the
//! header timeout, and one that sends nothing after the idle timeout, each
//! counted. Waits are bounded (against hangs), never timing
//! assertions.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use support::*;

const BOUND: Duration = Duration::from_secs(30);

async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("an HTTP/2 handshake without TLS");
    tokio::spawn(conn);
    sender
}

fn get(path: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(format!("http://127.0.0.1{path}"))
        .body(Full::default())
        .unwrap()
}

/// The first event of a results stream on `sender`, or its status and body.
async fn first_event(sender: &mut SendRequest<Full<Bytes>>) -> Result<String, (u16, String)> {
    sender.ready().await.unwrap();
    let path = format!("/api/v1/elections/{ELECTION}/results/stream");
    let resp = sender.send_request(get(&path)).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    if status != 200 {
        let bytes = body.collect().await.unwrap().to_bytes();
        return Err((status, String::from_utf8_lossy(&bytes).into_owned()));
    }
    let mut seen = Vec::new();
    while !seen.windows(2).any(|w| w == b"\n\n" as &[u8]) || !contains(&seen, b"data:") {
        let frame = tokio::time::timeout(BOUND, body.frame())
            .await
            .expect("a snapshot within the bound")
            .expect("the stream goes on")
            .unwrap();
        if let Some(d) = frame.data_ref() {
            seen.extend_from_slice(d);
        }
    }
    // The stream (and its viewer place) ends when its body is dropped.
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn streams_ballots_and_the_viewer_cap_over_http2_beside_http1() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 20);
    let server = Server::start(
        &store,
        dir.path(),
        &["--max-sse-viewers", "2", "--rate-limit", "0"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut h2 = connect(&server.addr).await;
        let resp = h2.send_request(get("/healthz")).await.unwrap();
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        assert_eq!(resp.status(), 200);

        // A ballot over HTTP/2 is answered as over HTTP/1.1: accepted
        // once, then already_voted.
        let cast = |body: Vec<u8>| {
            hyper::Request::post(format!(
                "http://127.0.0.1/api/v1/elections/{ELECTION}/ballots"
            ))
            .header("authorization", format!("Bearer {API_TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
        };
        let ballot = |c: &str| {
            json!({"voter_id": voter_id(3), "candidate_id": c})
                .to_string()
                .into_bytes()
        };
        let first = h2.send_request(cast(ballot("c-savior"))).await.unwrap();
        assert_eq!(first.status(), 202);
        let second = h2.send_request(cast(ballot("c-management"))).await.unwrap();
        assert_eq!(second.status(), 409);
        let body = second.into_body().collect().await.unwrap().to_bytes();
        assert!(contains(&body, b"already_voted"), "{body:?}");

        // Two viewers on one connection, each with its own stream, fill
        // the cap of two; a third stream on it is refused with the reason.
        let mut a = h2.clone();
        let mut b = h2.clone();
        let (ea, eb) = tokio::join!(
            async move {
                let e = first_event(&mut a).await;
                (e, a)
            },
            async move {
                let e = first_event(&mut b).await;
                (e, b)
            }
        );
        let (ea, eb) = (ea.0.expect("first viewer"), eb.0.expect("second viewer"));
        assert!(ea.contains("generated_at") && eb.contains("generated_at"));
        // Both bodies are dropped by now, their places freed once the
        // server sees the streams reset: hold two open to fill the cap.
        let path = format!("/api/v1/elections/{ELECTION}/results/stream");
        let mut held = Vec::new();
        let deadline = Instant::now() + BOUND;
        while held.len() < 2 {
            assert!(
                Instant::now() < deadline,
                "no free viewer place in {BOUND:?}"
            );
            h2.ready().await.unwrap();
            let r = h2.send_request(get(&path)).await.unwrap();
            if r.status() == 200 {
                held.push(r.into_body());
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let refused = first_event(&mut h2)
            .await
            .expect_err("a third viewer past the cap of two");
        assert_eq!(refused.0, 503, "{}", refused.1);
        assert!(refused.1.contains("too many live viewers"), "{}", refused.1);
    });

    // HTTP/1.1 on the same port is untouched.
    let (status, body) = server.get("/healthz");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn part_of_the_preface_then_silence_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 5);
    let server = Server::start(
        &store,
        dir.path(),
        &["--header-timeout", "1", "--idle-timeout", "60"],
    );
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"PRI * HT").unwrap();
    let deadline = Instant::now() + BOUND;
    let mut buf = [0u8; 256];
    let closed = loop {
        assert!(Instant::now() < deadline, "still open after {BOUND:?}");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break true,
        }
    };
    assert!(closed);
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200);
    let n = metric(
        &text,
        "votestream_http_connections_closed_total{reason=\"header_timeout\"}",
    );
    assert_eq!(n, 1.0, "the half-sent preface, counted:\n{text}");
}

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 5);
    let server = Server::start(&store, dir.path(), &["--idle-timeout", "1"]);
    let mut s = TcpStream::connect(&server.addr).unwrap();
    let deadline = Instant::now() + BOUND;
    let mut buf = [0u8; 256];
    loop {
        assert!(Instant::now() < deadline, "still open after {BOUND:?}");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        }
    }
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200);
    let n = metric(
        &text,
        "votestream_http_connections_closed_total{reason=\"idle_timeout\"}",
    );
    assert!(n >= 1.0, "the silent connection, counted:\n{text}");
}
