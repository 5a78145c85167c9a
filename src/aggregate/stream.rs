//! The built-in engine fed by Kafka: counts `votes_topic` (read_committed)
//! and saves each batch's tally deltas with its offsets in one store
//! transaction (`Store::add_tallies`). The offsets are compare-and-set per
//! partition, so when two instances briefly read one partition (a
//! rebalance, a restart) only one of them counts it; the other goes back to
//! where the store says counting stopped. Many instances in the aggregator
//! group therefore share the partitions and still count each vote once.
//!
//! After saving, the latest totals go to the compacted aggregate topics
//! (at most a few times a second; a reader wants the latest value per key).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Tallies, TallyKey, BUILTIN};
use crate::bus::kafka::messages::parse_vote;
use crate::bus::kafka::votes::{Delivered, KafkaVotes};
use crate::bus::kafka::{KafkaBus, Publisher, Topic};
use crate::model::Millis;
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::store::util::Interner;
use crate::store::{retry, Backoff, OffsetMove, Store, StoreError};

/// Messages counted per store transaction, at most.
const BATCH: usize = 50_000;
/// How often the aggregate topics get the latest totals, at most.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

pub struct StreamEngine {
    store: Box<dyn Store>,
    votes: KafkaVotes,
    allowance: Millis,
    /// The latest cast time seen per election: a vote's lateness is judged
    /// against it, across batches.
    watermarks: HashMap<Arc<str>, Millis>,
    interner: Interner,
    aggregates: Publisher,
    aggregate_topics: (String, String),
    touched: HashSet<Arc<str>>,
    published_at: Instant,
    /// `votes_topic` messages that could not be read as votes.
    pub bad_messages: u64,
}

impl StreamEngine {
    pub fn open(
        bus: &KafkaBus,
        mut store: Box<dyn Store>,
        allowance: Millis,
    ) -> Result<StreamEngine, anyhow::Error> {
        let (tallies, _) = store.load_tallies(BUILTIN)?;
        let watermarks = tallies
            .iter()
            .filter_map(|(k, v)| match k {
                TallyKey::MaxCastAt { election } => Some((election.clone(), v)),
                _ => None,
            })
            .collect();
        Ok(StreamEngine {
            store,
            votes: KafkaVotes::open(bus)?,
            allowance,
            watermarks,
            interner: Interner::default(),
            aggregates: bus.publisher()?,
            aggregate_topics: (
                bus.topic(Topic::VotesPerCandidate),
                bus.topic(Topic::TurnoutByLocation),
            ),
            touched: HashSet::new(),
            published_at: Instant::now(),
            bad_messages: 0,
        })
    }

    /// Counts until shutdown, or with `until_idle` once no vote came for that long.
    pub fn run(
        &mut self,
        stats: &Stats,
        shutdown: &Shutdown,
        until_idle: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut last_vote = Instant::now();
        while !shutdown.is_requested() {
            let batch = self.votes.poll_batch(BATCH, Duration::from_millis(100));
            stats.aggregator_caught_up.store(batch.is_empty(), Relaxed);
            if batch.is_empty() {
                self.publish_aggregates(false);
                if until_idle.is_some_and(|idle| last_vote.elapsed() >= idle) {
                    break;
                }
                continue;
            }
            last_vote = Instant::now();
            let started = Instant::now();
            if let Some((seq, n)) = self.count(batch, shutdown)? {
                stats.aggregated_seq.fetch_max(seq, Relaxed);
                stats.counted.fetch_add(n, Relaxed);
                metrics::histogram!(crate::metric_names::AGGREGATOR_SAVE_SECONDS)
                    .record(started.elapsed().as_secs_f64());
            }
            self.publish_aggregates(false);
        }
        self.publish_aggregates(true);
        Ok(())
    }

    /// Counts one batch; the highest seq counted and how many votes, if it
    /// was saved.
    fn count(
        &mut self,
        batch: Vec<Delivered>,
        shutdown: &Shutdown,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        let topic = self.votes.topic().to_string();
        let store = &mut self.store;
        let stored = retry(shutdown, || store.load_offsets(BUILTIN, &topic))?;
        let mut delta = Tallies::default();
        for (e, m) in &self.watermarks {
            delta.insert(
                TallyKey::MaxCastAt {
                    election: e.clone(),
                },
                *m,
            );
        }
        let mut moves: HashMap<i32, OffsetMove> = HashMap::new();
        let mut max_seq = None;
        let mut votes = 0u64;
        for d in batch {
            let from = stored.get(&d.partition).copied();
            if from.is_some_and(|next| d.offset < next) {
                continue; // counted already (by us before a crash, or another instance)
            }
            let mv = moves.entry(d.partition).or_insert(OffsetMove {
                partition: d.partition,
                from,
                to: d.offset + 1,
            });
            mv.to = mv.to.max(d.offset + 1);
            match parse_vote(&d.payload, &mut self.interner) {
                Ok(v) => {
                    delta.apply(&v, self.allowance);
                    self.touched.insert(v.election_id.clone());
                    max_seq = max_seq.max(Some(v.seq));
                    votes += 1;
                }
                Err(e) => {
                    // Only the processor writes this topic; still, one bad
                    // message must not stop the count of the others.
                    self.bad_messages += 1;
                    tracing::warn!(partition = d.partition, offset = d.offset, error = %e,
                        "skipping a votes_topic message that is not a vote");
                }
            }
        }
        if moves.is_empty() {
            return Ok(None);
        }
        let moves: Vec<OffsetMove> = moves.into_values().collect();
        let changed = delta.take_dirty();
        let mut backoff = Backoff::default();
        loop {
            match self.store.add_tallies(BUILTIN, &changed, &topic, &moves) {
                Ok(()) => break,
                Err(StoreError::EngineMoved { engine, .. }) => {
                    let store = &mut self.store;
                    let now = retry(shutdown, || store.load_offsets(BUILTIN, &topic))?;
                    if moves.iter().all(|m| now.get(&m.partition) == Some(&m.to)) {
                        // Our own save: it committed, but the connection was
                        // lost before the answer came (a database restart).
                        break;
                    }
                    tracing::info!(%engine, "another instance counted these partitions; following it");
                    for m in &moves {
                        self.votes.seek(m.partition, now.get(&m.partition).copied());
                    }
                    return Ok(None);
                }
                Err(e) => {
                    if !backoff.wait(&e, shutdown) {
                        return Err(e);
                    }
                }
            }
        }
        for (k, v) in delta.iter() {
            if let TallyKey::MaxCastAt { election } = k {
                self.watermarks.insert(election.clone(), v);
            }
        }
        self.votes
            .commit_hint(&moves.iter().map(|m| (m.partition, m.to)).collect());
        Ok(max_seq.map(|s| (s, votes)))
    }

    /// Sends the latest totals of the elections counted since the last time.
    fn publish_aggregates(&mut self, now: bool) {
        if self.touched.is_empty() || (!now && self.published_at.elapsed() < PUBLISH_EVERY) {
            return;
        }
        self.published_at = Instant::now();
        for election in std::mem::take(&mut self.touched) {
            if let Err(e) = self.publish_election(&election) {
                tracing::warn!(%election, error = %e, "publishing aggregate topics");
            }
        }
        if now {
            if let Err(e) = self.aggregates.flush(Duration::from_secs(10)) {
                tracing::warn!(error = %e, "publishing aggregate topics");
            }
        }
    }

    fn publish_election(&mut self, election: &str) -> anyhow::Result<()> {
        let r = self.store.results(election, BUILTIN)?;
        let (per_candidate, per_state) = &self.aggregate_topics;
        for c in &r.candidates {
            let mut value = serde_json::to_value(c)?;
            value["election_id"] = election.into();
            let key = format!("{election}:{}", c.candidate_id);
            self.aggregates.send(
                per_candidate,
                Some(key.as_bytes()),
                &serde_json::to_vec(&value)?,
            )?;
        }
        for s in &r.states {
            let value =
                serde_json::json!({"state": s.state, "count": s.count, "election_id": election});
            let key = format!("{election}:{}", s.state);
            self.aggregates.send(
                per_state,
                Some(key.as_bytes()),
                &serde_json::to_vec(&value)?,
            )?;
        }
        Ok(())
    }
}
