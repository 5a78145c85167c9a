//! `GET /api/v1/elections/{id}/results/stream`: Server-Sent Events. Each
//! viewer's stream only waits on the snapshot channel and clones the frame
//! the snapshot thread already built, so a viewer costs a task and a socket.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::watch;

use super::error::ApiError;
use super::metrics::{SSE_REFUSED, SSE_VIEWERS};
use super::snapshot::{Snapshot, TICK};
use super::Shared;

/// A comment line this often keeps proxies and idle timers from closing.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub struct StreamQuery {
    /// The viewer's refresh interval, 500..=60000 ms (default 1000).
    interval_ms: Option<u64>,
}

pub async fn stream(
    State(st): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let rx = st.snapshots.clone();
    if rx.borrow().view(&id).is_none() {
        return Err(ApiError::NotFound(format!(
            "no election {}",
            crate::edge::echo(&id)
        )));
    }
    // Each viewer holds a socket and a task for as long as it watches: past
    // the cap a new one is refused (503), the ones watching keep their feed.
    let Ok(slot) = st.sse_slots.clone().try_acquire_owned() else {
        metrics::counter!(SSE_REFUSED).increment(1);
        return Err(ApiError::Unavailable(
            "too many live viewers: the server is at its Server-Sent Events cap (--max-sse-viewers); retry later".into(),
        ));
    };
    let interval = q.interval_ms.unwrap_or(1000).clamp(500, 60_000);
    // Updates go out on ticks, as soon as a snapshot is made: a slower
    // viewer skips ticks instead of getting late ones.
    let every = (interval as f64 / TICK.as_millis() as f64).round().max(1.0) as u64;
    let viewer = Viewer {
        rx,
        id,
        every,
        last_tick: None,
        _count: ViewerCount::new(slot),
    };
    let body = Body::from_stream(futures_util::stream::unfold(viewer, next_frame));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

struct Viewer {
    rx: watch::Receiver<Arc<Snapshot>>,
    id: String,
    every: u64,
    last_tick: Option<u64>,
    _count: ViewerCount,
}

async fn next_frame(mut v: Viewer) -> Option<(Result<Bytes, Infallible>, Viewer)> {
    if v.last_tick.is_none() {
        let snap = v.rx.borrow_and_update().clone();
        v.last_tick = Some(snap.tick);
        let frame = snap.view(&v.id)?.frame.clone();
        let mut first = b"retry: 2000\n".to_vec();
        first.extend_from_slice(&frame);
        return Some((Ok(Bytes::from(first)), v));
    }
    loop {
        match tokio::time::timeout(KEEP_ALIVE, v.rx.changed()).await {
            Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), v)),
            Ok(Err(_)) => return None, // the server is stopping
            Ok(Ok(())) => {
                let snap = v.rx.borrow_and_update().clone();
                let due = v.last_tick.is_none_or(|t| snap.tick >= t + v.every);
                if let (true, Some(view)) = (due, snap.view(&v.id)) {
                    v.last_tick = Some(snap.tick);
                    return Some((Ok(view.frame.clone()), v));
                }
            }
        }
    }
}

/// Keeps the open-streams gauge and the viewer cap right, however a stream
/// ends (the permit goes back when this is dropped).
struct ViewerCount(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl ViewerCount {
    fn new(slot: tokio::sync::OwnedSemaphorePermit) -> ViewerCount {
        metrics::gauge!(SSE_VIEWERS).increment(1.0);
        ViewerCount(slot)
    }
}

impl Drop for ViewerCount {
    fn drop(&mut self) {
        metrics::gauge!(SSE_VIEWERS).decrement(1.0);
    }
}
