//! The election-night race desk: from the counted votes and the registry,
//! which races can be *Called* (certain: no count of the outstanding votes
//! could change the winner) and which can be *Projected* (a model's lower
//! bound of the leader's margin is above zero). Pure: no store, no clock;
//! the same snapshots give the same view and the same events.
//!
//! - [`model`]: the prior, turnout, swing and intervals (statistical)
//! - [`night`]: seeded synthetic nights to test it on
//! - [`check`]: replays nights through the desk and grades it
//!
//! docs/DESK.md states every rule and formula, and what was measured.

pub mod board;
pub mod check;
mod conflict;
mod model;
pub mod night;
mod race;
mod report;
pub mod stage;
mod swing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use crate::model::Millis;
pub use model::baseline_shares;

use crate::states::state_by_name;

/// What the desk is shown at one moment: the engines' persisted results plus the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub now: Millis,
    /// The results' seq position this snapshot is exact up to.
    pub position: i64,
    /// Candidate ids, fixed order; counts below are parallel to it.
    pub candidates: Vec<String>,
    pub states: Vec<StateInput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateInput {
    /// Full name as in `STATES` (unknown names: 0 EV, still a race).
    pub state: String,
    /// Registered voters of the state.
    pub registered: u64,
    /// Votes counted per candidate (parallel to `Snapshot::candidates`).
    pub counted: Vec<u64>,
    /// Once the state is sealed (polls closed + lateness allowance passed, store refuses any
    /// further vote for it): the exact number of votes that will ever count there. None before.
    pub final_total: Option<u64>,
    /// Its cast deadline has passed (informational; not a certainty).
    pub polls_closed: bool,
}

/// The projection level, the shown intervals' coverage and the model's
/// priors. Build it with `..DeskConfig::default()` so new fields do not
/// break callers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeskConfig {
    /// Level of the margin's lower bound that a projection needs (0.995).
    pub level: f64,
    /// Nominal coverage of the shown share intervals (0.90).
    pub interval: f64,
    /// The national race is the popular vote, not the Electoral College.
    pub popular_vote: bool,
    /// Share of a state's projected total that must be counted before the
    /// model speaks for it.
    pub min_reporting: f64,
    /// Prior national turnout (share of registered voters) and its sd.
    pub prior_turnout: f64,
    pub turnout_sd: f64,
    /// How far one state's turnout strays from the national level (sd).
    pub state_turnout_sd: f64,
    /// How far a state's share strays from its baseline plus the swing (sd).
    pub state_sd: f64,
    /// Prior sd of the national swing of a candidate's share.
    pub swing_sd: f64,
    /// How far the uncounted votes' share may differ from the counted
    /// votes' (sd): the counting order is not random in real life.
    pub order_sd: f64,
    /// Prior sd of the order effect: how far the counted votes' share may
    /// lean away from the final share, the same way in every state.
    pub order_effect_sd: f64,
    /// The count defeats the model, and the desk stops projecting for the
    /// night, once the fitted order effect exceeds this many of its prior
    /// sds ...
    pub order_conflict: f64,
    /// ... or one state's counted share strays this many sds from what
    /// the priors allow.
    pub prior_conflict: f64,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            level: 0.995,
            interval: 0.90,
            popular_vote: false,
            min_reporting: 0.05,
            prior_turnout: 0.70,
            turnout_sd: 0.10,
            state_turnout_sd: 0.05,
            state_sd: 0.03,
            swing_sd: 0.05,
            order_sd: 0.01,
            order_effect_sd: 0.10,
            order_conflict: 2.5,
            prior_conflict: 5.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    TooEarly,
    TooClose,
    Projected { candidate: String },
    Called { candidate: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
pub enum Race {
    State(String),
    National,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Projected,
    Withdrawn,
    Called,
    /// The count defeats the model (national, once a night): no projection
    /// from here on, and intervals become the certain ranges.
    Suspended,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeskEvent {
    pub race: Race,
    pub kind: EventKind,
    pub candidate: String,
    pub position: i64,
    pub at: Millis,
    /// The evidence: for Called the margin over the runner-up and the
    /// outstanding bound; for Projected the lower bound. In the Electoral
    /// College race the margin and outstanding count electoral votes.
    pub margin: i64,
    pub outstanding: u64,
    /// Read leniently: a non-finite number is written to JSON as null, and
    /// null reads back as NaN, so a recorded event always reads back.
    #[serde(deserialize_with = "nan_from_null")]
    pub lower_bound: f64,
    /// For `suspended`: how many sds past the model the count strayed
    /// (`candidate` is whose count did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct View {
    pub position: i64,
    pub at: Millis,
    /// The model is suspended for the night: nothing is projected, and each
    /// share's [lo, hi] is the certain range, not a statistical interval.
    #[serde(default)]
    pub suspended: bool,
    pub states: Vec<StateView>,
    pub national: NationalView,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateView {
    pub state: String,
    pub code: String,
    pub electoral_votes: u16,
    pub status: Status,
    /// Most votes counted (None when nothing is counted or the top is tied).
    pub leader: Option<String>,
    pub counted: u64,
    pub registered: u64,
    /// The certain bound on votes still to count.
    pub outstanding: u64,
    pub projected_turnout: f64,
    pub turnout_lo: f64,
    pub turnout_hi: f64,
    /// Counted / projected total, in [0, 1].
    pub eevp: f64,
    pub shares: Vec<ShareView>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShareView {
    pub candidate: String,
    pub counted: u64,
    pub share: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NationalView {
    pub threshold: u16,
    pub total_ev: u16,
    pub status: Status,
    pub called_ev: Vec<(String, u16)>,
    pub projected_ev: Vec<(String, u16)>,
    pub popular: Vec<ShareView>,
}

/// The desk: the configuration and each race's status so far, which only
/// events change, so [`Desk::resume`] rebuilds it exactly.
pub struct Desk {
    cfg: DeskConfig,
    status: HashMap<Race, Status>,
    suspended: bool,
}

impl Desk {
    pub fn new(cfg: DeskConfig) -> Desk {
        Desk {
            cfg,
            status: HashMap::new(),
            suspended: false,
        }
    }

    /// Rebuild from the events already persisted (after a restart): called races stay called,
    /// projections stay in force, so replaying the same snapshot emits nothing new.
    pub fn resume(cfg: DeskConfig, events: &[DeskEvent]) -> Desk {
        let mut desk = Desk::new(cfg);
        for e in events {
            let candidate = e.candidate.clone();
            let next = match e.kind {
                EventKind::Called => Status::Called { candidate },
                EventKind::Projected => Status::Projected { candidate },
                EventKind::Withdrawn => Status::TooClose,
                EventKind::Suspended => {
                    desk.suspended = true;
                    continue;
                }
            };
            // A call is final even if a stray event follows it in the log.
            if !matches!(desk.status.get(&e.race), Some(Status::Called { .. })) {
                desk.status.insert(e.race.clone(), next);
            }
        }
        desk
    }

    /// Looks at one snapshot; returns what is shown now and the events that are new
    /// (status changes: a new projection, a withdrawn projection, a call). Deterministic.
    pub fn observe(&mut self, snap: &Snapshot) -> (View, Vec<DeskEvent>) {
        let snap = &parallel(snap);
        let models = model::model(&self.cfg, snap);
        let mut events = Vec::new();
        if !self.suspended {
            if let Some(c) = conflict::check(&self.cfg, &models, snap.candidates.len()) {
                self.suspended = true;
                events.push(DeskEvent {
                    race: Race::National,
                    kind: EventKind::Suspended,
                    candidate: snap.candidates[c.candidate].clone(),
                    position: snap.position,
                    at: snap.now,
                    margin: 0,
                    outstanding: 0,
                    lower_bound: 0.0,
                    conflict: Some(c.sds),
                });
            }
        }
        let sus = self.suspended;
        let mut states = Vec::with_capacity(snap.states.len());
        for (input, m) in snap.states.iter().zip(&models) {
            let (fresh, evidence) = race::state_status(&self.cfg, snap, input, m, sus);
            let status = self.transition(
                Race::State(input.state.clone()),
                fresh,
                evidence,
                snap,
                &mut events,
            );
            states.push(race::state_view(&self.cfg, snap, input, m, status, sus));
        }
        let (fresh, evidence, mut national) =
            race::national(&self.cfg, snap, &states, &models, sus);
        national.status = self.transition(Race::National, fresh, evidence, snap, &mut events);
        let view = View {
            position: snap.position,
            at: snap.now,
            suspended: sus,
            states,
            national,
        };
        (view, events)
    }

    /// Moves one race to its freshly computed status, emitting what changed.
    fn transition(
        &mut self,
        race: Race,
        fresh: Status,
        ev: race::Evidence,
        snap: &Snapshot,
        events: &mut Vec<DeskEvent>,
    ) -> Status {
        let old = self.status.get(&race).cloned().unwrap_or(Status::TooEarly);
        let mut emit = |kind, candidate: &str| {
            events.push(DeskEvent {
                race: race.clone(),
                kind,
                candidate: candidate.to_string(),
                position: snap.position,
                at: snap.now,
                margin: ev.margin,
                outstanding: ev.outstanding,
                lower_bound: ev.lower_bound,
                conflict: None,
            })
        };
        let next = match (&old, &fresh) {
            (Status::Called { .. }, _) => {
                // The margin less the outstanding bound never falls as the
                // count goes on, so a consistent snapshot keeps the call. (The
                // nation's EV could fall only if a called state went missing
                // from the snapshot, which is the caller's inconsistency.)
                debug_assert!(
                    race == Race::National || old == fresh,
                    "a called race lost its call: {race:?} {fresh:?}"
                );
                old.clone()
            }
            (_, Status::Called { candidate }) => {
                emit(EventKind::Called, candidate);
                fresh.clone()
            }
            (Status::Projected { candidate: a }, Status::Projected { candidate: b }) if a == b => {
                fresh.clone()
            }
            (Status::Projected { candidate }, _) => {
                emit(EventKind::Withdrawn, candidate);
                if let Status::Projected { candidate } = &fresh {
                    emit(EventKind::Projected, candidate);
                }
                fresh.clone()
            }
            (_, Status::Projected { candidate }) => {
                emit(EventKind::Projected, candidate);
                fresh.clone()
            }
            _ => fresh.clone(),
        };
        self.status.insert(race, next.clone());
        next
    }
}

/// The snapshot with every state's counts exactly parallel to the
/// candidates: a short row is padded with zeros, a long one cut, so no
/// index can fall outside.
fn parallel(snap: &Snapshot) -> std::borrow::Cow<'_, Snapshot> {
    let k = snap.candidates.len();
    if snap.states.iter().all(|s| s.counted.len() == k) {
        return std::borrow::Cow::Borrowed(snap);
    }
    let mut fixed = snap.clone();
    for s in &mut fixed.states {
        s.counted.resize(k, 0);
    }
    std::borrow::Cow::Owned(fixed)
}

/// Electoral votes of a state by name; a name the table does not know is
/// still a race, worth nothing in the Electoral College.
fn electoral_votes(name: &str) -> u16 {
    state_by_name(name).map_or(0, |s| s.electoral_votes)
}

fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
