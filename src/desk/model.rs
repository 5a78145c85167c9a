//! The statistical side of the desk: a prior per state, a turnout estimate,
//! a national swing and, from them, projected totals, share intervals and
//! the lower bound of a leader's final margin. Nothing here decides a
//! *Called* race; docs/DESK.md states every formula used below.

use super::{DeskConfig, Snapshot};
use crate::states::{state_by_name, UsState};

/// Expected shares of the parties for an average voter of a state with this
/// lean, under the simulator's choice weights with gender averaged and age
/// 45. Candidates past the third take the third party's weight, as the
/// simulator gives them.
pub fn baseline_shares(lean: f64, n_candidates: usize) -> Vec<f64> {
    let weights: Vec<f64> = (0..n_candidates)
        .map(|k| match k {
            0 => (1.3 * lean).exp() * (1.15 + 1.0) / 2.0,
            1 => (-1.3 * lean).exp() * (1.0 + 1.2) / 2.0,
            _ => 0.5 * (0.9 * (40.0 - 45.0) / 20.0_f64).exp(),
        })
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

pub(crate) fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ(x), from erfc (W. J. Cody's rational fit is overkill here; the
/// Abramowitz–Stegun 7.1.26 form is good to 1.5e-7, far below any margin
/// the desk acts on).
pub(crate) fn norm_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-z * z).exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// Φ⁻¹(p) by bisection: slow but obviously right, and only called a few
/// times per snapshot.
pub(crate) fn norm_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let (mut lo, mut hi) = (-9.0, 9.0);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if norm_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// A normal N(mean, sd²) truncated to [a, b]: its mean and a two-sided
/// central interval holding `coverage` of it.
fn truncated(mean: f64, sd: f64, a: f64, b: f64, coverage: f64) -> (f64, f64, f64) {
    let (al, be) = ((a - mean) / sd, (b - mean) / sd);
    let (fa, fb) = (norm_cdf(al), norm_cdf(be));
    let mass = fb - fa;
    if mass < 1e-12 {
        // The prior puts no mass where the count says the total must be:
        // trust the count's end of the range.
        let x = if al > 0.0 { a } else { b };
        return (x, x, x);
    }
    let m = mean + sd * (norm_pdf(al) - norm_pdf(be)) / mass;
    let q = |p: f64| (mean + sd * norm_quantile(fa + p * mass)).clamp(a, b);
    let tail = (1.0 - coverage) / 2.0;
    (m.clamp(a, b), q(tail), q(1.0 - tail))
}

/// One state's model at one snapshot.
#[derive(Clone, Debug)]
pub(crate) struct StateModel {
    pub counted: Vec<u64>,
    pub total_counted: u64,
    /// Projected final total and its interval, at the shown level and at
    /// the projection level; all equal to F once sealed.
    pub total: f64,
    pub total_shown: (f64, f64),
    pub total_proj: (f64, f64),
    /// Posterior mean and variance of the share each candidate takes of
    /// the votes not yet counted.
    pub rest_mean: Vec<f64>,
    pub rest_var: Vec<f64>,
    /// Counted shares, smoothed, and the baseline.
    pub q: Vec<f64>,
    pub base: Vec<f64>,
    /// The two estimates of the uncounted votes' share that the posterior
    /// combines: by the baseline and the swing, and by the count less the
    /// order effect (its variance past sampling in `obs_extra`).
    pub prior_mean: Vec<f64>,
    pub prior_var: Vec<f64>,
    pub obs_mean: Vec<f64>,
    pub obs_extra: Vec<f64>,
    /// Enough is counted to model at all.
    pub modelable: bool,
}

fn lean_of(state: Option<&UsState>) -> f64 {
    state.map_or(0.0, |s| s.lean)
}

/// Models every state of `snap`, in its order.
pub(crate) fn model(cfg: &DeskConfig, snap: &Snapshot) -> Vec<StateModel> {
    let k = snap.candidates.len();
    // National turnout level from the sealed states (a normal-normal
    // update); a sealed state's turnout is known exactly.
    let (mut prec, mut acc) = (
        1.0 / cfg.turnout_sd.powi(2),
        cfg.prior_turnout / cfg.turnout_sd.powi(2),
    );
    for s in &snap.states {
        if let (Some(f), true) = (s.final_total, s.registered > 0) {
            prec += 1.0 / cfg.state_turnout_sd.powi(2);
            acc += (f as f64 / s.registered as f64) / cfg.state_turnout_sd.powi(2);
        }
    }
    let t_mean = acc / prec;
    let t_sd = (1.0 / prec + cfg.state_turnout_sd.powi(2)).sqrt();

    let mut out: Vec<StateModel> = snap
        .states
        .iter()
        .map(|s| {
            let c: u64 = s.counted.iter().sum();
            let r = s.registered.max(c) as f64;
            let (total, shown, proj) = match s.final_total {
                Some(f) => {
                    let f = f.max(c) as f64;
                    (f, (f, f), (f, f))
                }
                None => {
                    let (a, b) = (c as f64 / r.max(1.0), 1.0);
                    let (m, lo, hi) = truncated(t_mean, t_sd, a, b, cfg.interval);
                    let (_, plo, phi) = truncated(t_mean, t_sd, a, b, cfg.level);
                    ((m * r).max(c as f64), (lo * r, hi * r), (plo * r, phi * r))
                }
            };
            let q: Vec<f64> = s
                .counted
                .iter()
                .map(|&v| (v as f64 + 1.0) / (c as f64 + k as f64))
                .collect();
            let modelable = c > 0 && (c as f64) >= cfg.min_reporting * total;
            StateModel {
                counted: s.counted.clone(),
                total_counted: c,
                total,
                total_shown: shown,
                total_proj: proj,
                rest_mean: vec![0.0; k],
                rest_var: vec![0.0; k],
                q,
                base: baseline_shares(lean_of(state_by_name(&s.state)), k),
                prior_mean: vec![0.0; k],
                prior_var: vec![0.0; k],
                obs_mean: vec![0.0; k],
                obs_extra: vec![0.0; k],
                modelable,
            }
        })
        .collect();
    super::swing::fit(cfg, &mut out, k);
    out
}

/// Remaining-vote counts to try across a total's interval: the margin's
/// lower bound is convex in it, so its minimum may lie inside.
fn remaining_grid(m: &StateModel, range: (f64, f64)) -> impl Iterator<Item = f64> + '_ {
    let c = m.total_counted as f64;
    let (lo, hi) = ((range.0 - c).max(0.0), (range.1 - c).max(0.0));
    (0..=8).map(move |i| lo + (hi - lo) * i as f64 / 8.0)
}

impl StateModel {
    pub fn remaining(&self) -> f64 {
        (self.total - self.total_counted as f64).max(0.0)
    }

    /// Projected final votes of candidate `j`: never below what is counted.
    pub fn projected_votes(&self, j: usize) -> f64 {
        self.counted[j] as f64 + self.remaining() * self.rest_mean[j]
    }

    /// Interval for candidate `j`'s final share at normal quantile `z`,
    /// widened over the total's shown interval.
    pub fn share_interval(&self, j: usize, z: f64) -> (f64, f64, f64) {
        let v = self.counted[j] as f64;
        let at = |rem: f64| {
            let t = self.total_counted as f64 + rem;
            if t <= 0.0 {
                return (0.0, 0.0, 0.0);
            }
            let mu = self.rest_mean[j];
            let var = rem * rem * self.rest_var[j] + rem * mu * (1.0 - mu);
            let mean = (v + rem * mu) / t;
            let sd = var.sqrt() / t;
            (mean, mean - z * sd, mean + z * sd)
        };
        let (share, _, _) = at(self.remaining());
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for rem in remaining_grid(self, self.total_shown) {
            let (_, l, h) = at(rem);
            lo = lo.min(l);
            hi = hi.max(h);
        }
        (share, lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0))
    }

    /// Lower bound, at normal quantile `z`, of `a`'s final margin in votes
    /// over `b`, over the total's projection interval.
    pub fn margin_lower(&self, a: usize, b: usize, z: f64) -> f64 {
        let n = self.total_counted as f64;
        let counted = self.counted[a] as f64 - self.counted[b] as f64;
        // The difference of shares is modelled directly: a vote for one is
        // a vote the other did not get, which per-candidate variances miss;
        // 2·(va + vb) bounds var(a − b) whatever their correlation.
        let prior = self.prior_mean[a] - self.prior_mean[b];
        let prior_var = 2.0 * (self.prior_var[a] + self.prior_var[b]);
        let (d, d_var) = if self.modelable {
            let obs = self.obs_mean[a] - self.obs_mean[b];
            let dq = self.q[a] - self.q[b];
            let spread = self.q[a] + self.q[b] - dq * dq;
            let ov = spread / n + 2.0 * (self.obs_extra[a] + self.obs_extra[b]);
            let w = 1.0 / ov + 1.0 / prior_var;
            ((obs / ov + prior / prior_var) / w, 1.0 / w)
        } else {
            (prior, prior_var)
        };
        let (pa, pb) = (self.rest_mean[a], self.rest_mean[b]);
        let spread = (pa + pb - d * d).max(0.0);
        remaining_grid(self, self.total_proj)
            .map(|rem| counted + rem * d - z * (rem * rem * d_var + rem * spread).sqrt())
            .fold(f64::INFINITY, f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_sums_to_one_and_follows_lean() {
        let b = baseline_shares(0.3, 3);
        assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(b[0] > b[1], "a Democratic-leaning state favours party 0");
        let r = baseline_shares(-0.3, 3);
        assert!(r[1] > r[0]);
        assert_eq!(baseline_shares(0.0, 1), vec![1.0]);
        assert!(baseline_shares(0.0, 0).is_empty());
    }

    #[test]
    fn normal_functions_agree_with_tables() {
        assert!((norm_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((norm_quantile(0.9975) - 2.807_034).abs() < 1e-4);
        assert!((norm_quantile(0.95) - 1.644_854).abs() < 1e-4);
        let (m, lo, hi) = truncated(0.7, 0.1, 0.0, 1.0, 0.9);
        assert!((m - 0.7).abs() < 0.01 && lo < 0.6 && hi > 0.8);
        let (m, lo, _) = truncated(0.7, 0.1, 0.9, 1.0, 0.9);
        assert!(m > 0.9 && lo >= 0.9);
    }
}
