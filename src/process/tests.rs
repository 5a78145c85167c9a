//! The processor and the built-in engine against a brute-force model: for any
//! sequence of ballots (duplicates, replays, invalid ones, any order, late
//! ones, cast exactly at the opening time or the future limit or 1 ms past
//! them, any batching), every ballot gets the model's outcome and reason, the
//! persisted tallies equal a count over the accepted votes and received =
//! accepted + rejected.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::aggregate::engine::{Engine, Feed};
use crate::model::{Ballot, Candidate, Election};
use crate::tally::{TallyKey, BUILTIN, MINUTE_MS};

const BASE: Millis = 1_780_000_000_000;
/// The processor's clock in the property test.
const NOW: Millis = BASE + 60 * MINUTE_MS;
const VOTERS: u64 = 20;

fn setup(dir: &std::path::Path) -> (String, Vec<crate::model::Voter>) {
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let mut store = crate::store::open(&url).unwrap();
    for e in ["e0", "e1"] {
        let election = Election {
            election_id: e.into(),
            name: format!("Election {e}"),
            opens_at: BASE,
            polls: None,
        };
        let candidates: Vec<Candidate> = (0..3)
            .map(|c| Candidate {
                candidate_id: format!("c{c}"),
                election_id: e.into(),
                candidate_name: format!("Candidate {c}"),
                party_affiliation: "Party".into(),
                biography: String::new(),
                campaign_platform: String::new(),
                photo_url: String::new(),
            })
            .collect();
        store.put_election(&election, &candidates).unwrap();
    }
    let voters: Vec<_> = crate::generate::voters(7, VOTERS).collect();
    store.put_voters(&voters).unwrap();
    (url, voters)
}

#[derive(Clone, Debug)]
enum Op {
    New {
        election: u8,
        voter: u8,
        candidate: u8,
        when: When,
    },
    Replay(usize),
    /// A new ballot under the id of an earlier one.
    Reuse {
        of: usize,
        election: u8,
        voter: u8,
        candidate: u8,
    },
    Garbage(u8),
}

/// When a ballot says it was cast: mostly in the election's first minutes,
/// sometimes exactly at a limit or 1 ms past it.
#[derive(Clone, Copy, Debug)]
enum When {
    Minute(i64),
    AtOpening,
    JustBeforeOpening,
    AtFutureLimit,
    JustPastFutureLimit,
    FarFuture,
}

impl When {
    fn cast_at(self, i: usize) -> Millis {
        match self {
            When::Minute(m) => BASE + m * MINUTE_MS + i as i64,
            When::AtOpening => BASE,
            When::JustBeforeOpening => BASE - 1,
            When::AtFutureLimit => NOW + FUTURE_TOLERANCE_MS,
            When::JustPastFutureLimit => NOW + FUTURE_TOLERANCE_MS + 1,
            When::FarFuture => BASE + 100 * MINUTE_MS,
        }
    }
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        20 => (0i64..8).prop_map(When::Minute),
        1 => Just(When::AtOpening),
        1 => Just(When::JustBeforeOpening),
        1 => Just(When::AtFutureLimit),
        1 => Just(When::JustPastFutureLimit),
        1 => Just(When::FarFuture),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 0u8..24, 0u8..4, when()).prop_map(
            |(election, voter, candidate, when)| Op::New { election, voter, candidate, when }
        ),
        2 => any::<usize>().prop_map(Op::Replay),
        1 => (any::<usize>(), 0u8..3, 0u8..24, 0u8..4).prop_map(
            |(of, election, voter, candidate)| Op::Reuse { of, election, voter, candidate }
        ),
        1 => any::<u8>().prop_map(Op::Garbage),
    ]
}

fn ballots(ops: &[Op], voters: &[crate::model::Voter]) -> Vec<Inbound> {
    let mut out: Vec<Inbound> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let next = match op {
            Op::New {
                election,
                voter,
                candidate,
                when,
            } => Inbound::ballot(Ballot {
                ballot_id: format!("b{i}"),
                election_id: format!("e{election}"),
                voter_id: voters
                    .get(*voter as usize)
                    .map_or_else(|| format!("nobody-{voter}"), |v| v.voter_id.clone()),
                candidate_id: format!("c{candidate}"),
                cast_at: when.cast_at(i),
                client: None,
            }),
            Op::Replay(k) if !out.is_empty() => dup(&out[k % out.len()]),
            Op::Replay(_) => continue,
            Op::Reuse {
                of,
                election,
                voter,
                candidate,
            } => Inbound::ballot(Ballot {
                ballot_id: match out.get(of % out.len().max(1)) {
                    Some(Inbound {
                        body: Payload::Ballot(b),
                        ..
                    }) => b.ballot_id.clone(),
                    _ => format!("b{i}"),
                },
                election_id: format!("e{election}"),
                voter_id: voters
                    .get(*voter as usize)
                    .map_or_else(|| format!("nobody-{voter}"), |v| v.voter_id.clone()),
                candidate_id: format!("c{candidate}"),
                cast_at: BASE + i as i64,
                client: None,
            }),
            Op::Garbage(n) => Inbound::raw(format!("{{not json {n}").into_bytes()),
        };
        out.push(next);
    }
    out
}

/// What a ballot id names: a ballot's election, voter and candidate, or
/// the bytes of a message that is not one.
type Content = (String, String, String);

/// What the spec says should happen, computed the slow, obvious way.
#[derive(Default)]
struct Model {
    voted: HashMap<(String, String), String>,
    /// The content each ballot id first named.
    ids: HashMap<String, Content>,
    /// Ballot ids reused for other content, with that content.
    reused: HashSet<(String, Content)>,
    accepted: Vec<Ballot>,
    rejected: usize,
    replays: usize,
    /// (ballot id, reason) of every rejection recorded, but reused ids.
    reasons: Vec<(String, RejectReason)>,
    /// Rejections as `ballot_id_reused` (under ids the store derives).
    reused_ids: usize,
}

impl Model {
    fn feed(&mut self, b: &Inbound, voters: &[crate::model::Voter], now: Millis) {
        let (id, content) = match &b.body {
            Payload::Raw(raw) => {
                let text = String::from_utf8_lossy(raw).into_owned();
                (parse::content_id(raw), (text, String::new(), String::new()))
            }
            Payload::Ballot(b) => (
                b.ballot_id.clone(),
                (
                    b.election_id.clone(),
                    b.voter_id.clone(),
                    b.candidate_id.clone(),
                ),
            ),
            Payload::Rejected(_) => unreachable!("the model makes none"),
        };
        // The id first: a replay keeps its first outcome, a reused id is
        // refused (recorded under a derived id, so it is counted apart).
        match self.ids.get(&id) {
            Some(first) if *first == content => return self.replays += 1,
            Some(_) => {
                match self.reused.insert((id, content)) {
                    true => {
                        self.rejected += 1;
                        self.reused_ids += 1;
                    }
                    false => self.replays += 1,
                }
                return;
            }
            None => {
                self.ids.insert(id.clone(), content);
            }
        }
        let reject = |m: &mut Model, reason| {
            m.rejected += 1;
            m.reasons.push((id.clone(), reason));
        };
        let b = match &b.body {
            Payload::Ballot(b) => b,
            _ => return reject(self, RejectReason::MalformedJson),
        };
        // The checks in the processor's order: the first failing one is the reason.
        let invalid = if b.election_id != "e0" && b.election_id != "e1" {
            Some(RejectReason::UnknownElection)
        } else if !voters.iter().any(|v| v.voter_id == b.voter_id) {
            Some(RejectReason::UnknownVoter)
        } else if !["c0", "c1", "c2"].contains(&b.candidate_id.as_str()) {
            Some(RejectReason::UnknownCandidate)
        } else if b.cast_at > now + FUTURE_TOLERANCE_MS {
            Some(RejectReason::CastInFuture)
        } else if b.cast_at < BASE {
            Some(RejectReason::CastBeforeOpen)
        } else {
            None
        };
        if let Some(reason) = invalid {
            return reject(self, reason);
        }
        let key = (b.election_id.clone(), b.voter_id.clone());
        match self.voted.get(&key) {
            None => {
                self.voted.insert(key, b.ballot_id.clone());
                self.accepted.push(b.clone());
            }
            // A new id (a replay was recognised above): another ballot.
            Some(_) => reject(self, RejectReason::AlreadyVoted),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tallies_equal_a_brute_force_count(
        ops in prop::collection::vec(op(), 1..120),
        splits in prop::collection::vec(1usize..20, 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (url, voters) = setup(dir.path());
        let mut store = crate::store::open(&url).unwrap();
        let processor = Processor::new(Registry::load(&mut *store).unwrap());
        let input = ballots(&ops, &voters);
        let now = NOW;

        let mut model = Model::default();
        for b in &input {
            model.feed(b, &voters, now);
        }

        // Any batching: the outcome must not depend on it.
        let mut rest: Vec<Inbound> = input.iter().map(dup).collect();
        let (mut accepted, mut rejected, mut replays) = (0, 0, 0);
        let mut reasons = Vec::new();
        for n in splits.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let tail = rest.split_off((*n).min(rest.len()));
            let batch = std::mem::replace(&mut rest, tail);
            let r = store.record(processor.validate_batch(batch, now)).map_err(|(e, _)| e).unwrap();
            accepted += r.votes.len();
            rejected += r.rejections.len();
            reasons.extend(r.rejections.iter().map(|x| (x.ballot_id.clone(), x.reason)));
            replays += r.replays;
        }
        prop_assert_eq!(accepted, model.accepted.len());
        prop_assert_eq!(rejected, model.rejected);
        prop_assert_eq!(replays, model.replays);
        let reused = reasons.iter().filter(|(_, r)| *r == RejectReason::BallotIdReused).count();
        prop_assert_eq!(reused, model.reused_ids);
        reasons.retain(|(_, r)| *r != RejectReason::BallotIdReused);
        reasons.sort_by(|a, b| a.0.cmp(&b.0));
        model.reasons.sort_by(|a, b| a.0.cmp(&b.0));
        prop_assert_eq!(reasons, model.reasons);

        // The engine, resuming from the store, with a short lateness allowance.
        let mut engine = Engine::open(crate::store::open(&url).unwrap(), 2 * MINUTE_MS).unwrap();
        engine.run(Feed::Store { follow: false }, &crate::stats::Stats::default(), &Shutdown::default()).unwrap();
        let (tallies, _) = store.load_tallies(BUILTIN).unwrap();

        let mut want: HashMap<(String, String), i64> = HashMap::new();
        let mut by_state: HashMap<(String, String, String), i64> = HashMap::new();
        for b in &model.accepted {
            *want.entry((b.election_id.clone(), b.candidate_id.clone())).or_default() += 1;
            let v = voters.iter().find(|v| v.voter_id == b.voter_id).unwrap();
            *by_state.entry((b.election_id.clone(), v.address_state.clone(), b.candidate_id.clone())).or_default() += 1;
        }
        for e in ["e0", "e1"] {
            for c in ["c0", "c1", "c2"] {
                let key = TallyKey::Candidate { election: e.into(), candidate: c.into() };
                prop_assert_eq!(tallies.get(&key), want.get(&(e.to_string(), c.to_string())).copied().unwrap_or(0));
            }
            let res = store.results(e, BUILTIN).unwrap();
            prop_assert_eq!(res.received, res.accepted + res.rejected);
            prop_assert_eq!(res.counted, res.accepted);
            let report = crate::audit::audit(&mut *store, e, BUILTIN).unwrap();
            prop_assert!(report.is_clean(), "{:?}", report.differences);
        }
        for ((e, s, c), n) in by_state {
            let key = TallyKey::State { election: e.as_str().into(), state: s.as_str().into(), candidate: c.as_str().into() };
            prop_assert_eq!(tallies.get(&key), n);
        }
    }
}

#[test]
fn every_semantic_rejection_has_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (url, voters) = setup(dir.path());
    let mut store = crate::store::open(&url).unwrap();
    let p = Processor::new(Registry::load(&mut *store).unwrap());
    let now = BASE + 10 * MINUTE_MS;
    let good = Ballot {
        ballot_id: "b".into(),
        election_id: "e0".into(),
        voter_id: voters[0].voter_id.clone(),
        candidate_id: "c1".into(),
        cast_at: now,
        client: None,
    };
    let reason = |b: Ballot| p.validate(Inbound::ballot(b), now).unwrap_err().reason;
    assert!(p.validate(Inbound::ballot(good.clone()), now).is_ok());
    assert_eq!(
        reason(Ballot {
            election_id: "nope".into(),
            ..good.clone()
        }),
        RejectReason::UnknownElection
    );
    assert_eq!(
        reason(Ballot {
            voter_id: "nope".into(),
            ..good.clone()
        }),
        RejectReason::UnknownVoter
    );
    assert_eq!(
        reason(Ballot {
            candidate_id: "nope".into(),
            ..good.clone()
        }),
        RejectReason::UnknownCandidate
    );
    assert_eq!(
        reason(Ballot {
            cast_at: now + 60_000,
            ..good.clone()
        }),
        RejectReason::CastInFuture
    );
    assert_eq!(
        reason(Ballot {
            cast_at: BASE - 1,
            ..good.clone()
        }),
        RejectReason::CastBeforeOpen
    );
    // Hostile text is kept verbatim in the rejection, not interpreted.
    let hostile = "'); DROP TABLE votes; -- <script>alert(1)</script>";
    let r = p
        .validate(
            Inbound::ballot(Ballot {
                voter_id: hostile.into(),
                ..good.clone()
            }),
            now,
        )
        .unwrap_err();
    let recorded = store
        .record(Batch {
            rejections: vec![*r],
            ..Batch::default()
        })
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(recorded.rejections[0].voter_id.as_deref(), Some(hostile));
    let res = store.results("e0", BUILTIN).unwrap();
    assert_eq!(res.rejected_by_reason.get("unknown_voter"), Some(&1));
}

/// The model waits on no ballot and reads none from a bus position, so
/// the body is all there is to copy.
fn dup(i: &Inbound) -> Inbound {
    i.body.clone().into()
}

#[test]
fn batches_are_cut_to_what_writes_in_the_batch_time() {
    use super::{batch_for, MAX_BATCH, MIN_BATCH};
    const BATCH_TIME: Duration = Duration::from_millis(100);
    // 200k ballots/s: a 100 ms batch holds 20,000.
    let per_batch = 200_000.0 * BATCH_TIME.as_secs_f64();
    assert_eq!(
        batch_for(50_000, Duration::from_millis(250), BATCH_TIME),
        per_batch as usize
    );
    // Never past the cap, never below the floor, even for a zero-time write.
    assert_eq!(batch_for(65_536, Duration::ZERO, BATCH_TIME), MAX_BATCH);
    assert_eq!(batch_for(10, Duration::from_secs(5), BATCH_TIME), MIN_BATCH);
}
