//! The national swing and the counting-order effect, fitted across states
//! from one snapshot, and each state's posterior for its uncounted votes.
//!
//! Per candidate, every modelable state's counted share less its baseline
//! is regressed on how much of it is still to count:
//! `q − b = d + β·√(1 − r) + noise`. `d` is the swing of final shares; `β`
//! is how far early-counted votes lean away from the final result, which
//! is the same in every state when the order is (mail ballots first, say),
//! and is told apart from `d` by states further along, above all the fully
//! counted ones. The square root is the shape a constant preference in
//! the counting order gives (weighted sampling without replacement, worked
//! out in docs/DESK.md); under it the uncounted votes' share is
//! `q − β/√(1 − r)`.

use super::model::StateModel;
use super::DeskConfig;

/// A 2×2 symmetric matrix [[a, b], [b, c]] and a 2-vector, summed.
#[derive(Clone, Copy, Default)]
struct Normal {
    a: f64,
    b: f64,
    c: f64,
    y0: f64,
    y1: f64,
}

impl Normal {
    fn add(&mut self, w: f64, u: f64, e: f64, sign: f64) {
        self.a += sign * w;
        self.b += sign * w * u;
        self.c += sign * w * u * u;
        self.y0 += sign * w * e;
        self.y1 += sign * w * u * e;
    }

    /// Posterior mean (d, β) and covariance (var d, var β, cov).
    fn solve(&self) -> ((f64, f64), (f64, f64, f64)) {
        let det = self.a * self.c - self.b * self.b;
        let (ia, ib, ic) = (self.c / det, -self.b / det, self.a / det);
        (
            (ia * self.y0 + ib * self.y1, ib * self.y0 + ic * self.y1),
            (ia, ic, ib),
        )
    }
}

/// One state's point in candidate `j`'s regression: (weight, √(1 − r), residual).
fn point(cfg: &DeskConfig, m: &StateModel, j: usize) -> Option<(f64, f64, f64)> {
    if !m.modelable {
        return None;
    }
    let n = m.total_counted as f64;
    let r = (n / m.total).min(1.0);
    let sampling = m.q[j] * (1.0 - m.q[j]) / n;
    let misfit = if r < 1.0 { cfg.order_sd.powi(2) } else { 0.0 };
    let v = cfg.state_sd.powi(2) + sampling + misfit;
    Some((1.0 / v, (1.0 - r).sqrt(), m.q[j] - m.base[j]))
}

/// The priors on (d, β) plus every state's point: the whole regression.
fn pooled(cfg: &DeskConfig, points: &[Option<(f64, f64, f64)>]) -> Normal {
    let mut all = Normal {
        a: 1.0 / cfg.swing_sd.powi(2),
        c: 1.0 / cfg.order_effect_sd.powi(2),
        ..Normal::default()
    };
    for &(w, u, e) in points.iter().flatten() {
        all.add(w, u, e, 1.0);
    }
    all
}

pub(crate) fn fit(cfg: &DeskConfig, states: &mut [StateModel], k: usize) {
    let order = cfg.order_sd.powi(2);
    for j in 0..k {
        let points: Vec<_> = states.iter().map(|m| point(cfg, m, j)).collect();
        let all = pooled(cfg, &points);
        for (m, own) in states.iter_mut().zip(points) {
            // Leave the state out of its own fit: else it is its own
            // evidence twice, and its interval too narrow.
            let mut eq = all;
            if let Some((w, u, e)) = own {
                eq.add(w, u, e, -1.0);
            }
            let ((d, beta), (vd, vb, cov)) = eq.solve();
            let r = if m.total > 0.0 {
                (m.total_counted as f64 / m.total).min(0.99)
            } else {
                0.0
            };
            let h = 1.0 / (1.0 - r).sqrt();
            // By the baseline: the state's final share is b + d; its
            // uncounted votes lean away from it by β·r/√(1 − r).
            m.prior_mean[j] = (m.base[j] + d - beta * r * h).clamp(0.0, 1.0);
            let rh = r * h;
            m.prior_var[j] = cfg.state_sd.powi(2) + (vd + rh * rh * vb - 2.0 * rh * cov).max(0.0);
            // By the count: the counted share less the order effect.
            m.obs_mean[j] = m.q[j] - beta * h;
            m.obs_extra[j] = vb * h * h + order;
            let (mean, var) = if m.modelable {
                let ov = m.q[j] * (1.0 - m.q[j]) / m.total_counted as f64 + m.obs_extra[j];
                let w = 1.0 / ov + 1.0 / m.prior_var[j];
                (
                    (m.obs_mean[j] / ov + m.prior_mean[j] / m.prior_var[j]) / w,
                    1.0 / w,
                )
            } else {
                (m.prior_mean[j], m.prior_var[j])
            };
            m.rest_mean[j] = mean.clamp(0.0, 1.0);
            m.rest_var[j] = var;
        }
    }
    for m in states.iter_mut() {
        let total: f64 = m.rest_mean.iter().sum();
        if total > 0.0 {
            m.rest_mean.iter_mut().for_each(|x| *x /= total);
        }
    }
}

/// The order effect β̂_k fitted over every modelable state (none left out),
/// per candidate, in units of its prior sd: how hard the count leans.
pub(crate) fn order_effect(cfg: &DeskConfig, states: &[StateModel], k: usize) -> Vec<f64> {
    (0..k)
        .map(|j| {
            let points: Vec<_> = states.iter().map(|m| point(cfg, m, j)).collect();
            let ((_, beta), _) = pooled(cfg, &points).solve();
            beta / cfg.order_effect_sd
        })
        .collect()
}
