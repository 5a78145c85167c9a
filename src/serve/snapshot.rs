//! One snapshot per tick, for every viewer: a thread reads the results of
//! every election from the store every [`TICK`], serializes each once (the
//! SSE frame is built here, as shared bytes) and publishes the lot through a
//! `watch` channel. Viewers and the read API only ever clone an `Arc`: the
//! store sees one set of queries per tick however many people watch.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use super::health::Health;
use super::metrics::{LAG_VOTES, VOTE_VISIBLE_SECONDS};
use super::shown::Recorder;
use crate::aggregate::BUILTIN;
use crate::alerts::record::{AlertBook, AlertChange, AlertEntry};
use crate::desk::board::{Board, BoardError, DeskFrame, Numbered};
use crate::desk::{DeskConfig, View};
use crate::model::{format_voting_time, now_millis, parse_time, Candidate, Election, Millis};
use crate::results::Results;
use crate::stats::Stats;
use crate::store::{Store, StoreError};

pub const TICK: Duration = Duration::from_millis(250);
/// The dashboard's timeline shows this much history (the API has it all).
const TIMELINE_MS: Millis = 60 * 60_000;
/// Votes/s is averaged over this window.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Even when nothing changed, publish this often (votes/s decays, lag moves).
const REFRESH_EVERY_TICKS: u64 = 8;

#[derive(Clone, Debug, Serialize)]
pub struct ElectionSummary {
    pub election: Election,
    pub candidates: Vec<Candidate>,
}

/// One election at one tick.
pub struct ElectionView {
    pub results: Results,
    /// The race desk's board and record (None until it could be read).
    pub desk: Option<Arc<DeskFrame>>,
    /// The alerts recorded so far.
    pub alerts: Arc<AlertBook>,
    pub votes_per_s: f64,
    /// The SSE frame (`event: snapshot`), built once for every viewer.
    pub frame: Bytes,
}

pub struct Snapshot {
    pub tick: u64,
    pub generated_at: Millis,
    pub elections: Vec<ElectionSummary>,
    pub views: HashMap<String, Arc<ElectionView>>,
    pub lag: i64,
}

impl Snapshot {
    pub fn view(&self, election_id: &str) -> Option<&Arc<ElectionView>> {
        self.views.get(election_id)
    }
}

/// The dashboard's JSON: the read model plus what only the server knows.
#[derive(Serialize)]
struct Frame<'a> {
    tick: u64,
    generated_at: Millis,
    votes_per_s: f64,
    lag: i64,
    elections: Vec<ElectionRef<'a>>,
    results: &'a Results,
    #[serde(skip_serializing_if = "Option::is_none")]
    desk: Option<serde_json::Value>,
    alerts: AlertsShown<'a>,
}

/// What the dashboard shows of the desk: the board, and the latest events
/// with the record's length (the record grows all night; the page fetches
/// the rest from `/desk/events` once). The board's fractions are rounded
/// to 4 decimals, 0.01 of a percentage point, which is more than the page
/// shows: a 16-digit float is three times the bytes, sent to every viewer
/// every tick. The desk API keeps them whole.
#[derive(Serialize)]
struct DeskShown<'a> {
    #[serde(flatten)]
    view: &'a View,
    events: &'a [Numbered],
    events_total: usize,
}

/// Desk events in a frame.
const DESK_EVENTS_SHOWN: usize = 20;

impl DeskShown<'_> {
    fn json(desk: &DeskFrame) -> Option<serde_json::Value> {
        let n = desk.events.len();
        let shown = DeskShown {
            view: &desk.view,
            events: &desk.events[n.saturating_sub(DESK_EVENTS_SHOWN)..],
            events_total: n,
        };
        let mut v = serde_json::to_value(&shown).ok()?;
        round_fractions(&mut v);
        Some(v)
    }
}

fn round_fractions(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(x) = n.as_f64().map(|x| (x * 1e4).round() / 1e4) {
                if let Some(r) = serde_json::Number::from_f64(x) {
                    *n = r;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(round_fractions),
        Value::Object(fields) => fields.values_mut().for_each(round_fractions),
        _ => {}
    }
}

/// What the dashboard shows of the alerts: the counts, every open alert and
/// the latest others, newest first (the API has them all).
#[derive(Serialize)]
struct AlertsShown<'a> {
    open: usize,
    total: usize,
    latest: Vec<&'a AlertEntry>,
}

/// Alerts in a frame besides the open ones.
const ALERTS_SHOWN: usize = 20;

impl<'a> AlertsShown<'a> {
    fn of(book: &'a AlertBook) -> AlertsShown<'a> {
        let n = book.entries.len();
        let latest = book
            .entries
            .iter()
            .enumerate()
            .rev()
            .filter(|(i, e)| e.open || *i + ALERTS_SHOWN >= n)
            .map(|(_, e)| e)
            .collect();
        AlertsShown {
            open: book.open_count(),
            total: n,
            latest,
        }
    }
}

#[derive(Serialize)]
struct ElectionRef<'a> {
    election_id: &'a str,
    name: &'a str,
}

/// Store connections of their own for what the snapshot thread keeps
/// besides publishing.
#[derive(Default)]
pub struct Keepers {
    /// Keeps the elections' tally checkpoints up to date.
    pub checkpoints: Option<Box<dyn Store>>,
    /// Keeps the results as published (`super::shown`); none on a store
    /// that cannot be written.
    pub shown: Option<Box<dyn Store>>,
}

/// Starts the snapshot thread; the first snapshot is ready on return.
pub fn start(
    mut store: Box<dyn Store>,
    keepers: Keepers,
    stats: Arc<Stats>,
    health: Arc<Health>,
) -> (watch::Receiver<Arc<Snapshot>>, Ended) {
    let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
    let checkpointer = keepers
        .checkpoints
        .map(super::checkpoints::Checkpointer::new);
    let mut recorder = keepers.shown.and_then(Recorder::start);
    let mut maker = Maker::default();
    let first = Arc::new(maker.make(&mut *store, &stats, &health, 0));
    if let Some(r) = &mut recorder {
        r.published(&first, now_millis());
    }
    let (tx, rx) = watch::channel(first);
    let spawned = std::thread::Builder::new()
        .name("snapshots".into())
        .spawn(move || {
            let _ended = ended_tx;
            let mut tick = 0u64;
            let mut next = Instant::now();
            loop {
                next += TICK;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                tick += 1;
                if tx.is_closed() {
                    break; // the server is gone
                }
                health.watch(&stats);
                let snap = maker.make(&mut *store, &stats, &health, tick);
                if let Some(c) = &checkpointer {
                    if tick % super::checkpoints::EVERY_TICKS == 1 {
                        c.pass(snap.views.keys().cloned().collect());
                    }
                }
                if maker.changed || tick.is_multiple_of(REFRESH_EVERY_TICKS) {
                    let snap = Arc::new(snap);
                    tx.send_replace(snap.clone());
                    if let Some(r) = &mut recorder {
                        r.published(&snap, now_millis());
                    }
                } else if let Some(r) = &mut recorder {
                    r.tick(now_millis());
                }
            }
            if let Some(r) = recorder {
                r.finish(now_millis());
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the snapshot thread");
    }
    (rx, Ended(ended))
}

/// Tells when the snapshot thread has ended: after the server is gone, it
/// keeps the last results shown (`super::shown`) before it ends.
pub struct Ended(std::sync::mpsc::Receiver<()>);

impl Ended {
    /// Waits for the thread to end, at most `limit`.
    pub fn wait(&self, limit: Duration) {
        let _ = self.0.recv_timeout(limit);
    }
}

#[derive(Default)]
struct Maker {
    /// Per election: recent (instant, counted), for votes/s.
    history: HashMap<String, VecDeque<(Instant, i64)>>,
    /// The last published results, serialized, to see whether anything changed.
    last: HashMap<String, Vec<u8>>,
    /// Per election, the race desk's board as read from the store.
    boards: HashMap<String, Board>,
    /// Per election, the alerts as read from the store so far.
    books: HashMap<String, Arc<AlertBook>>,
    changed: bool,
}

impl Maker {
    fn make(
        &mut self,
        store: &mut dyn Store,
        stats: &Stats,
        health: &Health,
        tick: u64,
    ) -> Snapshot {
        // Every commit up to this seq is visible in what is read next.
        let aggregated = stats.aggregated_seq.load(Relaxed);
        let lag = (stats.recorded_seq.load(Relaxed) - aggregated).max(0);
        metrics::gauge!(LAG_VOTES).set(lag as f64);
        let generated_at = now_millis();
        let mut snap = Snapshot {
            tick,
            generated_at,
            elections: Vec::new(),
            views: HashMap::new(),
            lag,
        };
        self.changed = false;
        match read_all(store) {
            Ok(all) => {
                health.store_ok_at.store(generated_at, Relaxed);
                observe_visibility(stats, aggregated);
                snap.elections = all.iter().map(|(e, _)| e.clone()).collect();
                let refs: Vec<ElectionRef> = snap
                    .elections
                    .iter()
                    .map(|e| ElectionRef {
                        election_id: &e.election.election_id,
                        name: &e.election.name,
                    })
                    .collect();
                let mut views = HashMap::new();
                for (e, results) in &all {
                    let id = e.election.election_id.clone();
                    let desk = self.desk(store, &e.election, results, generated_at);
                    let alerts = self.alerts(store, &id);
                    let view = self.view(
                        &id,
                        results.clone(),
                        (desk, alerts),
                        &refs,
                        (tick, generated_at),
                        lag,
                    );
                    views.insert(id, Arc::new(view));
                }
                snap.views = views;
            }
            Err(e) => tracing::warn!(error = %e, "snapshot: the store did not answer"),
        }
        snap
    }

    /// The desk's board for one election; None (and a warning) while the
    /// store cannot say, so the rest of the dashboard goes on.
    fn desk(
        &mut self,
        store: &mut dyn Store,
        election: &Election,
        results: &Results,
        now: Millis,
    ) -> Option<Arc<DeskFrame>> {
        let id = &election.election_id;
        let read = |board: &mut Board, store: &mut dyn Store| -> Result<(), BoardError> {
            board.reload(store)?;
            board.registry(store, results.registered_voters)?;
            Ok(())
        };
        let board = match self.boards.get_mut(id) {
            Some(b) => b,
            None => match Board::load(store, id, DeskConfig::default()) {
                Ok(b) => self.boards.entry(id.clone()).or_insert(b),
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot: cannot read the race desk");
                    return None;
                }
            },
        };
        let seen = (board.events.len(), board.seals.len());
        if let Err(e) = read(board, store) {
            tracing::warn!(error = %e, "snapshot: cannot read the race desk");
            return None;
        }
        if seen != (board.events.len(), board.seals.len()) {
            self.changed = true;
        }
        Some(Arc::new(board.frame(results, now)))
    }

    /// The alerts of one election, with what was recorded since the last
    /// tick folded in; as they were (and a warning) while the store cannot say.
    fn alerts(&mut self, store: &mut dyn Store, id: &str) -> Arc<AlertBook> {
        let book = self.books.entry(id.to_string()).or_default();
        match store.alert_events(id, book.changes) {
            Ok(bodies) if !bodies.is_empty() => {
                let changes: Vec<AlertChange> = bodies
                    .iter()
                    .filter_map(|b| serde_json::from_str(b).ok())
                    .collect();
                Arc::make_mut(book).add(changes);
                self.changed = true;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "snapshot: cannot read the alerts"),
        }
        book.clone()
    }

    fn view(
        &mut self,
        id: &str,
        results: Results,
        (desk, alerts): (Option<Arc<DeskFrame>>, Arc<AlertBook>),
        elections: &[ElectionRef],
        (tick, generated_at): (u64, Millis),
        lag: i64,
    ) -> ElectionView {
        let now = Instant::now();
        let hist = self.history.entry(id.to_string()).or_default();
        hist.push_back((now, results.counted));
        while hist.len() > 2 && now.duration_since(hist[0].0) > RATE_WINDOW {
            hist.pop_front();
        }
        let votes_per_s = match (hist.front(), hist.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (b.1 - a.1) as f64 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        };
        let key = serde_json::to_vec(&results).unwrap_or_default();
        if self.last.get(id) != Some(&key) {
            self.changed = true;
            self.last.insert(id.to_string(), key);
        }
        let mut shown = results.clone();
        trim_timeline(&mut shown);
        let frame = Frame {
            tick,
            generated_at,
            votes_per_s: (votes_per_s * 10.0).round() / 10.0,
            lag,
            elections: elections
                .iter()
                .map(|e| ElectionRef {
                    election_id: e.election_id,
                    name: e.name,
                })
                .collect(),
            results: &shown,
            desk: desk.as_deref().and_then(DeskShown::json),
            alerts: AlertsShown::of(&alerts),
        };
        let json = serde_json::to_string(&frame).unwrap_or_else(|_| "{}".into());
        ElectionView {
            results,
            desk,
            alerts,
            votes_per_s,
            frame: Bytes::from(format!("event: snapshot\ndata: {json}\n\n")),
        }
    }
}

fn read_all(store: &mut dyn Store) -> Result<Vec<(ElectionSummary, Results)>, StoreError> {
    let mut out = Vec::new();
    for e in store.elections()? {
        let results = store.results(&e.election.election_id, BUILTIN)?;
        out.push((
            ElectionSummary {
                election: e.election,
                candidates: e.candidates,
            },
            results,
        ));
    }
    Ok(out)
}

/// Keeps the last hour of minutes (the timeline is ordered by minute).
fn trim_timeline(r: &mut Results) {
    let Some(last) = r.timeline.last().and_then(|m| parse_time(&m.minute)) else {
        return;
    };
    let cutoff = format_voting_time(last - TIMELINE_MS);
    r.timeline.retain(|m| m.minute.as_str() > cutoff.as_str());
}

/// Commit → visible latency for every commit this snapshot shows.
fn observe_visibility(stats: &Stats, aggregated: i64) {
    let now = Instant::now();
    if let Ok(mut commits) = stats.recent_commits.lock() {
        while let Some(&(seq, at)) = commits.front() {
            if seq > aggregated {
                break;
            }
            metrics::histogram!(VOTE_VISIBLE_SECONDS).record(now.duration_since(at).as_secs_f64());
            commits.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::{Desk, DeskEvent, EventKind, Race, Snapshot as DeskInput, StateInput};

    fn frame(events: usize) -> DeskFrame {
        let input = DeskInput {
            now: 1_000,
            position: 1,
            candidates: vec!["a".into(), "b".into()],
            states: vec![StateInput {
                state: "Ohio".into(),
                registered: 3_000,
                counted: vec![700, 333],
                final_total: None,
                polls_closed: true,
            }],
        };
        let view = Desk::new(DeskConfig::default()).observe(&input).0;
        let events = (0..events as i64)
            .map(|no| Numbered {
                event_no: no,
                event: DeskEvent {
                    race: Race::State("Ohio".into()),
                    kind: EventKind::Projected,
                    candidate: "a".into(),
                    position: no,
                    at: no,
                    margin: 1,
                    outstanding: 2,
                    lower_bound: 1.0 / 3.0,
                    conflict: None,
                },
            })
            .collect();
        DeskFrame { view, events }
    }

    #[test]
    fn a_frame_carries_the_latest_desk_events_and_short_fractions() {
        let shown = DeskShown::json(&frame(45)).unwrap();
        assert_eq!(shown["events_total"], 45);
        let nos: Vec<i64> = shown["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_no"].as_i64().unwrap())
            .collect();
        assert_eq!(nos, (25..45).collect::<Vec<_>>());
        assert_eq!(shown["events"][0]["lower_bound"], 0.3333);
        let ohio = &shown["states"][0];
        assert_eq!(ohio["counted"], 1033, "whole numbers stay whole");
        let share = ohio["shares"][0]["share"].as_f64().unwrap();
        assert_eq!(share, (share * 1e4).round() / 1e4);
        assert!(share > 0.5 && share < 0.8, "{share}");
        // A short night's record goes whole.
        let short = DeskShown::json(&frame(3)).unwrap();
        assert_eq!(short["events"].as_array().unwrap().len(), 3);
        assert_eq!(short["events_total"], 3);
    }
}
