//! Alerts: the vote and the pipeline watched for what looks wrong, with
//! detectors that are standard, cheap per key and measured.
//!
//! - [`rate`]: EWMA z-score and CUSUM over counts per bucket of stream time
//! - [`heavy`]: the heaviest client sources in a sliding window (space-saving)
//! - [`swing`]: a share moving between buckets more than its volume explains
//! - [`record`]: the stage's record of changes, and the alerts it adds up to
//! - [`stage`]: the watch fed from the store's ledger in a run, each
//!   alert recorded once, resumed after a crash
//! - [`watch`]: the detectors together, fed observations, raising and
//!   resolving alerts; hard invariants alert on their first occurrence
//! - [`night`] and [`check`]: seeded streams with anomalies injected, and
//!   the detection delays and false alarms measured on them
//!
//! Pure, like the race desk's model: no store, clock or randomness, so the
//! same observations give the same alerts. docs/ALERTS.md gives every
//! formula and default. Digit tests (Benford's and the like) are not here:
//! they are unreliable on vote counts and would only ever be noise.

pub mod check;
pub mod heavy;
pub mod night;
pub mod rate;
pub mod record;
pub mod stage;
pub mod swing;
mod watch;

use serde::{Deserialize, Serialize};

pub use crate::model::Millis;
pub use watch::{AlertConfig, AlertEvent, Observation, Registry, Watch};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// More votes counted in a state than it has registered voters.
    TurnoutOverRegistration,
    /// A persisted tally lower than it was.
    CountWentBackwards,
    /// A vote for a candidate not on the election's ballot.
    UnknownCandidate,
    /// A vote cast before the polls opened or after its state's close.
    OutsidePollingHours,
    /// A bucket's count far above its EWMA baseline.
    RateSpike,
    /// A smaller rise that persists (CUSUM).
    RateShift,
    /// One client source sending more than its share of the ballots.
    SourceConcentration,
    /// A candidate's share in a state moving more than its volume explains.
    ShareSwing,
}

impl AlertKind {
    pub const ALL: [AlertKind; 8] = [
        AlertKind::TurnoutOverRegistration,
        AlertKind::CountWentBackwards,
        AlertKind::UnknownCandidate,
        AlertKind::OutsidePollingHours,
        AlertKind::RateSpike,
        AlertKind::RateShift,
        AlertKind::SourceConcentration,
        AlertKind::ShareSwing,
    ];

    /// Invariants are certain breaches: critical, and never resolved.
    pub fn is_invariant(self) -> bool {
        matches!(
            self,
            AlertKind::TurnoutOverRegistration
                | AlertKind::CountWentBackwards
                | AlertKind::UnknownCandidate
                | AlertKind::OutsidePollingHours
        )
    }

    pub fn severity(self) -> Severity {
        if self.is_invariant() {
            Severity::Critical
        } else {
            Severity::Warning
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

/// What an alert is about; an alert is open once per kind and scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The rate watched: `ballots`, `accepted` or `rejected:<reason>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

/// Observed against expected, and the statistic against its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub observed: f64,
    pub expected: f64,
    pub statistic: f64,
    pub threshold: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub severity: Severity,
    pub scope: Scope,
    /// The evidence when it was raised.
    pub evidence: Evidence,
    pub first_seen: Millis,
    pub last_seen: Millis,
    pub resolved: Option<Millis>,
}

#[cfg(test)]
mod tests;
