//! `votestream audit`: recomputes every tally from the votes table alone and
//! compares it with what the engine persisted, and checks the votes log
//! itself (seq without gaps, one vote per voter). Every difference names the
//! key (candidate, state, demographic cell, minute, seq or voter) it is about.

use std::collections::{BTreeMap, HashMap};

use crate::aggregate::{Tallies, TallyKey};
use crate::store::{Store, StoreError};

#[derive(Debug, Default)]
pub struct AuditReport {
    pub election_id: String,
    pub votes: i64,
    /// received = accepted + rejected holds by construction of the counters;
    /// this checks accepted against the votes table.
    pub accepted_counter: i64,
    pub differences: Vec<String>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Compares the engine's tallies for one election with a recount.
pub fn audit(
    store: &mut dyn Store,
    election_id: &str,
    engine: &str,
) -> Result<AuditReport, StoreError> {
    let mut log_problems = check_votes_log(store, election_id)?;
    let recount = store.recount(election_id)?;
    let (persisted, _position) = store.load_tallies(engine)?;
    let results = store.results(election_id, engine)?;
    let mut report = AuditReport {
        election_id: election_id.to_string(),
        accepted_counter: results.accepted,
        ..AuditReport::default()
    };
    let mine = |t: &Tallies| -> HashMap<TallyKey, i64> {
        t.iter()
            .filter(|(k, _)| key_election(k) == Some(election_id))
            .map(|(k, v)| (k.clone(), v))
            .collect()
    };
    let expected = mine(&recount);
    let actual = mine(&persisted);
    report.votes = expected
        .iter()
        .filter(|(k, _)| matches!(k, TallyKey::Candidate { .. }))
        .map(|(_, v)| v)
        .sum();
    if report.votes != results.accepted {
        report.differences.push(format!(
            "votes table holds {} votes but the accepted counter says {}",
            report.votes, results.accepted
        ));
    }
    // Exact keys: totals, states, demographics.
    let mut keys: Vec<&TallyKey> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut late_by_minute = 0i64;
    let mut minute_excess = BTreeMap::new();
    for k in keys {
        let e = expected.get(k).copied().unwrap_or(0);
        let a = actual.get(k).copied().unwrap_or(0);
        match k {
            TallyKey::Minute { .. } => {
                // Windows may miss late votes, never hold extra ones.
                if a > e {
                    minute_excess.insert(format!("{k:?}"), (e, a));
                }
                late_by_minute += e - a;
            }
            TallyKey::Late { .. } | TallyKey::MaxCastAt { .. } => {}
            _ => {
                if e != a {
                    report
                        .differences
                        .push(format!("{k:?}: recount {e}, engine {a}"));
                }
            }
        }
    }
    for (k, (e, a)) in minute_excess {
        report.differences.push(format!(
            "{k}: recount {e}, engine {a} (window holds votes it cannot have)"
        ));
    }
    let late = actual
        .iter()
        .find(|(k, _)| matches!(k, TallyKey::Late { .. }))
        .map(|(_, v)| *v)
        .unwrap_or(0);
    if late != late_by_minute {
        report.differences.push(format!(
            "late votes: engine reports {late}, but its windows miss {late_by_minute} votes"
        ));
    }
    report.differences.append(&mut log_problems);
    Ok(report)
}

/// Differences named past this many are only counted: a badly broken store
/// must not print millions of lines.
const NAMED: usize = 20;

/// Reads the whole votes log in seq order and checks what the recount cannot
/// see: seq runs 1, 2, 3, … without a gap (an engine resumes by seq, so a
/// hole is a vote it may never count), and no voter has two votes in this
/// election.
fn check_votes_log(store: &mut dyn Store, election_id: &str) -> Result<Vec<String>, StoreError> {
    const PAGE: usize = 50_000;
    let mut problems = Vec::new();
    let (mut gaps, mut doubles) = (0usize, 0usize);
    // voter_no → seq of the voter's first vote: 16 bytes a vote, so an
    // audit of millions of votes stays small.
    let mut first_seq: HashMap<i64, i64> = HashMap::new();
    let mut after = 0i64;
    loop {
        let votes = store.votes_after(after, PAGE)?;
        let Some(last) = votes.last() else { break };
        let next_after = last.seq;
        for v in &votes {
            if v.seq != after + 1 {
                gaps += 1;
                if gaps <= NAMED {
                    problems.push(if v.seq == after + 2 {
                        format!("votes log: seq {} is missing", after + 1)
                    } else {
                        format!("votes log: seq {}..={} are missing", after + 1, v.seq - 1)
                    });
                }
            }
            after = v.seq;
            if &*v.election_id != election_id {
                continue;
            }
            if let Some(seq) = first_seq.get(&v.voter_no) {
                doubles += 1;
                if doubles <= NAMED {
                    problems.push(format!(
                        "voter {} has two votes: seq {seq} and seq {} (ballot {})",
                        v.voter_id, v.seq, v.ballot_id
                    ));
                }
            } else {
                first_seq.insert(v.voter_no, v.seq);
            }
        }
        after = next_after;
    }
    if gaps > NAMED {
        problems.push(format!("votes log: {gaps} gaps in seq in all"));
    }
    if doubles > NAMED {
        problems.push(format!("{doubles} second votes of one voter in all"));
    }
    Ok(problems)
}

fn key_election(k: &TallyKey) -> Option<&str> {
    Some(match k {
        TallyKey::Candidate { election, .. }
        | TallyKey::State { election, .. }
        | TallyKey::Demographic { election, .. }
        | TallyKey::Minute { election, .. }
        | TallyKey::Late { election }
        | TallyKey::MaxCastAt { election } => election,
    })
}
