//! Anomalies the simulator injects into a night on demand
//! (`--inject KIND@TIME[:TARGET]`), each at a time of the night and in one
//! state (or from one kiosk), so the alerts can be watched catching them.
//! The magnitudes are those the detectors are measured against
//! (`alerts::night`).
//!
//! An injection is applied to the night's plan after it is made, with
//! random draws of its own: the rest of the night keeps its ballots, their
//! ids and their kiosks, and the same seed and injections give the same
//! night.

mod apply;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub(super) use apply::{apply, Injected, NightPlan, INJECTED};
pub use apply::{Registration, INJECTED_VOTER_PREFIX};

use super::kiosk::KIOSKS_PER_STATE;
use crate::model::Millis;
use crate::states::{state_by_code, state_by_name, UsState};

/// What an injection does (`alerts::night::Injection`'s kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One kiosk sends 60% on top of the whole stream, for 30 s, into its
    /// state: ballots naming voters nobody registered (`unknown_voter`).
    Burst,
    /// The state's voters who already voted send again (new ballot ids),
    /// 30% of its ballots from then until its close (`already_voted`).
    Duplicates,
    /// For one second, ballots of the state's voters cast after its polls
    /// closed (`polls_closed`); the state must have closed by then.
    AfterClose,
    /// From then on the state's votes go 90% to whichever of its two main
    /// candidates trails there.
    Swing,
    /// Voters registered in the state mid-night, and their votes, until
    /// it has more votes than it had registered voters when the night began.
    Turnout,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Burst,
        Kind::Duplicates,
        Kind::AfterClose,
        Kind::Swing,
        Kind::Turnout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Burst => "burst",
            Kind::Duplicates => "duplicates",
            Kind::AfterClose => "after-close",
            Kind::Swing => "swing",
            Kind::Turnout => "turnout",
        }
    }
}

/// Where an injection goes, when the option names it.
#[derive(Clone, Debug)]
pub enum Target {
    State(&'static UsState),
    /// A kiosk (`kiosk-TX-07`), for a burst: its state is the kiosk's.
    Kiosk(&'static UsState, u32),
}

impl Target {
    pub fn state(&self) -> &'static UsState {
        match self {
            Target::State(s) | Target::Kiosk(s, _) => s,
        }
    }

    fn kiosk(&self) -> Option<u32> {
        match self {
            Target::State(_) => None,
            Target::Kiosk(_, n) => Some(*n),
        }
    }
}

// By the state's code: the table has one entry a state.
impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.state().code == other.state().code && self.kiosk() == other.kiosk()
    }
}

impl Eq for Target {}

/// One `--inject`: a kind, a time into the night, and maybe a target (else
/// one is drawn from the seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub kind: Kind,
    /// Milliseconds after the night's start.
    pub at: Millis,
    pub target: Option<Target>,
}

/// Why an `--inject` value or its application was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error(
        "`{0}`: expected KIND@TIME[:TARGET], e.g. burst@90s, swing@2m:OH, after-close@5m:Texas"
    )]
    Shape(String),
    #[error("`{0}`: unknown kind; one of burst, duplicates, after-close, swing, turnout")]
    Kind(String),
    #[error("`{0}`: a time into the night is a number and a unit (ms, s, m, h), e.g. 90s or 2.5m")]
    Time(String),
    #[error("`{0}`: not a state (a USPS code or a name){1}")]
    Target(String, &'static str),
    #[error("--inject needs --night: an injection's time is a moment of the night")]
    NoNight,
    #[error("{kind} at {at_ms} ms is after the night's end ({end_ms} ms)")]
    AfterNight {
        kind: &'static str,
        at_ms: Millis,
        end_ms: Millis,
    },
    #[error("after-close at {at_ms} ms: {state}'s polls close at {close_ms} ms")]
    NotClosed {
        state: &'static str,
        at_ms: Millis,
        close_ms: Millis,
    },
    #[error("{kind} at {at_ms} ms: {state}'s polls closed at {close_ms} ms")]
    Closed {
        kind: &'static str,
        state: &'static str,
        at_ms: Millis,
        close_ms: Millis,
    },
    #[error(
        "swing: the election has no two main parties (Management and Savior) to swing between"
    )]
    TwoParties,
    #[error("{kind}: {state} has no registered voters to send it")]
    NoVoters {
        kind: &'static str,
        state: &'static str,
    },
    #[error("{kind} at {at_ms} ms: no state it can go to then (open, or for after-close closed, with voters)")]
    NoState { kind: &'static str, at_ms: Millis },
}

impl FromStr for Injection {
    type Err = InjectError;

    fn from_str(s: &str) -> Result<Injection, InjectError> {
        let (kind, rest) = s
            .trim()
            .split_once('@')
            .ok_or_else(|| InjectError::Shape(s.to_string()))?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(kind.trim()))
            .ok_or_else(|| InjectError::Kind(kind.to_string()))?;
        let (time, target) = match rest.split_once(':') {
            Some((t, target)) => (t, Some(parse_target(kind, target.trim())?)),
            None => (rest, None),
        };
        Ok(Injection {
            kind,
            at: parse_time(time.trim())?,
            target,
        })
    }
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}ms", self.kind.as_str(), self.at)?;
        match &self.target {
            Some(Target::State(s)) => write!(f, ":{}", s.code),
            Some(Target::Kiosk(s, n)) => write!(f, ":kiosk-{}-{n:02}", s.code),
            None => Ok(()),
        }
    }
}

/// `90s`, `2m`, `1.5h`, `500ms`: a unit is required (a bare number could
/// be read either way).
fn parse_time(s: &str) -> Result<Millis, InjectError> {
    let bad = || InjectError::Time(s.to_string());
    let split = s.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(bad()),
    };
    let n: f64 = n.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 || n * scale > 86_400_000.0 {
        return Err(bad());
    }
    Ok((n * scale).round() as Millis)
}

fn parse_target(kind: Kind, s: &str) -> Result<Target, InjectError> {
    if let Some(state) = state_by_code(s).or_else(|| state_by_name(s)) {
        return Ok(Target::State(state));
    }
    let kiosk = s.strip_prefix("kiosk-").and_then(|k| {
        let (code, n) = k.split_once('-')?;
        let n: u32 = n.parse().ok()?;
        let state = state_by_code(code)?;
        (1..=KIOSKS_PER_STATE).contains(&n).then_some((state, n))
    });
    match (kind, kiosk) {
        (Kind::Burst, Some((state, n))) => Ok(Target::Kiosk(state, n)),
        (Kind::Burst, None) => Err(InjectError::Target(
            s.to_string(),
            " or a kiosk such as kiosk-TX-07",
        )),
        _ => Err(InjectError::Target(s.to_string(), "")),
    }
}
