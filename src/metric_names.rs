//! The names of every metric. They sit at the bottom so that a stage can
//! record through the `metrics` facade without depending on the server that
//! renders them (a no-op until a recorder is installed).

pub const BALLOTS_ACCEPTED: &str = "votestream_ballots_accepted_total";
pub const BALLOTS_REJECTED: &str = "votestream_ballots_rejected_total";
pub const BALLOTS_REPLAYED: &str = "votestream_ballots_replayed_total";
/// HTTP requests refused before they became a ballot (auth, rate limit, …).
pub const HTTP_REFUSED: &str = "votestream_http_refused_total";
pub const HTTP_BALLOTS: &str = "votestream_http_ballots_total";
pub const BATCH_COMMIT_SECONDS: &str = "votestream_processor_batch_commit_seconds";
pub const AGGREGATOR_SAVE_SECONDS: &str = "votestream_aggregator_save_seconds";
pub const VOTE_VISIBLE_SECONDS: &str = "votestream_vote_to_visible_seconds";
pub const LAG_VOTES: &str = "votestream_lag_votes";
pub const SSE_VIEWERS: &str = "votestream_sse_viewers";
/// Idempotency-Key requests waiting for their answer.
pub const HTTP_KEYS_IN_FLIGHT: &str = "votestream_http_idempotency_keys_in_flight";
pub const SSE_REFUSED: &str = "votestream_sse_refused_total";
pub const HTTP_CONNECTIONS: &str = "votestream_http_connections";
pub const HTTP_MAX_CONNECTIONS: &str = "votestream_http_max_connections";
pub const HTTP_CONNECTIONS_REFUSED: &str = "votestream_http_connections_refused_total";
pub const HTTP_CONNECTIONS_CLOSED: &str = "votestream_http_connections_closed_total";
pub const OPEN_FILES_LIMIT: &str = "votestream_open_files_limit";
pub const READY: &str = "votestream_ready";
pub const STAGE_READY: &str = "votestream_stage_ready";
pub const STAGE_STALLED_SECONDS: &str = "votestream_stage_stalled_seconds";
pub const DESK_EVENTS: &str = "votestream_desk_events_total";
pub const DESK_SEALS: &str = "votestream_desk_seals_total";
pub const DESK_RACES: &str = "votestream_desk_races";
pub const ALERT_CHANGES: &str = "votestream_alerts_total";
pub const ALERTS_OPEN: &str = "votestream_alerts_open";
pub const ALERT_WEBHOOK: &str = "votestream_alert_webhook_total";
