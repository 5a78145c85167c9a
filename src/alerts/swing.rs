//! Share swings: a candidate's share of one state's accepted votes moving,
//! from the last few buckets to the newest, by more than the counted
//! volume explains.
//!
//! With x₁ of n₁ votes for the candidate in the `window` buckets before
//! and x₂ of n₂ in the newest, under one share p for both (estimated as
//! pooled, p̄ = (x₁ + x₂)/(n₁ + n₂)), the two-proportion z-score is
//!
//! ```text
//! z = (x₂/n₂ − x₁/n₁) / √(p̄(1 − p̄)(1/n₁ + 1/n₂))
//! ```
//!
//! An alarm needs |z| > `z`, at least `min_before` votes before and
//! `min_votes` in the newest bucket, and a move of at least `min_points`
//! (so a huge state's tiny real drift is no alarm). Comparing with a few
//! buckets rather than one halves the noise of the baseline, so a swing in
//! a mid-sized state shows within a bucket.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwingConfig {
    pub z: f64,
    pub window: usize,
    pub min_before: u64,
    pub min_votes: u64,
    pub min_points: f64,
}

impl Default for SwingConfig {
    fn default() -> Self {
        SwingConfig {
            z: 6.0,
            window: 12,
            min_before: 100,
            min_votes: 20,
            min_points: 0.15,
        }
    }
}

/// The evidence of a swing: the shares before and after, and z.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Swing {
    pub before: f64,
    pub after: f64,
    pub z: f64,
}

/// The swing between two buckets' (votes for the candidate, votes in all),
/// if it is one.
pub fn swing(cfg: &SwingConfig, before: (u64, u64), after: (u64, u64)) -> Option<Swing> {
    let ((x1, n1), (x2, n2)) = (before, after);
    if n1 < cfg.min_before || n2 < cfg.min_votes {
        return None;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let var = pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64);
    if var <= 0.0 {
        return None;
    }
    let z = (p2 - p1) / var.sqrt();
    (z.abs() > cfg.z && (p2 - p1).abs() >= cfg.min_points).then_some(Swing {
        before: p1,
        after: p2,
        z,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_noise_is_no_swing_and_a_flip_is() {
        let cfg = SwingConfig::default();
        assert_eq!(swing(&cfg, (45, 100), (55, 100)), None);
        assert_eq!(
            swing(&cfg, (450, 1000), (520, 1000)),
            None,
            "7 points: too small"
        );
        let s = swing(&cfg, (450, 1000), (800, 1000)).expect("a flip");
        assert!(s.z > 6.0 && (s.after - 0.8).abs() < 1e-12);
        // Too few votes to tell, however large the move.
        assert_eq!(swing(&cfg, (50, 100), (10, 10)), None);
        assert_eq!(swing(&cfg, (5, 10), (100, 100)), None);
        // Unanimous both times: no variance, no swing.
        assert_eq!(swing(&cfg, (100, 100), (100, 100)), None);
    }
}
