//! What `check` measured: per counting order, and printed as a table.

use std::fmt;

use super::night::Ordering;

/// Measured figures for one counting order.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub nights: usize,
    pub snapshots: usize,
    pub calls: usize,
    pub wrong_calls: usize,
    pub projections: usize,
    pub withdrawn: usize,
    pub wrong_projections: usize,
    /// Statistical share intervals judged (state 10–90% counted) and how
    /// many held the final share.
    pub intervals: u64,
    pub covered: u64,
    /// Nights the model was suspended, and the sum of how far into the
    /// night (share of snapshots) it happened.
    pub suspended: usize,
    pub(crate) suspended_at: f64,
    /// Certain ranges judged instead, while suspended (each must hold).
    pub ranges: u64,
    /// Sum of the states' counted share of the final total at their call.
    pub(crate) called_reporting: f64,
}

impl Tally {
    pub fn coverage(&self) -> f64 {
        if self.intervals == 0 {
            f64::NAN
        } else {
            self.covered as f64 / self.intervals as f64
        }
    }

    /// Mean share of the night's snapshots gone when the model was suspended.
    pub fn suspended_at(&self) -> f64 {
        self.suspended_at / self.suspended.max(1) as f64
    }

    /// Mean share of a state's final votes counted when it was called.
    pub fn reporting_at_call(&self) -> f64 {
        self.called_reporting / self.calls.max(1) as f64
    }

    fn add(&mut self, o: &Tally) {
        self.nights += o.nights;
        self.snapshots += o.snapshots;
        self.calls += o.calls;
        self.wrong_calls += o.wrong_calls;
        self.projections += o.projections;
        self.withdrawn += o.withdrawn;
        self.wrong_projections += o.wrong_projections;
        self.intervals += o.intervals;
        self.covered += o.covered;
        self.called_reporting += o.called_reporting;
        self.suspended += o.suspended;
        self.suspended_at += o.suspended_at;
        self.ranges += o.ranges;
    }
}

#[derive(Clone, Debug)]
pub struct CheckReport {
    pub nominal: f64,
    pub voters: u64,
    pub by_ordering: Vec<(Ordering, Tally)>,
    pub(crate) failures: Vec<String>,
}

impl CheckReport {
    pub fn failures(&self) -> Vec<String> {
        self.failures.clone()
    }

    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        self.by_ordering.iter().for_each(|(_, x)| t.add(x));
        t
    }

    pub fn tally(&self, o: Ordering) -> Tally {
        self.by_ordering
            .iter()
            .find(|(x, _)| *x == o)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| ordering | nights | snapshots | calls | wrong calls | counted at call | projections | withdrawn | wrong proj. | coverage (nominal {:.0}%) | suspended (at) | certain ranges |",
            self.nominal * 100.0
        )?;
        writeln!(
            f,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        let total = self.total();
        let rows = self
            .by_ordering
            .iter()
            .map(|(o, t)| (format!("{o:?}"), t))
            .chain([("all".to_string(), &total)]);
        for (name, t) in rows {
            writeln!(
                f,
                "| {name} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {:.1}% of {} | {} ({:.1}%) | {} |",
                t.nights,
                t.snapshots,
                t.calls,
                t.wrong_calls,
                100.0 * t.reporting_at_call(),
                t.projections,
                t.withdrawn,
                t.wrong_projections,
                100.0 * t.coverage(),
                t.intervals,
                t.suspended,
                100.0 * t.suspended_at(),
                t.ranges
            )?;
        }
        writeln!(f, "failures: {}", self.failures.len())?;
        for x in self.failures.iter().take(20) {
            writeln!(f, "  {x}")?;
        }
        Ok(())
    }
}
