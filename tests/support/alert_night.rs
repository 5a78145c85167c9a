//! A night written straight into a store's ledger for the alerts tests:
//! 60 ballots a second for 8 minutes, then a burst of votes in one state, a
//! share swing in a second and a spike of already-voted attempts in a third.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use votestream::bus::Inbound;
use votestream::model::{Ballot, Millis, RejectReason, Rejection};
use votestream::process::{Processor, Registry};
use votestream::store::{Store, VoterKey};

use super::ELECTION;

pub const RATE: u64 = 60;
pub const LENGTH_S: u64 = 480;
pub const BURST_AT_S: u64 = 240;
pub const SWING_AT_S: u64 = 300;
pub const DUPLICATES_AT_S: u64 = 360;
/// The states the anomalies go to (among the most populous).
pub const BURST: &str = "California";
pub const SWING: &str = "Texas";
pub const DUPLICATES: &str = "Florida";

/// Writes the night into a store, starting at `start` (or on the first
/// whole minute after the polls opened, so the whole night is in the past
/// and a replay can take it again): the same start, the same ledger.
/// Returns the start.
pub fn record_night(store: &mut dyn Store, start: Option<Millis>) -> Millis {
    votestream::generate::ensure_registry(store, ELECTION, 42, 40_000, false).unwrap();
    let processor = Processor::new(Registry::load(store).unwrap());
    let entry = store
        .elections()
        .unwrap()
        .into_iter()
        .find(|e| e.election.election_id == ELECTION)
        .unwrap();
    let candidates: Vec<String> = entry
        .candidates
        .iter()
        .map(|c| c.candidate_id.clone())
        .collect();
    let mut by_state: HashMap<String, Vec<String>> = HashMap::new();
    store
        .scan_voters(&mut |v: VoterKey<'_>| {
            by_state
                .entry(v.state.to_string())
                .or_default()
                .push(v.voter_id.to_string())
        })
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut states: Vec<(String, Vec<String>)> = by_state.into_iter().collect();
    states.sort();
    // Each state's voters in a random order; a ballot's state is drawn by
    // registration, so a state's rate follows its size.
    let total: usize = states.iter().map(|(_, v)| v.len()).sum();
    let cum: Vec<f64> = states
        .iter()
        .scan(0usize, |acc, (_, v)| {
            *acc += v.len();
            Some(*acc as f64 / total as f64)
        })
        .collect();
    for (_, voters) in states.iter_mut() {
        voters.shuffle(&mut rng);
    }
    let state_no = |name: &str| states.iter().position(|(s, _)| s == name).unwrap();
    let (burst, swing, dups) = (state_no(BURST), state_no(SWING), state_no(DUPLICATES));
    let mut used = vec![0usize; states.len()];
    let start = start.unwrap_or((entry.election.opens_at / 60_000 + 1) * 60_000);
    let (mut n, mut again) = (0u64, 0u64);
    for second in 0..LENGTH_S {
        let mut inbound = Vec::new();
        let at = |k: u64| start + (second * 1000 + k * 1000 / RATE) as Millis;
        let mut ballot = |state: usize, voter: usize, candidate: &str, cast_at: Millis| {
            n += 1;
            Inbound::ballot(Ballot {
                ballot_id: format!("alerts-{n}"),
                election_id: ELECTION.into(),
                voter_id: states[state].1[voter].clone(),
                candidate_id: candidate.to_string(),
                cast_at,
                client: None,
            })
        };
        for k in 0..RATE {
            let u: f64 = rng.random();
            let s = cum.iter().position(|&c| u < c).unwrap_or(states.len() - 1);
            let v = used[s];
            assert!(v < states[s].1.len(), "{} ran out of voters", states[s].0);
            used[s] += 1;
            let dup_share = if s == dups && second >= DUPLICATES_AT_S {
                0.3
            } else {
                0.01
            };
            if rng.random_bool(dup_share) {
                // Someone who voted already, trying again: refused as the
                // processor would, at the time it arrives (the store's own
                // refusals are dated by the clock, which this night is not).
                again += 1;
                inbound.push(Inbound::rejected(Rejection {
                    ballot_id: format!("alerts-again-{again}"),
                    election_id: Some(ELECTION.into()),
                    voter_id: Some(states[s].1[v].clone()),
                    reason: RejectReason::AlreadyVoted,
                    detail: "voter already voted in this election".into(),
                    raw: String::new(),
                    received_at: at(k),
                    source: None,
                    client: None,
                }));
                continue;
            }
            let c = if s == swing && second >= SWING_AT_S && rng.random_bool(0.9) {
                2
            } else {
                let u: f64 = rng.random();
                if u < 0.47 {
                    0
                } else if u < 0.9 {
                    1
                } else {
                    2
                }
            };
            inbound.push(ballot(s, v, &candidates[c], at(k)));
            if s == burst && (BURST_AT_S..BURST_AT_S + 30).contains(&second) {
                // Three more votes in the burst's state for each one.
                for _ in 0..3 {
                    let x = used[s];
                    assert!(x < states[s].1.len(), "the burst ran out of voters");
                    used[s] += 1;
                    inbound.push(ballot(s, x, &candidates[1], at(k)));
                }
            }
        }
        let batch = processor.validate_batch(inbound, start + (second as Millis + 1) * 1000);
        store.record(batch).map_err(|(e, _)| e).unwrap();
    }
    start
}
