//! The read model: what the results API, `votestream results` and the
//! dashboard show for one election.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{format_voting_time, parse_time, Candidate, Election, Millis};
use crate::tally::{Tallies, TallyKey};

/// A moment of the night: a position in the votes ledger (`votes.seq`) or a
/// wall-clock time. Parsed once at the edge (flag or query string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    Seq(i64),
    Time(Millis),
}

#[derive(Debug, thiserror::Error)]
#[error("`at` must be a ledger position (a whole number, 0 or more) or a time (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC); got {0}")]
pub struct BadAt(String);

impl At {
    /// Digits alone are a position; anything else must be a time.
    pub fn parse(s: &str) -> Result<At, BadAt> {
        let bad = || BadAt(crate::edge::echo(s));
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(At::Seq).map_err(|_| bad());
        }
        parse_time(s).map(At::Time).ok_or_else(bad)
    }
}

/// Where results as of a moment stand in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AsOf {
    /// The ledger position the results are exact to.
    pub seq: i64,
    /// The latest cast time among the votes counted (ms); null before the first.
    pub time: Option<Millis>,
    /// The ledger's end when asked: `seq == ledger_seq` means "now".
    pub ledger_seq: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CandidateTotal {
    pub candidate_id: String,
    pub candidate_name: String,
    pub party_affiliation: String,
    pub photo_url: String,
    pub total_votes: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateTally {
    pub state: String,
    /// Accepted votes from this state (the original's `count`).
    pub count: i64,
    pub by_candidate: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DemographicTally {
    pub age_band: String,
    pub gender: String,
    pub candidate_id: String,
    pub votes: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MinuteTally {
    /// Start of the minute, `YYYY-MM-DD HH:MM:SS` UTC.
    pub minute: String,
    pub candidate_id: String,
    pub votes: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub election: Election,
    pub registered_voters: i64,
    /// Ballots received for this election: accepted + rejected.
    pub received: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub rejected_by_reason: BTreeMap<String, i64>,
    /// Votes the engine has counted; equals `accepted` once drained.
    pub counted: i64,
    pub late_votes: i64,
    pub candidates: Vec<CandidateTotal>,
    pub states: Vec<StateTally>,
    pub demographics: Vec<DemographicTally>,
    pub timeline: Vec<MinuteTally>,
    /// Only for results as of a moment (`Store::results_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<AsOf>,
    /// The ledger position the tallies are exact to, when they are the
    /// ledger's prefix up to it (an engine that counts in seq order); None
    /// once an engine fed by Kafka has counted. Kept out of the JSON: what
    /// is shown of it is in the record of shown results (`crate::shown`).
    #[serde(skip)]
    pub tallied_to: Option<i64>,
}

impl Results {
    pub fn empty(election: Election, candidates: &[Candidate]) -> Results {
        Results {
            election,
            registered_voters: 0,
            received: 0,
            accepted: 0,
            rejected: 0,
            rejected_by_reason: BTreeMap::new(),
            counted: 0,
            late_votes: 0,
            candidates: candidates
                .iter()
                .map(|c| CandidateTotal {
                    candidate_id: c.candidate_id.clone(),
                    candidate_name: c.candidate_name.clone(),
                    party_affiliation: c.party_affiliation.clone(),
                    photo_url: c.photo_url.clone(),
                    total_votes: 0,
                })
                .collect(),
            states: Vec::new(),
            demographics: Vec::new(),
            timeline: Vec::new(),
            as_of: None,
            tallied_to: None,
        }
    }

    /// Fills the tallies of one election from counters (results as of a
    /// moment), in the order the results tables are read: byte order of
    /// state, of (age band, gender, candidate) and of (minute, candidate).
    pub fn fill_from_tallies(&mut self, t: &Tallies) {
        let id = self.election.election_id.as_str();
        let mut totals = HashMap::new();
        let mut states = BTreeMap::new();
        let mut demographics = BTreeMap::new();
        let mut minutes = BTreeMap::new();
        for (k, n) in t.iter() {
            match k {
                TallyKey::Candidate {
                    election,
                    candidate,
                } if &**election == id => {
                    totals.insert(candidate.to_string(), n);
                }
                TallyKey::State {
                    election,
                    state,
                    candidate,
                } if &**election == id => {
                    states.insert((state.to_string(), candidate.to_string()), n);
                }
                TallyKey::Demographic {
                    election,
                    age_band,
                    gender,
                    candidate,
                } if &**election == id => {
                    let key = (age_band.as_str(), gender.as_str(), candidate.to_string());
                    demographics.insert(key, n);
                }
                TallyKey::Minute {
                    election,
                    minute,
                    candidate,
                } if &**election == id => {
                    minutes.insert((*minute, candidate.to_string()), n);
                }
                _ => {}
            }
        }
        self.set_candidate_totals(&totals);
        self.states.clear();
        for ((state, candidate), n) in states {
            self.add_state_votes(state, candidate, n);
        }
        self.demographics = demographics
            .into_iter()
            .map(
                |((age_band, gender, candidate_id), votes)| DemographicTally {
                    age_band: age_band.to_string(),
                    gender: gender.to_string(),
                    candidate_id,
                    votes,
                },
            )
            .collect();
        self.timeline = minutes
            .into_iter()
            .map(|((minute, candidate_id), votes)| MinuteTally {
                minute: format_voting_time(minute),
                candidate_id,
                votes,
            })
            .collect();
    }

    /// Adds one `ballot_counts` row (`accepted` or a rejection reason);
    /// received stays accepted + rejected.
    pub fn add_ballot_count(&mut self, outcome: String, n: i64) {
        if outcome == "accepted" {
            self.accepted = n;
        } else {
            self.rejected += n;
            self.rejected_by_reason.insert(outcome, n);
        }
        self.received = self.accepted + self.rejected;
    }

    /// Sets each candidate's total from the `results_candidate` rows; the
    /// counted votes are their sum. Both stores read the table this way.
    pub fn set_candidate_totals(&mut self, totals: &HashMap<String, i64>) {
        for c in &mut self.candidates {
            c.total_votes = totals.get(&c.candidate_id).copied().unwrap_or(0);
        }
        self.counted = totals.values().sum();
    }

    /// Adds one `results_state` row. Rows come ordered by state, so a
    /// state other than the last one starts a new entry.
    pub fn add_state_votes(&mut self, state: String, candidate_id: String, votes: i64) {
        if self.states.last().is_none_or(|s| s.state != state) {
            self.states.push(StateTally {
                state,
                ..StateTally::default()
            });
        }
        if let Some(s) = self.states.last_mut() {
            s.count += votes;
            s.by_candidate.insert(candidate_id, votes);
        }
    }

    /// Turnout as a share of the registry, 0..=1.
    pub fn turnout(&self) -> f64 {
        if self.registered_voters == 0 {
            0.0
        } else {
            self.accepted as f64 / self.registered_voters as f64
        }
    }

    /// A plain-text table for the terminal.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({})",
            self.election.name, self.election.election_id
        );
        if let Some(a) = &self.as_of {
            let time = a
                .time
                .map_or("before the first vote".into(), format_voting_time);
            let _ = writeln!(
                out,
                "as of ledger position {} of {} (latest vote counted cast {time})",
                a.seq, a.ledger_seq
            );
        }
        let _ = writeln!(
            out,
            "registered {}  received {}  accepted {}  rejected {}  counted {}  late {}  turnout {:.1}%",
            self.registered_voters,
            self.received,
            self.accepted,
            self.rejected,
            self.counted,
            self.late_votes,
            self.turnout() * 100.0
        );
        let mut cands = self.candidates.clone();
        cands.sort_by_key(|c| std::cmp::Reverse(c.total_votes));
        for c in &cands {
            let share = if self.counted > 0 {
                c.total_votes as f64 * 100.0 / self.counted as f64
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "  {:<24} {:<22} {:>10} {:>6.2}%",
                c.candidate_name, c.party_affiliation, c.total_votes, share
            );
        }
        if !self.rejected_by_reason.is_empty() {
            let reasons: Vec<String> = self
                .rejected_by_reason
                .iter()
                .map(|(r, n)| format!("{r}={n}"))
                .collect();
            let _ = writeln!(out, "  rejected: {}", reasons.join(" "));
        }
        out
    }
}
