//! votestream: a real-time voting data pipeline.
//!
//! The modules follow the data flow (docs/ARCHITECTURE.md):
//!
//! - [`generate`]: the electorate (elections, candidates, voters), offline and
//!   deterministic, plus CSV and randomuser.me imports and avatars.
//! - [`simulate`]: a deterministic stream of ballots, good and bad.
//! - [`process`]: parse and validate ballots, one vote per voter, enrich.
//! - [`aggregate`]: the built-in engine's live tallies, persisted exactly.
//! - [`serve`]: the live dashboard, ballot and read APIs, SSE, metrics.
//! - [`pipeline`]: wires the stages together for `votestream run`, on either bus.
//! - [`audit`]: recomputes every tally from the votes table.
//! - [`bench`]: `votestream bench`; [`bench_http`]: `votestream bench --http`.
//!
//! Two seams, each chosen by URL: [`bus`] (in-process channels, or Apache
//! Kafka with exactly-once transactions) and [`store`] (SQLite or
//! PostgreSQL).
//! Everything else is concrete. [`model`] holds the domain types, [`edge`]
//! the rules text from outside must meet (one place for every path),
//! [`results`] the read model, [`stats`] live counters and [`shutdown`] the
//! two-step Ctrl-C.

pub mod ack;
pub mod aggregate;
pub mod audit;
pub mod bench;
pub mod bus;
pub mod edge;
pub mod generate;
pub mod metric_names;
pub mod model;
pub mod pipeline;
pub mod process;
pub mod results;
pub mod serve;
pub mod shutdown;
pub mod simulate;
pub mod stats;
pub mod store;
pub mod tally;
