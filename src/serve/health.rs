//! Whether the stages run and move: what `/readyz` and `/metrics` report.
//! The snapshot thread looks every tick; answers are judged when asked.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

use super::metrics::{READY, STAGE_READY, STAGE_STALLED_SECONDS};
use crate::model::{now_millis, Millis};
use crate::stats::Stats;

/// A stage that has had work waiting this long without moving is stuck:
/// `/readyz` says so within 2 s (this, plus at most one snapshot tick).
pub const STUCK_MS: Millis = 1_500;

/// What `/readyz` and `/metrics` need to know: whether each stage runs, and
/// whether it moves while work waits for it. The snapshot thread looks every
/// tick ([`Health::watch`]); answers are judged when asked, so a snapshot
/// thread that is itself stuck shows as a silent store.
#[derive(Default)]
pub struct Health {
    pub processor_running: AtomicBool,
    pub aggregator_running: AtomicBool,
    /// When the store last answered the snapshot's queries.
    pub store_ok_at: AtomicI64,
    /// Ballot requests waiting for their answer (HTTP).
    pub http_waiting: AtomicI64,
    /// Whether `Stats::sent` counts ballots this process's processor must
    /// take (the in-process bus); on Kafka other instances may take them.
    pub sent_is_local: AtomicBool,
    processor: Stall,
    aggregator: Stall,
}

/// Since when a stage has had work waiting and made no progress (0: it has not).
#[derive(Default)]
struct Stall {
    since: AtomicI64,
    progress: AtomicI64,
}

impl Stall {
    fn observe(&self, waiting: bool, progress: i64, now: Millis) {
        let moved = self.progress.swap(progress, Relaxed) != progress;
        if !waiting {
            self.since.store(0, Relaxed);
        } else if moved || self.since.load(Relaxed) == 0 {
            self.since.store(now, Relaxed);
        }
    }

    /// How long it has been stuck, if longer than [`STUCK_MS`].
    fn stuck_for(&self, now: Millis) -> Option<Millis> {
        let since = self.since.load(Relaxed);
        (since != 0 && now - since > STUCK_MS).then_some(now - since)
    }

    fn stalled_ms(&self, now: Millis) -> Millis {
        match self.since.load(Relaxed) {
            0 => 0,
            since => now - since,
        }
    }
}

impl Health {
    /// One look at the stages' progress (the snapshot thread, every tick).
    pub fn watch(&self, stats: &Stats) {
        let now = now_millis();
        let consumed = stats.consumed.load(Relaxed) as i64;
        let sent = stats.sent.load(Relaxed) as i64;
        let queued = self.sent_is_local.load(Relaxed) && sent > consumed;
        let waiting = queued || self.http_waiting.load(Relaxed) > 0;
        self.processor.observe(waiting, consumed, now);
        let aggregated = stats.aggregated_seq.load(Relaxed);
        let lag = stats.recorded_seq.load(Relaxed) > aggregated
            && !stats.aggregator_caught_up.load(Relaxed);
        self.aggregator.observe(lag, aggregated, now);
    }

    pub fn ready(&self) -> Result<(), String> {
        let now = now_millis();
        let store_silent = now - self.store_ok_at.load(Relaxed);
        if store_silent > STUCK_MS {
            return Err(format!(
                "the store has not answered the snapshot's reads for {:.1} s",
                store_silent as f64 / 1000.0
            ));
        }
        if !self.processor_running.load(Relaxed) {
            return Err("the processor is not running".into());
        }
        if !self.aggregator_running.load(Relaxed) {
            return Err("the aggregator is not running".into());
        }
        if let Some(ms) = self.processor.stuck_for(now) {
            return Err(format!(
                "the processor is stuck: ballots have waited {:.1} s and none was recorded",
                ms as f64 / 1000.0
            ));
        }
        if let Some(ms) = self.aggregator.stuck_for(now) {
            return Err(format!(
                "the aggregator is stuck: recorded votes have waited {:.1} s and none was counted",
                ms as f64 / 1000.0
            ));
        }
        Ok(())
    }

    /// Sets the per-stage gauges `/metrics` shows, as of now.
    pub fn publish(&self) {
        let now = now_millis();
        let store_silent = now - self.store_ok_at.load(Relaxed);
        let stages = [
            (
                "store",
                store_silent <= STUCK_MS,
                if store_silent > STUCK_MS {
                    store_silent
                } else {
                    0
                },
            ),
            (
                "processor",
                self.processor_running.load(Relaxed) && self.processor.stuck_for(now).is_none(),
                self.processor.stalled_ms(now),
            ),
            (
                "aggregator",
                self.aggregator_running.load(Relaxed) && self.aggregator.stuck_for(now).is_none(),
                self.aggregator.stalled_ms(now),
            ),
        ];
        for (stage, ok, stalled) in stages {
            metrics::gauge!(STAGE_READY, "stage" => stage).set(if ok { 1.0 } else { 0.0 });
            metrics::gauge!(STAGE_STALLED_SECONDS, "stage" => stage).set(stalled as f64 / 1000.0);
        }
        metrics::gauge!(READY).set(if self.ready().is_ok() { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A health whose stages run and whose store answers, with this
    /// process's processor ahead of its own aggregator.
    fn behind(caught_up: bool) -> (Health, Stats) {
        let health = Health::default();
        health.processor_running.store(true, Relaxed);
        health.aggregator_running.store(true, Relaxed);
        let stats = Stats::default();
        stats.recorded_seq.store(100, Relaxed);
        stats.aggregated_seq.store(50, Relaxed);
        stats.aggregator_caught_up.store(caught_up, Relaxed);
        (health, stats)
    }

    fn watched_past_stuck(health: &Health, stats: &Stats) -> Result<(), String> {
        health.watch(stats);
        std::thread::sleep(Duration::from_millis(STUCK_MS as u64 + 200));
        health.watch(stats);
        health.store_ok_at.store(now_millis(), Relaxed);
        health.ready()
    }

    #[test]
    fn an_aggregator_that_does_not_move_while_votes_wait_is_stuck() {
        let (health, stats) = behind(false);
        let why = watched_past_stuck(&health, &stats).unwrap_err();
        assert!(why.contains("aggregator is stuck"), "{why}");
    }

    /// With several instances on Kafka, the votes this processor recorded
    /// may sit on another instance's partitions: an aggregator that has
    /// counted all of its own is not stuck.
    #[test]
    fn an_aggregator_that_counted_all_its_partitions_hold_is_ready() {
        let (health, stats) = behind(true);
        assert_eq!(watched_past_stuck(&health, &stats), Ok(()));
    }
}
