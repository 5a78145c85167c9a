//! The built-in aggregation engine: live tallies from the accepted votes.
//!
//! [`engine`] drives [`Tallies`] from the bus and the votes log and persists
//! them with their position in one transaction, which is what keeps results
//! exact across a crash: after a restart the engine resumes from the last
//! persisted seq. [`stream`] is the same engine fed by Kafka.

pub mod engine;
pub mod stream;

// The counters live a layer down (the store reads and writes them too);
// callers keep naming them here, where the engine that fills them is.
pub use crate::tally::{Tallies, TallyKey, BUILTIN, MINUTE_MS};
