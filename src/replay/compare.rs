//! Two stores' nights side by side (`votestream compare`): the same
//! elections, the same results (every candidate, state, demographic cell,
//! minute window, late vote and rejection reason), the same seals and the
//! same race-desk events and the same alert changes in the same order. What
//! a replay must end with. And what the dashboard showed: each published
//! result one store kept at a known ledger position is the other's results
//! as of that position.

use serde_json::Value;

use crate::aggregate::BUILTIN;
use crate::model::{format_voting_time, Millis};
use crate::results::At;
use crate::shown::Figures;
use crate::store::{Store, StoreError};

/// What two nights share, or the first thing they do not.
#[derive(Debug)]
pub enum Comparison {
    Same {
        elections: usize,
        accepted: i64,
        desk_events: usize,
        alert_changes: usize,
        /// Published results checked against the other store's ledger.
        shown: usize,
    },
    /// Where the first difference is, and both sides of it.
    Differ(String),
}

pub fn compare(a: &mut dyn Store, b: &mut dyn Store) -> Result<Comparison, StoreError> {
    let ids = |s: &mut dyn Store| -> Result<Vec<String>, StoreError> {
        Ok(s.elections()?
            .into_iter()
            .map(|e| e.election.election_id)
            .collect())
    };
    let (ea, eb) = (ids(a)?, ids(b)?);
    if ea != eb {
        return Ok(Comparison::Differ(format!(
            "elections: {ea:?} in the first, {eb:?} in the second"
        )));
    }
    let (mut accepted, mut desk_events, mut alert_changes, mut shown) = (0, 0, 0, 0);
    for id in &ea {
        let (ra, rb) = (a.results(id, BUILTIN)?, b.results(id, BUILTIN)?);
        accepted += ra.accepted;
        let json = |r| serde_json::to_value(r).expect("results serialize");
        if let Some(d) = diff(&format!("{id}: results"), &json(&ra), &json(&rb)) {
            return Ok(Comparison::Differ(d));
        }
        let (la, lb) = (a.desk_log(id)?, b.desk_log(id)?);
        let seals = |l: &crate::store::DeskLog| -> Value {
            l.seals
                .iter()
                .map(|s| serde_json::json!({"state": s.state, "sealed_at": s.sealed_at, "final_votes": s.final_votes}))
                .collect()
        };
        if let Some(d) = diff(&format!("{id}: seals"), &seals(&la), &seals(&lb)) {
            return Ok(Comparison::Differ(d));
        }
        let events = |l: &crate::store::DeskLog| -> Value {
            l.events
                .iter()
                .map(|e| serde_json::from_str(e).unwrap_or_else(|_| Value::String(e.clone())))
                .collect()
        };
        if let Some(d) = diff(&format!("{id}: desk events"), &events(&la), &events(&lb)) {
            return Ok(Comparison::Differ(d));
        }
        desk_events += la.events.len();
        let (aa, ab) = (a.alert_events(id, 0)?, b.alert_events(id, 0)?);
        let changes = |v: &[String]| -> Value {
            v.iter()
                .map(|e| serde_json::from_str(e).unwrap_or_else(|_| Value::String(e.clone())))
                .collect()
        };
        if let Some(d) = diff(
            &format!("{id}: alert changes"),
            &changes(&aa),
            &changes(&ab),
        ) {
            return Ok(Comparison::Differ(d));
        }
        alert_changes += aa.len();
        for kept_in_first in [true, false] {
            let checked = if kept_in_first {
                reproduced(id, &mut *a, &mut *b, true)?
            } else {
                reproduced(id, &mut *b, &mut *a, false)?
            };
            match checked {
                Ok(n) => shown += n,
                Err(d) => return Ok(Comparison::Differ(d)),
            }
        }
    }
    Ok(Comparison::Same {
        elections: ea.len(),
        accepted,
        desk_events,
        alert_changes,
        shown,
    })
}

/// Each published result kept in one store (the first, or the second) at
/// a known ledger position must be the other store's results as of that
/// position: what the dashboard showed, reproduced. Both ways round, since
/// either store may be the one that was served. Returns how many were
/// checked, or the first difference.
fn reproduced(
    id: &str,
    kept: &mut dyn Store,
    other: &mut dyn Store,
    first: bool,
) -> Result<Result<usize, String>, StoreError> {
    let side = if first { "first" } else { "second" };
    let mut checked = 0;
    for s in kept.shown_results(id, Millis::MAX, usize::MAX)? {
        let Some(seq) = s.seq else {
            continue;
        };
        let there = Figures::of(&other.results_at(id, At::Seq(seq))?).tallied();
        let path = format!(
            "{id}: shown results published {} UTC at ledger position {seq} (kept in the {side})",
            format_voting_time(s.shown_at)
        );
        let here = s.figures.tallied();
        let (x, y) = if first {
            (&here, &there)
        } else {
            (&there, &here)
        };
        if let Some(d) = diff(&path, x, y) {
            return Ok(Err(d));
        }
        checked += 1;
    }
    Ok(Ok(checked))
}

/// The first place two JSON values differ, as a path and both sides.
fn diff(path: &str, a: &Value, b: &Value) -> Option<String> {
    const MISSING: &Value = &Value::Null;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .keys()
            .chain(y.keys().filter(|k| !x.contains_key(*k)))
            .find_map(|k| {
                let (u, v) = (x.get(k).unwrap_or(MISSING), y.get(k).unwrap_or(MISSING));
                diff(&format!("{path}.{k}"), u, v)
            }),
        (Value::Array(x), Value::Array(y)) => (0..x.len().max(y.len())).find_map(|i| {
            let (u, v) = (x.get(i).unwrap_or(MISSING), y.get(i).unwrap_or(MISSING));
            diff(&format!("{path}[{}]", label(i, u, v)), u, v)
        }),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} in the first, {b} in the second")),
    }
}

/// An item's index, with what names it (a state, a cell, a minute, a race).
fn label(i: usize, u: &Value, v: &Value) -> String {
    let item = if u.is_object() { u } else { v };
    let names: Vec<String> = [
        "state",
        "age_band",
        "gender",
        "minute",
        "candidate_id",
        "race",
        "kind",
    ]
    .iter()
    .filter_map(|k| item.get(k))
    .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_string))
    .collect();
    if names.is_empty() {
        i.to_string()
    } else {
        format!("{i}: {}", names.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::diff;
    use serde_json::json;

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let a = json!({"states": [{"state": "Ohio", "count": 3}, {"state": "Utah", "count": 1}]});
        let b = json!({"states": [{"state": "Ohio", "count": 3}, {"state": "Utah", "count": 2}]});
        assert_eq!(diff("r", &a, &a), None);
        assert_eq!(
            diff("r", &a, &b).as_deref(),
            Some("r.states[1: Utah].count: 1 in the first, 2 in the second")
        );
        let shorter = json!({"states": [{"state": "Ohio", "count": 3}]});
        assert!(diff("r", &a, &shorter)
            .unwrap()
            .contains("null in the second"));
    }
}
