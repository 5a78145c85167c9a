//! What the desk looks at, read from the store: the engine's persisted
//! results, the registry's voters per state, the seals and the events
//! recorded so far. The desk stage writes from it; the server reads it to
//! show the same board, in whichever process it runs.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Desk, DeskConfig, DeskEvent, Snapshot, StateInput, View};
use crate::model::Millis;
use crate::results::Results;
use crate::store::{Store, StoreError, VoterKey};

pub struct Board {
    pub election_id: String,
    cfg: DeskConfig,
    pub desk: Desk,
    /// Events recorded in the store, in order (their number is the index).
    pub events: Vec<DeskEvent>,
    /// Final vote counts of sealed states.
    pub seals: HashMap<String, u64>,
    /// Registered voters per state, and the registry size it was counted at.
    registered: BTreeMap<String, u64>,
    registered_total: i64,
}

/// A recorded event the desk cannot read: the log was written by a newer
/// version, or by hand. The desk stops rather than call anything twice.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("desk event {no} of election {election} is not readable: {error}")]
    BadEvent {
        election: String,
        no: usize,
        error: serde_json::Error,
    },
}

impl Board {
    pub fn load(
        store: &mut dyn Store,
        election_id: &str,
        cfg: DeskConfig,
    ) -> Result<Board, BoardError> {
        let mut board = Board {
            election_id: election_id.to_string(),
            desk: Desk::new(cfg.clone()),
            cfg,
            events: Vec::new(),
            seals: HashMap::new(),
            registered: BTreeMap::new(),
            registered_total: -1,
        };
        board.reload(store)?;
        Ok(board)
    }

    /// Reads the seals and any events recorded since, and rebuilds the desk
    /// from the whole log when there are new ones (a restart, or the record
    /// of another process).
    pub fn reload(&mut self, store: &mut dyn Store) -> Result<(), BoardError> {
        let log = store.desk_log(&self.election_id)?;
        self.seals = log
            .seals
            .into_iter()
            .map(|s| (s.state, s.final_votes))
            .collect();
        if log.events.len() != self.events.len() {
            let mut events = Vec::with_capacity(log.events.len());
            for (no, body) in log.events.iter().enumerate() {
                let e = serde_json::from_str(body).map_err(|error| BoardError::BadEvent {
                    election: self.election_id.clone(),
                    no,
                    error,
                })?;
                events.push(e);
            }
            self.desk = Desk::resume(self.cfg.clone(), &events);
            self.events = events;
        }
        Ok(())
    }

    /// Forgets what the desk decided and rebuilds it from the log alone:
    /// after a look whose events could not be recorded.
    pub fn reload_all(&mut self, store: &mut dyn Store) -> Result<(), BoardError> {
        self.events.clear();
        self.desk = Desk::new(self.cfg.clone());
        self.reload(store)
    }

    /// Counts registered voters per state again when the registry grew.
    pub fn registry(&mut self, store: &mut dyn Store, total: i64) -> Result<(), StoreError> {
        if total == self.registered_total {
            return Ok(());
        }
        let mut per_state: BTreeMap<String, u64> = BTreeMap::new();
        store.scan_voters(&mut |v: VoterKey<'_>| {
            match per_state.get_mut(v.state) {
                Some(n) => *n += 1,
                None => {
                    per_state.insert(v.state.to_string(), 1);
                }
            };
        })?;
        self.registered = per_state;
        self.registered_total = total;
        Ok(())
    }

    /// The states with registered voters, in name order.
    pub fn states(&self) -> impl Iterator<Item = &str> {
        self.registered.keys().map(String::as_str)
    }

    /// What the desk is shown: the results and the registry, as of `now`.
    pub fn snapshot(&self, results: &Results, now: Millis) -> Snapshot {
        let election = &results.election;
        let candidates: Vec<String> = results
            .candidates
            .iter()
            .map(|c| c.candidate_id.clone())
            .collect();
        let counted: HashMap<&str, &BTreeMap<String, i64>> = results
            .states
            .iter()
            .map(|s| (s.state.as_str(), &s.by_candidate))
            .collect();
        let states = self
            .registered
            .iter()
            .map(|(state, &registered)| StateInput {
                state: state.clone(),
                registered,
                counted: candidates
                    .iter()
                    .map(|c| {
                        counted
                            .get(state.as_str())
                            .and_then(|m| m.get(c))
                            .map_or(0, |&n| n.max(0) as u64)
                    })
                    .collect(),
                final_total: self.seals.get(state).copied(),
                polls_closed: election.closes_at(state).is_some_and(|c| now > c),
            })
            .collect();
        Snapshot {
            now,
            position: results.counted,
            candidates,
            states,
        }
    }

    /// The board as shown now, with the events recorded so far. Nothing is
    /// recorded here: a server shows what the desk would decide on the
    /// same figures, and takes the record from the log at the next reload.
    pub fn frame(&mut self, results: &Results, now: Millis) -> DeskFrame {
        let snap = self.snapshot(results, now);
        DeskFrame {
            view: self.desk.observe(&snap).0,
            events: self
                .events
                .iter()
                .enumerate()
                .map(|(no, event)| Numbered {
                    event_no: no as i64,
                    event: event.clone(),
                })
                .collect(),
        }
    }
}

/// What the API and the dashboard get: the board and the record of calls.
#[derive(Clone, Debug, Serialize)]
pub struct DeskFrame {
    #[serde(flatten)]
    pub view: View,
    pub events: Vec<Numbered>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Numbered {
    pub event_no: i64,
    #[serde(flatten)]
    pub event: DeskEvent,
}
