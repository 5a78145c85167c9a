//! One race's status from one snapshot: the certain call rule first (counts
//! only, no model), then the model's projection; and the views built from
//! them, per state and national.

use super::model::{norm_quantile, StateModel};
use super::{
    electoral_votes, DeskConfig, NationalView, ShareView, Snapshot, StateInput, StateView, Status,
};
use crate::states::state_by_name;

/// What an event carries as its reason.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Evidence {
    pub margin: i64,
    pub outstanding: u64,
    pub lower_bound: f64,
}

/// Votes that could still be counted in a state, for certain: the sealed
/// total less the count, or else every registered voter not yet counted.
pub(crate) fn outstanding(input: &StateInput) -> u64 {
    let counted: u64 = input.counted.iter().sum();
    input
        .final_total
        .unwrap_or(input.registered)
        .saturating_sub(counted)
}

/// More counted than the registry (or the sealed total) allows means the
/// inputs disagree, and then no bound is certain: such a state is not called.
pub(crate) fn consistent(input: &StateInput) -> bool {
    input.counted.iter().sum::<u64>() <= input.final_total.unwrap_or(input.registered)
}

/// The index with the most votes, and the margin over the next; None when
/// nothing is counted or the top is tied.
fn counted_leader(votes: &[u64]) -> Option<(usize, u64)> {
    let (lead, &top) = votes
        .iter()
        .enumerate()
        .max_by_key(|&(i, v)| (*v, std::cmp::Reverse(i)))?;
    let second = votes
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != lead)
        .map(|(_, v)| *v)
        .max();
    match second {
        Some(s) if s == top => None,
        _ if top == 0 => None,
        s => Some((lead, top - s.unwrap_or(0))),
    }
}

/// Called iff the leader's lead over every other candidate is strictly more
/// than all the votes that could still come: no way to count them changes
/// the winner, whatever the model says.
pub(crate) fn certain(votes: &[u64], outstanding: u64) -> Option<usize> {
    counted_leader(votes)
        .filter(|&(_, margin)| margin > outstanding)
        .map(|(i, _)| i)
}

pub(crate) fn state_status(
    cfg: &DeskConfig,
    snap: &Snapshot,
    input: &StateInput,
    m: &StateModel,
    suspended: bool,
) -> (Status, Evidence) {
    let out = outstanding(input);
    let margin = counted_leader(&input.counted).map_or(0, |(_, d)| d as i64);
    // Until the model speaks, the bound shown is the certain one (negative
    // until a call): an event must stay plain JSON, with no NaN.
    let mut ev = Evidence {
        margin,
        outstanding: out,
        lower_bound: margin as f64 - out as f64,
    };
    if let Some(i) = certain(&input.counted, out).filter(|_| consistent(input)) {
        let candidate = snap.candidates[i].clone();
        return (Status::Called { candidate }, ev);
    }
    if !m.modelable {
        return (Status::TooEarly, ev);
    }
    if suspended {
        return (Status::TooClose, ev);
    }
    let z = norm_quantile(cfg.level);
    let Some(lead) = model_leader(m) else {
        return (Status::TooClose, ev);
    };
    let bound = (0..m.counted.len())
        .filter(|&k| k != lead)
        .map(|k| m.margin_lower(lead, k, z))
        .fold(f64::INFINITY, f64::min);
    // With no rival the model has nothing to bound: the certain rule decides.
    if bound.is_finite() {
        ev.lower_bound = bound;
    }
    if bound.is_finite() && bound > 0.0 {
        let candidate = snap.candidates[lead].clone();
        (Status::Projected { candidate }, ev)
    } else {
        (Status::TooClose, ev)
    }
}

/// The candidate with the most projected votes (first in order on a tie).
fn model_leader(m: &StateModel) -> Option<usize> {
    (0..m.counted.len()).max_by(|&a, &b| {
        m.projected_votes(a)
            .total_cmp(&m.projected_votes(b))
            .then(b.cmp(&a))
    })
}

pub(crate) fn state_view(
    cfg: &DeskConfig,
    snap: &Snapshot,
    input: &StateInput,
    m: &StateModel,
    status: Status,
    suspended: bool,
) -> StateView {
    let z = norm_quantile(0.5 + cfg.interval / 2.0);
    let r = input.registered.max(m.total_counted).max(1) as f64;
    let out = outstanding(input);
    let shares = (0..m.counted.len())
        .map(|j| {
            let (share, lo, hi) = if suspended {
                certain_range(m.counted[j], m.total_counted, out)
            } else {
                m.share_interval(j, z)
            };
            ShareView {
                candidate: snap.candidates[j].clone(),
                counted: m.counted[j],
                share,
                lo,
                hi,
            }
        })
        .collect();
    StateView {
        state: input.state.clone(),
        code: state_by_name(&input.state).map_or(String::new(), |s| s.code.to_string()),
        electoral_votes: electoral_votes(&input.state),
        status,
        leader: counted_leader(&input.counted).map(|(i, _)| snap.candidates[i].clone()),
        counted: m.total_counted,
        registered: input.registered,
        outstanding: out,
        projected_turnout: m.total / r,
        turnout_lo: m.total_shown.0 / r,
        turnout_hi: m.total_shown.1 / r,
        eevp: if m.total > 0.0 {
            (m.total_counted as f64 / m.total).min(1.0)
        } else {
            0.0
        },
        shares,
    }
}

/// A candidate's counted share, and the range its final share is certain
/// to end in: every outstanding vote to the others (at the largest total),
/// or every one to it.
fn certain_range(votes: u64, counted: u64, outstanding: u64) -> (f64, f64, f64) {
    let (v, c, o) = (votes as f64, counted as f64, outstanding as f64);
    if c + o <= 0.0 {
        return (0.0, 0.0, 1.0);
    }
    let share = if c > 0.0 { v / c } else { 0.0 };
    (share, v / (c + o), (v + o) / (c + o))
}

/// The national race: the Electoral College from the states' statuses, or
/// the popular vote from the summed counts and models.
pub(crate) fn national(
    cfg: &DeskConfig,
    snap: &Snapshot,
    states: &[StateView],
    models: &[StateModel],
    suspended: bool,
) -> (Status, Evidence, NationalView) {
    let k = snap.candidates.len();
    let total_ev: u16 = states.iter().map(|s| s.electoral_votes).sum();
    let threshold = total_ev / 2 + 1;
    let (mut called, mut projected) = (vec![0u16; k], vec![0u16; k]);
    for s in states {
        let (c, certain) = match &s.status {
            Status::Called { candidate } => (candidate, true),
            Status::Projected { candidate } => (candidate, false),
            _ => continue,
        };
        if let Some(i) = snap.candidates.iter().position(|x| x == c) {
            projected[i] += s.electoral_votes;
            if certain {
                called[i] += s.electoral_votes;
            }
        }
    }
    let counted: Vec<u64> = (0..k)
        .map(|j| models.iter().map(|m| m.counted[j]).sum())
        .collect();
    let popular = if suspended {
        let c: u64 = counted.iter().sum();
        let out: u64 = states.iter().map(|s| s.outstanding).sum();
        (0..k)
            .map(|j| {
                let (share, lo, hi) = certain_range(counted[j], c, out);
                ShareView {
                    candidate: snap.candidates[j].clone(),
                    counted: counted[j],
                    share,
                    lo,
                    hi,
                }
            })
            .collect()
    } else {
        popular_shares(cfg, snap, models, &counted)
    };
    let anything = states.iter().any(|s| s.status != Status::TooEarly);
    let (status, ev) = if cfg.popular_vote {
        popular_status(cfg, snap, states, models, &counted, suspended)
    } else {
        let best = |ev: &[u16]| (0..k).find(|&i| ev[i] >= threshold && threshold > 0);
        let not_called = total_ev - called.iter().sum::<u16>();
        let lead = |ev: &[u16], i: usize| {
            i64::from(ev[i])
                - (0..k)
                    .filter(|&j| j != i)
                    .map(|j| i64::from(ev[j]))
                    .max()
                    .unwrap_or(0)
        };
        let ev_of = |ev: &[u16], i| Evidence {
            margin: lead(ev, i),
            outstanding: u64::from(not_called),
            lower_bound: f64::from(ev[i]) - f64::from(threshold),
        };
        if let Some(i) = best(&called) {
            (
                Status::Called {
                    candidate: snap.candidates[i].clone(),
                },
                ev_of(&called, i),
            )
        } else if let Some(i) = best(&projected) {
            (
                Status::Projected {
                    candidate: snap.candidates[i].clone(),
                },
                ev_of(&projected, i),
            )
        } else if anything {
            (Status::TooClose, Evidence::default())
        } else {
            (Status::TooEarly, Evidence::default())
        }
    };
    let named = |ev: &[u16]| {
        snap.candidates
            .iter()
            .cloned()
            .zip(ev.iter().copied())
            .collect()
    };
    let view = NationalView {
        threshold,
        total_ev,
        status: status.clone(),
        called_ev: named(&called),
        projected_ev: named(&projected),
        popular,
    };
    (status, ev, view)
}

/// Popular-vote race: called on the summed certain bound; projected when the
/// summed model's lower bound holds, taking every state's error as moving
/// together (the swing is shared), which only widens the bound.
fn popular_status(
    cfg: &DeskConfig,
    snap: &Snapshot,
    states: &[StateView],
    models: &[StateModel],
    counted: &[u64],
    suspended: bool,
) -> (Status, Evidence) {
    let out: u64 = states.iter().map(|s| s.outstanding).sum();
    let margin = counted_leader(counted).map_or(0, |(_, d)| d as i64);
    // Until the model speaks, the bound shown is the certain one (negative
    // until a call): an event must stay plain JSON, with no NaN.
    let mut ev = Evidence {
        margin,
        outstanding: out,
        lower_bound: margin as f64 - out as f64,
    };
    let all_consistent = snap.states.iter().all(consistent);
    if let Some(i) = certain(counted, out).filter(|_| all_consistent) {
        return (
            Status::Called {
                candidate: snap.candidates[i].clone(),
            },
            ev,
        );
    }
    if !states.iter().any(|s| s.status != Status::TooEarly) {
        return (Status::TooEarly, ev);
    }
    if suspended {
        return (Status::TooClose, ev);
    }
    let k = counted.len();
    let total = |j: usize| models.iter().map(|m| m.projected_votes(j)).sum::<f64>();
    let Some(lead) = (0..k).max_by(|&a, &b| total(a).total_cmp(&total(b)).then(b.cmp(&a))) else {
        return (Status::TooClose, ev);
    };
    let z = norm_quantile(cfg.level);
    let bound = (0..k)
        .filter(|&j| j != lead)
        .map(|j| {
            // Each state's lower bound is mean − z·sd; summing them sums the
            // sd's, i.e. correlation one between states.
            models
                .iter()
                .map(|m| m.margin_lower(lead, j, z))
                .sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min);
    if bound.is_finite() {
        ev.lower_bound = bound;
    }
    if bound.is_finite() && bound > 0.0 {
        (
            Status::Projected {
                candidate: snap.candidates[lead].clone(),
            },
            ev,
        )
    } else {
        (Status::TooClose, ev)
    }
}

/// National shares: the sum of the states' projections, with intervals
/// that add the states' half-widths (again correlation one).
fn popular_shares(
    cfg: &DeskConfig,
    snap: &Snapshot,
    models: &[StateModel],
    counted: &[u64],
) -> Vec<ShareView> {
    let z = norm_quantile(0.5 + cfg.interval / 2.0);
    let total: f64 = models.iter().map(|m| m.total).sum();
    (0..counted.len())
        .map(|j| {
            let (mut votes, mut lo, mut hi) = (0.0, 0.0, 0.0);
            for m in models {
                let (s, l, h) = m.share_interval(j, z);
                votes += s * m.total;
                lo += l * m.total;
                hi += h * m.total;
            }
            let share = |x: f64| {
                if total > 0.0 {
                    (x / total).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            };
            ShareView {
                candidate: snap.candidates[j].clone(),
                counted: counted[j],
                share: share(votes),
                lo: share(lo),
                hi: share(hi),
            }
        })
        .collect()
}
