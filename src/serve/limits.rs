//! What one client may hold of the server: the accept loop with its
//! connection cap, and per connection a watchdog over three deadlines.
//!
//! - header timeout: from a request's first byte until its head is complete
//!   (half-sent headers),
//! - body timeout: from a complete head until the body's last byte (a stalled
//!   or dripping body),
//! - idle timeout: a connection with no request in progress, new or kept
//!   alive between requests.
//!
//! hyper 1 has one timer for the first and the last together (its header
//! timer starts as soon as a connection waits for a request), so the
//! connection's state is kept here: the socket wrapper sees bytes arrive, the
//! service sees heads complete and responses end.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

use super::metrics::{
    HTTP_CONNECTIONS, HTTP_CONNECTIONS_CLOSED, HTTP_CONNECTIONS_REFUSED, HTTP_MAX_CONNECTIONS,
    OPEN_FILES_LIMIT,
};

/// The limits on what clients may hold; each is a flag of `serve`/`run`.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_sse_viewers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 20_000,
            max_sse_viewers: 10_000,
        }
    }
}

/// Streams one HTTP/2 connection may have open at once.
const H2_STREAMS: u32 = 256;

/// File descriptors kept back from the connection cap for the store, the
/// bus clients, the runtime and the snapshot thread.
const RESERVED_FDS: u64 = 128;

/// Raises the open-file limit to `want`, the hard limit with it where the
/// process may (root, or CAP_SYS_RESOURCE); otherwise the soft limit as far
/// as the hard one goes. Returns the effective limit.
pub fn raise_open_files_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the structs we own.
    let effective = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return u64::MAX;
        }
        let above_hard = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        if want > lim.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &above_hard) == 0 {
            lim = above_hard;
        } else if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    metrics::gauge!(OPEN_FILES_LIMIT).set(effective as f64);
    effective
}

/// The connection cap in force: the flag, lowered to what the open-file
/// limit allows (a refused connection beats a failing `accept`).
pub fn connection_cap(flag: usize, open_files: u64) -> usize {
    let room = open_files.saturating_sub(RESERVED_FDS).max(1);
    (flag as u64).min(room) as usize
}

/// Connections the kernel may queue before the server accepts them (it
/// caps this at `net.core.somaxconn`). tokio's default, 1024, overflows
/// when thousands of viewers open the dashboard at once (a broadcast
/// naming it): each dropped handshake waits a second or more to be tried
/// again.
const LISTEN_BACKLOG: u32 = 8192;

/// Binds the HTTP listener, with room for a crowd arriving at once.
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's bind does: a restarted server takes its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts connections until `stop` says so, then lets the open ones finish
/// their requests (SSE streams end when the snapshot channel closes).
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let open_files = raise_open_files_limit(limits.max_connections as u64 + RESERVED_FDS);
    let cap = connection_cap(limits.max_connections, open_files);
    metrics::gauge!(HTTP_MAX_CONNECTIONS).set(cap as f64);
    if cap < limits.max_connections {
        tracing::warn!(
            open_files,
            max_connections = cap,
            "the open-file limit lowers the connection cap"
        );
    } else {
        tracing::info!(open_files, max_connections = cap, "connection cap");
    }
    let slots = Arc::new(Semaphore::new(cap));
    let limits = Arc::new(limits);
    loop {
        let (sock, peer) = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // wait a little instead of spinning, never stop serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!(HTTP_CONNECTIONS_REFUSED).increment(1);
            tokio::spawn(refuse(sock));
            continue;
        };
        let _ = sock.set_nodelay(true);
        let (app, limits, stop) = (app.clone(), limits.clone(), stop.clone());
        tokio::spawn(async move {
            metrics::gauge!(HTTP_CONNECTIONS).increment(1.0);
            serve_connection(sock, peer, app, &limits, stop).await;
            metrics::gauge!(HTTP_CONNECTIONS).decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    // Every slot back: every connection has ended.
    let _ = slots.acquire_many(cap as u32).await;
    Ok(())
}

/// Resolves once the server is told to stop (or its stopper is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Over the cap: a short 503 and close, without reading the request.
async fn refuse(mut sock: TcpStream) {
    const BODY: &str = "{\"error\":\"too_many_connections\",\"message\":\"the server is at its connection limit; retry later\"}";
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        sock.write_all(resp.as_bytes()).await?;
        sock.shutdown().await?;
        // Closing with the request unread would reset the connection, and
        // the client could lose the answer: read what it sent first.
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut sock, &mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// One connection's state, shared by its socket, its service and its watchdog.
struct ConnState {
    started: Instant,
    /// Requests being answered (head read, response not finished).
    busy: AtomicUsize,
    /// Milliseconds since `started` + 1 when the first byte of a head came; 0: none.
    head_since: AtomicU64,
    /// Milliseconds since `started` when the last request ended.
    idle_since: AtomicU64,
}

impl ConnState {
    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

async fn serve_connection(
    sock: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) {
    let preface = tokio::select! {
        h2 = opens_with_h2_preface(&sock, limits) => h2,
        _ = stopped(&mut stop) => Err(None),
    };
    let opens_h2 = match preface {
        Ok(h2) => h2,
        Err(reason) => {
            if let Some(reason) = reason {
                metrics::counter!(HTTP_CONNECTIONS_CLOSED, "reason" => reason).increment(1);
            }
            return;
        }
    };
    let state = Arc::new(ConnState {
        started: Instant::now(),
        busy: AtomicUsize::new(0),
        head_since: AtomicU64::new(0),
        idle_since: AtomicU64::new(0),
    });
    let io = hyper_util::rt::TokioIo::new(Watched {
        inner: sock,
        state: state.clone(),
    });
    let body_timeout = limits.body_timeout;
    let st = state.clone();
    let service =
        hyper::service::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            st.head_since.store(0, Relaxed);
            st.busy.fetch_add(1, Relaxed);
            let done = RequestDone(st.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = req.map(|b| Body::new(Deadline::new(b, body_timeout)));
            let app = app.clone();
            async move {
                let resp = tower::ServiceExt::oneshot(app, req).await?;
                Ok::<_, std::convert::Infallible>(resp.map(|b| {
                    Body::new(Tracked {
                        inner: b,
                        _done: done,
                    })
                }))
            }
        });
    if opens_h2 {
        // HTTP/2 without TLS (prior knowledge), for a proxy in front that
        // carries many viewers' streams on few connections: each stream is
        // a request as above, under the same caps (viewers, rate, body
        // size). Boxed: an HTTP/2 connection's state is several times an
        // HTTP/1.1 one's, and most connections are HTTP/1.1.
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .max_concurrent_streams(H2_STREAMS)
            .serve_connection(io, service);
        Box::pin(watch_over(conn, &state, limits, stop)).await;
    } else {
        // A client may shut its write side once its request is sent (a
        // proxy or `nc -N` can); it still waits for the answer to a ballot
        // that may already be counted. Without this hyper closes on that FIN.
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .half_close(true)
            .serve_connection(io, service);
        watch_over(conn, &state, limits, stop).await;
    }
}

/// Drives a connection until it ends, is shut gracefully on stop, or
/// overstays a deadline.
async fn watch_over<C: GracefulConnection>(
    conn: C,
    state: &ConnState,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) {
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let wake = next_check(state, limits);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some(reason) = expired(state, limits) {
                    metrics::counter!(HTTP_CONNECTIONS_CLOSED, "reason" => reason).increment(1);
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// Whether a connection opens with HTTP/2's preface, looked at without
/// reading it. Otherwise why it is closed instead: it sent nothing within
/// the idle timeout, or only part of the preface within the header
/// timeout (a reason to count), or it closed or failed (none).
async fn opens_with_h2_preface(
    sock: &TcpStream,
    limits: &Limits,
) -> Result<bool, Option<&'static str>> {
    // No HTTP/1.1 request starts with this.
    const PREFACE: &[u8] = b"PRI * HTTP/2.0";
    let mut buf = [0u8; PREFACE.len()];
    let mut n = tokio::time::timeout(limits.idle_timeout, sock.peek(&mut buf))
        .await
        .map_err(|_| Some("idle_timeout"))?
        .map_err(|_| None)?;
    let until = Instant::now() + limits.header_timeout;
    loop {
        if n == 0 {
            return Err(None);
        }
        if !PREFACE.starts_with(&buf[..n]) {
            return Ok(false);
        }
        if n == PREFACE.len() {
            return Ok(true);
        }
        // Part of it so far: a peek would answer at once with the same
        // bytes, so wait a little for the rest.
        if Instant::now() >= until {
            return Err(Some("header_timeout"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        n = sock.peek(&mut buf).await.map_err(|_| None)?;
    }
}

/// The earliest moment a deadline could pass (a busy connection is looked
/// at again after its idle timeout: its request ends or is still going).
fn next_check(state: &ConnState, limits: &Limits) -> Instant {
    let head = state.head_since.load(Relaxed);
    let at = if state.busy.load(Relaxed) == 0 && head != 0 {
        Duration::from_millis(head - 1) + limits.header_timeout
    } else if state.busy.load(Relaxed) == 0 {
        Duration::from_millis(state.idle_since.load(Relaxed)) + limits.idle_timeout
    } else {
        Duration::from_millis(state.ms()) + limits.idle_timeout
    };
    state.started + at + Duration::from_millis(1)
}

fn expired(state: &ConnState, limits: &Limits) -> Option<&'static str> {
    if state.busy.load(Relaxed) > 0 {
        return None; // the body deadline and the handler bound a request
    }
    let now = state.ms();
    let head = state.head_since.load(Relaxed);
    if head != 0 {
        (now >= head - 1 + limits.header_timeout.as_millis() as u64).then_some("header_timeout")
    } else {
        let idle = state.idle_since.load(Relaxed);
        (now >= idle + limits.idle_timeout.as_millis() as u64).then_some("idle_timeout")
    }
}

/// Marks the end of a request when its response is done (or dropped).
struct RequestDone(Arc<ConnState>);

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.ms(), Relaxed);
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

/// A response body that says when it is finished.
struct Tracked {
    inner: Body,
    _done: RequestDone,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once it has taken longer than its deadline.
struct Deadline {
    inner: hyper::body::Incoming,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
}

impl Deadline {
    fn new(inner: hyper::body::Incoming, limit: Duration) -> Deadline {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (body timeout)")]
struct BodyTimeout(Duration);

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if std::future::Future::poll(self.sleep.as_mut(), cx).is_ready() {
            metrics::counter!(HTTP_CONNECTIONS_CLOSED, "reason" => "body_timeout").increment(1);
            return Poll::Ready(Some(Err(BodyTimeout(self.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when the first byte of a new request arrives.
struct Watched {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.state.busy.load(Relaxed) == 0
            && self.state.head_since.load(Relaxed) == 0
        {
            let now = self.state.ms();
            self.state.head_since.store(now + 1, Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,500 viewers arrive before the server accepts any: each handshake
    /// completes in the queue, none waits for a SYN to be sent again (the
    /// first retry comes after a second; tokio's own backlog holds 1,024).
    #[tokio::test]
    async fn a_crowd_arriving_at_once_waits_in_the_queue_and_is_not_dropped() {
        let listener = bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .map_or(4096, |s| s.trim().parse().unwrap_or(4096));
        let crowd = 1500.min(somaxconn);
        // Where the soft limit is 1,024, as on many machines.
        raise_open_files_limit(4096);
        let connects = (0..crowd).map(|_| {
            tokio::time::timeout(
                Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let done = futures_util::future::join_all(connects).await;
        let waited = done.iter().filter(|c| !matches!(c, Ok(Ok(_)))).count();
        assert_eq!(waited, 0, "{waited} of {crowd} connections were not queued");
    }

    #[test]
    fn the_open_file_limit_lowers_the_connection_cap() {
        assert_eq!(connection_cap(20_000, 1024), 1024 - RESERVED_FDS as usize);
        assert_eq!(connection_cap(500, 1024), 500);
        assert_eq!(connection_cap(500, 10), 1);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let effective = raise_open_files_limit(0);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads into a struct we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(effective, lim.rlim_cur);
    }
}
