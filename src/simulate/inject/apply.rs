//! An injection applied to a night's plan: ballots added at planned times,
//! or the state's votes changed, with draws of its own.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{InjectError, Injection, Kind, Target};
use crate::model::{Millis, Voter};
use crate::simulate::kiosk::{kiosk_name, KIOSKS_PER_STATE};
use crate::simulate::plan::choose;
use crate::simulate::{Invalid, Night, Planned, SimVoter};
use crate::states::{UsState, STATES};

/// Voters a turnout injection registers have ids that start so: they are
/// not part of the electorate a simulation loads (else a restart would
/// plan another night).
pub const INJECTED_VOTER_PREFIX: &str = "latereg-";

/// Set on the number of a ballot an injection added: its id comes from a
/// sequence of its own, so the night's other ballots keep theirs.
pub(in crate::simulate) const INJECTED: u64 = 1 << 63;

/// A burst sends 60% on top of the stream, for 30 s.
const BURST_SHARE: f64 = 0.6;
const BURST_MS: Millis = 30_000;
/// Duplicates: 30% of the state's ballots, so 3 re-sent for every 7 votes.
const DUPLICATE_PER_VOTE: f64 = 3.0 / 7.0;
/// A swing sends this share of the state's votes to its trailing candidate.
const SWING_SHARE: f64 = 0.9;
/// A turnout push stuffs votes at this share of the country's ballot rate.
const STUFF_SHARE: f64 = 0.3;
/// Injected ballots a second at the least where a state's own rate is
/// lower: enough to stand out of a quiet state's count.
const MIN_PER_SECOND: usize = 10;

/// Voters registered in the middle of the night: before plan entry
/// `before` is sent, they are added to the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub before: usize,
    pub voters: Vec<Voter>,
}

/// The plan with its injections.
pub(in crate::simulate) struct Injected {
    pub plan: Vec<Planned>,
    pub at: Vec<Millis>,
    /// Each entry's ballot number (see [`INJECTED`]).
    pub numbers: Vec<u64>,
    /// The kiosks bursts come from, by `Planned::Forged` slot.
    pub forged: Vec<Arc<str>>,
    pub registrations: Vec<Registration>,
}

impl Injected {
    /// A plan with nothing injected.
    pub fn none(plan: Vec<Planned>, at: Vec<Millis>) -> Injected {
        Injected {
            plan,
            at,
            numbers: Vec::new(),
            forged: Vec::new(),
            registrations: Vec::new(),
        }
    }
}

/// What an injection needs of the night.
pub(in crate::simulate) struct NightPlan<'a> {
    pub night: &'a Night,
    pub seed: u64,
    pub parties: &'a [usize],
}

pub(in crate::simulate) fn apply(
    injections: &[Injection],
    ctx: &NightPlan<'_>,
    voters: &mut Vec<SimVoter>,
    plan: Vec<Planned>,
    at: Vec<Millis>,
) -> Result<Injected, InjectError> {
    let mut entries: Vec<(Millis, Planned)> = at.into_iter().zip(plan).collect();
    let mut added: Vec<(Millis, Planned)> = Vec::new();
    let mut forged = Vec::new();
    let mut stuffed: Vec<(Millis, Vec<Voter>)> = Vec::new();
    for (n, inj) in injections.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x1a7e_c7ed ^ (n as u64) << 32);
        let state = target_state(inj, ctx.night, voters, &mut rng)?;
        let one = Injecting {
            inj,
            s: state_index(state),
            rng: &mut rng,
            voters: &mut *voters,
        };
        match inj.kind {
            Kind::Burst => {
                let kiosk = match inj.target {
                    Some(Target::Kiosk(_, k)) => k,
                    _ => one.rng.random_range(1..=KIOSKS_PER_STATE),
                };
                let slot = forged.len() as u16;
                forged.push(kiosk_name(state.code, kiosk));
                added.extend(burst(&entries, inj.at, slot, one.rng));
            }
            Kind::Duplicates => added.extend(one.duplicates(&entries, ctx)),
            Kind::AfterClose => added.extend(one.after_close(&entries, ctx.night)),
            Kind::Swing => one.swing(&mut entries, ctx)?,
            Kind::Turnout => {
                let (votes, registered) = one.turnout(&entries, ctx);
                added.extend(votes);
                stuffed.push((inj.at, registered));
            }
        }
    }
    let original = entries.len() as u64;
    let mut numbered: Vec<(Millis, Planned, u64)> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (at, p))| (at, p, i as u64))
        .chain(
            added
                .into_iter()
                .enumerate()
                .map(|(k, (at, p))| (at, p, INJECTED | k as u64)),
        )
        .collect();
    // Stable: at one time the night's own ballots go first, then the
    // injected ones in the order they were made.
    numbered.sort_by_key(|(at, _, _)| *at);
    let at: Vec<Millis> = numbered.iter().map(|e| e.0).collect();
    let mut registrations: Vec<Registration> = stuffed
        .into_iter()
        .map(|(from, voters)| Registration {
            before: at.partition_point(|&t| t < from),
            voters,
        })
        .collect();
    registrations.sort_by_key(|r| r.before);
    let numbers = match numbered.len() as u64 == original {
        // Nothing added: each ballot is numbered by its place, as without.
        true => Vec::new(),
        false => numbered.iter().map(|e| e.2).collect(),
    };
    Ok(Injected {
        plan: numbered.into_iter().map(|e| e.1).collect(),
        at,
        numbers,
        forged,
        registrations,
    })
}

fn state_index(state: &UsState) -> u8 {
    STATES
        .iter()
        .position(|s| s.code == state.code)
        .unwrap_or(0) as u8
}

fn close_of(night: &Night, s: u8) -> Millis {
    night.close_offset(STATES[s as usize].close_step)
}

/// The state the injection goes to: the one it names, else one drawn from
/// the seed among those it can go to then (the ten most populous; for a
/// turnout push a small state; for after-close one already closed).
fn target_state(
    inj: &Injection,
    night: &Night,
    voters: &[SimVoter],
    rng: &mut ChaCha8Rng,
) -> Result<&'static UsState, InjectError> {
    let kind = inj.kind.as_str();
    if inj.at >= night.duration_ms {
        return Err(InjectError::AfterNight {
            kind,
            at_ms: inj.at,
            end_ms: night.duration_ms,
        });
    }
    let open = |s: &UsState| night.close_offset(s.close_step) > inj.at;
    let has_voters = |s: &UsState| {
        let i = state_index(s);
        voters.iter().any(|v| v.state == i)
    };
    if let Some(t) = &inj.target {
        let s = t.state();
        let close_ms = night.close_offset(s.close_step);
        let needs_voters = matches!(inj.kind, Kind::Duplicates | Kind::AfterClose | Kind::Swing);
        if needs_voters && !has_voters(s) {
            return Err(InjectError::NoVoters {
                kind,
                state: s.name,
            });
        }
        return match (inj.kind, open(s)) {
            (Kind::AfterClose, true) => Err(InjectError::NotClosed {
                state: s.name,
                at_ms: inj.at,
                close_ms,
            }),
            (Kind::Duplicates | Kind::Swing | Kind::Turnout, false) => Err(InjectError::Closed {
                kind,
                state: s.name,
                at_ms: inj.at,
                close_ms,
            }),
            _ => Ok(s),
        };
    }
    let candidates: Vec<&'static UsState> = match inj.kind {
        Kind::Turnout => ["WY", "VT", "AK"]
            .iter()
            .filter_map(|c| STATES.iter().find(|s| s.code == *c))
            .filter(|s| open(s))
            .collect(),
        Kind::AfterClose => STATES
            .iter()
            .filter(|s| !open(s) && has_voters(s))
            .collect(),
        _ => {
            let mut big: Vec<&'static UsState> = STATES.iter().filter(|s| open(s)).collect();
            big.sort_by_key(|s| std::cmp::Reverse(s.population_k));
            big.truncate(10);
            big
        }
    };
    match candidates.len() {
        0 => Err(InjectError::NoState {
            kind,
            at_ms: inj.at,
        }),
        n => Ok(candidates[rng.random_range(0..n)]),
    }
}

/// One injection being applied.
struct Injecting<'a> {
    inj: &'a Injection,
    s: u8,
    rng: &'a mut ChaCha8Rng,
    voters: &'a mut Vec<SimVoter>,
}

fn burst(
    entries: &[(Millis, Planned)],
    from: Millis,
    slot: u16,
    rng: &mut ChaCha8Rng,
) -> Vec<(Millis, Planned)> {
    entries
        .iter()
        .filter(|(at, _)| (from..from + BURST_MS).contains(at))
        .filter_map(|(at, _)| {
            rng.random_bool(BURST_SHARE)
                .then_some((*at, Planned::Forged { slot }))
        })
        .collect()
}

impl Injecting<'_> {
    fn in_state(&self, p: &Planned) -> Option<u32> {
        match *p {
            Planned::Vote { voter, .. } if self.voters[voter as usize].state == self.s => {
                Some(voter)
            }
            _ => None,
        }
    }

    /// Voters of the state who voted re-send, with new ballot ids.
    fn duplicates(
        self,
        entries: &[(Millis, Planned)],
        ctx: &NightPlan<'_>,
    ) -> Vec<(Millis, Planned)> {
        let close = close_of(ctx.night, self.s);
        let mut voted: Vec<u32> = Vec::new();
        let mut out = Vec::new();
        for (at, p) in entries {
            let Some(voter) = self.in_state(p) else {
                continue;
            };
            let due = *at >= self.inj.at && *at < close && !voted.is_empty();
            if due && self.rng.random_bool(DUPLICATE_PER_VOTE) {
                let again = voted[self.rng.random_range(0..voted.len())];
                let candidate = self.rng.random_range(0..ctx.parties.len().max(1)) as u16;
                let dup = Planned::Duplicate {
                    voter: again,
                    candidate,
                };
                out.push((*at, dup));
            }
            voted.push(voter);
        }
        out
    }

    /// For one second, the state's voters cast after its close: as many a
    /// second as it had votes a second while open, at least ten.
    fn after_close(self, entries: &[(Millis, Planned)], night: &Night) -> Vec<(Millis, Planned)> {
        let close = close_of(night, self.s).max(1);
        let votes = entries
            .iter()
            .filter(|(_, p)| self.in_state(p).is_some())
            .count();
        let n = (votes * 1_000 / close as usize).max(MIN_PER_SECOND);
        let state: Vec<u32> = (0..self.voters.len() as u32)
            .filter(|&v| self.voters[v as usize].state == self.s)
            .collect();
        (0..n)
            .map(|k| {
                let voter = state[self.rng.random_range(0..state.len())];
                let at = self.inj.at + (k * 1_000 / n) as Millis;
                let kind = Invalid::AfterClose;
                (at, Planned::Bad { voter, kind })
            })
            .collect()
    }

    /// The state's votes from then on go 90% to the main candidate that
    /// trails there (by its lean: the other of the two leads).
    fn swing(
        self,
        entries: &mut [(Millis, Planned)],
        ctx: &NightPlan<'_>,
    ) -> Result<(), InjectError> {
        let of_party = |p: usize| ctx.parties.iter().position(|&q| q == p).map(|i| i as u16);
        let (Some(first), Some(second)) = (of_party(0), of_party(1)) else {
            return Err(InjectError::TwoParties);
        };
        let leads_first = STATES[self.s as usize].lean > 0.0;
        let (trailing, leading) = match leads_first {
            true => (second, first),
            false => (first, second),
        };
        for (at, p) in entries.iter_mut() {
            if *at < self.inj.at || self.in_state(p).is_none() {
                continue;
            }
            if let Planned::Vote { candidate, .. } = p {
                *candidate = match self.rng.random_bool(SWING_SHARE) {
                    true => trailing,
                    false => leading,
                };
            }
        }
        Ok(())
    }

    /// New voters of the state, registered at the injection's time, and
    /// their votes, stuffed at 30% of the country's rate until the state
    /// has more votes than it had registered voters.
    fn turnout(
        self,
        entries: &[(Millis, Planned)],
        ctx: &NightPlan<'_>,
    ) -> (Vec<(Millis, Planned)>, Vec<Voter>) {
        let from = self.inj.at;
        let state = &STATES[self.s as usize];
        let registered = self.voters.iter().filter(|v| v.state == self.s).count();
        let before = entries
            .iter()
            .filter(|(at, p)| *at < from && self.in_state(p).is_some())
            .count();
        let n =
            (registered - before.min(registered) + (registered / 100).max(MIN_PER_SECOND)).max(1);
        let country = entries
            .iter()
            .filter(|(at, _)| (from..from + 10_000).contains(at))
            .count() as f64
            / 10_000.0;
        let per_ms = (country * STUFF_SHARE).max(MIN_PER_SECOND as f64 / 1_000.0);
        let close = close_of(ctx.night, self.s);
        let span = (n as f64 / per_ms).min((close - 1 - from) as f64);
        let mut votes = Vec::with_capacity(n);
        let mut registered_now = Vec::with_capacity(n);
        for k in 0..n {
            let v = late_voter(ctx.seed, state, k as u64);
            let sim = SimVoter {
                id: v.voter_id.clone(),
                lean: state.lean,
                age: v.registered_age,
                gender: v.gender,
                state: self.s,
            };
            let candidate = choose(self.rng, &sim, ctx.parties);
            let voter = self.voters.len() as u32;
            self.voters.push(sim);
            registered_now.push(v);
            let at = from + (k as f64 * span / n as f64) as Millis;
            let late = false;
            votes.push((
                at,
                Planned::Vote {
                    voter,
                    candidate,
                    late,
                },
            ));
        }
        (votes, registered_now)
    }
}

/// Voter `k` a turnout push registers in `state`: a generated profile,
/// living there.
fn late_voter(seed: u64, state: &UsState, k: u64) -> Voter {
    let mut v = crate::generate::voter(seed ^ 0x1a7e_4e60, k);
    v.voter_id = format!("{INJECTED_VOTER_PREFIX}{seed:x}-{}-{k}", state.code);
    v.address_state = state.name.to_string();
    v.address_city = state
        .cities
        .first()
        .copied()
        .unwrap_or(state.name)
        .to_string();
    let zip = state.zip_prefixes.first().copied().unwrap_or("000");
    v.address_postcode = format!("{zip}{:02}", k % 100);
    v
}
