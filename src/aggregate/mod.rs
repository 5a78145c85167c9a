//! The built-in aggregation engine: live tallies from the accepted votes.
//!
//! [`Tallies`] is pure bookkeeping (apply a vote, remember what changed);
//! [`engine`] drives it from the bus and the votes log and persists it with
//! its position in one transaction, which is what keeps results exact across
//! a crash: after a restart the engine resumes from the last persisted seq.

pub mod engine;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::model::{AgeBand, Gender, Millis, Vote};

/// The engine name under which the built-in engine keeps its results.
pub const BUILTIN: &str = "builtin";

pub const MINUTE_MS: Millis = 60_000;

/// One counter of the results tables. A closed set: each variant is a table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TallyKey {
    Candidate {
        election: Arc<str>,
        candidate: Arc<str>,
    },
    State {
        election: Arc<str>,
        state: Arc<str>,
        candidate: Arc<str>,
    },
    Demographic {
        election: Arc<str>,
        age_band: AgeBand,
        gender: Gender,
        candidate: Arc<str>,
    },
    /// Votes cast in the minute starting at `minute` (ms), within the lateness allowance.
    Minute {
        election: Arc<str>,
        minute: Millis,
        candidate: Arc<str>,
    },
    /// Votes counted in the totals but too late for their minute window.
    Late { election: Arc<str> },
    /// The latest cast time seen: the event-time watermark is this minus the allowance.
    MaxCastAt { election: Arc<str> },
}

/// Tallies of one engine, plus the set of keys changed since the last save.
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    values: HashMap<TallyKey, i64>,
    dirty: HashSet<TallyKey>,
}

impl Tallies {
    pub fn get(&self, key: &TallyKey) -> i64 {
        self.values.get(key).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TallyKey, &i64)> {
        self.values.iter()
    }

    /// Sets a value without marking it dirty (loading persisted results).
    pub fn insert(&mut self, key: TallyKey, value: i64) {
        self.values.insert(key, value);
    }

    fn add(&mut self, key: TallyKey, n: i64) {
        *self.values.entry(key.clone()).or_insert(0) += n;
        self.dirty.insert(key);
    }

    /// Counts one accepted vote. `allowance` is how late (event time) a vote
    /// may arrive and still be counted in its minute window; a later one
    /// still counts in every total and is reported as late.
    pub fn apply(&mut self, vote: &Vote, allowance: Millis) {
        let election = &vote.election_id;
        let candidate = &vote.candidate_id;
        self.add(
            TallyKey::Candidate {
                election: election.clone(),
                candidate: candidate.clone(),
            },
            1,
        );
        self.add(
            TallyKey::State {
                election: election.clone(),
                state: vote.state.clone(),
                candidate: candidate.clone(),
            },
            1,
        );
        self.add(
            TallyKey::Demographic {
                election: election.clone(),
                age_band: vote.age_band,
                gender: vote.gender,
                candidate: candidate.clone(),
            },
            1,
        );
        let max_key = TallyKey::MaxCastAt {
            election: election.clone(),
        };
        let max_cast = self.values.get(&max_key).copied();
        let minute = vote.cast_at.div_euclid(MINUTE_MS) * MINUTE_MS;
        // A window closes once the watermark passes its end.
        let on_time = match max_cast {
            None => true,
            Some(max) => minute + MINUTE_MS > max - allowance,
        };
        if on_time {
            self.add(
                TallyKey::Minute {
                    election: election.clone(),
                    minute,
                    candidate: candidate.clone(),
                },
                1,
            );
        } else {
            self.add(
                TallyKey::Late {
                    election: election.clone(),
                },
                1,
            );
        }
        if max_cast.is_none_or(|m| vote.cast_at > m) {
            self.values.insert(max_key.clone(), vote.cast_at);
            self.dirty.insert(max_key);
        }
    }

    /// The changed counters since the last call, with their current values.
    pub fn take_dirty(&mut self) -> Vec<(TallyKey, i64)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|k| {
                let v = self.get(&k);
                (k, v)
            })
            .collect()
    }

    /// Puts keys back after a failed save, so the next save retries them.
    pub fn mark_dirty(&mut self, keys: impl IntoIterator<Item = TallyKey>) {
        self.dirty.extend(keys);
    }
}

#[cfg(test)]
mod tests;
