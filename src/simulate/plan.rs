//! The plan without a night, and how a voter picks a candidate (a night
//! picks the same way).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Planned, SimConfig, SimVoter, INVALID_KINDS};
use crate::model::{Candidate, Gender};

/// The plan without a night: voters in a seeded order, each ballot sent as
/// soon as the rate allows.
pub(super) fn plan(cfg: &SimConfig, voters: &[SimVoter], parties: &[usize]) -> Vec<Planned> {
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
pub(super) fn party_index(c: &Candidate, position: usize) -> usize {
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
pub(super) fn choose(rng: &mut ChaCha8Rng, v: &SimVoter, parties: &[usize]) -> u16 {
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
