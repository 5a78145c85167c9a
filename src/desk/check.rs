//! Grades the desk on synthetic nights with a known truth: any wrong or
//! reversed call, any race left uncalled at the end, any event a restart
//! repeats is a failure; projections and interval coverage are measured.

use std::collections::HashMap;

use super::night::{self, NightConfig, Ordering};
use super::{Desk, DeskConfig, DeskEvent, EventKind, Race, Status, View};
use crate::states::STATES;

pub use super::report::{CheckReport, Tally};

/// `check_with` under the default configuration.
pub fn check(nights: usize, seed: u64, voters: u64) -> CheckReport {
    check_with(&DeskConfig::default(), nights, seed, voters)
}

/// Replays `nights` nights (orderings in turn; every fourth a popular-vote
/// race; every fifth restarts its desk mid-night from its events).
pub fn check_with(cfg: &DeskConfig, nights: usize, seed: u64, voters: u64) -> CheckReport {
    let mut by: Vec<(Ordering, Tally)> = Ordering::ALL
        .iter()
        .map(|&o| (o, Tally::default()))
        .collect();
    let mut failures = Vec::new();
    for i in 0..nights {
        let ordering = Ordering::ALL[i % Ordering::ALL.len()];
        let mut cfg = cfg.clone();
        cfg.popular_vote = i % 4 == 3;
        let ncfg = NightConfig {
            seed: seed
                .wrapping_add(i as u64)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15),
            voters,
            ordering,
            snapshots: 150,
            allowance_ms: 20 * 60_000,
        };
        let tally = &mut by[i % Ordering::ALL.len()].1;
        let mut fail = |m: String| failures.push(format!("night {i} ({ordering:?}): {m}"));
        let n = night::generate(&ncfg);
        one_night(&cfg, &n, i % 5 == 2, tally, &mut fail);
    }
    CheckReport {
        nominal: cfg.interval,
        voters,
        by_ordering: by,
        failures,
    }
}

/// The winner of a count: None on a tie for first.
fn winner(votes: &[u64]) -> Option<usize> {
    let top = *votes.iter().max()?;
    let mut at = votes.iter().enumerate().filter(|(_, v)| **v == top);
    let first = at.next().map(|(i, _)| i);
    at.next().is_none().then_some(first).flatten()
}

fn one_night(
    cfg: &DeskConfig,
    n: &night::Night,
    restart: bool,
    t: &mut Tally,
    fail: &mut dyn FnMut(String),
) {
    let names = &n.candidates;
    let mut truth: HashMap<Race, Option<usize>> = HashMap::new();
    let mut ev = vec![0u16; names.len()];
    for (s, votes) in STATES.iter().zip(&n.finals) {
        let w = winner(votes);
        if let Some(w) = w {
            ev[w] += s.electoral_votes;
        }
        truth.insert(Race::State(s.name.to_string()), w);
    }
    let national = if cfg.popular_vote {
        let k = names.len();
        winner(
            &(0..k)
                .map(|j| n.finals.iter().map(|v| v[j]).sum())
                .collect::<Vec<u64>>(),
        )
    } else {
        let threshold = STATES.iter().map(|s| s.electoral_votes).sum::<u16>() / 2 + 1;
        ev.iter().position(|&e| e >= threshold)
    };
    truth.insert(Race::National, national);
    let name_of = |race: &Race| {
        truth
            .get(race)
            .copied()
            .flatten()
            .map(|i| names[i].as_str())
    };

    t.nights += 1;
    let mut desk = Desk::new(cfg.clone());
    let mut log: Vec<DeskEvent> = Vec::new();
    let mut called: HashMap<Race, String> = HashMap::new();
    let mid = n.snapshots.len() / 2;
    let mut last_view: Option<View> = None;
    for (si, snap) in n.snapshots.iter().enumerate() {
        let (view, events) = desk.observe(snap);
        t.snapshots += 1;
        for e in &events {
            if e.kind == EventKind::Suspended {
                t.suspended += 1;
                t.suspended_at += si as f64 / n.snapshots.len() as f64;
                continue;
            }
            if let Some(c) = called.get(&e.race) {
                fail(format!(
                    "{:?} called for {c}, then {:?} {}",
                    e.race, e.kind, e.candidate
                ));
            }
            let right = name_of(&e.race) == Some(e.candidate.as_str());
            match e.kind {
                EventKind::Called => {
                    t.calls += 1;
                    if !right {
                        t.wrong_calls += 1;
                        fail(format!(
                            "{:?} called for {}, the winner is {:?}",
                            e.race,
                            e.candidate,
                            name_of(&e.race)
                        ));
                    }
                    called.insert(e.race.clone(), e.candidate.clone());
                    if let Race::State(s) = &e.race {
                        let i = STATES.iter().position(|x| x.name == *s).unwrap_or(0);
                        let fin: u64 = n.finals[i].iter().sum();
                        let c: u64 = snap.states[i].counted.iter().sum();
                        t.called_reporting += c as f64 / fin.max(1) as f64;
                    }
                }
                EventKind::Projected => {
                    t.projections += 1;
                    t.wrong_projections += usize::from(!right);
                }
                EventKind::Withdrawn => t.withdrawn += 1,
                EventKind::Suspended => {}
            }
        }
        log.extend(events);
        grade_view(&view, &n.finals, &called, t, fail);
        if restart && si == mid {
            desk = Desk::resume(cfg.clone(), &log);
            let (_, again) = desk.observe(snap);
            if !again.is_empty() {
                fail(format!(
                    "resume at snapshot {si} emitted {} event(s) again",
                    again.len()
                ));
            }
        }
        last_view = Some(view);
    }
    let Some(view) = last_view else {
        return fail("no snapshots".into());
    };
    for s in &view.states {
        let race = Race::State(s.state.clone());
        let want = name_of(&race).map(|c| Status::Called {
            candidate: c.to_string(),
        });
        if want.as_ref().is_some_and(|w| *w != s.status)
            || (want.is_none() && s.status != Status::TooClose)
        {
            fail(format!(
                "{} ends {:?}, the truth is {:?}",
                s.state, s.status, want
            ));
        }
    }
    let want = name_of(&Race::National).map(|c| Status::Called {
        candidate: c.to_string(),
    });
    if want.as_ref().is_some_and(|w| *w != view.national.status) {
        fail(format!(
            "the national race ends {:?}, the truth is {:?}",
            view.national.status, want
        ));
    }
}

/// Invariants of every view, and the interval coverage where it is measured.
fn grade_view(
    view: &View,
    finals: &[Vec<u64>],
    called: &HashMap<Race, String>,
    t: &mut Tally,
    fail: &mut dyn FnMut(String),
) {
    for (s, fin) in view.states.iter().zip(finals) {
        if let Some(c) = called.get(&Race::State(s.state.clone())) {
            if s.status
                != (Status::Called {
                    candidate: c.clone(),
                })
            {
                fail(format!(
                    "{} was called for {c}, now shows {:?}",
                    s.state, s.status
                ));
            }
        }
        if !(0.0..=1.0).contains(&s.eevp) {
            fail(format!("{} shows EEVP {}", s.state, s.eevp));
        }
        if s.projected_turnout * (s.registered as f64) < s.counted as f64 - 1e-6 {
            fail(format!("{} projects a total below its count", s.state));
        }
        let total: u64 = fin.iter().sum();
        let reporting = s.counted as f64 / total.max(1) as f64;
        if !(0.10..=0.90).contains(&reporting) {
            continue;
        }
        for (sh, &v) in s.shares.iter().zip(fin) {
            let share = v as f64 / total as f64;
            let held = sh.lo <= share && share <= sh.hi;
            if view.suspended {
                // A certain range that misses is a wrong certainty.
                t.ranges += 1;
                if !held {
                    fail(format!(
                        "{}: certain range [{}, {}] misses the final share {share}",
                        s.state, sh.lo, sh.hi
                    ));
                }
            } else {
                t.intervals += 1;
                t.covered += u64::from(held);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grader must be able to fail: told a false truth (every state's
    /// first two candidates swapped), the same desk's calls are wrong.
    #[test]
    fn a_false_truth_makes_the_calls_wrong() {
        let mut n = night::generate(&NightConfig {
            seed: 5,
            voters: 40_000,
            ordering: Ordering::Random,
            snapshots: 40,
            allowance_ms: 20 * 60_000,
        });
        let (mut t, mut failures) = (Tally::default(), Vec::new());
        one_night(&DeskConfig::default(), &n, true, &mut t, &mut |m| {
            failures.push(m)
        });
        assert!(failures.is_empty(), "{failures:?}");
        n.finals.iter_mut().for_each(|f| f.swap(0, 1));
        let (mut t, mut failures) = (Tally::default(), Vec::new());
        one_night(&DeskConfig::default(), &n, false, &mut t, &mut |m| {
            failures.push(m)
        });
        assert!(t.wrong_calls > 0 && !failures.is_empty());
    }
}
