//! An election night compressed into a run: every ballot gets a planned time
//! in the night, states close in their real waves, turnout differs by
//! state, and one candidate's voters report early, so the first returns
//! lean to them and the final count does not (as mail-in and urban precincts
//! shift real nights).
//!
//! The plan is a pure function of (seed, electorate, config): planned times
//! are offsets from the night's start, so the same seed plays the same night
//! whenever it starts.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{choose, NightClock, Planned, SimConfig, SimVoter, Simulation, NIGHT_KINDS};
use crate::bus::Inbound;
use crate::model::{now_millis, Millis, PollClose};
use crate::shutdown::Shutdown;
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

/// Sends at most this many ballots in one batch.
const CHUNK: usize = 2048;

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

impl Simulation {
    /// The night's pacing: each ballot is sent at its planned time after the
    /// night's start by the wall clock, so the sender and the processor's
    /// schedule agree even when the run began after the start.
    pub(super) fn run_night(
        &self,
        clock: NightClock,
        unpaced: usize,
        shutdown: &Shutdown,
        mut send: impl FnMut(Vec<Inbound>) -> bool,
    ) -> usize {
        let into = now_millis() - clock.start;
        let origin = match into >= 0 {
            true => Instant::now().checked_sub(Duration::from_millis(into as u64)),
            false => Instant::now().checked_add(Duration::from_millis(into.unsigned_abs())),
        }
        .unwrap_or_else(Instant::now);
        let due = |k: usize| origin + Duration::from_millis(self.at[k].max(0) as u64);
        let mut i = 0;
        while i < self.plan.len() && !shutdown.is_requested() {
            if i >= unpaced {
                // In slices: a quiet stretch of the night must still hear a shutdown.
                let next = due(i);
                while let Some(wait) = next.checked_duration_since(Instant::now()) {
                    if wait.is_zero() || shutdown.is_requested() {
                        break;
                    }
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                }
                if shutdown.is_requested() {
                    break;
                }
            }
            let now = Instant::now();
            let mut end = i + 1;
            while end < self.plan.len() && end - i < CHUNK && (end < unpaced || due(end) <= now) {
                end += 1;
            }
            let stamp = now_millis();
            let batch: Vec<Inbound> = (i..end).map(|k| self.ballot(k, stamp)).collect();
            if !send(batch) {
                break;
            }
            i = end;
        }
        i
    }
}
