//! Live counters shared by the stages of one process: progress bars, the
//! `--until-done` check and the end-of-run summary read them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::store::Recorded;

#[derive(Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub consumed: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub replays: AtomicU64,
    /// Highest seq the processor has committed.
    pub recorded_seq: AtomicI64,
    /// Highest seq the aggregator has persisted.
    pub aggregated_seq: AtomicI64,
}

impl Stats {
    pub fn record_batch(&self, consumed: u64, r: &Recorded) {
        self.consumed.fetch_add(consumed, Relaxed);
        self.accepted.fetch_add(r.votes.len() as u64, Relaxed);
        self.rejected.fetch_add(r.rejections.len() as u64, Relaxed);
        self.replays.fetch_add(r.replays as u64, Relaxed);
        if let Some(last) = r.votes.last() {
            self.recorded_seq.fetch_max(last.seq, Relaxed);
        }
    }
}
