//! Live counters shared by the stages of one process: progress bars, the
//! `--until-done` check and the end-of-run summary read them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::model::{RejectReason, Rejection, Vote};

#[derive(Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub consumed: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Rejections that name no election, or one that does not exist: no
    /// election's `received` counts them, so summaries show them apart.
    pub no_election: AtomicU64,
    pub replays: AtomicU64,
    /// Outcomes published again after a crash between the store's commit
    /// and the bus's (Kafka).
    pub republished: AtomicU64,
    /// Highest seq the processor has committed.
    pub recorded_seq: AtomicI64,
    /// Votes the aggregator has counted and persisted (Kafka feed).
    pub counted: AtomicU64,
    /// Highest seq the aggregator has persisted.
    pub aggregated_seq: AtomicI64,
    /// Whether the Kafka aggregator's last poll found nothing: it has
    /// counted all its partitions hold. With several instances the votes
    /// this process's processor recorded may be another aggregator's to
    /// count, so its seq alone does not say this one is behind.
    pub aggregator_caught_up: AtomicBool,
    /// When set (by `bench`), every commit's last seq and instant is kept,
    /// to measure how long an accepted vote takes to become visible.
    pub track_commits: AtomicBool,
    pub commits: Mutex<Vec<(i64, u64, Instant)>>,
    /// The last commits (last seq, instant), bounded: the server drains it
    /// to measure how long a committed vote takes to show in its snapshot.
    pub recent_commits: Mutex<VecDeque<(i64, Instant)>>,
    /// CPU time the alerts stage's thread used, in µs, once it has stopped:
    /// its cost to the run, free of the noise of timing whole runs.
    pub alerts_cpu_us: AtomicU64,
}

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time the whole process has used, every thread's.
pub fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a plain system call writing into the timespec given; on a
    // failure it stays zero, which only under-reports a measurement.
    unsafe { libc::clock_gettime(clock, &mut t) };
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Most commits kept in [`Stats::recent_commits`] when nobody drains it.
const RECENT_COMMITS: usize = 4096;

impl Stats {
    /// Counts one committed batch: the votes and rejections the store
    /// recorded, and how many ballots it saw again. Takes the parts, not the
    /// store's `Recorded`, so the counters sit below the store.
    pub fn record_batch(
        &self,
        consumed: u64,
        votes: &[Vote],
        rejections: &[Rejection],
        replays: usize,
    ) {
        self.consumed.fetch_add(consumed, Relaxed);
        self.accepted.fetch_add(votes.len() as u64, Relaxed);
        self.rejected.fetch_add(rejections.len() as u64, Relaxed);
        let orphans = rejections
            .iter()
            .filter(|rej| rej.election_id.is_none() || rej.reason == RejectReason::UnknownElection)
            .count();
        self.no_election.fetch_add(orphans as u64, Relaxed);
        self.replays.fetch_add(replays as u64, Relaxed);
        if let Some(last) = votes.last() {
            self.recorded_seq.fetch_max(last.seq, Relaxed);
            if let Ok(mut c) = self.recent_commits.lock() {
                if c.len() == RECENT_COMMITS {
                    c.pop_front();
                }
                c.push_back((last.seq, Instant::now()));
            }
            if self.track_commits.load(Relaxed) {
                if let Ok(mut c) = self.commits.lock() {
                    c.push((last.seq, votes.len() as u64, Instant::now()));
                }
            }
        }
    }
}

/// A progress bar on stderr, or a hidden one (`--quiet`, or nothing to show).
pub fn progress_bar(visible: bool, len: u64, what: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
