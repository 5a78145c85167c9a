//! The fan-out bench's viewers: each reads a results stream's frames and
//! records every update's delay (arrival minus the frame's `generated_at`).
//!
//! A viewer is either a socket of its own (HTTP/1.1, as a browser) or one
//! stream among many on an HTTP/2 connection (as a proxy in front of the
//! server carries its clients). The second is how one server process can
//! be measured with more viewers than it may open files: one socket a
//! viewer stops at the open-file limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};

use anyhow::Context;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use memchr::memmem::Finder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::generate::DEFAULT_ELECTION_ID;
use crate::model::now_millis;

/// What the viewers share: how many watch, and once all do, each update's delay.
pub(super) struct Watch {
    pub watching: AtomicU64,
    pub steady: AtomicBool,
    pub delays: Mutex<hdrhistogram::Histogram<u64>>,
    /// The updates while viewers still connected, reported beside.
    pub ramp: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Watch {
    pub fn new() -> anyhow::Result<Watch> {
        Ok(Watch {
            watching: AtomicU64::new(0),
            steady: false.into(),
            delays: Mutex::new(hdrhistogram::Histogram::new(3)?),
            ramp: Mutex::new(hdrhistogram::Histogram::new(3)?),
        })
    }
}

fn stream_path() -> String {
    format!("/api/v1/elections/{DEFAULT_ELECTION_ID}/results/stream?interval_ms=500")
}

/// One viewer on a socket of its own.
pub(super) async fn viewer(addr: &str, watch: Arc<Watch>) -> anyhow::Result<()> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {} HTTP/1.1\r\nHost: {addr}\r\n\r\n", stream_path());
    s.write_all(req.as_bytes()).await?;
    let mut frames = Frames::new(watch);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        frames.feed(&buf[..n]);
    }
}

/// `viewers` viewers as streams of one HTTP/2 connection (prior knowledge,
/// no TLS); returns once they all ended.
pub(super) async fn h2_viewers(
    addr: &str,
    viewers: usize,
    watch: Arc<Watch>,
) -> anyhow::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        // Each stream gets an update of tens of KB twice a second: one
        // DATA frame each (half the wake-ups of 16 KB frames), and windows
        // of a few updates, so a reader that falls behind is seen as late
        // instead of buffering seconds of updates.
        .max_frame_size(64 * 1024)
        .initial_stream_window_size(256 * 1024)
        .initial_connection_window_size(8 << 20)
        .handshake::<_, Empty<bytes::Bytes>>(TokioIo::new(tcp))
        .await
        .context("HTTP/2 handshake")?;
    let driving = tokio::spawn(conn);
    let uri: hyper::Uri = format!("http://{addr}{}", stream_path()).parse()?;
    let opened = (0..viewers).map(|i| {
        let (mut sender, uri) = (sender.clone(), uri.clone());
        async move {
            sender.ready().await?;
            let resp = sender
                .send_request(hyper::Request::get(uri).body(Empty::new())?)
                .await?;
            anyhow::Ok(resp.into_body().into_data_stream().map(move |d| (i, d)))
        }
    });
    // All the streams of a connection read in this one task: a task each
    // cost this load generator more than the server its streams.
    let mut bodies =
        futures_util::stream::select_all(futures_util::future::try_join_all(opened).await?);
    let mut frames: Vec<Frames> = (0..viewers).map(|_| Frames::new(watch.clone())).collect();
    while let Some((i, data)) = bodies.next().await {
        frames[i].feed(&data?);
    }
    driving.abort();
    Ok(())
}

/// Splits a results stream into frames and records each update's delay
/// (the first frame is the current snapshot, not an update: it counts the
/// viewer as watching).
struct Frames {
    watch: Arc<Watch>,
    /// The current frame's first bytes: its time is among them.
    head: Vec<u8>,
    /// The last bytes fed ended with a newline (a blank line may straddle).
    newline: bool,
    first: bool,
}

const KEY: &[u8] = b"\"generated_at\":";
/// How much of a frame is kept: `generated_at` is its second field.
const HEAD: usize = 256;
static ENDS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
static KEYS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(KEY));

impl Frames {
    fn new(watch: Arc<Watch>) -> Frames {
        Frames {
            watch,
            head: Vec::with_capacity(HEAD),
            newline: false,
            first: true,
        }
    }

    /// Frames are tens of KB and 20,000 viewers share these cores with the
    /// server: each byte is looked at once and only a frame's head copied.
    fn feed(&mut self, mut bytes: &[u8]) {
        loop {
            let end = if self.newline && bytes.first() == Some(&b'\n') {
                Some((0, 1))
            } else {
                ENDS.find(bytes).map(|i| (i, i + 2))
            };
            let Some((at, next)) = end else {
                self.keep(bytes);
                self.newline = bytes.last() == Some(&b'\n');
                return;
            };
            self.keep(&bytes[..at]);
            self.frame_ended();
            self.newline = false;
            bytes = &bytes[next..];
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn frame_ended(&mut self) {
        record(&self.watch, &mut self.first, &self.head);
        self.head.clear();
    }
}

/// One frame seen: the viewer counts as watching from its first snapshot;
/// each later one is an update, its delay recorded.
fn record(watch: &Watch, first: &mut bool, head: &[u8]) {
    let Some(at) = KEYS.find(head) else {
        return; // a comment (keep-alive) or the retry line
    };
    if std::mem::take(first) {
        watch.watching.fetch_add(1, Relaxed);
        return;
    }
    let digits = &head[at + KEY.len()..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let generated = std::str::from_utf8(&digits[..len])
        .ok()
        .and_then(|d| d.parse::<i64>().ok());
    if let Some(generated) = generated {
        let delay = (now_millis() - generated).max(0) as u64;
        let into = if watch.steady.load(Relaxed) {
            &watch.delays
        } else {
            &watch.ramp
        };
        if let Ok(mut h) = into.lock() {
            let _ = h.record(delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_count_the_viewer_then_each_update() {
        let watch = Arc::new(Watch::new().expect("watch"));
        watch.steady.store(true, Relaxed);
        let mut f = Frames::new(watch.clone());
        let now = now_millis();
        let first = format!("event: snapshot\ndata: {{\"tick\":0,\"generated_at\":{now}}}\n\n");
        let update = format!("event: snapshot\ndata: {{\"tick\":1,\"generated_at\":{now}}}\n\n");
        f.feed(first.as_bytes());
        assert_eq!(watch.watching.load(Relaxed), 1);
        assert_eq!(watch.delays.lock().expect("lock").len(), 0);
        // The update in three pieces, the blank line split between two.
        let (a, rest) = update.split_at(10);
        let (b, c) = rest.split_at(rest.len() - 1);
        f.feed(a.as_bytes());
        f.feed(b.as_bytes());
        assert_eq!(watch.delays.lock().expect("lock").len(), 0);
        f.feed(c.as_bytes());
        assert_eq!(watch.delays.lock().expect("lock").len(), 1);
        // A keep-alive comment is no update.
        f.feed(b": keep-alive\n\n");
        assert_eq!(watch.delays.lock().expect("lock").len(), 1);
        assert_eq!(watch.watching.load(Relaxed), 1);
        // A frame of tens of KB in pieces, its blank line split across
        // two of them, then one more whole.
        let big = format!(
            "event: snapshot\ndata: {{\"tick\":2,\"generated_at\":{now},\"pad\":\"{}\"}}\n\n",
            "x".repeat(24_000)
        );
        let cut = big.len() - 1;
        for piece in big.as_bytes()[..cut].chunks(1000) {
            f.feed(piece);
        }
        assert_eq!(watch.delays.lock().expect("lock").len(), 1);
        f.feed(&big.as_bytes()[cut..]);
        f.feed(big.as_bytes());
        assert_eq!(watch.delays.lock().expect("lock").len(), 3);
    }
}
