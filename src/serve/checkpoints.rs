//! Keeps every election's tally checkpoints up to date in the background,
//! so results as of a moment (the API's `?at=`, the dashboard's scrubber)
//! read one checkpoint and a short stretch of the ledger even the first time
//! someone looks back, and no request waits for a walk of the whole night
//! (which would also hold the API's store connection meanwhile).
//!
//! A pass takes steps of at most [`STEP`] positions for about
//! [`PASS_BUDGET`], so on a night at full speed the checkpoints trail the
//! count instead of taking a core from it, and catch up when it slows down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::results::At;
use crate::store::Store;

/// Snapshot ticks between two passes (10 s).
pub(super) const EVERY_TICKS: u64 = 40;
/// Ledger positions one step of a pass may walk.
const STEP: i64 = 50_000;
/// A pass takes no new step after this long.
const PASS_BUDGET: Duration = Duration::from_secs(1);

/// The store, and per election the position the checkpoints reach.
type State = (Box<dyn Store>, HashMap<String, i64>);

pub(super) struct Checkpointer {
    state: Arc<Mutex<State>>,
    busy: Arc<AtomicBool>,
}

impl Checkpointer {
    pub(super) fn new(store: Box<dyn Store>) -> Checkpointer {
        Checkpointer {
            state: Arc::new(Mutex::new((store, HashMap::new()))),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Walks the elections' ledgers on a thread of its own, keeping the
    /// checkpoints on the way; nothing if the last pass still runs.
    pub(super) fn pass(&self, elections: Vec<String>) {
        if self.busy.swap(true, SeqCst) {
            return;
        }
        let (state, busy) = (self.state.clone(), self.busy.clone());
        let spawned = std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || {
                if let Ok(mut state) = state.lock() {
                    let (store, reached) = &mut *state;
                    let started = Instant::now();
                    for id in elections {
                        let at = reached.entry(id.clone()).or_insert(0);
                        while started.elapsed() < PASS_BUDGET {
                            match store.results_at(&id, At::Seq(at.saturating_add(STEP))) {
                                Ok(r) => {
                                    let Some(a) = r.as_of else { break };
                                    *at = a.seq;
                                    if a.seq >= a.ledger_seq {
                                        break;
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(election = %id, error = %e, "cannot keep the tally checkpoints");
                                    break;
                                }
                            }
                        }
                    }
                }
                busy.store(false, SeqCst);
            });
        if let Err(e) = spawned {
            self.busy.store(false, SeqCst);
            tracing::warn!(error = %e, "cannot start a checkpoint pass");
        }
    }
}
