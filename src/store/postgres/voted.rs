//! Which voters may already have a vote: a bit per (election, voter), kept
//! by the store handle that records, so that a batch looks up in `votes`
//! only the voters whose bit is set instead of every voter it names. That
//! look-up (an index descent per voter) took a fifth of the record's time
//! in PostgreSQL, for an answer that is almost always "no vote yet".
//!
//! A clear bit is a fact only while every vote up to `seen` is in the bits.
//! So each batch, under the recording lock, first reads the votes other
//! writers (another processor instance) committed since `seen`: the ledger's
//! positions are dense and in commit order, so `seq > seen` is exactly what
//! the bits lack. A set bit only means "look it up"; the `UNIQUE` constraint
//! still backs every decision.

use std::collections::HashMap;

use postgres::Transaction;

/// Votes read per round trip while catching up.
const PAGE: i64 = 100_000;
/// Voter numbers from here on are not kept (always looked up): the bits of
/// one election would not fit a sensible amount of memory.
const MAX_VOTER_NO: i64 = 1 << 32;

#[derive(Debug, Default)]
pub(super) struct Voted {
    /// Every vote with `seq <= seen` is in `bits`.
    seen: i64,
    bits: HashMap<i64, Vec<u64>>,
}

impl Voted {
    /// Brings the bits up to `last_seq`, the ledger's end read under the
    /// recording lock in `tx`.
    pub(super) fn catch_up(
        &mut self,
        tx: &mut Transaction<'_>,
        last_seq: i64,
    ) -> Result<(), postgres::Error> {
        if last_seq < self.seen {
            // The ledger is shorter than what was seen (a restored
            // database): nothing kept can be trusted.
            *self = Voted::default();
        }
        while self.seen < last_seq {
            let to = last_seq.min(self.seen.saturating_add(PAGE));
            for r in tx.query(
                "SELECT election_no, voter_no FROM votes WHERE seq > $1 AND seq <= $2",
                &[&self.seen, &to],
            )? {
                self.set(r.try_get(0)?, r.try_get(1)?);
            }
            self.seen = to;
        }
        Ok(())
    }

    /// False only when the voter certainly has no vote up to `seen`.
    pub(super) fn maybe(&self, election_no: i64, voter_no: i64) -> bool {
        let Some((word, bit)) = slot(voter_no) else {
            return true;
        };
        self.bits
            .get(&election_no)
            .and_then(|w| w.get(word))
            .is_some_and(|w| w & bit != 0)
    }

    fn set(&mut self, election_no: i64, voter_no: i64) {
        let Some((word, bit)) = slot(voter_no) else {
            return;
        };
        let words = self.bits.entry(election_no).or_default();
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        words[word] |= bit;
    }

    /// Takes in the votes this handle's own batch committed, which end the
    /// ledger at `last_seq`. Called only once the commit succeeded.
    pub(super) fn committed(&mut self, keys: impl Iterator<Item = (i64, i64)>, last_seq: i64) {
        if self.seen > last_seq {
            return;
        }
        for (election_no, voter_no) in keys {
            self.set(election_no, voter_no);
        }
        self.seen = last_seq;
    }
}

/// The word and the bit of a voter number that is kept.
fn slot(voter_no: i64) -> Option<(usize, u64)> {
    (0..MAX_VOTER_NO)
        .contains(&voter_no)
        .then(|| ((voter_no / 64) as usize, 1 << (voter_no % 64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bit_is_set_only_for_a_voter_seen_voting() {
        let mut v = Voted::default();
        assert!(!v.maybe(1, 0));
        assert!(!v.maybe(1, 700));
        v.committed([(1, 700), (2, 3)].into_iter(), 2);
        assert!(v.maybe(1, 700));
        assert!(v.maybe(2, 3));
        assert!(!v.maybe(1, 699) && !v.maybe(1, 701) && !v.maybe(1, 3) && !v.maybe(2, 700));
        assert_eq!(v.seen, 2);
    }

    #[test]
    fn voter_numbers_out_of_range_are_always_looked_up() {
        let mut v = Voted::default();
        assert!(v.maybe(1, -1));
        assert!(v.maybe(1, MAX_VOTER_NO));
        v.committed([(1, -1), (1, MAX_VOTER_NO)].into_iter(), 2);
        assert!(v.bits.is_empty());
    }

    #[test]
    fn a_batch_behind_what_was_seen_adds_nothing() {
        let mut v = Voted::default();
        v.committed([(1, 1)].into_iter(), 10);
        v.committed([(1, 2)].into_iter(), 5);
        assert!(!v.maybe(1, 2));
        assert_eq!(v.seen, 10);
    }
}
