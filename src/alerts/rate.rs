//! Rates per key and per bucket of stream time (ballots in a state, one
//! rejection reason in a state, …): an EWMA of the mean and variance gives
//! a z-score for sudden spikes, and a one-sided CUSUM over the same
//! standardized counts catches small shifts that persist.
//!
//! For a bucket count x, with the EWMA mean m and variance v before it:
//!
//! ```text
//! s = (x − m) / √(v + m + 1)          (the Poisson floor m + 1 keeps
//!                                      quiet keys from alarming on noise)
//! spike  iff  n ≥ warmup and s > z and x − m ≥ min_excess
//! S ← max(0, S + s − k);   shift iff n ≥ warmup and S > h
//! m ← m + λ(x − m);        v ← (1 − λ)(v + λ(x − m_old)²)
//! ```
//!
//! The baseline is slow (λ = 0.05: about 20 buckets of memory), so a
//! shift takes a few buckets to be learnt, long enough for the CUSUM to
//! weigh it; while a key is alarming its bucket does not feed the
//! baseline, so a burst is not learnt as normal before it ends.

/// The detector's parameters (docs/ALERTS.md gives the defaults' reasons).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateConfig {
    /// EWMA weight of the newest bucket.
    pub lambda: f64,
    /// Buckets seen before any alarm.
    pub warmup: u32,
    /// z-score of a spike.
    pub z: f64,
    /// A spike must also exceed the mean by this many events.
    pub min_excess: f64,
    /// CUSUM slack and decision interval, in standardized units.
    pub k: f64,
    pub h: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            lambda: 0.05,
            warmup: 12,
            z: 6.0,
            min_excess: 5.0,
            k: 1.0,
            h: 6.0,
        }
    }
}

/// What one bucket raised, with its evidence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateAlarm {
    Spike {
        observed: f64,
        expected: f64,
        z: f64,
    },
    Shift {
        observed: f64,
        expected: f64,
        cusum: f64,
    },
}

/// One key's state: a few floats, so a state × reason grid stays small.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateWatch {
    mean: f64,
    var: f64,
    /// Welford's sum of squares, during the warm-up.
    m2: f64,
    cusum: f64,
    seen: u32,
}

impl RateWatch {
    /// Takes one closed bucket's count; returns the alarm it raises, if any.
    pub fn bucket(&mut self, cfg: &RateConfig, x: f64) -> Option<RateAlarm> {
        if self.seen < cfg.warmup {
            // The baseline starts as the plain mean and variance of the
            // warm-up buckets (Welford), not the first bucket's chance value.
            self.seen += 1;
            let n = f64::from(self.seen);
            let d = x - self.mean;
            self.mean += d / n;
            self.m2 += d * (x - self.mean);
            self.var = if self.seen > 1 {
                self.m2 / (n - 1.0)
            } else {
                0.0
            };
            return None;
        }
        let (m, v) = (self.mean, self.var);
        let s = (x - m) / (v + m + 1.0).sqrt();
        self.cusum = (self.cusum + s - cfg.k).max(0.0);
        let alarm = if s > cfg.z && x - m >= cfg.min_excess {
            Some(RateAlarm::Spike {
                observed: x,
                expected: m,
                z: s,
            })
        } else if self.cusum > cfg.h {
            Some(RateAlarm::Shift {
                observed: x,
                expected: m,
                cusum: self.cusum,
            })
        } else {
            None
        };
        if alarm.is_none() {
            let d = x - m;
            self.mean = m + cfg.lambda * d;
            self.var = (1.0 - cfg.lambda) * (v + cfg.lambda * d * d);
        }
        self.seen = self.seen.saturating_add(1);
        alarm
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Poisson(mean) by inversion: enough for the counts used here.
    fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
        let (l, mut k, mut p) = ((-mean).exp(), 0.0, 1.0);
        loop {
            p *= rng.random::<f64>();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }

    #[test]
    fn steady_poisson_counts_never_alarm() {
        let cfg = RateConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for mean in [0.5, 5.0, 40.0, 300.0] {
            let mut w = RateWatch::default();
            let alarms = (0..5_000)
                .filter(|_| w.bucket(&cfg, poisson(&mut rng, mean)).is_some())
                .count();
            assert_eq!(alarms, 0, "mean {mean}");
        }
    }

    #[test]
    fn a_burst_is_a_spike_at_once_and_is_not_learnt() {
        let cfg = RateConfig::default();
        let mut w = RateWatch::default();
        for _ in 0..20 {
            assert_eq!(w.bucket(&cfg, 40.0), None);
        }
        for _ in 0..3 {
            match w.bucket(&cfg, 200.0) {
                Some(RateAlarm::Spike { expected, z, .. }) => {
                    assert!((expected - 40.0).abs() < 1e-9 && z > cfg.z)
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            (w.mean() - 40.0).abs() < 1e-9,
            "the burst stayed out of the baseline"
        );
    }

    #[test]
    fn a_small_sustained_shift_is_caught_by_the_cusum_only() {
        let cfg = RateConfig::default();
        let mut w = RateWatch::default();
        for _ in 0..20 {
            w.bucket(&cfg, 100.0);
        }
        // +45%: about 4.5 sd of a Poisson(100), under the spike's z of 6.
        let first = (1..=20)
            .find_map(|i| w.bucket(&cfg, 145.0).map(|a| (i, a)))
            .expect("the shift is caught");
        assert!(matches!(first.1, RateAlarm::Shift { .. }), "{first:?}");
        assert!(first.0 <= 6, "after {} buckets", first.0);
    }

    #[test]
    fn nothing_alarms_during_warmup_and_it_sets_the_baseline() {
        let cfg = RateConfig::default();
        let mut w = RateWatch::default();
        for i in 0..cfg.warmup {
            assert_eq!(w.bucket(&cfg, if i % 2 == 0 { 90.0 } else { 110.0 }), None);
        }
        assert!((w.mean() - 100.0).abs() < 1e-9);
        assert!(w.bucket(&cfg, 10_000.0).is_some());
    }
}
