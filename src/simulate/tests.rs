//! The election night against its promises: reproducible, every on-time vote
//! inside its state's polls, states closing in waves, turnout varying by
//! state around the configured one, early returns leaning to one candidate,
//! and the ballots cast after a close refused by the processor.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::*;
use crate::bus::Payload;
use crate::model::RejectReason;

/// Opened a day before the night, so late ballots are after the opening.
pub(super) const START: Millis = 1_780_000_000_000;
const VOTERS: u64 = 20_000;

pub(super) fn night() -> Night {
    Night {
        duration_ms: 90_000,
        skew: 0.5,
        skew_candidate: 0,
        turnout_spread: 0.15,
    }
}

pub(super) fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        night: Some(night()),
        ..SimConfig::default()
    }
}

fn sim_voter(v: &crate::model::Voter) -> SimVoter {
    let state = STATES
        .iter()
        .position(|s| s.name == v.address_state)
        .unwrap_or(STATES.len());
    SimVoter {
        id: v.voter_id.clone(),
        lean: STATES.get(state).map_or(0.0, |s| s.lean),
        age: v.registered_age,
        gender: v.gender,
        state: state as u8,
    }
}

pub(super) fn electorate() -> &'static [SimVoter] {
    static VOTERS_: OnceLock<Vec<SimVoter>> = OnceLock::new();
    VOTERS_.get_or_init(|| {
        crate::generate::voters(3, VOTERS)
            .map(|v| sim_voter(&v))
            .collect()
    })
}

/// The default election under the night's schedule from `START`.
pub(super) fn election() -> (Election, Vec<Candidate>) {
    let (mut election, candidates) = crate::generate::default_election(START - 86_400_000);
    election.polls = Some(night().polls(START));
    (election, candidates)
}

pub(super) fn simulation(cfg: &SimConfig) -> Simulation {
    let (election, candidates) = election();
    Simulation::new(election, candidates, electorate().to_vec(), cfg).unwrap()
}

fn state_name(sim: &Simulation, voter: u32) -> &'static str {
    STATES[sim.voters[voter as usize].state as usize].name
}

fn cast_at(b: &Inbound) -> Millis {
    match &b.body {
        Payload::Ballot(b) => b.cast_at,
        _ => panic!("a vote is a typed ballot"),
    }
}

/// Each state's votes in planned order: (planned offset, candidate).
fn votes_by_state(sim: &Simulation) -> HashMap<u8, Vec<(Millis, u16)>> {
    let mut by_state: HashMap<u8, Vec<(Millis, u16)>> = HashMap::new();
    for (p, &at) in sim.plan.iter().zip(&sim.at) {
        if let Planned::Vote {
            voter, candidate, ..
        } = *p
        {
            let state = sim.voters[voter as usize].state;
            by_state.entry(state).or_default().push((at, candidate));
        }
    }
    by_state
}

#[test]
fn simulate_night_same_seed_same_night() {
    let (a, b, c) = (
        simulation(&config(7)),
        simulation(&config(7)),
        simulation(&config(8)),
    );
    assert!(a.plan.len() > VOTERS as usize / 2);
    assert_eq!(a.plan, b.plan);
    assert_eq!(a.at, b.at);
    assert_ne!(a.plan, c.plan);
    assert_ne!(a.at, c.at);
    assert!(
        a.at.windows(2).all(|w| w[0] <= w[1]),
        "sorted by planned time"
    );
    // The schedule is the election's, so the night does not depend on when it is built.
    assert_eq!(a.night.map(|c| c.start), Some(START));
}

#[test]
fn simulate_night_schedule_spans_the_night() {
    let n = night();
    let polls = n.polls(START);
    assert_eq!(polls.first_close - START, 36_000, "40% of 90 s");
    let last = polls.first_close + i64::from(LAST_CLOSE_STEP) * polls.step_ms - START;
    assert!((85_000..=85_500).contains(&last), "about 95%: {last}");
    assert_eq!(n.start_of(polls), START);
}

#[test]
fn simulate_night_on_time_votes_are_cast_before_their_close() {
    let sim = simulation(&config(1));
    let mut checked = 0;
    for (i, p) in sim.plan.iter().enumerate() {
        let voter = match *p {
            Planned::Vote { voter, .. } | Planned::Duplicate { voter, .. } => voter,
            Planned::Bad { .. } | Planned::Forged { .. } => continue,
        };
        let close = sim.election.closes_at(state_name(&sim, voter)).unwrap();
        assert!(START + sim.at[i] < close, "planned before the close");
        // On time, and with a sender that fell far behind.
        for now in [START + sim.at[i], START + 10 * night().duration_ms] {
            let cast = cast_at(&sim.ballot(i, now));
            assert!(cast <= close, "ballot {i} cast {} ms after", cast - close);
            assert!(cast >= sim.election.opens_at);
        }
        checked += 1;
    }
    assert!(checked > 10_000);
}

#[test]
fn simulate_night_states_close_in_waves() {
    let sim = simulation(&config(1));
    let by_state = votes_by_state(&sim);
    let last_of = |code: &str| {
        let i = STATES.iter().position(|s| s.code == code).unwrap() as u8;
        by_state[&i].iter().map(|v| v.0).max().unwrap()
    };
    let first_close = night().close_offset(0);
    for (i, s) in STATES.iter().enumerate() {
        let Some(votes) = by_state.get(&(i as u8)) else {
            continue;
        };
        let last = votes.iter().map(|v| v.0).max().unwrap();
        assert!(last < night().close_offset(s.close_step), "{}", s.name);
        if s.close_step == 0 {
            assert!(last < first_close, "{} votes until the first close", s.name);
        }
    }
    assert!(last_of("GA") < last_of("AK"));
    assert!(last_of("NY") < last_of("CA"));
}

#[test]
fn simulate_night_turnout_differs_by_state_and_stays_near_the_total() {
    let sim = simulation(&config(1));
    let mut registered = vec![0usize; STATES.len() + 1];
    for v in electorate() {
        registered[v.state as usize] += 1;
    }
    let by_state = votes_by_state(&sim);
    let turnouts: Vec<f64> = (0..STATES.len())
        .filter(|&s| registered[s] >= 100)
        .map(|s| by_state[&(s as u8)].len() as f64 / registered[s] as f64)
        .collect();
    let (lo, hi) = turnouts
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    assert!(hi - lo > 0.15, "from {lo:.2} to {hi:.2}");
    assert!(lo >= 0.8 - 0.15 - 0.01 && hi <= 0.8 + 0.15 + 0.01);
    let total = sim.counts().votes as f64 / VOTERS as f64;
    assert!((total - 0.8).abs() <= 0.03, "overall turnout {total:.3}");

    // No spread: every state at the configured turnout.
    let mut flat = config(1);
    flat.night = Some(Night {
        turnout_spread: 0.0,
        ..night()
    });
    let flat = simulation(&flat);
    for (s, votes) in votes_by_state(&flat) {
        let t = votes.len() as f64 / registered[s as usize] as f64;
        assert!((t - 0.8).abs() < 0.02, "{t}");
    }
}

#[test]
fn simulate_night_early_returns_lean_to_the_skew_candidate() {
    let sim = simulation(&config(1));
    let (mut leaning, mut states) = (0, 0);
    for votes in votes_by_state(&sim).values() {
        if votes.len() < 100 {
            continue;
        }
        let share =
            |vs: &[(Millis, u16)]| vs.iter().filter(|v| v.1 == 0).count() as f64 / vs.len() as f64;
        let early = &votes[..votes.len() * 3 / 10];
        states += 1;
        leaning += (share(early) > share(votes)) as usize;
    }
    assert!(states >= 20, "{states}");
    assert!(leaning * 10 >= states * 8, "{leaning} of {states} states");

    // No skew: the early returns look like the final count.
    let mut even = config(1);
    even.night = Some(Night {
        skew: 0.0,
        ..night()
    });
    let even = simulation(&even);
    // The skew moves when votes come in, never whom they are for.
    let tally = |sim: &Simulation| {
        let mut t: Vec<(u8, u16)> = votes_by_state(sim)
            .into_iter()
            .flat_map(|(s, vs)| vs.into_iter().map(move |v| (s, v.1)))
            .collect();
        t.sort_unstable();
        t
    };
    assert_eq!(tally(&sim), tally(&even));
    let (mut early, mut later) = ((0, 0), (0, 0));
    for votes in votes_by_state(&even).values() {
        let cut = votes.len() * 3 / 10;
        for (k, v) in votes.iter().enumerate() {
            let bucket = if k < cut { &mut early } else { &mut later };
            bucket.0 += (v.1 == 0) as usize;
            bucket.1 += 1;
        }
    }
    let (e, a) = (
        early.0 as f64 / early.1 as f64,
        later.0 as f64 / later.1 as f64,
    );
    assert!((e - a).abs() < 0.03, "early {e:.3}, later {a:.3}");
}

#[test]
fn simulate_night_after_close_ballots_are_refused_as_polls_closed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut store = crate::store::open(&url).unwrap();
    let (election, candidates) = election();
    store.put_election(&election, &candidates).unwrap();
    let voters: Vec<_> = crate::generate::voters(3, 4_000).collect();
    store.put_voters(&voters).unwrap();
    let cfg = SimConfig {
        invalid_share: 0.3,
        ..config(5)
    };
    let sim = Simulation::load(&mut *store, &election.election_id, &cfg).unwrap();
    let processor =
        crate::process::Processor::new(crate::process::Registry::load(&mut *store).unwrap());
    let (mut refused, mut accepted) = (0, 0);
    for (i, p) in sim.plan.iter().enumerate() {
        let now = START + sim.at[i];
        match *p {
            Planned::Bad {
                voter,
                kind: Invalid::AfterClose,
            } => {
                let close = sim.election.closes_at(state_name(&sim, voter)).unwrap();
                assert!(now > close, "planned after the close");
                let b = sim.ballot(i, now);
                assert!(cast_at(&b) > close);
                let r = processor.validate(b, now).expect_err("after the close");
                assert_eq!(r.reason, RejectReason::PollsClosed);
                refused += 1;
            }
            Planned::Vote { .. } => {
                processor
                    .validate(sim.ballot(i, now), now)
                    .expect("on time");
                accepted += 1;
            }
            _ => {}
        }
    }
    assert!(refused >= 20, "{refused}");
    assert!(accepted > 2_000);
    // Never without a night: there is no schedule to break.
    let plain = Simulation::load(
        &mut *store,
        &election.election_id,
        &SimConfig {
            invalid_share: 0.3,
            ..SimConfig::default()
        },
    )
    .unwrap();
    assert!(plain.plan.iter().all(|p| !matches!(
        p,
        Planned::Bad {
            kind: Invalid::AfterClose,
            ..
        }
    )));
}

/// The content of every ballot of a plan (without clients), hashed.
pub(super) fn content_hash(sim: &Simulation) -> u64 {
    let mut bytes = Vec::new();
    for i in 0..sim.len() {
        let now = START + sim.at.get(i).copied().unwrap_or(i as Millis);
        match sim.ballot(i, now).body {
            Payload::Ballot(b) => bytes.extend_from_slice(crate::edge::ballot_raw(&b).as_bytes()),
            Payload::Raw(raw) => bytes.extend_from_slice(&raw),
            Payload::Rejected(_) => panic!("the simulator refuses nothing itself"),
        }
        bytes.push(b'\n');
    }
    fnv1a(&bytes)
}

#[test]
fn simulate_night_clients_leave_the_ballots_as_they_were() {
    // Hashes of the plans without their clients (ids in their ordered
    // shape): naming the client adds it and moves nothing else.
    let night = simulation(&config(7));
    assert_eq!(
        (night.len(), content_hash(&night)),
        (16_338, 0x7316_0db9_155e_86ce)
    );
    let plain = simulation(&SimConfig {
        seed: 7,
        ..SimConfig::default()
    });
    assert_eq!(
        (plain.len(), content_hash(&plain)),
        (16_311, 0x691d_0432_6bbb_eb31)
    );
}

pub(super) fn client(b: &Inbound) -> Option<std::sync::Arc<str>> {
    match &b.body {
        Payload::Ballot(b) => b.client.clone(),
        _ => None,
    }
}

#[test]
fn simulate_night_each_voter_votes_at_a_kiosk_of_their_state() {
    let a = simulation(&config(7));
    let b = simulation(&config(7));
    let other = simulation(&config(8));
    let mut moved = 0;
    for (i, p) in a.plan.iter().enumerate() {
        let Planned::Vote { voter, .. } = *p else {
            continue;
        };
        let at = START + a.at[i];
        let c = client(&a.ballot(i, at)).expect("a vote names its kiosk");
        let code = STATES[a.voters[voter as usize].state as usize].code;
        assert!(c.starts_with(&format!("kiosk-{code}-")), "{c} for {code}");
        assert_eq!(
            Some(&c),
            client(&b.ballot(i, at)).as_ref(),
            "same seed, same kiosk"
        );
        if i < other.len() {
            moved += usize::from(Some(&c) != client(&other.ballot(i, at)).as_ref());
        }
    }
    assert!(moved > 0, "another seed sends from other kiosks");
}

#[test]
fn simulate_night_no_kiosk_stands_out_in_any_ten_seconds() {
    for seed in [7, 8] {
        let sim = simulation(&config(seed));
        let mut windows: HashMap<Millis, HashMap<std::sync::Arc<str>, u32>> = HashMap::new();
        for i in 0..sim.len() {
            let at = sim.at[i];
            let Some(c) = client(&sim.ballot(i, START + at)) else {
                continue;
            };
            // The detector's window: two aligned 5 s buckets.
            let bucket = at.div_euclid(5_000);
            for start in [bucket - 1, bucket] {
                *windows
                    .entry(start)
                    .or_default()
                    .entry(c.clone())
                    .or_default() += 1;
            }
        }
        let mut judged = 0;
        for (start, counts) in windows {
            let total: u32 = counts.values().sum();
            if total < 200 {
                continue;
            }
            judged += 1;
            let top = counts.values().max().copied().unwrap_or(0);
            assert!(
                f64::from(top) <= 0.10 * f64::from(total),
                "seed {seed}: a kiosk sent {top} of {total} ballots in the window at {start}"
            );
        }
        assert!(judged > 5, "the night has full windows to judge");
    }
}
