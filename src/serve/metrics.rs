//! `/metrics`: the `metrics` facade, rendered in Prometheus text format.
//! Stages record through the facade (a no-op until a recorder is installed),
//! so the pipeline does not depend on the server.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

// The names live a layer down, where the stages can reach them.
pub use crate::metric_names::*;

/// The process-wide recorder (installed once; later calls share it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first: then ours
            // just renders nothing, which is not worth failing a server for.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

/// Serves `/metrics` alone on `addr`, for a stage that runs without the
/// HTTP server (a `process` or `aggregate` instance of the Kafka shape), so
/// that Prometheus scrapes every instance. Returns the address bound.
pub fn expose(
    rt: &tokio::runtime::Handle,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::SocketAddr> {
    let metrics = handle();
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = metrics.render();
            async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text) }
        }),
    );
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}

/// Prometheus's text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

fn describe() {
    metrics::describe_counter!(
        DESK_EVENTS,
        "Race desk events recorded: calls, projections and withdrawn projections, by race kind"
    );
    metrics::describe_counter!(
        DESK_SEALS,
        "States whose count was sealed (polls closed and the lateness allowance passed)"
    );
    metrics::describe_gauge!(DESK_RACES, "Races by their status on the race desk");
    metrics::describe_counter!(
        ALERT_CHANGES,
        "Alerts recorded by the alerts stage, by kind and change (opened, resolved)"
    );
    metrics::describe_gauge!(ALERTS_OPEN, "Alerts open now, by kind");
    metrics::describe_counter!(
        ALERT_WEBHOOK,
        "Alert changes sent to the webhook, by outcome (delivered, refused, failed, dropped)"
    );
    metrics::describe_counter!(BALLOTS_ACCEPTED, "Ballots accepted and committed");
    metrics::describe_counter!(BALLOTS_REJECTED, "Ballots rejected, by reason");
    metrics::describe_counter!(
        BALLOTS_REPLAYED,
        "Ballots seen before (same id), not counted again"
    );
    metrics::describe_counter!(
        HTTP_REFUSED,
        "HTTP requests refused before becoming a ballot, by code"
    );
    metrics::describe_counter!(HTTP_BALLOTS, "Ballots answered over HTTP, by status code");
    metrics::describe_histogram!(
        BATCH_COMMIT_SECONDS,
        "Processor: one batch's store transaction"
    );
    metrics::describe_histogram!(
        AGGREGATOR_SAVE_SECONDS,
        "Aggregator: saving tallies and position"
    );
    metrics::describe_histogram!(
        VOTE_VISIBLE_SECONDS,
        "Commit of a vote to its first snapshot"
    );
    metrics::describe_gauge!(LAG_VOTES, "Votes recorded but not yet aggregated");
    metrics::describe_gauge!(SSE_VIEWERS, "Open Server-Sent Events streams");
    metrics::describe_gauge!(
        HTTP_KEYS_IN_FLIGHT,
        "Idempotency-Key requests waiting for their answer"
    );
    metrics::describe_counter!(
        SSE_REFUSED,
        "Server-Sent Events streams refused: the viewer cap was reached"
    );
    metrics::describe_gauge!(HTTP_CONNECTIONS, "Open HTTP connections");
    metrics::describe_gauge!(
        HTTP_MAX_CONNECTIONS,
        "The connection cap in force (the flag, lowered to fit the open-file limit)"
    );
    metrics::describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "Connections refused with 503 at the connection cap"
    );
    metrics::describe_counter!(
        HTTP_CONNECTIONS_CLOSED,
        "Connections closed by a timeout, by reason (header, body, idle)"
    );
    metrics::describe_gauge!(READY, "1 when /readyz answers 200");
    metrics::describe_gauge!(
        STAGE_READY,
        "Per stage (store, processor, aggregator): 1 running and moving, 0 dead or stuck"
    );
    metrics::describe_gauge!(
        STAGE_STALLED_SECONDS,
        "Per stage: how long work has waited with no progress (0: none waits, or it moves)"
    );
    metrics::describe_gauge!(
        OPEN_FILES_LIMIT,
        "The process's open-file limit after raising the soft limit to the hard one"
    );
}
