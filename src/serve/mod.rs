//! HTTP: the live dashboard, the ballot API, the read API, Server-Sent
//! Events, `/metrics`, health and the OpenAPI document.
//!
//! ```text
//! POST ballots ─► intake (groups requests) ─► processor ─► commit ─► answer
//! store ─► snapshot thread (one per tick) ─watch─► SSE viewers, read API
//! ```

pub(crate) mod admin;
pub mod ballots;
mod checkpoints;
pub(crate) mod error;
pub(crate) mod guard;
mod health;
pub mod intake;
pub(crate) mod limits;
pub mod metrics;
pub(crate) mod read;
mod shown;
pub mod snapshot;
pub(crate) mod sse;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::process::{Processor, Registry};
use crate::store::Store;
pub use error::ApiError;
pub use guard::{RateLimiter, Tokens};
pub use health::Health;
pub use intake::{Intake, IntakeStop};
pub use limits::Limits;
pub use snapshot::Snapshot;

/// How the HTTP side is set up.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    pub tokens: Tokens,
    /// Requests per second per client IP on the writing endpoints; 0 = off.
    pub rate_limit: f64,
    pub rate_burst: f64,
    /// Largest ballot body accepted, in bytes.
    pub max_body: usize,
    /// Timeouts and caps on what clients may hold.
    pub limits: Limits,
}

/// What every handler shares.
pub struct Shared {
    store: Arc<Mutex<Box<dyn Store>>>,
    pub(crate) snapshots: watch::Receiver<Arc<Snapshot>>,
    default_election: String,
    pub(crate) tokens: Tokens,
    pub(crate) limiter: RateLimiter,
    pub(crate) intake: Option<Intake>,
    processor: Option<Arc<Processor>>,
    health: Arc<Health>,
    metrics: PrometheusHandle,
    pub(crate) max_body: usize,
    /// One permit per live SSE viewer, up to the viewer cap.
    pub(crate) sse_slots: Arc<tokio::sync::Semaphore>,
    limits: Limits,
}

/// The parts of a running pipeline the server talks to.
pub struct Pipeline {
    pub intake: Option<Intake>,
    pub processor: Option<Arc<Processor>>,
    pub health: Arc<Health>,
}

impl Shared {
    pub fn new(
        store: Box<dyn Store>,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        default_election: String,
        opts: &HttpOptions,
        pipeline: Pipeline,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            store: Arc::new(Mutex::new(store)),
            snapshots,
            default_election,
            tokens: opts.tokens.clone(),
            limiter: RateLimiter::new(opts.rate_limit, opts.rate_burst),
            intake: pipeline.intake,
            processor: pipeline.processor,
            health: pipeline.health,
            metrics: metrics::handle(),
            max_body: opts.max_body,
            sse_slots: Arc::new(tokio::sync::Semaphore::new(opts.limits.max_sse_viewers)),
            limits: opts.limits.clone(),
        })
    }

    /// Runs a store call off the async workers.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store
                .lock()
                .map_err(|_| ApiError::Internal("store lock poisoned".into()))?;
            f(&mut **guard)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    }

    /// After an admin change: the processor validates against the new registry.
    pub(crate) async fn reload_registry(&self) -> Result<(), ApiError> {
        let Some(p) = self.processor.clone() else {
            return Ok(());
        };
        let registry = self.with_store(|s| Ok(Registry::load(s)?)).await?;
        p.set_registry(registry);
        Ok(())
    }
}

pub fn router(state: Arc<Shared>) -> Router {
    let election = "/api/v1/elections/{id}";
    Router::new()
        .route("/", get(page))
        .route(
            "/assets/dashboard.js",
            get(|| asset("text/javascript", DASHBOARD_JS)),
        )
        .route("/assets/desk.js", get(|| asset("text/javascript", DESK_JS)))
        .route(
            "/assets/dashboard.css",
            get(|| asset("text/css", DASHBOARD_CSS)),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route(
            "/api/v1/openapi.json",
            get(|| asset("application/json", OPENAPI)),
        )
        .route("/api/v1/elections", get(read::elections))
        .route(&format!("{election}/results"), get(read::results))
        .route(&format!("{election}/results/totals"), get(read::totals))
        .route(&format!("{election}/results/shown"), get(read::shown))
        .route(&format!("{election}/results/states"), get(read::states))
        .route(
            &format!("{election}/results/demographics"),
            get(read::demographics),
        )
        .route(&format!("{election}/results/timeline"), get(read::timeline))
        .route(&format!("{election}/results/stream"), get(sse::stream))
        .route(&format!("{election}/desk"), get(read::desk))
        .route(&format!("{election}/desk/events"), get(read::desk_events))
        .route(&format!("{election}/alerts"), get(read::alerts))
        .route(&format!("{election}/candidates"), get(read::candidates))
        .route(&format!("{election}/progress"), get(read::progress))
        .route(
            &format!("{election}/ballots"),
            post(ballots::cast).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                count_waiting,
            )),
        )
        .route("/api/v1/admin/elections", post(admin::create_election))
        .route("/api/v1/admin/voters", post(admin::generate_voters))
        .route("/avatars/{kind}/{file}", get(read::avatar))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
}

/// Serves `router` on `listener` until `stop` resolves, within the limits
/// of [`HttpOptions::limits`] (see [`limits`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<Shared>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
        // Kept until every connection has seen it.
        stop_tx.closed().await;
    });
    limits::accept_loop(listener, router(state), limits, stop_rx).await
}

async fn page(State(st): State<Arc<Shared>>) -> Html<String> {
    Html(PAGE.replace("__ELECTION__", &html_escape(&st.default_election)))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn readyz(State(st): State<Arc<Shared>>) -> Response {
    match st.health.ready() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")).into_response(),
    }
}

/// Counts ballot requests until they are answered: work waiting for the
/// processor, which `/readyz` watches for progress.
async fn count_waiting(
    State(st): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    struct Waiting<'a>(&'a Health);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0
                .http_waiting
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    st.health
        .http_waiting
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _waiting = Waiting(&st.health);
    next.run(req).await
}

async fn metrics_text(State(st): State<Arc<Shared>>) -> Response {
    st.health.publish();
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        st.metrics.render(),
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

// The dashboard: plain HTML, CSS and our own small JS that draws SVG. It
// sets text with textContent only, so hostile names show, never run.
const PAGE: &str = include_str!("dashboard.html");
const DASHBOARD_JS: &str = include_str!("dashboard.js");
const DESK_JS: &str = include_str!("desk.js");
const DASHBOARD_CSS: &str = include_str!("dashboard.css");
/// Hand-written, and checked against the router by a test.
pub const OPENAPI: &str = include_str!("openapi.json");
