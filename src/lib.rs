//! votestream: a real-time voting data pipeline.
//!
//! The modules sit in layers, and each imports only from its own layer or
//! the ones below it (docs/ARCHITECTURE.md draws them). In layer order,
//! bottom first:
//!
//! 1. Shared types: [`model`] (the domain types), `edge` (the rules text
//!    from outside must meet, one place for every path, and the ballot's
//!    JSON wire shape), `tally` (the results tables' keys and counters),
//!    `ack` (what a waiting request is told), `metric_names`, [`results`]
//!    (the read model), [`states`] (the 50 states and DC as public
//!    constants), [`stats`] (live counters) and [`shutdown`] (the
//!    two-step Ctrl-C).
//! 2. Seams, each chosen by a URL parsed once at the edge: [`bus`]
//!    (in-process channels, or Apache Kafka with exactly-once
//!    transactions) and [`store`] (SQLite or PostgreSQL).
//! 3. Stages: [`generate`] (the electorate, offline and deterministic,
//!    CSV and randomuser.me imports, avatars, the registry bootstrap),
//!    [`simulate`] (a deterministic stream of ballots, good and bad),
//!    [`process`] (parse and validate ballots, one vote per voter, enrich),
//!    [`aggregate`] (the built-in engine's live tallies, persisted
//!    exactly), [`desk`] (the election-night race desk: certain calls,
//!    model projections, and the synthetic nights that grade them) and
//!    [`alerts`] (the detectors that watch the vote and the pipeline:
//!    invariants, rates, source concentration, share swings).
//! 4. Edges: [`serve`] (the live dashboard, ballot and read APIs, SSE,
//!    metrics), [`pipeline`] (wires the stages together for `votestream
//!    run`, on either bus), [`replay`] (a recorded night played again into
//!    a store of its own), [`audit`] (recomputes every tally from the
//!    votes table) and [`bench`] (`votestream bench`, `--http` included).
//!
//! Only what the binary, the tests and the fuzz targets use is public; the
//! rest is crate-private, so the compiler reports what nothing uses.

// Bottom: shared types.
pub(crate) mod ack;
pub(crate) mod edge;
pub(crate) mod metric_names;
pub mod model;
pub mod results;
pub mod shown;
pub mod shutdown;
pub mod states;
pub mod stats;
pub(crate) mod tally;

// Seams.
pub mod bus;
pub mod store;

// Stages.
pub mod aggregate;
pub mod alerts;
pub mod desk;
pub mod generate;
pub mod process;
pub mod simulate;

// Edges.
pub mod audit;
pub mod bench;
pub mod pipeline;
pub mod replay;
pub mod serve;
