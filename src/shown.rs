//! What the dashboard and the read API published: the results as they were
//! shown, kept with when and at which ledger position, so that after the
//! night "what did the dashboard show at 21:14?" has an answer (`results
//! --at` answers another question: what the ledger held), and a replay can
//! be held to it (`votestream compare`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::Millis;
use crate::results::{Results, StateTally};

/// One published state of an election's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    pub election_id: String,
    /// When the server published it (its wall clock, ms).
    pub shown_at: Millis,
    /// The ledger position (`votes.seq`) the tallies are exact to, when they
    /// are the ledger's prefix up to it; None when no position says what
    /// they hold (an engine fed by Kafka counts its partitions apart).
    pub seq: Option<i64>,
    pub figures: Figures,
}

/// The figures of a published result. The timeline and the demographic
/// cells are left out: they are the same votes cut another way, and would
/// make every record a hundred times larger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// The votes the tallies count.
    pub counted: i64,
    pub candidates: BTreeMap<String, i64>,
    pub states: Vec<StateTally>,
    /// The processor's counts when the results were read: they run ahead of
    /// the tallies and stand at no ledger position of their own.
    pub accepted: i64,
    pub rejected: i64,
    pub rejected_by_reason: BTreeMap<String, i64>,
}

impl Figures {
    pub fn of(r: &Results) -> Figures {
        Figures {
            counted: r.counted,
            candidates: r
                .candidates
                .iter()
                .map(|c| (c.candidate_id.clone(), c.total_votes))
                .collect(),
            states: r.states.clone(),
            accepted: r.accepted,
            rejected: r.rejected,
            rejected_by_reason: r.rejected_by_reason.clone(),
        }
    }

    /// The figures a ledger position decides (the tallies), as JSON: what
    /// results as of that position must equal.
    pub fn tallied(&self) -> Value {
        json!({"counted": self.counted, "candidates": self.candidates, "states": self.states})
    }
}

impl Shown {
    pub fn of(r: &Results, shown_at: Millis) -> Shown {
        Shown {
            election_id: r.election.election_id.clone(),
            shown_at,
            seq: r.tallied_to,
            figures: Figures::of(r),
        }
    }
}

/// The answer to "what was shown at this moment": the last record at or
/// before it, none before the first.
#[derive(Clone, Debug, Serialize)]
pub struct ShownAt {
    pub election_id: String,
    /// The moment asked about (ms).
    pub at: Millis,
    pub shown: Option<Shown>,
}

/// A moment to ask about: a time, written as results' `at` takes one. A
/// ledger position is refused: what was shown is kept by time.
pub fn parse_at(s: &str) -> Result<Millis, String> {
    match crate::results::At::parse(s) {
        Ok(crate::results::At::Time(t)) => Ok(t),
        Ok(crate::results::At::Seq(_)) => Err(format!(
            "`at` must be a time (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC), not a ledger position: what was shown is kept by time; got {}",
            crate::edge::echo(s)
        )),
        Err(e) => Err(e.to_string()),
    }
}
