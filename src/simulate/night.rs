//! An election night compressed into a run: every ballot gets a planned time
//! in the night, states close in their real waves, turnout differs by
//! state, and one candidate's voters report early, so the first returns
//! lean to them and the final count does not (as mail-in and urban precincts
//! shift real nights).
//!
//! The plan is a pure function of (seed, electorate, config): planned times
//! are offsets from the night's start, so the same seed plays the same night
//! whenever it starts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{choose, Planned, SimConfig, SimVoter, NIGHT_KINDS};
use crate::model::{Millis, PollClose};
use crate::states::{LAST_CLOSE_STEP, STATES};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Night {
    /// From the start to the end of the night; the last wave closes at 95%.
    pub duration_ms: Millis,
    /// In [0, 1]: how strongly early returns over-represent `skew_candidate`.
    pub skew: f64,
    /// Index into the election's candidates.
    pub skew_candidate: usize,
    /// Each state's turnout is drawn within ± this around the configured one.
    pub turnout_spread: f64,
}

/// Below 1 a draw `u^e` piles up toward 1: 0.5 makes a state's votes come
/// in at a rate rising steadily toward its close, as real turnout does.
const RUSH: f64 = 0.5;

impl Night {
    fn first_close_offset(&self) -> Millis {
        self.duration_ms * 2 / 5
    }

    fn step_ms(&self) -> Millis {
        let last = self.duration_ms * 19 / 20;
        ((last - self.first_close_offset()) / i64::from(LAST_CLOSE_STEP)).max(1)
    }

    /// The schedule of a night that starts at `start`: the first wave closes
    /// at 40% of the night, the last at about 95%.
    pub fn polls(&self, start: Millis) -> PollClose {
        PollClose {
            first_close: start + self.first_close_offset(),
            step_ms: self.step_ms(),
        }
    }

    /// The start of the night whose schedule is `polls`: [`Night::polls`] undone.
    pub fn start_of(&self, polls: PollClose) -> Millis {
        polls.first_close - self.first_close_offset()
    }

    /// When a state of wave `close_step` closes, in ms after the start.
    pub(super) fn close_offset(&self, close_step: u8) -> Millis {
        self.first_close_offset() + i64::from(close_step) * self.step_ms()
    }

    /// A ballot cast after the close is planned this long after it: half a
    /// wave, so even the last wave's is sent before the night ends.
    fn after_close_delay(&self) -> Millis {
        (self.step_ms() / 2).max(1)
    }
}

/// The night's plan and each ballot's planned offset, in planned-time order.
pub(super) fn plan(
    night: &Night,
    cfg: &SimConfig,
    voters: &[SimVoter],
    parties: &[usize],
) -> (Vec<Planned>, Vec<Millis>) {
    // Its own stream: the night draws differ from the plain plan's anyway.
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0e1e_c710_4219);
    let quota = state_quotas(&mut rng, night, cfg.turnout, voters);
    let mut order: Vec<u32> = (0..voters.len() as u32).collect();
    // Fisher-Yates by hand: rand's shuffle is not promised stable across versions.
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let mut taken = vec![0usize; quota.len()];
    let voting: Vec<u32> = order
        .into_iter()
        .filter(|&v| {
            let s = voters[v as usize].state as usize;
            taken[s] += 1;
            taken[s] <= quota[s]
        })
        .collect();
    // Skew candidate voters draw with a larger exponent (earlier times),
    // everyone else with a smaller one; over the whole state nobody's count
    // changes, only when it arrives.
    let lean = 1.0 + night.skew.clamp(0.0, 1.0);
    let close_of = |v: u32| night.close_offset(voters[v as usize].close_step());
    let mut timed: Vec<(Millis, Planned)> = Vec::with_capacity(voting.len() + voting.len() / 16);
    let mut cast: Vec<Millis> = Vec::with_capacity(voting.len());
    let mut bad = 0usize;
    for (n, &voter) in voting.iter().enumerate() {
        let candidate = choose(&mut rng, &voters[voter as usize], parties);
        let late = rng.random_bool(cfg.late_share.clamp(0.0, 1.0));
        let close = close_of(voter);
        let exponent = match candidate as usize == night.skew_candidate {
            true => RUSH * lean,
            false => RUSH / lean,
        };
        let at = ((rng.random::<f64>().powf(exponent) * close as f64) as Millis).min(close - 1);
        cast.push(at);
        let vote = Planned::Vote {
            voter,
            candidate,
            late,
        };
        timed.push((at, vote));
        if n > 0 && rng.random_bool(cfg.duplicate_share.clamp(0.0, 1.0)) {
            let k = rng.random_range(0..n);
            let (earlier, first) = (voting[k], cast[k]);
            // After the first ballot (a tie keeps plan order), before the close.
            let close = close_of(earlier);
            let at = first + ((close - first) as f64 * rng.random::<f64>()) as Millis;
            let candidate = rng.random_range(0..parties.len().max(1)) as u16;
            let dup = Planned::Duplicate {
                voter: earlier,
                candidate,
            };
            timed.push((at.clamp(first, close - 1), dup));
        }
        if rng.random_bool(cfg.invalid_share.clamp(0.0, 1.0)) {
            let kind = NIGHT_KINDS[bad % NIGHT_KINDS.len()];
            let at = match kind {
                super::Invalid::AfterClose => close + night.after_close_delay(),
                _ => at,
            };
            timed.push((at, Planned::Bad { voter, kind }));
            bad += 1;
        }
    }
    // Stable: equal times keep plan order, so a duplicate follows its first.
    timed.sort_by_key(|(at, _)| *at);
    let (at, plan) = timed.into_iter().unzip();
    (plan, at)
}

/// How many voters vote in each state (the last slot: states the table does
/// not know). Each state draws its turnout within ± the spread; the draws
/// are then shifted together so the electorate's turnout stays the
/// configured one.
fn state_quotas(
    rng: &mut ChaCha8Rng,
    night: &Night,
    turnout: f64,
    voters: &[SimVoter],
) -> Vec<usize> {
    let mut registered = vec![0usize; STATES.len() + 1];
    for v in voters {
        registered[v.state as usize] += 1;
    }
    let turnout = turnout.clamp(0.0, 1.0);
    let spread = night.turnout_spread.clamp(0.0, 1.0);
    let drawn: Vec<f64> = registered
        .iter()
        .map(|_| turnout + spread * (2.0 * rng.random::<f64>() - 1.0))
        .collect();
    let total = voters.len().max(1) as f64;
    let mean: f64 = drawn
        .iter()
        .zip(&registered)
        .map(|(t, &n)| t * n as f64)
        .sum::<f64>()
        / total;
    let shift = turnout - mean;
    drawn
        .iter()
        .zip(&registered)
        .map(|(t, &n)| {
            let t = (t + shift)
                .clamp(turnout - spread, turnout + spread)
                .clamp(0.05, 0.98);
            (n as f64 * t).round() as usize
        })
        .collect()
}
