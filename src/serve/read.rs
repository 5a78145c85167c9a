//! The public read API. Everything comes from the current snapshot (at most
//! one tick old), never from a query of its own.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::snapshot::ElectionView;
use super::Shared;
use crate::alerts::stage::kind_name;
use crate::alerts::AlertKind;
use crate::generate::avatar_svg;
use crate::results::{At, StateTally};

type ApiResult = Result<Json<Value>, ApiError>;

fn view(st: &Shared, id: &str) -> Result<(Arc<ElectionView>, i64, i64), ApiError> {
    let snap = st.snapshots.borrow().clone();
    let v = snap
        .view(id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no election {}", crate::edge::echo(id))))?;
    Ok((v, snap.lag, snap.generated_at))
}

fn to_json<T: Serialize>(v: &T) -> ApiResult {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

pub async fn elections(State(st): State<Arc<Shared>>) -> ApiResult {
    let snap = st.snapshots.borrow().clone();
    to_json(&snap.elections)
}

/// The race desk: every race's status, projection and interval, and the
/// record of calls (`events`, oldest first).
pub async fn desk(State(st): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let (v, _, _) = view(&st, &id)?;
    match &v.desk {
        Some(d) => to_json(&**d),
        None => Err(ApiError::Unavailable(
            "the race desk cannot be read from the store yet; retry shortly".into(),
        )),
    }
}

/// The record of calls alone, oldest first; `?after=N` gives the events
/// numbered above N (for a client that polls).
pub async fn desk_events(
    State(st): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<AfterQuery>,
) -> ApiResult {
    let (v, _, _) = view(&st, &id)?;
    let Some(d) = &v.desk else {
        return Err(ApiError::Unavailable(
            "the race desk cannot be read from the store yet; retry shortly".into(),
        ));
    };
    let after = q.after.unwrap_or(-1);
    let events: Vec<_> = d.events.iter().filter(|e| e.event_no > after).collect();
    to_json(&events)
}

#[derive(Deserialize)]
pub struct AfterQuery {
    after: Option<i64>,
}

#[derive(Deserialize)]
pub struct AtQuery {
    at: Option<String>,
}

/// The live results, or with `?at=` (a ledger position or an RFC 3339
/// time) the results as of that moment, recounted from the ledger.
pub async fn results(
    State(st): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<AtQuery>,
) -> ApiResult {
    let Some(at) = q.at else {
        return to_json(&view(&st, &id)?.0.results);
    };
    let at = At::parse(&at).map_err(|e| ApiError::BadRequest {
        code: "invalid_at",
        message: e.to_string(),
    })?;
    let r = st.with_store(move |s| Ok(s.results_at(&id, at)?)).await?;
    to_json(&r)
}

/// What the dashboard showed at `?at=` (a time; none: now): the last
/// record of the published results at or before it (`shown` null before
/// the first), read from the store.
pub async fn shown(
    State(st): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<AtQuery>,
) -> ApiResult {
    view(&st, &id)?;
    let at = match q.at {
        None => crate::model::now_millis(),
        Some(at) => crate::shown::parse_at(&at).map_err(|message| ApiError::BadRequest {
            code: "invalid_at",
            message,
        })?,
    };
    let election_id = id.clone();
    let mut found = st
        .with_store(move |s| Ok(s.shown_results(&election_id, at, 1)?))
        .await?;
    to_json(&crate::shown::ShownAt {
        election_id: id,
        at,
        shown: found.pop(),
    })
}

pub async fn totals(State(st): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let (v, _, generated_at) = view(&st, &id)?;
    let r = &v.results;
    let candidates: Vec<Value> = r
        .candidates
        .iter()
        .map(|c| {
            let share = if r.counted > 0 {
                c.total_votes as f64 / r.counted as f64
            } else {
                0.0
            };
            json!({
                "candidate_id": c.candidate_id, "candidate_name": c.candidate_name,
                "party_affiliation": c.party_affiliation, "photo_url": c.photo_url,
                "total_votes": c.total_votes, "share": share,
            })
        })
        .collect();
    Ok(Json(json!({
        "election": r.election, "registered_voters": r.registered_voters,
        "received": r.received, "accepted": r.accepted, "rejected": r.rejected,
        "rejected_by_reason": r.rejected_by_reason, "counted": r.counted,
        "late_votes": r.late_votes, "turnout": r.turnout(), "candidates": candidates,
        "generated_at": generated_at,
    })))
}

#[derive(Deserialize)]
pub struct Page {
    page: Option<usize>,
    per_page: Option<usize>,
    sort: Option<String>,
}

/// States, sorted (`state`, `count`, `leader`, `margin`; `-` first for
/// descending) and paginated (pages from 1).
pub async fn states(
    State(st): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Page>,
) -> ApiResult {
    let (v, _, _) = view(&st, &id)?;
    let per_page = q.per_page.unwrap_or(10).clamp(1, 100);
    let sort = q.sort.unwrap_or_else(|| "state".into());
    let (desc, key) = match sort.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, sort.as_str()),
    };
    let mut rows: Vec<(&StateTally, Option<&str>, f64)> = v
        .results
        .states
        .iter()
        .map(|s| {
            let (leader, margin) = leader_and_margin(s);
            (s, leader, margin)
        })
        .collect();
    match key {
        "state" => rows.sort_by(|a, b| a.0.state.cmp(&b.0.state)),
        "count" => rows.sort_by(|a, b| a.0.count.cmp(&b.0.count).then(a.0.state.cmp(&b.0.state))),
        "leader" => rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.state.cmp(&b.0.state))),
        "margin" => rows.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.state.cmp(&b.0.state))),
        other => {
            return Err(ApiError::BadRequest {
                code: "invalid_sort",
                message: format!(
                    "sort {other:?}: expected state, count, leader or margin (- for descending)"
                ),
            })
        }
    }
    if desc {
        rows.reverse();
    }
    let total = rows.len();
    let pages = total.div_ceil(per_page).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let items: Vec<Value> = rows
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(s, leader, margin)| {
            json!({"state": s.state, "count": s.count, "by_candidate": s.by_candidate,
                   "leader": leader, "margin": margin})
        })
        .collect();
    Ok(Json(json!({
        "page": page, "per_page": per_page, "pages": pages, "total": total,
        "sort": sort, "items": items,
    })))
}

/// The leading candidate and the lead over the runner-up as a share of the state's votes.
pub fn leader_and_margin(s: &StateTally) -> (Option<&str>, f64) {
    let mut v: Vec<(&String, &i64)> = s.by_candidate.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    match (v.first(), s.count) {
        (Some(first), n) if n > 0 => {
            let second = v.get(1).map_or(0, |x| *x.1);
            (Some(first.0.as_str()), (first.1 - second) as f64 / n as f64)
        }
        _ => (None, 0.0),
    }
}

pub async fn demographics(State(st): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    to_json(&view(&st, &id)?.0.results.demographics)
}

pub async fn timeline(State(st): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    to_json(&view(&st, &id)?.0.results.timeline)
}

pub async fn candidates(State(st): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let snap = st.snapshots.borrow().clone();
    let e = snap
        .elections
        .iter()
        .find(|e| e.election.election_id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no election {}", crate::edge::echo(&id))))?;
    to_json(&e.candidates)
}

pub async fn progress(State(st): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let (v, lag, generated_at) = view(&st, &id)?;
    let r = &v.results;
    let counted_share = if r.accepted > 0 {
        r.counted as f64 / r.accepted as f64
    } else {
        1.0
    };
    Ok(Json(json!({
        "registered_voters": r.registered_voters, "received": r.received,
        "accepted": r.accepted, "rejected": r.rejected, "counted": r.counted,
        "counted_share": counted_share, "turnout": r.turnout(),
        "votes_per_s": v.votes_per_s, "lag": lag, "generated_at": generated_at,
    })))
}

/// The pictures the registry's `picture` and `photo_url` point at.
pub async fn avatar(
    State(st): State<Arc<Shared>>,
    Path((kind, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = file.strip_suffix(".svg").unwrap_or(&file).to_string();
    let label = match kind.as_str() {
        "voter" => {
            let id2 = id.clone();
            st.with_store(move |s| Ok(s.voter(&id2)?))
                .await?
                .map(|v| v.voter_name)
                .ok_or_else(|| ApiError::NotFound(format!("no voter {id:?}")))?
        }
        "candidate" => st
            .snapshots
            .borrow()
            .elections
            .iter()
            .flat_map(|e| &e.candidates)
            .find(|c| c.candidate_id == id)
            .map(|c| c.candidate_name.clone())
            .ok_or_else(|| ApiError::NotFound(format!("no candidate {id:?}")))?,
        _ => return Err(ApiError::NotFound(format!("no avatars of kind {kind:?}"))),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        avatar_svg(&id, &label),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct AlertQuery {
    state: Option<String>,
    kind: Option<String>,
    /// `open`, `resolved` or `all` (the default).
    status: Option<String>,
}

/// The alerts recorded for an election, newest first, optionally only one
/// state's, one kind's, or the open (or resolved) ones.
pub async fn alerts(
    State(st): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<AlertQuery>,
) -> ApiResult {
    let (v, _, _) = view(&st, &id)?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(
            serde_json::from_value::<AlertKind>(Value::String(k.to_string())).map_err(|_| {
                ApiError::BadRequest {
                    code: "invalid_kind",
                    message: format!(
                        "no alert kind {}; kinds: {}",
                        crate::edge::echo(k),
                        AlertKind::ALL.map(kind_name).join(", ")
                    ),
                }
            })?,
        ),
    };
    let open = match q.status.as_deref() {
        None | Some("all") => None,
        Some("open") => Some(true),
        Some("resolved") => Some(false),
        Some(s) => {
            return Err(ApiError::BadRequest {
                code: "invalid_status",
                message: format!(
                    "status {} is none of open, resolved, all",
                    crate::edge::echo(s)
                ),
            })
        }
    };
    let book = &v.alerts;
    let shown: Vec<_> = book
        .entries
        .iter()
        .rev()
        .filter(|e| kind.is_none_or(|k| e.alert.kind == k))
        .filter(|e| open.is_none_or(|o| e.open == o))
        .filter(|e| {
            q.state
                .as_deref()
                .is_none_or(|s| e.alert.scope.state.as_deref() == Some(s))
        })
        .collect();
    Ok(Json(json!({
        "election_id": id,
        "open": book.open_count(),
        "total": book.entries.len(),
        "alerts": shown,
    })))
}
