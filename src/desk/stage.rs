//! The desk stage: every tick it seals the states whose polls closed (once
//! the lateness allowance has passed), shows the desk the engine's persisted
//! results, and records each new call or projection once, by
//! compare-and-set on the event number: a restarted desk resumes from what
//! was recorded and emits nothing twice, and a second desk for the same
//! election only ever adds what the first did not.

use std::time::{Duration, Instant};

use super::board::{Board, BoardError};
use super::{DeskConfig, DeskEvent, EventKind, Race, Status, View};
use crate::metric_names::{DESK_EVENTS, DESK_RACES, DESK_SEALS};
use crate::model::{now_millis, Millis};
use crate::results::{At, Results};
use crate::shutdown::Shutdown;
use crate::store::{DeskLook, Store, StoreError};

/// Where recorded events go besides the store (the `race_calls` topic in
/// the Kafka shape). Told every recorded event in order, with its number;
/// it keeps its own position, so a restart resends nothing it already has.
pub trait CallSink: Send {
    fn publish(&mut self, election_id: &str, events: &[(i64, &DeskEvent)]) -> anyhow::Result<()>;
}

pub struct DeskStage {
    store: Box<dyn Store>,
    board: Board,
    engine: String,
    allowance_ms: Millis,
    sink: Option<Box<dyn CallSink>>,
}

impl DeskStage {
    pub fn open(
        mut store: Box<dyn Store>,
        election_id: &str,
        engine: &str,
        allowance_ms: Millis,
        cfg: DeskConfig,
        sink: Option<Box<dyn CallSink>>,
    ) -> Result<DeskStage, BoardError> {
        let mut board = Board::load(&mut *store, election_id, cfg)?;
        // Counted once before the night's work starts, like the processor's
        // registry; a look counts again only if the registry grew. An
        // election not there yet is counted at the first look instead.
        match store.results(election_id, engine) {
            Ok(r) => board.registry(&mut *store, r.registered_voters)?,
            Err(StoreError::UnknownElection(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut stage = DeskStage {
            store,
            board,
            engine: engine.to_string(),
            allowance_ms,
            sink,
        };
        stage.publish_from(0);
        Ok(stage)
    }

    /// One look: seals what is due, then records what the desk decides.
    /// Returns the events recorded by this call, and the board shown.
    pub fn step(&mut self, now: Millis) -> Result<(Vec<DeskEvent>, View), BoardError> {
        self.look(now, None)
    }

    /// A recorded look taken again, in a replay of the night: the same
    /// clock, and the results as they stood with as many votes counted, so
    /// the same night makes the same seals and events. Recorded like any
    /// look, with the original's `accepted` (the replay waited for as many).
    pub fn look_again(&mut self, look: &DeskLook) -> Result<Vec<DeskEvent>, BoardError> {
        Ok(self.look(look.at, Some(look))?.0)
    }

    fn look(
        &mut self,
        now: Millis,
        again: Option<&DeskLook>,
    ) -> Result<(Vec<DeskEvent>, View), BoardError> {
        let store = &mut *self.store;
        // The results carry the election (and its poll schedule) as read
        // in the same look.
        let (election_id, engine) = (self.board.election_id.clone(), &self.engine);
        let read = |store: &mut dyn Store| match again {
            None => store.results(&election_id, engine),
            Some(look) => counted_to(store, &election_id, look.counted),
        };
        let mut results = read(store)?;
        self.board.registry(store, results.registered_voters)?;
        let due: Vec<String> = self
            .board
            .states()
            .filter(|s| !self.board.seals.contains_key(*s))
            .filter(|s| {
                results
                    .election
                    .closes_at(s)
                    .is_some_and(|c| now >= c + self.allowance_ms)
            })
            .map(str::to_string)
            .collect();
        let seals = due.len() as i64;
        for state in due {
            let seal = store.seal_state(&self.board.election_id, &state, now)?;
            metrics::counter!(DESK_SEALS).increment(1);
            tracing::info!(
                state,
                final_votes = seal.final_votes,
                "sealed a state's count"
            );
            self.board.seals.insert(state, seal.final_votes);
        }
        if seals > 0 {
            // Read before the seals: read again, so that the desk is never
            // shown a final count beside results older than the seal.
            results = read(store)?;
        }
        let snap = self.board.snapshot(&results, now);
        let (view, events) = self.board.desk.observe(&snap);
        race_gauges(&view);
        if events.is_empty() && seals == 0 {
            return Ok((events, view));
        }
        let next = self.board.events.len() as i64;
        let look = DeskLook {
            at: now,
            counted: results.counted,
            accepted: again.map_or(results.accepted, |l| l.accepted),
            seals,
            first_event: next,
            events: events.len() as i64,
        };
        let bodies: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).expect("an event serializes"))
            .collect();
        match store.record_look(&self.board.election_id, &look, &bodies) {
            Ok(()) => {
                for e in &events {
                    metrics::counter!(DESK_EVENTS, "kind" => kind_name(e.kind), "race" => race_kind(&e.race))
                        .increment(1);
                    tracing::info!(race = ?e.race, kind = ?e.kind, candidate = e.candidate, "race desk");
                }
                self.board.events.extend(events.iter().cloned());
                self.publish_from(next);
                Ok((events, view))
            }
            Err(StoreError::EngineMoved { .. }) => {
                // Another desk recorded first: take its record as ours.
                self.board.reload(store)?;
                self.publish_from(next);
                Ok((Vec::new(), view))
            }
            Err(e) => {
                // Not recorded: forget this look, so the next one decides again.
                self.board.reload_all(store)?;
                Err(e.into())
            }
        }
    }

    fn publish_from(&mut self, from: i64) {
        let Some(sink) = &mut self.sink else { return };
        let events: Vec<(i64, &DeskEvent)> = self
            .board
            .events
            .iter()
            .enumerate()
            .skip(from.max(0) as usize)
            .map(|(i, e)| (i as i64, e))
            .collect();
        if events.is_empty() {
            return;
        }
        // The store holds the record; a sink that failed is told again
        // (from its own position) at the next event.
        if let Err(e) = sink.publish(&self.board.election_id, &events) {
            tracing::warn!(error = %e, "race desk: cannot publish to the calls topic yet");
        }
    }

    /// Runs until shutdown, one look every `every`.
    pub fn run(mut self, every: Duration, shutdown: &Shutdown) {
        let mut next = Instant::now();
        while !shutdown.is_requested() {
            next += every;
            if let Err(e) = self.step(now_millis()) {
                tracing::warn!(error = %e, "race desk: will look again");
            }
            // In slices: a run that is over must not wait out a whole look.
            while !shutdown.is_requested() && Instant::now() < next {
                let left = next.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_millis(10)));
            }
        }
    }
}

/// The results as they stood when `n` of the election's votes were
/// counted: the ledger up to its `n`-th vote of the election (positions
/// count every election's votes, so each step of the search is at most as
/// far as the votes still missing, and never past it).
fn counted_to(store: &mut dyn Store, election_id: &str, n: i64) -> Result<Results, StoreError> {
    let mut seq = n;
    loop {
        let r = store.results_at(election_id, At::Seq(seq))?;
        let ended = r.as_of.is_none_or(|a| a.seq >= a.ledger_seq);
        if r.counted >= n || ended {
            return Ok(r);
        }
        seq += n - r.counted;
    }
}

/// How many states stand at each status now (the national race apart).
fn race_gauges(view: &View) {
    let mut n = [0u32; 4];
    for s in &view.states {
        n[status_index(&s.status)] += 1;
    }
    for (i, status) in ["too_early", "too_close", "projected", "called"]
        .iter()
        .enumerate()
    {
        metrics::gauge!(DESK_RACES, "status" => *status).set(f64::from(n[i]));
    }
}

fn status_index(s: &Status) -> usize {
    match s {
        Status::TooEarly => 0,
        Status::TooClose => 1,
        Status::Projected { .. } => 2,
        Status::Called { .. } => 3,
    }
}

fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Projected => "projected",
        EventKind::Withdrawn => "withdrawn",
        EventKind::Called => "called",
        EventKind::Suspended => "suspended",
    }
}

fn race_kind(r: &Race) -> &'static str {
    match r {
        Race::State(_) => "state",
        Race::National => "national",
    }
}
