//! Tally keys and counters: the shape of every results table, kept below
//! the store and the aggregator so that both can speak of a counter without
//! one depending on the other.
//!
//! [`Tallies`] is pure bookkeeping (apply a vote, remember what changed);
//! `aggregate` drives it and persists it.

use std::collections::HashMap;
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

/// Tallies of one engine; each value carries whether it changed since the
/// last save (the map is small: a few thousand counters, scanned per save).
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    values: HashMap<TallyKey, Counter, foldhash::fast::RandomState>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counter {
    value: i64,
    dirty: bool,
}

impl Tallies {
    pub fn get(&self, key: &TallyKey) -> i64 {
        self.values.get(key).map_or(0, |c| c.value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TallyKey, i64)> {
        self.values.iter().map(|(k, c)| (k, c.value))
    }

    /// Sets a value without marking it dirty (loading persisted results).
    pub fn insert(&mut self, key: TallyKey, value: i64) {
        self.values.insert(
            key,
            Counter {
                value,
                dirty: false,
            },
        );
    }

    fn add(&mut self, key: TallyKey, n: i64) {
        let c = self.values.entry(key).or_default();
        c.value += n;
        c.dirty = true;
    }

    fn set(&mut self, key: TallyKey, value: i64) {
        self.values.insert(key, Counter { value, dirty: true });
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
        let max_cast = self.values.get(&max_key).map(|c| c.value);
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
            self.set(max_key, vote.cast_at);
        }
    }

    /// Counts `n` votes of one group as a recount from the votes table sees
    /// them: every total and the vote's minute window, with no lateness.
    #[allow(clippy::too_many_arguments)]
    pub fn add_recounted(
        &mut self,
        election: &Arc<str>,
        candidate: Arc<str>,
        state: Arc<str>,
        age_band: AgeBand,
        gender: Gender,
        minute: Millis,
        n: i64,
    ) {
        let keys = [
            TallyKey::Candidate {
                election: election.clone(),
                candidate: candidate.clone(),
            },
            TallyKey::State {
                election: election.clone(),
                state,
                candidate: candidate.clone(),
            },
            TallyKey::Demographic {
                election: election.clone(),
                age_band,
                gender,
                candidate: candidate.clone(),
            },
            TallyKey::Minute {
                election: election.clone(),
                minute,
                candidate,
            },
        ];
        for k in keys {
            self.add(k, n);
        }
    }

    /// The changed counters since the last call, with their current values.
    pub fn take_dirty(&mut self) -> Vec<(TallyKey, i64)> {
        self.values
            .iter_mut()
            .filter(|(_, c)| c.dirty)
            .map(|(k, c)| {
                c.dirty = false;
                (k.clone(), c.value)
            })
            .collect()
    }

    /// Puts keys back after a failed save, so the next save retries them.
    pub fn mark_dirty(&mut self, keys: impl IntoIterator<Item = TallyKey>) {
        for k in keys {
            if let Some(c) = self.values.get_mut(&k) {
                c.dirty = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
