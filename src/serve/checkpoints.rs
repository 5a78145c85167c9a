//! Keeps every election's tally checkpoints up to date in the background,
//! so results as of a moment (the API's `?at=`, the dashboard's scrubber)
//! read one checkpoint and a short stretch of the ledger even the first time
//! someone looks back, and no request waits for a walk of the whole night
//! (which would also hold the API's store connection meanwhile).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::results::At;
use crate::store::Store;

/// Snapshot ticks between two passes (10 s).
pub(super) const EVERY_TICKS: u64 = 40;

pub(super) struct Checkpointer {
    store: Arc<Mutex<Box<dyn Store>>>,
    busy: Arc<AtomicBool>,
}

impl Checkpointer {
    pub(super) fn new(store: Box<dyn Store>) -> Checkpointer {
        Checkpointer {
            store: Arc::new(Mutex::new(store)),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Walks each election's ledger to its end on a thread of its own,
    /// keeping the checkpoints on the way; nothing if the last pass still runs.
    pub(super) fn pass(&self, elections: Vec<String>) {
        if self.busy.swap(true, SeqCst) {
            return;
        }
        let (store, busy) = (self.store.clone(), self.busy.clone());
        let spawned = std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || {
                if let Ok(mut store) = store.lock() {
                    for id in elections {
                        if let Err(e) = store.results_at(&id, At::Seq(i64::MAX)) {
                            tracing::warn!(election = %id, error = %e, "cannot keep the tally checkpoints");
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
