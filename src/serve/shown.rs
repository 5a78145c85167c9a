//! Keeps what the snapshot thread published (`crate::shown`): each time an
//! election's figures change, at most once a [`EVERY`], with the time they
//! were first published and the ledger position they are exact to.
//!
//! Written by a thread and a store connection of its own, so a tick never
//! waits for the store's write lock (a big batch being recorded) and the
//! dashboard stays as fresh as it was. A change that comes less than a
//! second after the last one kept waits; if it is replaced meanwhile, the
//! newer figures are kept instead: one row a second is enough to say what
//! a screen showed at a moment, and keeps an hour of a busy night at a few
//! thousand rows per election.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

use super::snapshot::Snapshot;
use crate::model::Millis;
use crate::shown::{Figures, Shown};
use crate::store::{Store, StoreError};

/// At most one record per election this often (ms).
pub(super) const EVERY: Millis = 1_000;
/// Records waiting for the writer; past this a change waits for the next tick.
const QUEUE: usize = 64;

#[derive(Default)]
struct Election {
    /// What is published now, since when (`shown_at`) and where.
    current: Option<Shown>,
    /// The last figures handed to the writer, and when that was.
    kept: Option<(Figures, Millis)>,
}

pub(super) struct Recorder {
    tx: SyncSender<Shown>,
    writer: std::thread::JoinHandle<()>,
    elections: HashMap<String, Election>,
}

impl Recorder {
    /// Starts the writer on `store`; None (and a warning) if it cannot start.
    pub(super) fn start(mut store: Box<dyn Store>) -> Option<Recorder> {
        let (tx, rx) = sync_channel::<Shown>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("shown".into())
            .spawn(move || {
                let mut failing = false;
                for shown in rx {
                    match store.record_shown(&shown) {
                        Ok(_) => failing = false,
                        Err(e) if failing => tracing::debug!(error = %e, "shown results not kept"),
                        Err(StoreError::ReadOnly) => {
                            failing = true;
                            tracing::info!(
                                "the store is read-only: the results shown here are not kept"
                            );
                        }
                        Err(e) => {
                            failing = true;
                            tracing::warn!(error = %e, "cannot keep the results shown");
                        }
                    }
                }
            });
        match spawned {
            Ok(writer) => Some(Recorder {
                tx,
                writer,
                elections: HashMap::new(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start keeping the results shown");
                None
            }
        }
    }

    /// Takes note of a snapshot published at `now`, and hands the writer
    /// each election's figures that are new and due.
    pub(super) fn published(&mut self, snap: &Snapshot, now: Millis) {
        for (id, view) in &snap.views {
            let e = self.elections.entry(id.clone()).or_default();
            let figures = Figures::of(&view.results);
            if e.current.as_ref().is_none_or(|c| c.figures != figures) {
                e.current = Some(Shown {
                    election_id: id.clone(),
                    shown_at: now,
                    seq: view.results.tallied_to,
                    figures,
                });
            }
        }
        self.hand_over(now, false);
    }

    /// A tick that published nothing new: hands over what has become due.
    pub(super) fn tick(&mut self, now: Millis) {
        self.hand_over(now, false);
    }

    /// The server stops: hands over every change not kept yet, due or not,
    /// and waits for the writer to keep them.
    pub(super) fn finish(mut self, now: Millis) {
        self.hand_over(now, true);
        drop(self.tx);
        let _ = self.writer.join();
    }

    fn hand_over(&mut self, now: Millis, all: bool) {
        for e in self.elections.values_mut() {
            let Some(current) = &e.current else {
                continue;
            };
            let due = all || e.kept.as_ref().is_none_or(|(_, at)| now - at >= EVERY);
            if !due || e.kept.as_ref().is_some_and(|(f, _)| *f == current.figures) {
                continue;
            }
            match self.tx.try_send(current.clone()) {
                Ok(()) => e.kept = Some((current.figures.clone(), now)),
                // The writer is behind: this change waits for the next tick.
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}
