//! The alerts stage: the [`Watch`] fed from the store's ledger, the ground
//! truth both shapes share. Every look reads the votes and the rejections
//! recorded since its position, merges them in stream time, and records the
//! alerts they open or resolve together with its new position and the
//! detectors' state, in one transaction that only commits if the stage
//! still stands where it read from. So a stage killed at any moment resumes
//! from what was recorded, and no alert is recorded twice.
//!
//! Stream time is the ballot's cast time for a vote and the time received
//! for a rejection (a replay keeps both). When the stream goes quiet while
//! it is live (within a minute of the clock), the clock moves stream time on,
//! so the last buckets close and quiet alerts resolve.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::record::{AlertChange, Change};
use super::{AlertConfig, AlertEvent, AlertKind, Observation, Registry, Watch};
use crate::metric_names::{ALERTS_OPEN, ALERT_CHANGES};
use crate::model::{now_millis, Millis, Rejection};
use crate::shutdown::Shutdown;
use crate::store::{AlertResume, LedgerEntry, LedgerPosition, Store, StoreError, VoterKey};

/// Votes (and rejections) read per look by default: a look that read this
/// many looks again at once, so the stage keeps up with the pipeline.
pub const READ_LIMIT: usize = 20_000;
/// The fewest rejections a look reads while its reads adapt to how many
/// the votes read beside them let it use.
const MIN_REJECTION_READ: usize = 256;
/// How often a stage whose looks change no alert saves where it stands.
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// How long a stopping stage goes on reading what the ledger still holds.
pub const DRAIN_FOR: Duration = Duration::from_secs(5);
/// How far behind the clock stream time may be for the clock to move it.
const LIVE_WITHIN_MS: Millis = 60_000;

/// Where recorded changes go besides the store: told them in order, with
/// their numbers, after they are recorded; possibly again (skip numbers
/// already had).
pub trait AlertSink: Send {
    fn publish(&mut self, election_id: &str, changes: &[(i64, &AlertChange)])
        -> anyhow::Result<()>;
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the alerts stage's saved state cannot be read: {0}")]
    State(#[from] serde_json::Error),
}

pub struct AlertStage {
    store: Box<dyn Store>,
    election_id: String,
    cfg: AlertConfig,
    /// The engine whose persisted tallies are watched for going backwards.
    engine: String,
    /// None until the election is in the store.
    watch: Option<Watch>,
    at: LedgerPosition,
    /// Where the store has the stage (`at` runs ahead between saves).
    saved: LedgerPosition,
    saved_at: Instant,
    recorded: i64,
    /// Changes every sink has been told (from 0: a new stage tells the
    /// sinks it opened with what they may have missed).
    published: i64,
    sinks: Vec<Box<dyn AlertSink>>,
    read_limit: usize,
    /// Rejections read per look: about twice what the last look used, so a
    /// stage catching up does not read the same rejections again and again
    /// while the votes in their time are read.
    rejection_limit: usize,
    /// The registry as a process that holds it in memory handed it over:
    /// the voters' states are taken from it instead of a scan of the store
    /// when the stage starts watching, and a rejected voter's state is
    /// looked up in it first (voters registered since are in the store).
    given: Option<Arc<crate::process::Registry>>,
    /// Whether the index was built from `given` yet.
    index_given: bool,
    /// Each voter's state, by voter_no, and the election's number (built
    /// when the stage starts watching; again if the registry grew).
    index: Option<StateIndex>,
    /// When the tallies were last read back.
    tallies_at: Option<Instant>,
    /// Rejected voters' states, looked up once each (cleared when large).
    voter_states: HashMap<String, Option<Arc<str>>>,
}

impl AlertStage {
    pub fn open(
        store: Box<dyn Store>,
        election_id: &str,
        engine: &str,
        cfg: AlertConfig,
        sinks: Vec<Box<dyn AlertSink>>,
    ) -> Result<AlertStage, StageError> {
        let mut stage = AlertStage {
            store,
            election_id: election_id.to_string(),
            cfg,
            engine: engine.to_string(),
            watch: None,
            at: LedgerPosition::default(),
            saved: LedgerPosition::default(),
            saved_at: Instant::now(),
            recorded: 0,
            published: 0,
            sinks,
            read_limit: READ_LIMIT,
            rejection_limit: READ_LIMIT,
            given: None,
            index_given: false,
            index: None,
            tallies_at: None,
            voter_states: HashMap::new(),
        };
        stage.reload()?;
        stage.publish();
        Ok(stage)
    }

    /// Takes the recorded position and state back (at start, and when a
    /// save did not commit).
    fn reload(&mut self) -> Result<(), StageError> {
        let store = &mut *self.store;
        self.recorded = store.alert_events(&self.election_id, 0)?.len() as i64;
        match store.alert_resume(&self.election_id)? {
            Some(r) => {
                self.watch = Some(Watch::resume(self.cfg.clone(), &r.state)?);
                self.at = r.at;
                self.saved = r.at;
            }
            None => {
                self.watch = None;
                self.at = LedgerPosition::default();
                self.saved = self.at;
            }
        }
        Ok(())
    }

    /// Reads at most `n` votes and `n` rejections per look.
    pub fn read_limit(mut self, n: usize) -> AlertStage {
        self.read_limit = n.max(1);
        self.rejection_limit = self.read_limit;
        self
    }

    /// The registry from a process that already holds it in memory (a
    /// run's processor): the stage then skips its own scan of the store and
    /// looks rejected voters up in memory.
    pub fn with_registry(mut self, registry: Arc<crate::process::Registry>) -> AlertStage {
        self.given = Some(registry);
        self
    }

    /// Changes recorded so far.
    pub fn recorded(&self) -> i64 {
        self.recorded
    }

    /// One look: reads what the ledger gained, records what it changes.
    /// Returns the changes recorded, and whether the read was full (look
    /// again at once).
    pub fn step(&mut self, now: Millis) -> Result<(Vec<AlertChange>, bool), StageError> {
        if self.index.is_none() || self.watch.is_none() {
            let Some((index, reg)) = self.registry()? else {
                return Ok((Vec::new(), false));
            };
            self.index = Some(index);
            if self.watch.is_none() {
                self.watch = Some(Watch::new(self.cfg.clone(), reg));
            }
        }
        let from = self.at;
        let limit = self.read_limit;
        let votes = self.store.ledger_after(from.votes, limit)?;
        let beyond = self.index.as_ref().is_some_and(|i| {
            votes
                .iter()
                .any(|v| v.voter_no as usize >= i.by_voter.len())
        });
        if beyond {
            // Voters registered since the stage started: know their states.
            self.index = self.registry()?.map(|(i, _)| i);
        }
        let r_limit = self.rejection_limit.min(limit);
        let rejections = self.store.rejections_after(from.rejections, r_limit)?;
        let full = votes.len() == limit || rejections.len() == r_limit;
        let states = self.rejected_states(&rejections)?;
        // The tallies at most once a second: a look after a full read comes
        // at once, and the read model is not small.
        let tallies = match self.tallies_at {
            Some(t) if t.elapsed() < Duration::from_secs(1) => Vec::new(),
            _ => {
                self.tallies_at = Some(Instant::now());
                self.tallies()?
            }
        };
        let watch = self.watch.as_mut().expect("made above");
        let mut feed = Feed {
            watch,
            election_id: &self.election_id,
            index: self.index.as_ref().expect("made above"),
            at: from,
            changes: Vec::new(),
        };
        let used = feed.merge((&votes, &rejections), &states, (limit, r_limit));
        self.rejection_limit = if used == r_limit {
            (r_limit * 2).min(limit)
        } else if used < rejections.len() {
            (used * 2).clamp(MIN_REJECTION_READ.min(limit), limit)
        } else {
            r_limit
        };
        let moved = feed.at != from;
        if !moved && !full {
            // Quiet: the clock closes buckets, but only on a live night.
            let stream = feed.watch.now();
            let to = now - self.cfg.bucket_ms;
            if stream > Millis::MIN && now - stream < LIVE_WITHIN_MS && to > stream {
                let events = feed.watch.tick(to);
                feed.take(events);
            }
        }
        let at_now = feed.watch.now();
        // Before the first observation there is no stream time to date them.
        let tallies = if at_now > Millis::MIN {
            tallies
        } else {
            Vec::new()
        };
        for (state, candidate, count) in &tallies {
            let o = Observation::Tally {
                at: at_now,
                state,
                candidate,
                count: *count,
            };
            let events = feed.watch.observe(&o);
            feed.take(events);
        }
        let (to, changes) = (feed.at, feed.changes);
        // A look that changed no alert is saved only now and then, or once
        // the ledger has nothing more: each save takes the store's write
        // lock, which the count needs. A restart from an older save decides
        // the same changes again, and finds them recorded.
        let unsaved = to != self.saved;
        let idle = to == from;
        if changes.is_empty() && (!unsaved || (!idle && self.saved_at.elapsed() < SAVE_EVERY)) {
            self.at = to;
            return Ok((changes, full));
        }
        match self.save(to, &changes)? {
            true => Ok((changes, full)),
            false => Ok((Vec::new(), true)),
        }
    }

    /// Saves where the stage stands if a look moved it since the last save.
    pub fn flush(&mut self) -> Result<(), StageError> {
        if self.at != self.saved {
            self.save(self.at, &[])?;
        }
        Ok(())
    }

    /// Moves stream time on to `at` with nothing more read, and records
    /// what that closes: how a replay's stage ends where the original's
    /// clock took it after the night.
    pub fn tick_to(&mut self, at: Millis) -> Result<Vec<AlertChange>, StageError> {
        let Some(watch) = self.watch.as_mut() else {
            return Ok(Vec::new());
        };
        if at <= watch.now() {
            return Ok(Vec::new());
        }
        let position = self.at.votes;
        let changes: Vec<AlertChange> = watch
            .tick(at)
            .into_iter()
            .map(|e| change(e, position))
            .collect();
        let at = self.at;
        match self.save(at, &changes)? {
            true => Ok(changes),
            false => Ok(Vec::new()),
        }
    }

    /// Stream time as the watch has it (None before it started).
    pub fn stream_time(&self) -> Option<Millis> {
        self.watch
            .as_ref()
            .map(Watch::now)
            .filter(|&t| t > Millis::MIN)
    }

    /// Records `changes` and the move from the last save to `to` with the
    /// detectors' state. False when another stage moved first (the record
    /// is taken back); an error when nothing could be recorded.
    fn save(&mut self, to: LedgerPosition, changes: &[AlertChange]) -> Result<bool, StageError> {
        let from = self.saved;
        let bodies: Vec<String> = changes
            .iter()
            .map(|c| serde_json::to_string(c).expect("a change serializes"))
            .collect();
        let resume = AlertResume {
            at: to,
            state: self
                .watch
                .as_ref()
                .expect("a stage saves once it watches")
                .save(),
        };
        let saved =
            self.store
                .append_alerts(&self.election_id, self.recorded, &bodies, from, &resume);
        match saved {
            Ok(()) => {
                self.at = to;
                self.saved = to;
                self.saved_at = Instant::now();
                self.recorded += changes.len() as i64;
                self.count(changes);
                self.publish();
                Ok(true)
            }
            Err(e) => {
                // Not recorded (or another stage moved first): take the
                // record back and decide again from there.
                self.reload()?;
                match e {
                    StoreError::EngineMoved { .. } => Ok(false),
                    e => Err(e.into()),
                }
            }
        }
    }

    /// What the watch must know of the election, once it is in the store:
    /// the candidates, the polling hours, and the registration per state as
    /// it stands when the watch starts (saved with its state from then on).
    fn registry(&mut self) -> Result<Option<(StateIndex, Registry)>, StoreError> {
        let store = &mut *self.store;
        let Some(e) = store
            .elections()?
            .into_iter()
            .find(|e| e.election.election_id == self.election_id)
        else {
            return Ok(None);
        };
        // The registry handed over is the one the run started with: once
        // the index needs voters registered since, the store has them.
        let (names, by_voter) = match &self.given {
            Some(given) if !self.index_given => {
                self.index_given = true;
                given.states_by_voter_no()
            }
            _ => scan_states(store)?,
        };
        let mut per_state = vec![0u64; names.len()];
        for &no in &by_voter {
            if let Some(n) = per_state.get_mut(usize::from(no)) {
                *n += 1;
            }
        }
        let registered: HashMap<String, u64> = names
            .iter()
            .zip(per_state)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.to_string(), n))
            .collect();
        let index = StateIndex {
            election_no: e.no,
            names,
            by_voter,
        };
        let closes = registered
            .keys()
            .filter_map(|s| Some((s.clone(), e.election.closes_at(s)?)))
            .collect();
        let reg = Registry {
            registered,
            candidates: e
                .candidates
                .iter()
                .map(|c| c.candidate_id.clone())
                .collect(),
            opens: e.election.opens_at,
            closes,
        };
        Ok(Some((index, reg)))
    }

    /// The state of each rejected ballot's voter, where the voter is known.
    fn rejected_states(
        &mut self,
        rejections: &[(i64, Rejection)],
    ) -> Result<Vec<Option<Arc<str>>>, StoreError> {
        if self.voter_states.len() > 200_000 {
            self.voter_states.clear();
        }
        let mut out = Vec::with_capacity(rejections.len());
        for (_, r) in rejections {
            let state = match (&r.voter_id, r.election_id.as_deref()) {
                (Some(voter), Some(e)) if e == self.election_id => {
                    let in_memory = self.given.as_ref().and_then(|g| g.voter(voter));
                    match (in_memory, self.voter_states.get(voter)) {
                        (Some(v), _) => Some(v.state),
                        (None, Some(s)) => s.clone(),
                        (None, None) => {
                            let s = self.store.voter(voter)?.map(|v| Arc::from(v.address_state));
                            self.voter_states.insert(voter.clone(), s.clone());
                            s
                        }
                    }
                }
                _ => None,
            };
            out.push(state);
        }
        Ok(out)
    }

    /// The engine's persisted tallies per state and candidate (none before
    /// the engine has counted anything).
    fn tallies(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let results = match self.store.results(&self.election_id, &self.engine) {
            Ok(r) => r,
            Err(StoreError::UnknownElection(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(results
            .states
            .into_iter()
            .flat_map(|s| {
                let state = s.state;
                s.by_candidate
                    .into_iter()
                    .map(move |(c, n)| (state.clone(), c, n.max(0) as u64))
            })
            .collect())
    }

    fn count(&self, changes: &[AlertChange]) {
        for c in changes {
            let change = match c.change {
                Change::Opened => "opened",
                Change::Resolved => "resolved",
            };
            metrics::counter!(ALERT_CHANGES, "kind" => kind_name(c.alert.kind), "change" => change)
                .increment(1);
            tracing::warn!(kind = kind_name(c.alert.kind), change, scope = ?c.alert.scope, "alert");
        }
        if let Some(w) = &self.watch {
            let mut open: HashMap<AlertKind, u32> = HashMap::new();
            for a in w.open_alerts() {
                *open.entry(a.kind).or_default() += 1;
            }
            for kind in AlertKind::ALL {
                let n = open.get(&kind).copied().unwrap_or(0);
                metrics::gauge!(ALERTS_OPEN, "kind" => kind_name(kind)).set(f64::from(n));
            }
        }
    }

    /// Tells the sinks every change from the first one not yet told to all
    /// of them: a sink that failed is told again, and each sink skips what
    /// it already has (the `alerts` topic knows its own position).
    fn publish(&mut self) {
        if self.sinks.is_empty() || self.published >= self.recorded {
            return;
        }
        let read = self.store.alert_events(&self.election_id, self.published);
        let changes: Vec<AlertChange> = match read {
            Ok(bodies) => bodies
                .iter()
                .filter_map(|b| serde_json::from_str(b).ok())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "alerts: cannot read the record to publish yet");
                return;
            }
        };
        let numbered: Vec<(i64, &AlertChange)> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (self.published + i as i64, c))
            .collect();
        let mut all = true;
        for sink in &mut self.sinks {
            if let Err(e) = sink.publish(&self.election_id, &numbered) {
                tracing::warn!(error = %e, "alerts: cannot publish yet");
                all = false;
            }
        }
        if all {
            self.published += numbered.len() as i64;
        }
    }

    /// Adds a sink, told every change from now on; the record so far is
    /// told to the sinks the stage opened with.
    pub fn add_sink(&mut self, sink: Box<dyn AlertSink>) {
        self.publish();
        self.sinks.push(sink);
    }

    /// Runs until shutdown, one look every `every` (at once after a full
    /// read); then reads what the ledger still holds, for at most
    /// [`DRAIN_FOR`], so a run that ends records its last alerts.
    pub fn run(mut self, every: Duration, shutdown: &Shutdown) {
        while !shutdown.is_requested() {
            let next = Instant::now() + every;
            match self.step(now_millis()) {
                Ok((_, true)) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "alerts: will look again"),
            }
            while !shutdown.is_requested() && Instant::now() < next {
                let left = next.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_millis(10)));
            }
        }
        let deadline = Instant::now() + DRAIN_FOR;
        while Instant::now() < deadline {
            match self.step(now_millis()) {
                Ok((_, true)) => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "alerts: stopping with the ledger not all read");
                    break;
                }
            }
        }
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "alerts: stopping without saving the last looks");
        }
    }
}

/// The watch fed one look's reads in stream order.
struct Feed<'a> {
    watch: &'a mut Watch,
    election_id: &'a str,
    index: &'a StateIndex,
    at: LedgerPosition,
    changes: Vec<AlertChange>,
}

impl Feed<'_> {
    /// Merges the two reads by stream time. A read that came back full may
    /// hold more than it showed: the merge stops where it ends, so what is
    /// not fed now is read again next time, in its place. Returns how many
    /// rejections it fed.
    fn merge(
        &mut self,
        (votes, rejections): (&[LedgerEntry], &[(i64, Rejection)]),
        states: &[Option<Arc<str>>],
        (v_limit, r_limit): (usize, usize),
    ) -> usize {
        let (v_full, r_full) = (votes.len() == v_limit, rejections.len() == r_limit);
        let (mut i, mut j) = (0, 0);
        loop {
            let vote_first = match (votes.get(i), rejections.get(j)) {
                (Some(v), Some((_, r))) => v.cast_at <= r.received_at,
                (Some(_), None) => !r_full,
                (None, Some(_)) => v_full,
                (None, None) => break,
            };
            if vote_first {
                let Some(v) = votes.get(i) else { break };
                self.vote(v);
                i += 1;
            } else {
                let Some((id, r)) = rejections.get(j) else {
                    break;
                };
                self.rejection(*id, r, states[j].as_deref());
                j += 1;
            }
        }
        j
    }

    fn vote(&mut self, v: &LedgerEntry) {
        self.at.votes = v.seq;
        if v.election_no != self.index.election_no {
            return;
        }
        let source = v.client.as_deref().unwrap_or("");
        let state = self.index.state(v.voter_no);
        for o in [
            Observation::Received {
                at: v.cast_at,
                state: Some(state),
                source,
            },
            Observation::Accepted {
                at: v.cast_at,
                state,
                candidate: &v.candidate_id,
                cast_at: v.cast_at,
            },
        ] {
            let events = self.watch.observe(&o);
            self.take(events);
        }
    }

    fn rejection(&mut self, id: i64, r: &Rejection, state: Option<&str>) {
        self.at.rejections = id;
        if r.election_id.as_deref() != Some(self.election_id) {
            return;
        }
        let source = r.client.as_deref().unwrap_or("");
        for o in [
            Observation::Received {
                at: r.received_at,
                state,
                source,
            },
            Observation::Rejected {
                at: r.received_at,
                state,
                reason: r.reason.as_str(),
            },
        ] {
            let events = self.watch.observe(&o);
            self.take(events);
        }
    }

    fn take(&mut self, events: Vec<AlertEvent>) {
        for e in events {
            self.changes.push(change(e, self.at.votes));
        }
    }
}

/// An alert opened or resolved, as recorded at a ledger position.
fn change(e: AlertEvent, position: i64) -> AlertChange {
    let (change, alert) = match e {
        AlertEvent::Opened(a) => (Change::Opened, a),
        AlertEvent::Resolved(a) => (Change::Resolved, a),
    };
    AlertChange {
        change,
        alert,
        position,
    }
}

/// Each registered voter's state by voter_no, from one scan of the registry.
fn scan_states(store: &mut dyn Store) -> Result<(Vec<Arc<str>>, Vec<u16>), StoreError> {
    let (mut names, mut by_voter) = (Vec::new(), Vec::new());
    let mut numbers: HashMap<String, u16> = HashMap::new();
    store.scan_voters(&mut |v: VoterKey<'_>| {
        let no = match numbers.get(v.state) {
            Some(&no) => no,
            None => {
                let no = names.len().min(usize::from(UNKNOWN - 1)) as u16;
                names.push(Arc::from(v.state));
                numbers.insert(v.state.to_string(), no);
                no
            }
        };
        let at = v.voter_no.max(0) as usize;
        if by_voter.len() <= at {
            by_voter.resize(at + 1, UNKNOWN);
        }
        by_voter[at] = no;
    })?;
    Ok((names, by_voter))
}

/// A state number meaning "not known".
const UNKNOWN: u16 = u16::MAX;

/// Each registered voter's state, by voter_no: a few bytes per voter, so the
/// ledger is read without the voters' profiles.
struct StateIndex {
    election_no: i64,
    names: Vec<Arc<str>>,
    by_voter: Vec<u16>,
}

impl StateIndex {
    fn state(&self, voter_no: i64) -> &str {
        usize::try_from(voter_no)
            .ok()
            .and_then(|i| self.by_voter.get(i))
            .and_then(|&n| self.names.get(usize::from(n)))
            .map_or("", |s| s)
    }
}

pub fn kind_name(k: AlertKind) -> &'static str {
    match k {
        AlertKind::TurnoutOverRegistration => "turnout_over_registration",
        AlertKind::CountWentBackwards => "count_went_backwards",
        AlertKind::UnknownCandidate => "unknown_candidate",
        AlertKind::OutsidePollingHours => "outside_polling_hours",
        AlertKind::RateSpike => "rate_spike",
        AlertKind::RateShift => "rate_shift",
        AlertKind::SourceConcentration => "source_concentration",
        AlertKind::ShareSwing => "share_swing",
    }
}
