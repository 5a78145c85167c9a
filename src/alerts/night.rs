//! Seeded synthetic streams to measure the detectors on: ballots from the
//! 51 states in proportion to population, from many client sources, a few
//! refused as already voted, each state's shares steady around its lean;
//! and, on demand, one anomaly injected at a known stream time, in a known
//! place. Same seed, same stream.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Millis, Observation, Registry};
use crate::desk::baseline_shares;
use crate::states::STATES;

/// The anomalies the streams can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Injection {
    None,
    /// One more ballot from one source into one state, 60% on top of the
    /// stream, for 30 s.
    Burst,
    /// One state's already-voted refusals from 1% to 30% of its ballots.
    Duplicates,
    /// One state's votes, for one second, cast after its close.
    AfterClose,
    /// Extra votes stuffed into one small state (90 a second) until it has
    /// more than its registered voters.
    TurnoutPush,
    /// One state's votes from then on go 90% to the one of its two main
    /// candidates that trails there.
    Swing,
}

impl Injection {
    pub const ALL: [Injection; 6] = [
        Injection::None,
        Injection::Burst,
        Injection::Duplicates,
        Injection::AfterClose,
        Injection::TurnoutPush,
        Injection::Swing,
    ];
}

#[derive(Clone, Copy, Debug)]
pub struct NightConfig {
    pub seed: u64,
    /// Ballots a second across the country.
    pub rate: u32,
    /// The stream's length, and when the injection starts.
    pub length_ms: Millis,
    pub inject_at: Millis,
    pub injection: Injection,
}

impl NightConfig {
    pub fn new(seed: u64, injection: Injection) -> NightConfig {
        NightConfig {
            seed,
            rate: 300,
            length_ms: 600_000,
            inject_at: 300_000,
            injection,
        }
    }
}

/// Where the anomaly went: the state (by name), and the source that sent
/// it, for the injections that have one (a burst, a turnout push).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub state: &'static str,
    pub source: Option<&'static str>,
}

/// The registry of a night and the target of its injection.
pub fn registry(cfg: &NightConfig) -> (Registry, Target) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    // Registration: what the night brings each state, with room (1.6×), so
    // a clean night never reaches it.
    let reg = Registry {
        registered: STATES
            .iter()
            .map(|s| {
                let n = expected_votes(cfg, s.name, cfg.length_ms) as f64 * 1.6;
                (s.name.to_string(), n as u64 + 10)
            })
            .collect(),
        candidates: (0..3).map(|k| format!("c{k}")).collect(),
        opens: 0,
        closes: STATES
            .iter()
            .map(|s| (s.name.to_string(), cfg.length_ms))
            .collect(),
    };
    // Big enough to be watched well (the ten most populous), except the
    // turnout push, which needs a state that can run out of voters.
    let state = if cfg.injection == Injection::TurnoutPush {
        ["Wyoming", "Vermont", "Alaska"][rng.random_range(0..3)]
    } else {
        let mut big: Vec<_> = STATES.iter().collect();
        big.sort_by_key(|s| std::cmp::Reverse(s.population_k));
        big[rng.random_range(0..10)].name
    };
    let source = match cfg.injection {
        Injection::Burst => Some("bot"),
        Injection::TurnoutPush => Some("stuffer"),
        _ => None,
    };
    (reg, Target { state, source })
}

fn weight(name: &str) -> f64 {
    let total: u32 = STATES.iter().map(|s| s.population_k).sum();
    STATES
        .iter()
        .find(|s| s.name == name)
        .map_or(0.0, |s| f64::from(s.population_k) / f64::from(total))
}

/// Accepted votes a state is expected to have by `at` (99% of its ballots).
fn expected_votes(cfg: &NightConfig, state: &str, at: Millis) -> u64 {
    (f64::from(cfg.rate) * at as f64 / 1000.0 * weight(state) * 0.99) as u64
}

/// Plays the night, handing each observation to `f` in stream order.
pub fn play(cfg: &NightConfig, target: &Target, f: &mut dyn FnMut(&Observation<'_>)) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let cum: Vec<f64> = STATES
        .iter()
        .scan(0.0, |acc, s| {
            *acc += weight(s.name);
            Some(*acc)
        })
        .collect();
    let shares: Vec<Vec<f64>> = STATES.iter().map(|s| baseline_shares(s.lean, 3)).collect();
    let names = ["c0", "c1", "c2"];
    let gap = 1000.0 / f64::from(cfg.rate.max(1));
    let t0 = cfg.inject_at;
    let mut t = 0.0;
    loop {
        t += -gap * (1.0 - rng.random::<f64>()).ln();
        let at = t as Millis;
        if at >= cfg.length_ms {
            break;
        }
        let u: f64 = rng.random();
        let si = cum.iter().position(|&c| u < c).unwrap_or(STATES.len() - 1);
        let state = STATES[si].name;
        let here = state == target.state && at >= t0;
        let source = format!("ip-{}", rng.random_range(0..20_000));
        f(&Observation::Received {
            at,
            state: Some(state),
            source: &source,
        });
        if cfg.injection == Injection::Burst
            && (t0..t0 + 30_000).contains(&at)
            && rng.random_bool(0.6)
        {
            let state = Some(target.state);
            f(&Observation::Received {
                at,
                state,
                source: target.source.unwrap_or("bot"),
            });
            f(&Observation::Rejected {
                at,
                state,
                reason: "unknown_voter",
            });
        }
        if cfg.injection == Injection::TurnoutPush && at >= t0 && rng.random_bool(0.3) {
            let (state, source) = (target.state, target.source.unwrap_or("stuffer"));
            f(&Observation::Received {
                at,
                state: Some(state),
                source,
            });
            f(&Observation::Accepted {
                at,
                state,
                candidate: "c1",
                cast_at: at,
            });
        }
        let dup = if cfg.injection == Injection::Duplicates && here {
            0.3
        } else {
            0.01
        };
        if rng.random_bool(dup) {
            f(&Observation::Rejected {
                at,
                state: Some(state),
                reason: "already_voted",
            });
            continue;
        }
        let mut c = pick(&mut rng, &shares[si]);
        if cfg.injection == Injection::Swing && here {
            let trailing = usize::from(shares[si][1] < shares[si][0]);
            c = if rng.random_bool(0.9) {
                trailing
            } else {
                1 - trailing
            };
        }
        let late = cfg.injection == Injection::AfterClose && here && at < t0 + 1_000;
        let cast_at = if late { cfg.length_ms + 5_000 } else { at };
        f(&Observation::Accepted {
            at,
            state,
            candidate: names[c],
            cast_at,
        });
    }
}

fn pick(rng: &mut ChaCha8Rng, shares: &[f64]) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, s) in shares.iter().enumerate() {
        acc += s;
        if u < acc {
            return i;
        }
    }
    shares.len() - 1
}
