//! The ballot simulator: a deterministic stream of ballots for an election,
//! with preferences that vary by state, age and gender, and configurable
//! shares of duplicate, invalid and late ballots so every rejection reason
//! and the late path are exercised.
//!
//! Reproducible: the same seed and registry give the same ballots (ids,
//! voters, choices, order, kinds). Cast times follow the wall clock, since
//! the processor judges them against its own.
//!
//! With a [`Night`] the plan also gives every ballot a time in the night, so
//! states vote, close and report in their real waves ([`night`]).

use std::sync::Arc;

use crate::bus::Inbound;
use crate::model::{Ballot, Candidate, Election, Gender, Millis};
use crate::states::{LAST_CLOSE_STEP, STATES};
use crate::store::{Store, StoreError, VoterKey};

pub mod inject;
mod invalid;
pub mod kiosk;
pub mod night;
mod pace;
mod plan;
#[cfg(test)]
mod tests;

pub use inject::{InjectError, Injection, Registration, INJECTED_VOTER_PREFIX};
use inject::{Injected, INJECTED};
pub use invalid::Invalid;
use invalid::{INVALID_KINDS, NIGHT_KINDS};
use kiosk::Kiosks;
pub use night::Night;
pub use pace::Rate;
use plan::{choose, party_index, plan};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Share of registered voters who vote.
    pub turnout: f64,
    /// Extra ballots from voters who already voted, as a share of votes.
    pub duplicate_share: f64,
    /// Invalid ballots (every kind in turn), as a share of votes.
    pub invalid_share: f64,
    /// Valid ballots cast earlier than the lateness allowance, as a share of votes.
    pub late_share: f64,
    pub allowance_ms: Millis,
    /// Play an election night: ballots at planned times, states closing in
    /// waves. None: ballots as fast as the rate allows, no schedule.
    pub night: Option<Night>,
    /// Anomalies to inject into the night (they need one).
    pub injections: Vec<Injection>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            turnout: 0.8,
            duplicate_share: 0.01,
            invalid_share: 0.01,
            late_share: 0.01,
            allowance_ms: 60_000,
            night: None,
            injections: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planned {
    Vote {
        voter: u32,
        candidate: u16,
        late: bool,
    },
    Duplicate {
        voter: u32,
        candidate: u16,
    },
    Bad {
        voter: u32,
        kind: Invalid,
    },
    /// A burst's ballot: a voter nobody registered, from the kiosk in
    /// `Simulation::forged` slot `slot`.
    Forged {
        slot: u16,
    },
}

#[derive(Clone)]
struct SimVoter {
    id: String,
    lean: f64,
    age: u32,
    gender: Gender,
    /// Index into `STATES`; `STATES.len()` for a state the table does not know.
    state: u8,
}

impl SimVoter {
    fn close_step(&self) -> u8 {
        STATES
            .get(self.state as usize)
            .map_or(LAST_CLOSE_STEP, |s| s.close_step)
    }
}

/// Everything needed to turn the plan into ballots.
pub struct Simulation {
    election: Election,
    candidates: Vec<Candidate>,
    voters: Vec<SimVoter>,
    plan: Vec<Planned>,
    /// With a night: each planned ballot's time, in ms after the night's
    /// start, parallel to `plan`. Empty without one.
    at: Vec<Millis>,
    night: Option<NightClock>,
    seed: u64,
    allowance_ms: Millis,
    /// Who sends each voter's ballots.
    kiosks: Kiosks,
    /// With injections: each planned ballot's number, parallel to `plan`
    /// (see `inject::apply`); empty when it is its place in the plan.
    numbers: Vec<u64>,
    /// The kiosks bursts come from.
    forged: Vec<Arc<str>>,
    /// Voters a turnout injection registers mid-night, and where.
    registrations: Vec<Registration>,
}

/// Why a simulation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Inject(#[from] InjectError),
}

/// A night pinned to the wall clock.
#[derive(Clone, Copy, Debug)]
struct NightClock {
    night: Night,
    start: Millis,
}

/// What a finished plan holds, for summaries and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanCounts {
    pub ballots: u64,
    pub votes: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub late: u64,
    /// Of `invalid`: cast after their state's close (only in a night).
    pub after_close: u64,
}

impl Simulation {
    pub fn load(
        store: &mut dyn Store,
        election_id: &str,
        cfg: &SimConfig,
    ) -> Result<Simulation, SimError> {
        let entry = store
            .elections()?
            .into_iter()
            .find(|e| e.election.election_id == election_id)
            .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))?;
        let (election, candidates) = (entry.election, entry.candidates);
        let mut voters = Vec::new();
        store.scan_voters(&mut |v: VoterKey<'_>| {
            if v.voter_id.starts_with(INJECTED_VOTER_PREFIX) {
                return; // registered by an injection: not the night's electorate
            }
            let state = STATES
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(v.state))
                .unwrap_or(STATES.len());
            voters.push(SimVoter {
                id: v.voter_id.to_string(),
                lean: STATES.get(state).map_or(0.0, |s| s.lean),
                age: v.age,
                gender: v.gender,
                state: state as u8,
            })
        })?;
        Ok(Simulation::new(election, candidates, voters, cfg)?)
    }

    /// With a night, the schedule is the election's if it has one (the
    /// commands write it before loading), else one starting now: either way
    /// a processor refuses a ballot cast after its close only under a
    /// schedule it loaded.
    fn new(
        mut election: Election,
        candidates: Vec<Candidate>,
        mut voters: Vec<SimVoter>,
        cfg: &SimConfig,
    ) -> Result<Simulation, InjectError> {
        let parties: Vec<usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| party_index(c, i))
            .collect();
        let (plan, at, night) = match cfg.night {
            Some(night) => {
                let start = election
                    .polls
                    .map_or_else(crate::model::now_millis, |p| night.start_of(p));
                election.polls = Some(night.polls(start));
                let (plan, at) = night::plan(&night, cfg, &voters, &parties);
                (plan, at, Some(NightClock { night, start }))
            }
            None => (plan(cfg, &voters, &parties), Vec::new(), None),
        };
        // Ballot ids differ per election, or one election's would replay another's.
        let seed = cfg.seed ^ fnv1a(election.election_id.as_bytes());
        let injected = match (&night, cfg.injections.is_empty()) {
            (_, true) => Injected::none(plan, at),
            (None, false) => return Err(InjectError::NoNight),
            (Some(clock), false) => {
                let ctx = inject::NightPlan {
                    night: &clock.night,
                    seed: cfg.seed,
                    parties: &parties,
                };
                inject::apply(&cfg.injections, &ctx, &mut voters, plan, at)?
            }
        };
        Ok(Simulation {
            election,
            candidates,
            voters,
            plan: injected.plan,
            at: injected.at,
            night,
            seed,
            allowance_ms: cfg.allowance_ms,
            kiosks: Kiosks::new(seed),
            numbers: injected.numbers,
            forged: injected.forged,
            registrations: injected.registrations,
        })
    }

    /// The voters injections register mid-night, each group before the
    /// plan entry it names: whoever sends the ballots registers them.
    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    /// The kiosk voter `v` votes at.
    fn kiosk_of(&self, v: u32) -> std::sync::Arc<str> {
        self.kiosks.of(v, self.voters[v as usize].state)
    }

    /// When polls close in voter `v`'s state, with a night.
    fn close_of(&self, v: u32) -> Option<Millis> {
        let c = self.night?;
        Some(c.start + c.night.close_offset(self.voters[v as usize].close_step()))
    }

    pub fn len(&self) -> usize {
        self.plan.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }

    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts {
            ballots: self.plan.len() as u64,
            ..PlanCounts::default()
        };
        for p in &self.plan {
            match p {
                Planned::Vote { late, .. } => {
                    c.votes += 1;
                    c.late += *late as u64;
                }
                Planned::Duplicate { .. } => c.duplicates += 1,
                Planned::Bad { kind, .. } => {
                    c.invalid += 1;
                    c.after_close += (*kind == Invalid::AfterClose) as u64;
                }
                Planned::Forged { .. } => c.invalid += 1,
            }
        }
        c
    }

    /// Ballot number `i` of the plan, cast at `now`. In a night a vote is
    /// stamped no later than 1 ms before its state's close: the simulator
    /// stamps the time the voter cast it, the network may deliver it later.
    pub fn ballot(&self, i: usize, now: Millis) -> Inbound {
        let ballot_id = match self.numbers.get(i) {
            Some(&n) if n & INJECTED != 0 => ballot_id(self.seed ^ 0x1a7e_c7ed, n & !INJECTED),
            Some(&n) => ballot_id(self.seed, n),
            None => ballot_id(self.seed, i as u64),
        };
        let e = &self.election.election_id;
        let cand = |c: u16| {
            self.candidates[c as usize % self.candidates.len()]
                .candidate_id
                .clone()
        };
        let typed = |voter: u32, candidate: String, cast_at: Millis| {
            Inbound::ballot(Ballot {
                ballot_id: ballot_id.clone(),
                election_id: e.clone(),
                voter_id: self.voters[voter as usize].id.clone(),
                candidate_id: candidate,
                cast_at,
                client: Some(self.kiosk_of(voter)),
            })
        };
        let in_time = |voter: u32| self.close_of(voter).map_or(now, |c| now.min(c - 1));
        match self.plan[i] {
            Planned::Vote {
                voter,
                candidate,
                late,
            } => {
                let now = in_time(voter);
                // Late: earlier than the allowance, by a deterministic extra 5..65 s.
                let cast_at = if late {
                    now - self.allowance_ms - 5_000 - (i as i64 % 60) * 1_000
                } else {
                    now
                };
                typed(voter, cand(candidate), cast_at.max(self.election.opens_at))
            }
            Planned::Duplicate { voter, candidate } => {
                typed(voter, cand(candidate), in_time(voter))
            }
            Planned::Bad { voter, kind } => self.bad_ballot(kind, voter, ballot_id, now),
            Planned::Forged { slot } => Inbound::ballot(Ballot {
                voter_id: format!("unregistered-{ballot_id}"),
                ballot_id,
                election_id: e.clone(),
                candidate_id: cand(0),
                cast_at: now,
                client: self.forged.get(usize::from(slot)).cloned(),
            }),
        }
    }
}

/// A UUID-shaped ballot id, a pure function of (seed, index). Shaped like a
/// UUIDv7, whose leading bits grow: the index takes the place of the time, so
/// a run's ids arrive in key order and the store's id index is appended to,
/// not rewritten at random places (a third of the processor's time when
/// the ids were random).
pub fn ballot_id(seed: u64, index: u64) -> String {
    let a = splitmix(seed ^ 0x00ba_1107 ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = splitmix(a ^ index);
    let ordered = index & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ordered >> 16,
        ordered & 0xffff,
        a & 0xfff,
        0x8000 | ((a >> 16) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A stable hash (std's is not promised stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
