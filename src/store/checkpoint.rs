//! Results as of a moment of the night, for both backends: the nearest
//! tally checkpoint at or before the moment, plus the votes ledger from
//! there. A checkpoint is one election's counters exact to a ledger
//! position that is a multiple of [`EVERY`]; since the ledger only grows
//! and seq follows commit order, a checkpoint never goes stale.
//!
//! Checkpoints are made lazily: a query that walks the ledger across
//! multiples of [`EVERY`] hands back a checkpoint at each, and a writable
//! store keeps them (after its read snapshot, so the read never has to
//! become a write). A query then reads at most one checkpoint and fewer than
//! [`EVERY`] votes, however long the night.
//!
//! Counted as a recount counts (the audit's view): every vote in its
//! minute window by cast time, none late. A moment given as a time is the
//! ledger up to, not including, the first vote cast after it: what the count
//! was when the night's clock (the latest cast time counted) passed it.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{ElectionEntry, StoreError};
use crate::model::{AgeBand, Gender, Millis};
use crate::results::{AsOf, At, Results};
use crate::tally::{Tallies, TallyKey};

/// Ledger positions between two checkpoints.
pub const EVERY: i64 = 5_000;

/// One election's counters exact to a position.
pub(crate) struct Checkpoint {
    pub seq: i64,
    pub max_cast_at: Option<Millis>,
    /// [`encode`]d counters.
    pub body: String,
}

/// What a backend reads for [`walk`], all inside one read snapshot.
pub(crate) trait Ledger {
    /// The last position recorded (0 for an empty ledger).
    fn end(&mut self) -> Result<i64, StoreError>;
    /// The latest checkpoint of the election at or before `at`.
    fn checkpoint(&mut self, election: &str, at: At) -> Result<Option<Checkpoint>, StoreError>;
    /// The first position after `after` holding a vote of the election cast after `t`.
    fn first_cast_after(
        &mut self,
        election: &str,
        after: i64,
        t: Millis,
    ) -> Result<Option<i64>, StoreError>;
    /// Calls `add` for each group of the election's votes in positions
    /// `(after, until]` and returns their latest cast time.
    fn count(
        &mut self,
        election: &str,
        after: i64,
        until: i64,
        add: &mut dyn FnMut(Group<'_>),
    ) -> Result<Option<Millis>, StoreError>;
    /// The election's rejections by reason, those received by `until` (all: `None`).
    fn rejected(
        &mut self,
        election: &str,
        until: Option<Millis>,
    ) -> Result<Vec<(String, i64)>, StoreError>;
}

/// Votes alike in every counter: how many, for whom, from where.
pub(crate) struct Group<'a> {
    pub candidate: &'a str,
    pub state: &'a str,
    pub age: u32,
    pub gender: Gender,
    /// The start of their minute (ms).
    pub minute: Millis,
    pub n: i64,
}

/// The counters of an election as of a moment, where that moment stands,
/// and the checkpoints made on the way (for the caller to keep).
pub(crate) struct Moment {
    pub tallies: Tallies,
    pub as_of: AsOf,
    pub made: Vec<Checkpoint>,
}

pub(crate) fn walk(ledger: &mut dyn Ledger, election: &str, at: At) -> Result<Moment, StoreError> {
    let id: Arc<str> = Arc::from(election);
    let end = ledger.end()?;
    let (mut pos, mut max_cast_at, mut tallies) = match ledger.checkpoint(election, at)? {
        Some(cp) => (cp.seq, cp.max_cast_at, decode(&id, &cp.body)?),
        None => (0, None, Tallies::default()),
    };
    let target = match at {
        At::Seq(n) => n.min(end).max(pos),
        At::Time(t) => match ledger.first_cast_after(election, pos, t)? {
            Some(seq) => seq - 1,
            None => end,
        },
    };
    let mut made = Vec::new();
    let mut names = crate::store::util::Interner::default();
    while pos < target {
        let boundary = (pos / EVERY + 1) * EVERY;
        let until = boundary.min(target);
        let mut add = |g: Group<'_>| {
            tallies.add_recounted(
                &id,
                names.get(g.candidate),
                names.get(g.state),
                AgeBand::of_age(g.age.min(200)),
                g.gender,
                g.minute,
                g.n,
            );
        };
        let latest = ledger.count(election, pos, until, &mut add)?;
        max_cast_at = max_cast_at.max(latest);
        pos = until;
        if pos == boundary {
            made.push(Checkpoint {
                seq: pos,
                max_cast_at,
                body: encode(&tallies),
            });
        }
    }
    Ok(Moment {
        tallies,
        as_of: AsOf {
            seq: pos,
            time: max_cast_at,
            ledger_seq: end,
        },
        made,
    })
}

/// The read model as of the moment. Rejections have no ledger position:
/// those counted are the ones received by the moment's time (a given time,
/// or the latest cast time counted), and all of them at the ledger's end.
pub(crate) fn results(
    ledger: &mut dyn Ledger,
    entry: ElectionEntry,
    registered_voters: i64,
    at: At,
) -> Result<(Results, Vec<Checkpoint>), StoreError> {
    let id = entry.election.election_id.clone();
    let moment = walk(ledger, &id, at)?;
    let until = match at {
        At::Time(t) => Some(t),
        At::Seq(_) if moment.as_of.seq == moment.as_of.ledger_seq => None,
        // Before the first vote, the moment has no time: nothing yet.
        At::Seq(_) => Some(moment.as_of.time.unwrap_or(Millis::MIN)),
    };
    let mut res = Results::empty(entry.election, &entry.candidates);
    res.registered_voters = registered_voters;
    res.fill_from_tallies(&moment.tallies);
    for (reason, n) in ledger.rejected(&id, until)? {
        res.add_ballot_count(reason, n);
    }
    res.add_ballot_count("accepted".into(), res.counted);
    res.as_of = Some(moment.as_of);
    Ok((res, moment.made))
}

/// Counters as compact JSON: `c` candidates, `s` states, `d` demographic
/// cells, `m` minutes, each a list of rows ending with the count.
fn encode(t: &Tallies) -> String {
    let (mut c, mut s, mut d, mut m) = (vec![], vec![], vec![], vec![]);
    for (k, n) in t.iter() {
        match k {
            TallyKey::Candidate { candidate, .. } => c.push(json!([&**candidate, n])),
            TallyKey::State {
                state, candidate, ..
            } => s.push(json!([&**state, &**candidate, n])),
            TallyKey::Demographic {
                age_band,
                gender,
                candidate,
                ..
            } => d.push(json!([age_band.as_str(), gender.as_str(), &**candidate, n])),
            TallyKey::Minute {
                minute, candidate, ..
            } => m.push(json!([minute, &**candidate, n])),
            TallyKey::Late { .. } | TallyKey::MaxCastAt { .. } => {}
        }
    }
    json!({"c": c, "s": s, "d": d, "m": m}).to_string()
}

fn decode(election: &Arc<str>, body: &str) -> Result<Tallies, StoreError> {
    let bad = |why: &str| StoreError::BadCheckpoint(why.to_string());
    let v: Value = serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?;
    let rows = |name: &str| -> Result<Vec<Vec<Value>>, StoreError> {
        v.get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| bad(&format!("no `{name}` list")))?
            .iter()
            .map(|r| {
                r.as_array()
                    .cloned()
                    .ok_or_else(|| bad("a row is not a list"))
            })
            .collect()
    };
    let text = |r: &[Value], i: usize| -> Result<Arc<str>, StoreError> {
        r.get(i)
            .and_then(Value::as_str)
            .map(Arc::from)
            .ok_or_else(|| bad("a text field is missing"))
    };
    let int = |r: &[Value], i: usize| -> Result<i64, StoreError> {
        r.get(i)
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("a number is missing"))
    };
    let election = election.clone();
    let mut t = Tallies::default();
    for r in rows("c")? {
        let candidate = text(&r, 0)?;
        let key = TallyKey::Candidate {
            election: election.clone(),
            candidate,
        };
        t.insert(key, int(&r, 1)?);
    }
    for r in rows("s")? {
        let key = TallyKey::State {
            election: election.clone(),
            state: text(&r, 0)?,
            candidate: text(&r, 1)?,
        };
        t.insert(key, int(&r, 2)?);
    }
    for r in rows("d")? {
        let age_band = AgeBand::parse(&text(&r, 0)?).ok_or_else(|| bad("unknown age band"))?;
        let key = TallyKey::Demographic {
            election: election.clone(),
            age_band,
            gender: Gender::parse(&text(&r, 1)?),
            candidate: text(&r, 2)?,
        };
        t.insert(key, int(&r, 3)?);
    }
    for r in rows("m")? {
        let key = TallyKey::Minute {
            election: election.clone(),
            minute: int(&r, 0)?,
            candidate: text(&r, 1)?,
        };
        t.insert(key, int(&r, 2)?);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_the_counters_it_was_written_from() {
        let e: Arc<str> = Arc::from("e");
        let mut t = Tallies::default();
        let (a, b) = (Arc::from("a"), Arc::from("b"));
        t.add_recounted(
            &e,
            a,
            Arc::from("Ohio"),
            AgeBand::of_age(30),
            Gender::Female,
            60_000,
            3,
        );
        t.add_recounted(
            &e,
            b,
            Arc::from("Iowa"),
            AgeBand::of_age(70),
            Gender::Other,
            0,
            2,
        );
        let back = decode(&e, &encode(&t)).unwrap();
        let mut want: Vec<_> = t.iter().map(|(k, n)| (k.clone(), n)).collect();
        let mut got: Vec<_> = back.iter().map(|(k, n)| (k.clone(), n)).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert!(decode(&e, "{\"c\":[[\"a\"]]}").is_err());
    }
}
