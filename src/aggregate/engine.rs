//! Drives [`Tallies`] from the votes log. Votes normally arrive over the bus;
//! anything the bus did not deliver (votes committed before this engine
//! started, or by another process) is read from the store by seq, so the
//! engine never skips or repeats a vote. Results and position are saved in
//! one transaction after every batch.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::{Tallies, BUILTIN};
use crate::bus::VoteSource;
use crate::model::{Millis, Vote};
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::store::{retry, Backoff, Store, StoreError};

/// Votes read from the store per catch-up query.
const CATCH_UP_BATCH: usize = 50_000;

pub struct Engine {
    store: Box<dyn Store>,
    tallies: Tallies,
    /// The seq every tally in memory is exact up to.
    position: i64,
    /// The position last loaded or saved: a save only succeeds from it.
    saved: i64,
    allowance: Millis,
}

/// Where new votes come from.
pub enum Feed {
    /// The bus; the engine stops when it ends.
    Bus(Box<dyn VoteSource>),
    /// Tail the store's votes log (a separate `aggregate` process); with
    /// `follow`, keep waiting for new votes until shutdown.
    Store { follow: bool },
}

impl Engine {
    pub fn open(mut store: Box<dyn Store>, allowance: Millis) -> Result<Engine, StoreError> {
        let (tallies, position) = store.load_tallies(BUILTIN)?;
        Ok(Engine {
            store,
            tallies,
            position,
            saved: position,
            allowance,
        })
    }

    pub fn position(&self) -> i64 {
        self.position
    }

    pub fn run(
        &mut self,
        feed: Feed,
        stats: &Stats,
        shutdown: &Shutdown,
    ) -> Result<(), StoreError> {
        // Whatever was committed while no engine ran.
        self.catch_up(i64::MAX, shutdown)?;
        stats.aggregated_seq.store(self.position, Relaxed);
        match feed {
            Feed::Bus(mut votes) => {
                let wait = Duration::from_millis(200);
                while let Some(batch) = votes.next_batch(CATCH_UP_BATCH, wait) {
                    if batch.is_empty() {
                        continue;
                    }
                    self.apply_batch(&batch, shutdown)?;
                    stats.aggregated_seq.store(self.position, Relaxed);
                }
            }
            Feed::Store { follow } => loop {
                let n = self.catch_up(i64::MAX, shutdown)?;
                stats.aggregated_seq.store(self.position, Relaxed);
                if n == 0 {
                    if !follow || shutdown.is_requested() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            },
        }
        // The bus may have closed before the last commits reached it.
        self.catch_up(i64::MAX, shutdown)?;
        stats.aggregated_seq.store(self.position, Relaxed);
        Ok(())
    }

    /// Applies votes from the store with seq up to `until`; returns how many.
    fn catch_up(&mut self, until: i64, shutdown: &Shutdown) -> Result<usize, StoreError> {
        let mut total = 0;
        while self.position < until {
            let position = self.position;
            let store = &mut self.store;
            let votes = retry(shutdown, || store.votes_after(position, CATCH_UP_BATCH))?;
            let votes: Vec<Vote> = votes.into_iter().filter(|v| v.seq <= until).collect();
            if votes.is_empty() {
                break;
            }
            total += votes.len();
            for v in &votes {
                self.apply_one(v);
            }
            self.save(shutdown)?;
        }
        Ok(total)
    }

    fn apply_batch(&mut self, votes: &[Vote], shutdown: &Shutdown) -> Result<(), StoreError> {
        for v in votes {
            if v.seq <= self.position {
                continue; // already counted (caught up from the store)
            }
            if v.seq > self.position + 1 {
                // A gap: votes the bus never brought. Read them first, in order.
                self.catch_up(v.seq - 1, shutdown)?;
            }
            self.apply_one(v);
        }
        self.save(shutdown)
    }

    fn apply_one(&mut self, v: &Vote) {
        self.tallies.apply(v, self.allowance);
        self.position = v.seq;
    }

    fn save(&mut self, shutdown: &Shutdown) -> Result<(), StoreError> {
        let changed = self.tallies.take_dirty();
        let mut backoff = Backoff::default();
        loop {
            let started = std::time::Instant::now();
            match self
                .store
                .save_tallies(BUILTIN, &changed, self.saved, self.position)
            {
                Ok(()) => {
                    self.saved = self.position;
                    metrics::histogram!(crate::metric_names::AGGREGATOR_SAVE_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    return Ok(());
                }
                Err(StoreError::EngineMoved { found, .. }) if found == self.position => {
                    // Our own save: it committed, but the connection was
                    // lost before the answer came (a database restart).
                    self.saved = self.position;
                    return Ok(());
                }
                Err(StoreError::EngineMoved { found, .. }) => {
                    // Another engine of this name saved first. Its results
                    // are the truth now: take them and go on from there (the
                    // votes after them come from the store, by seq).
                    tracing::warn!(
                        found,
                        mine = self.position,
                        "another engine saved results; reloading them"
                    );
                    let store = &mut self.store;
                    let (tallies, position) = retry(shutdown, || store.load_tallies(BUILTIN))?;
                    self.tallies = tallies;
                    self.position = position;
                    self.saved = position;
                    return Ok(());
                }
                Err(e) => {
                    if !backoff.wait(&e, shutdown) {
                        self.tallies.mark_dirty(changed.into_iter().map(|(k, _)| k));
                        return Err(e);
                    }
                }
            }
        }
    }
}
