//! A seeded synthetic election night, for grading the desk against a known
//! truth: 51 states with their registered voters, true turnouts and shares
//! drawn around the desk's own prior (a national swing plus state noise),
//! ballots counted in a chosen order, polls closing in their waves and
//! states sealed after the lateness allowance. Pure: same seed, same night.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{baseline_shares, Millis, Snapshot, StateInput};
use crate::states::STATES;

/// The order in which each state's ballots are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ordering {
    /// Uniformly shuffled: the counted part is a random sample.
    Random,
    /// One candidate's voters come early (like mail ballots): each of its
    /// ballots is drawn first with a weight 1.15–1.4 times the others'.
    Skewed,
    /// The eventual winner's ballots first, the runner-up's last: the lead
    /// peaks before every outstanding ballot goes to the trailing one, the
    /// hardest order for a certain call and a trap for any model.
    Adversarial,
}

impl Ordering {
    pub const ALL: [Ordering; 3] = [Ordering::Random, Ordering::Skewed, Ordering::Adversarial];
}

#[derive(Clone, Debug)]
pub struct NightConfig {
    pub seed: u64,
    /// Registered voters across all states.
    pub voters: u64,
    pub ordering: Ordering,
    /// About how many snapshots by counted ballots (seals add their own).
    pub snapshots: u64,
    /// From a state's poll close to its seal.
    pub allowance_ms: Millis,
}

/// A night: the snapshots in order and the final counts they lead to.
pub struct Night {
    pub candidates: Vec<String>,
    pub snapshots: Vec<Snapshot>,
    /// Final votes per state (in `STATES` order) and candidate.
    pub finals: Vec<Vec<u64>>,
}

const MINUTE: Millis = 60_000;
/// 7 pm Eastern on a fictional night; only differences matter.
const NIGHT_START: Millis = 1_793_660_400_000;

pub fn candidates() -> Vec<String> {
    ["management-party", "savior-party", "tech-republic-party"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Box–Muller: rand 0.9 without rand_distr has no normal.
fn normal(rng: &mut ChaCha8Rng, sd: f64) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// One state's counting: its ballots in counting order and its clock.
struct Count {
    ballots: Vec<u8>,
    registered: u64,
    start: Millis,
    duration: Millis,
    close: Millis,
    seal: Millis,
    done: usize,
    counted: Vec<u64>,
}

impl Count {
    fn target(&self, t: Millis) -> usize {
        let f = ((t - self.start) as f64 / self.duration as f64).clamp(0.0, 1.0);
        (f * self.ballots.len() as f64).round() as usize
    }
}

pub fn generate(cfg: &NightConfig) -> Night {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x00de_5c0a_11ed);
    let candidates = candidates();
    let k = candidates.len();
    let swing: Vec<f64> = (0..k).map(|_| normal(&mut rng, 0.15)).collect();
    let turnout = rng.random_range(0.55..0.85);
    let skewed = rng.random_range(0..2usize);
    let factor = rng.random_range(1.15..1.4);
    let population: u64 = STATES.iter().map(|s| u64::from(s.population_k)).sum();
    let mut counts: Vec<Count> = STATES
        .iter()
        .map(|s| {
            let registered = (cfg.voters * u64::from(s.population_k) / population).max(30);
            let t = (turnout + normal(&mut rng, 0.05)).clamp(0.3, 0.98);
            let total = ((registered as f64 * t).round() as u64).max(1);
            let mut w: Vec<f64> = baseline_shares(s.lean, k)
                .iter()
                .zip(&swing)
                .map(|(b, g)| b * (g + normal(&mut rng, 0.10)).exp())
                .collect();
            let sum: f64 = w.iter().sum();
            w.iter_mut().for_each(|x| *x /= sum);
            let mut ballots: Vec<u8> = (0..total).map(|_| pick(&mut rng, &w)).collect();
            order(&mut rng, &mut ballots, cfg.ordering, skewed, factor, k);
            let close = MINUTE * (60 + 30 * i64::from(s.close_step));
            let start = close - rng.random_range(0..60) * MINUTE;
            Count {
                ballots,
                registered,
                start,
                duration: rng.random_range(40..240) * MINUTE,
                close,
                seal: close + cfg.allowance_ms,
                done: 0,
                counted: vec![0; k],
            }
        })
        .collect();
    let finals: Vec<Vec<u64>> = counts
        .iter()
        .map(|c| {
            (0..k)
                .map(|j| c.ballots.iter().filter(|&&b| b as usize == j).count() as u64)
                .collect()
        })
        .collect();
    let all: u64 = finals.iter().flatten().sum();
    let every = (all / cfg.snapshots.max(1)).max(1);
    let end = counts
        .iter()
        .map(|c| (c.start + c.duration).max(c.seal))
        .max()
        .unwrap_or(0)
        + MINUTE;
    let (mut snapshots, mut last, mut position) = (Vec::new(), 0u64, 0i64);
    let mut t = 0;
    while t <= end {
        let mut sealed_now = false;
        for c in counts.iter_mut() {
            let target = c.target(t);
            while c.done < target {
                c.counted[c.ballots[c.done] as usize] += 1;
                c.done += 1;
                position += 1;
            }
            sealed_now |= c.seal > t - MINUTE && c.seal <= t;
        }
        let total = position as u64;
        if total >= last + every || sealed_now || t + MINUTE > end {
            last = total;
            snapshots.push(snapshot(&counts, &candidates, t, position));
        }
        t += MINUTE;
    }
    Night {
        candidates,
        snapshots,
        finals,
    }
}

fn snapshot(counts: &[Count], candidates: &[String], t: Millis, position: i64) -> Snapshot {
    Snapshot {
        now: NIGHT_START + t,
        position,
        candidates: candidates.to_vec(),
        states: STATES
            .iter()
            .zip(counts)
            .map(|(s, c)| StateInput {
                state: s.name.to_string(),
                registered: c.registered,
                counted: c.counted.clone(),
                final_total: (t >= c.seal).then_some(c.ballots.len() as u64),
                polls_closed: t >= c.close,
            })
            .collect(),
    }
}

fn pick(rng: &mut ChaCha8Rng, w: &[f64]) -> u8 {
    let mut x: f64 = rng.random();
    for (i, p) in w.iter().enumerate() {
        if x < *p {
            return i as u8;
        }
        x -= p;
    }
    (w.len() - 1) as u8
}

fn order(
    rng: &mut ChaCha8Rng,
    ballots: &mut [u8],
    how: Ordering,
    skewed: usize,
    factor: f64,
    k: usize,
) {
    match how {
        Ordering::Random => ballots.shuffle(rng),
        Ordering::Skewed => {
            // Weighted sampling without replacement (Efraimidis–Spirakis):
            // sorting by u^(1/w) descending draws heavier ballots earlier.
            let mut keyed: Vec<(f64, u8)> = ballots
                .iter()
                .map(|&b| {
                    let w = if b as usize == skewed { factor } else { 1.0 };
                    (rng.random::<f64>().powf(1.0 / w), b)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            ballots.iter_mut().zip(keyed).for_each(|(b, (_, v))| *b = v);
        }
        Ordering::Adversarial => {
            let mut n = vec![0usize; k];
            ballots.iter().for_each(|&b| n[b as usize] += 1);
            // Winner first, then the others from the smallest up, so the
            // runner-up's ballots are all counted last.
            let mut rank: Vec<usize> = (0..k).collect();
            rank.sort_by_key(|&j| (std::cmp::Reverse(n[j]), j));
            let mut seq = vec![rank[0]];
            seq.extend(rank[1..].iter().rev());
            let mut i = 0;
            for j in seq {
                ballots[i..i + n[j]].fill(j as u8);
                i += n[j];
            }
        }
    }
}
