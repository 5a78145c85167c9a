//! Each injection against its promise: the anomaly is in the stream at
//! the chosen time and in the chosen place, nowhere else, and the same
//! seed and injections give the same ballots.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::bus::{Inbound, Payload};
use crate::model::Ballot;
use crate::simulate::tests::{client, config, content_hash, simulation, START};
use crate::simulate::{Planned, SimConfig, Simulation};
use crate::states::STATES;

fn injected(seed: u64, spec: &str) -> Simulation {
    simulation(&with(seed, &[spec]))
}

fn with(seed: u64, specs: &[&str]) -> SimConfig {
    SimConfig {
        injections: specs.iter().map(|s| s.parse().unwrap()).collect(),
        ..config(seed)
    }
}

fn state_of(sim: &Simulation, voter: u32) -> &'static str {
    STATES[sim.voters[voter as usize].state as usize].code
}

fn typed(b: Inbound) -> Ballot {
    match b.body {
        Payload::Ballot(b) => b,
        _ => panic!("an injected ballot is typed"),
    }
}

/// Ballot `i` as sent at its planned time.
fn sent(sim: &Simulation, i: usize) -> Inbound {
    sim.ballot(i, START + sim.at[i])
}

#[test]
fn inject_option_reads_kind_time_and_target() {
    let i: Injection = "burst@90s".parse().unwrap();
    assert_eq!((i.kind, i.at, i.target), (Kind::Burst, 90_000, None));
    let i: Injection = "after-close@1.5m:texas".parse().unwrap();
    assert_eq!((i.kind, i.at), (Kind::AfterClose, 90_000));
    assert_eq!(i.target.unwrap().state().code, "TX");
    let i: Injection = "burst@500ms:kiosk-OH-07".parse().unwrap();
    assert_eq!(i.to_string(), "burst@500ms:kiosk-OH-07");
    assert_eq!(
        "swing@2m:OH".parse::<Injection>().unwrap().to_string(),
        "swing@120000ms:OH"
    );
    for bad in [
        "burst",
        "burst@",
        "burst@90",
        "burst@-5s",
        "burst@5x",
        "spike@5s",
        "swing@5s:Atlantis",
        "swing@5s:kiosk-OH-07",
        "burst@5s:kiosk-OH-25",
    ] {
        assert!(bad.parse::<Injection>().is_err(), "{bad}");
    }
}

#[test]
fn inject_needs_a_night_and_a_time_inside_it() {
    let no_night = SimConfig {
        night: None,
        ..with(7, &["burst@10s"])
    };
    let (election, candidates) = crate::simulate::tests::election();
    let voters = crate::simulate::tests::electorate().to_vec();
    let made = Simulation::new(election, candidates, voters, &no_night);
    assert!(matches!(made, Err(InjectError::NoNight)));
    let (election, candidates) = crate::simulate::tests::election();
    let voters = crate::simulate::tests::electorate().to_vec();
    let late = Simulation::new(election, candidates, voters, &with(7, &["swing@95s"]));
    assert!(matches!(late, Err(InjectError::AfterNight { .. })));
    let (election, candidates) = crate::simulate::tests::election();
    let mut voters = crate::simulate::tests::electorate().to_vec();
    let wy = STATES.iter().position(|s| s.code == "WY").unwrap() as u8;
    voters.retain(|v| v.state != wy);
    let empty = Simulation::new(election, candidates, voters, &with(7, &["swing@10s:WY"]));
    assert!(matches!(empty, Err(InjectError::NoVoters { .. })));
}

#[test]
fn inject_burst_sends_sixty_percent_more_from_one_kiosk_for_thirty_seconds() {
    let sim = injected(7, "burst@20s:kiosk-TX-07");
    let (mut forged, mut stream) = (0, 0);
    for i in 0..sim.len() {
        let at = sim.at[i];
        if let Planned::Forged { .. } = sim.plan[i] {
            assert!((20_000..50_000).contains(&at), "a burst ballot at {at}");
            let b = typed(sent(&sim, i));
            assert!(b.voter_id.starts_with("unregistered-"));
            assert_eq!(b.client.as_deref(), Some("kiosk-TX-07"));
            forged += 1;
        } else if (20_000..50_000).contains(&at) {
            stream += 1;
        }
    }
    let share = forged as f64 / stream as f64;
    assert!((0.5..0.7).contains(&share), "{forged} on top of {stream}");
}

#[test]
fn inject_duplicates_make_thirty_percent_of_the_states_ballots() {
    let sim = injected(7, "duplicates@20s:CA");
    let close = sim
        .night
        .unwrap()
        .night
        .close_offset(STATES.iter().find(|s| s.code == "CA").unwrap().close_step);
    let mut voted_at: HashMap<u32, Millis> = HashMap::new();
    let (mut dups, mut ballots, mut before, mut before_dups) = (0, 0, 0, 0);
    for (i, p) in sim.plan.iter().enumerate() {
        let at = sim.at[i];
        let (voter, dup) = match *p {
            Planned::Vote { voter, .. } => (voter, false),
            Planned::Duplicate { voter, .. } => (voter, true),
            _ => continue,
        };
        if state_of(&sim, voter) != "CA" {
            continue;
        }
        if dup {
            assert!(
                voted_at.get(&voter).is_some_and(|&t| t <= at),
                "a re-send follows the vote"
            );
        } else {
            voted_at.insert(voter, at);
        }
        if (20_000..close).contains(&at) {
            ballots += 1;
            dups += usize::from(dup);
        } else if at < 20_000 {
            before += 1;
            before_dups += usize::from(dup);
        }
    }
    let share = dups as f64 / ballots as f64;
    assert!((0.25..0.35).contains(&share), "{dups} of {ballots}");
    assert!(
        before_dups * 20 < before,
        "before: {before_dups} of {before}"
    );
}

#[test]
fn inject_after_close_sends_the_states_ballots_cast_after_its_close() {
    let sim = injected(7, "after-close@60s");
    let night = sim.night.unwrap();
    let late: Vec<usize> = (0..sim.len())
        .filter(|&i| sim.numbers[i] & INJECTED != 0)
        .collect();
    assert!(late.len() >= 10, "{}", late.len());
    let states: HashSet<&str> = late
        .iter()
        .map(|&i| match sim.plan[i] {
            Planned::Bad { voter, .. } => state_of(&sim, voter),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(states.len(), 1, "one state: {states:?}");
    let state = STATES.iter().find(|s| states.contains(s.code)).unwrap();
    let close = night.start + night.night.close_offset(state.close_step);
    for &i in &late {
        assert!((60_000..61_000).contains(&sim.at[i]));
        assert!(
            typed(sent(&sim, i)).cast_at > close,
            "cast after {}'s close",
            state.name
        );
    }
    let open: Result<Simulation, _> = {
        let (e, c) = crate::simulate::tests::election();
        let v = crate::simulate::tests::electorate().to_vec();
        Simulation::new(e, c, v, &with(7, &["after-close@10s:AK"]))
    };
    assert!(matches!(open, Err(InjectError::NotClosed { .. })));
}

#[test]
fn inject_swing_sends_the_states_votes_to_its_trailing_candidate() {
    let clean = simulation(&config(7));
    let sim = injected(7, "swing@20s:OH");
    // The trailing one of the two main candidates, as the clean night counts Ohio.
    let mut clean_votes = [0usize; 2];
    for p in &clean.plan {
        if let Planned::Vote {
            voter, candidate, ..
        } = *p
        {
            if state_of(&clean, voter) == "OH" && candidate < 2 {
                clean_votes[candidate as usize] += 1;
            }
        }
    }
    let trailing = u16::from(clean_votes[1] < clean_votes[0]);
    let (mut to_trailing, mut votes) = (0, 0);
    for (i, (p, q)) in sim.plan.iter().zip(&clean.plan).enumerate() {
        let (
            Planned::Vote {
                voter, candidate, ..
            },
            Planned::Vote { candidate: was, .. },
        ) = (*p, *q)
        else {
            assert_eq!(p, q);
            continue;
        };
        if state_of(&sim, voter) != "OH" || sim.at[i] < 20_000 {
            assert_eq!(candidate, was, "only Ohio's votes from 20 s change");
            continue;
        }
        votes += 1;
        to_trailing += usize::from(candidate == trailing);
    }
    let share = to_trailing as f64 / votes as f64;
    assert!(
        votes > 50 && (0.85..0.95).contains(&share),
        "{to_trailing} of {votes}"
    );
}

#[test]
fn inject_turnout_registers_voters_mid_night_until_the_state_has_too_many_votes() {
    let sim = injected(7, "turnout@20s:WY");
    let wy = STATES.iter().position(|s| s.code == "WY").unwrap() as u8;
    let registered = crate::simulate::tests::electorate()
        .iter()
        .filter(|v| v.state == wy)
        .count();
    let [r] = sim.registrations() else {
        panic!("one registration");
    };
    assert_eq!(r.before, sim.at.partition_point(|&t| t < 20_000));
    assert!(r.voters.iter().all(|v| v.address_state == "Wyoming"));
    assert!(r
        .voters
        .iter()
        .all(|v| v.voter_id.starts_with(INJECTED_VOTER_PREFIX)));
    let new: HashSet<&str> = r.voters.iter().map(|v| v.voter_id.as_str()).collect();
    let mut votes = 0;
    for i in 0..sim.len() {
        let Planned::Vote { voter, .. } = sim.plan[i] else {
            continue;
        };
        if sim.voters[voter as usize].state != wy {
            continue;
        }
        votes += 1;
        let id = &sim.voters[voter as usize].id;
        if new.contains(id.as_str()) {
            assert!(
                i >= r.before && sim.at[i] >= 20_000,
                "after its registration"
            );
        }
    }
    assert!(
        votes > registered,
        "{votes} votes, {registered} registered at the start"
    );
}

#[test]
fn inject_same_seed_same_night_and_the_rest_of_it_untouched() {
    let specs = [
        "burst@10s",
        "duplicates@20s",
        "after-close@60s",
        "turnout@30s",
    ];
    let a = simulation(&with(7, &specs));
    let b = simulation(&with(7, &specs));
    assert_eq!(content_hash(&a), content_hash(&b));
    let clients = |s: &Simulation| {
        (0..s.len())
            .map(|i| client(&sent(s, i)))
            .collect::<Vec<_>>()
    };
    assert_eq!(clients(&a), clients(&b));
    // Every ballot of the clean night is there, as it was.
    let clean = simulation(&config(7));
    let kept: HashMap<u64, Millis> = (0..a.len())
        .filter(|&i| a.numbers[i] & INJECTED == 0)
        .map(|i| (a.numbers[i], a.at[i]))
        .collect();
    assert_eq!(kept.len(), clean.len());
    for i in 0..clean.len() {
        let j = (0..a.len()).find(|&j| a.numbers[j] == i as u64);
        let j = j.unwrap_or_else(|| panic!("ballot {i} is gone"));
        assert_eq!(
            format!("{:?}", sent(&clean, i).body),
            format!("{:?}", sent(&a, j).body)
        );
        if i > 200 {
            break; // the first ones show it; all of them take long
        }
    }
    assert_ne!(
        content_hash(&a),
        content_hash(&simulation(&with(8, &specs)))
    );
}
