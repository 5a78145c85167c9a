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

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bus::Inbound;
use crate::model::{Ballot, Candidate, Election, Gender, Millis};
use crate::shutdown::Shutdown;
use crate::states::{LAST_CLOSE_STEP, STATES};
use crate::store::{Store, StoreError, VoterKey};

mod invalid;
pub mod night;
#[cfg(test)]
mod tests;

pub use invalid::Invalid;
use invalid::{INVALID_KINDS, NIGHT_KINDS};
pub use night::Night;

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
        }
    }
}

/// How fast ballots are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSecond(u64),
    Max,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Rate::PerSecond(n)),
            _ => Err(format!(
                "rate must be a positive number of ballots per second or `max`, got {s:?}"
            )),
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
}

impl Simulation {
    pub fn load(
        store: &mut dyn Store,
        election_id: &str,
        cfg: &SimConfig,
    ) -> Result<Simulation, StoreError> {
        let entry = store
            .elections()?
            .into_iter()
            .find(|e| e.election.election_id == election_id)
            .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))?;
        let (election, candidates) = (entry.election, entry.candidates);
        let mut voters = Vec::new();
        store.scan_voters(&mut |v: VoterKey<'_>| {
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
        Ok(Simulation::new(election, candidates, voters, cfg))
    }

    /// With a night, the schedule is the election's if it has one (the
    /// commands write it before loading), else one starting now: either way
    /// the processor only refuses late ballots under a schedule it loaded.
    fn new(
        mut election: Election,
        candidates: Vec<Candidate>,
        voters: Vec<SimVoter>,
        cfg: &SimConfig,
    ) -> Simulation {
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
        Simulation {
            election,
            candidates,
            voters,
            plan,
            at,
            night,
            seed,
            allowance_ms: cfg.allowance_ms,
        }
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
                Planned::Bad { .. } => c.invalid += 1,
            }
        }
        c
    }

    /// Ballot number `i` of the plan, cast at `now`. In a night a vote is
    /// stamped no later than 1 ms before its state's close: the simulator
    /// stamps the time the voter cast it, the network may deliver it later.
    pub fn ballot(&self, i: usize, now: Millis) -> Inbound {
        let ballot_id = ballot_id(self.seed, i as u64);
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
        }
    }

    /// Sends the plan's ballots at `rate` until it ends or shutdown; the
    /// first `unpaced` go at full speed (after a restart they are replays the
    /// store recognises). `send` returns false when nobody listens any more.
    /// Returns how many were sent. With a night `rate` is ignored: each
    /// ballot goes at its planned time.
    pub fn run(
        &self,
        unpaced: usize,
        rate: Rate,
        shutdown: &Shutdown,
        mut send: impl FnMut(Vec<Inbound>) -> bool,
    ) -> usize {
        if let Some(clock) = self.night {
            return self.run_night(clock, unpaced, shutdown, send);
        }
        let chunk = match rate {
            Rate::Max => 2048,
            Rate::PerSecond(r) => (r / 50).clamp(1, 2048) as usize,
        };
        let mut began = Instant::now();
        let mut i = 0;
        while i < self.plan.len() && !shutdown.is_requested() {
            let paced = i.saturating_sub(unpaced);
            if paced == 0 {
                began = Instant::now();
            }
            if let Rate::PerSecond(r) = rate {
                // Pace by the plan, not by the last sleep, so the rate does not drift.
                let due = Duration::from_secs_f64(paced as f64 / r as f64);
                if let Some(wait) = due.checked_sub(began.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let step = if i < unpaced { 2048 } else { chunk };
            let end = (i + step).min(self.plan.len());
            let now = crate::model::now_millis();
            let batch: Vec<Inbound> = (i..end).map(|k| self.ballot(k, now)).collect();
            if !send(batch) {
                break;
            }
            i = end;
        }
        i
    }
}

/// The plan without a night: voters in a seeded order, each ballot sent as
/// soon as the rate allows.
fn plan(cfg: &SimConfig, voters: &[SimVoter], parties: &[usize]) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x005e_edba_1107);
    let mut order: Vec<u32> = (0..voters.len() as u32).collect();
    // Fisher-Yates by hand: rand's shuffle is not promised stable across versions.
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let voting = ((voters.len() as f64) * cfg.turnout.clamp(0.0, 1.0)).round() as usize;
    let mut plan = Vec::with_capacity(voting + voting / 16);
    let mut bad = 0usize;
    for (n, &voter) in order[..voting].iter().enumerate() {
        let candidate = choose(&mut rng, &voters[voter as usize], parties);
        let late = rng.random_bool(cfg.late_share.clamp(0.0, 1.0));
        plan.push(Planned::Vote {
            voter,
            candidate,
            late,
        });
        if n > 0 && rng.random_bool(cfg.duplicate_share.clamp(0.0, 1.0)) {
            let earlier = order[rng.random_range(0..n)];
            let candidate = rng.random_range(0..parties.len().max(1)) as u16;
            plan.push(Planned::Duplicate {
                voter: earlier,
                candidate,
            });
        }
        if rng.random_bool(cfg.invalid_share.clamp(0.0, 1.0)) {
            plan.push(Planned::Bad {
                voter,
                kind: INVALID_KINDS[bad % INVALID_KINDS.len()],
            });
            bad += 1;
        }
    }
    plan
}

/// Party 0 Management, 1 Savior, 2 Tech Republic (the original's three);
/// other candidates get a slot by position.
fn party_index(c: &Candidate, position: usize) -> usize {
    let p = c.party_affiliation.to_ascii_lowercase();
    if p.contains("management") {
        0
    } else if p.contains("savior") {
        1
    } else if p.contains("tech") {
        2
    } else {
        position % 3
    }
}

/// Picks a candidate: the state's lean splits Management and Savior, young
/// voters lean Tech Republic, and gender tilts a little.
fn choose(rng: &mut ChaCha8Rng, v: &SimVoter, parties: &[usize]) -> u16 {
    if parties.is_empty() {
        return 0;
    }
    let youth = (40.0 - v.age as f64) / 20.0;
    let weights: Vec<f64> = parties
        .iter()
        .map(|&p| match p {
            0 => (1.3 * v.lean).exp() * if v.gender == Gender::Male { 1.15 } else { 1.0 },
            1 => (-1.3 * v.lean).exp() * if v.gender == Gender::Female { 1.2 } else { 1.0 },
            _ => 0.5 * (0.9 * youth).exp(),
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i as u16;
        }
        x -= w;
    }
    (parties.len() - 1) as u16
}

/// A UUID-shaped ballot id, a pure function of (seed, index).
pub fn ballot_id(seed: u64, index: u64) -> String {
    let a = splitmix(seed ^ 0x00ba_1107 ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = splitmix(a ^ index);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
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
