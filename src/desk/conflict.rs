//! Model criticism: does the count look like anything the model allows?
//!
//! The projections and intervals rest on the counting order being one the
//! model can describe (random, or leaning one way by a constant factor).
//! An order that hands the outstanding votes to whoever the counted ones
//! did not favour defeats any model of the count. When the counted shares
//! stray past what the model's own priors allow, the desk stops speaking
//! statistically for the rest of the night (a `suspended` event) and shows
//! only what is certain. docs/DESK.md gives both tests and their measured
//! false-alarm rate on clean nights.

use super::model::StateModel;
use super::swing::order_effect;
use super::DeskConfig;

/// Which candidate's count tripped the check, and by how many sds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Conflict {
    pub candidate: usize,
    pub sds: f64,
}

/// A state's counted share against its prior predictive: baseline plus a
/// swing, its own deviation, the order effect at this stage of its count
/// and the count's sampling, every term at its prior sd.
fn prior_z(cfg: &DeskConfig, m: &StateModel, j: usize) -> f64 {
    let n = m.total_counted as f64;
    let r = (n / m.total).min(1.0);
    let var = cfg.swing_sd.powi(2)
        + cfg.state_sd.powi(2)
        + cfg.order_effect_sd.powi(2) * (1.0 - r)
        + m.q[j] * (1.0 - m.q[j]) / n;
    (m.q[j] - m.base[j]).abs() / var.sqrt()
}

/// The first conflict in this snapshot, if any: the fitted order effect
/// past `order_conflict` prior sds, or one state's count past
/// `prior_conflict` sds from its prior predictive.
pub(crate) fn check(cfg: &DeskConfig, models: &[StateModel], k: usize) -> Option<Conflict> {
    let worst = |it: &mut dyn Iterator<Item = (usize, f64)>| {
        it.max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(candidate, sds)| Conflict { candidate, sds })
    };
    let beta = order_effect(cfg, models, k);
    let by_order = worst(&mut beta.iter().map(|b| b.abs()).enumerate());
    if let Some(c) = by_order.filter(|c| c.sds > cfg.order_conflict) {
        return Some(c);
    }
    let mut by_state = models
        .iter()
        .filter(|m| m.modelable)
        .flat_map(|m| (0..k).map(move |j| (j, prior_z(cfg, m, j))));
    worst(&mut by_state).filter(|c| c.sds > cfg.prior_conflict)
}
