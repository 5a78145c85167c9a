//! The processor: validates each ballot against the registry, lets the store
//! enforce one vote per voter per election, and passes accepted votes on,
//! enriched with what aggregation needs. Every ballot ends as exactly one of
//! accepted, rejected (with a reason) or a recognised replay.

pub mod ack;
pub mod kafka;
pub mod parse;
mod record;
pub(crate) mod registry;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::bus::{BallotSource, Inbound, Payload, VoteSink};
use crate::edge;
use crate::metric_names;
use crate::model::{Ballot, Millis, RejectReason, Rejection, Vote};
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::store::{Batch, Recorded, Store};
pub use record::record_with_retry;
// Kept here for the callers that know it by this name; it lives with the store.
pub use crate::store::{retry, Backoff};
pub use registry::Registry;

/// How far in the future (the processor's clock) a cast time may be: clocks drift.
pub const FUTURE_TOLERANCE_MS: Millis = 5_000;
/// Most ballots taken into one store transaction: bigger batches are faster,
/// smaller ones fresher; under light load batches are as small as the input.
pub const MAX_BATCH: usize = 65_536;
/// Fewest ballots a full-speed batch is cut to: a batch has costs of its
/// own, and one cut below them would slow the rate that sizes the next.
pub(crate) const MIN_BATCH: usize = 4_096;

/// The batch size that takes about `target` at the rate just seen.
pub(crate) fn batch_for(ballots: usize, took: Duration, target: Duration) -> usize {
    let per_sec = ballots as f64 / took.as_secs_f64().max(1e-6);
    ((per_sec * target.as_secs_f64()) as usize).clamp(MIN_BATCH, MAX_BATCH)
}

pub struct Processor {
    // Swapped whole when an admin adds an election or voters; a batch
    // validates against one registry.
    registry: RwLock<Arc<Registry>>,
}

impl Processor {
    pub fn new(registry: Registry) -> Processor {
        Processor {
            registry: RwLock::new(Arc::new(registry)),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        match self.registry.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the registry (after the store's registry changed).
    pub fn set_registry(&self, registry: Registry) {
        let registry = Arc::new(registry);
        match self.registry.write() {
            Ok(mut r) => *r = registry,
            Err(poisoned) => *poisoned.into_inner() = registry,
        }
    }

    /// Checks one ballot against the registry (but not uniqueness: the store
    /// decides that, atomically with the write).
    pub fn validate(&self, inbound: Inbound, now: Millis) -> Result<Vote, Box<Rejection>> {
        self.validate_with(&self.registry(), inbound, now)
    }

    fn validate_with(
        &self,
        registry: &Registry,
        inbound: Inbound,
        now: Millis,
    ) -> Result<Vote, Box<Rejection>> {
        let checked = self.validate_payload(registry, inbound.body, now);
        let Some(source) = inbound.source else {
            return checked;
        };
        match checked {
            Ok(v) => Ok(Vote {
                source: Some(source),
                ..v
            }),
            Err(mut r) => {
                r.source = Some(source);
                Err(r)
            }
        }
    }

    fn validate_payload(
        &self,
        registry: &Registry,
        body: Payload,
        now: Millis,
    ) -> Result<Vote, Box<Rejection>> {
        let ballot = match body {
            Payload::Ballot(b) => b,
            Payload::Raw(bytes) => parse::parse_ballot(&bytes, now)?,
            // Whoever built it, a rejection reaches the store only in a
            // shape every store can keep.
            Payload::Rejected(r) => return Err(Box::new(edge::storable_rejection(*r))),
        };
        let reject = |b: &Ballot, reason, detail: String| {
            Box::new(Rejection {
                ballot_id: b.ballot_id.clone(),
                election_id: Some(b.election_id.clone()),
                voter_id: Some(b.voter_id.clone()),
                reason,
                detail,
                raw: edge::ballot_raw(b),
                received_at: now,
                source: None,
                client: b.client.clone(),
            })
        };
        if let Err(e) = edge::check_ballot(&ballot) {
            let raw = edge::ballot_raw(&ballot);
            return Err(Box::new(edge::invalid_ballot(&ballot, &e, raw, now)));
        }
        let Some(election) = registry.election(&ballot.election_id) else {
            return Err(reject(
                &ballot,
                RejectReason::UnknownElection,
                format!("no election {:?}", ballot.election_id),
            ));
        };
        let Some(voter) = registry.voter(&ballot.voter_id) else {
            return Err(reject(
                &ballot,
                RejectReason::UnknownVoter,
                format!("no registered voter {:?}", ballot.voter_id),
            ));
        };
        let Some(candidate) = election.candidate(&ballot.candidate_id) else {
            return Err(reject(
                &ballot,
                RejectReason::UnknownCandidate,
                format!(
                    "no candidate {:?} in election {:?}",
                    ballot.candidate_id, ballot.election_id
                ),
            ));
        };
        if ballot.cast_at > now + FUTURE_TOLERANCE_MS {
            return Err(reject(
                &ballot,
                RejectReason::CastInFuture,
                format!("cast {} ms in the future", ballot.cast_at - now),
            ));
        }
        if ballot.cast_at < election.opens_at {
            return Err(reject(
                &ballot,
                RejectReason::CastBeforeOpen,
                format!(
                    "cast {} ms before the election opened",
                    election.opens_at - ballot.cast_at
                ),
            ));
        }
        if let Some(close) = election.closes_at(voter.close_step) {
            if ballot.cast_at > close {
                return Err(reject(
                    &ballot,
                    RejectReason::PollsClosed,
                    format!(
                        "cast {} ms after the polls closed in {}",
                        ballot.cast_at - close,
                        voter.state
                    ),
                ));
            }
        }
        Ok(Vote {
            seq: 0,
            election_id: election.id.clone(),
            candidate_id: candidate.clone(),
            state: voter.state,
            age_band: voter.age_band,
            gender: voter.gender,
            cast_at: ballot.cast_at,
            source: None,
            ballot_id: ballot.ballot_id,
            voter_id: ballot.voter_id,
            election_no: election.no,
            voter_no: voter.voter_no,
            client: ballot.client,
        })
    }

    /// Validates a batch of ballots.
    pub fn validate_batch(&self, inbound: Vec<Inbound>, now: Millis) -> Batch {
        self.validate_intake(inbound, now).0
    }

    /// Validates a batch, and notes the answers owed for the ballots that
    /// carry an [`ack::Ack`].
    pub(crate) fn validate_intake(
        &self,
        inbound: Vec<Inbound>,
        now: Millis,
    ) -> (Batch, Vec<ack::Pending>) {
        let registry = self.registry();
        let mut batch = Batch {
            votes: Vec::with_capacity(inbound.len()),
            ..Batch::default()
        };
        let mut pending = Vec::new();
        for mut i in inbound {
            let ack = i.ack.take();
            match self.validate_with(&registry, i, now) {
                Ok(v) => {
                    if let Some(ack) = ack {
                        pending.push(ack::Pending {
                            slot: ack::Slot::Vote(batch.votes.len()),
                            ballot_id: v.ballot_id.clone(),
                            ack,
                        });
                    }
                    batch.votes.push(v);
                }
                Err(r) => {
                    if let Some(ack) = ack {
                        pending.push(ack::Pending {
                            slot: ack::Slot::Rejection(batch.rejections.len()),
                            ballot_id: r.ballot_id.clone(),
                            ack,
                        });
                    }
                    batch.rejections_after.push(batch.votes.len());
                    batch.rejections.push(*r);
                }
            }
        }
        (batch, pending)
    }
}

/// Runs the processor until its source ends (or shutdown is asked and the
/// source has nothing more right now). Two threads: one reads and validates
/// the next batch while the other writes the previous one, so the CPU work
/// and the store's I/O overlap.
pub fn run(
    processor: &Processor,
    store: &mut dyn Store,
    source: &mut dyn BallotSource,
    sink: Option<&dyn VoteSink>,
    stats: &Stats,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let (tx, rx) = crossbeam_channel::bounded::<(u64, Batch, Vec<ack::Pending>)>(1);
    // Where the store's writers wait for each other, the writer sets it
    // from how fast the last batch wrote.
    let batch_time = store.batch_time();
    let limit = AtomicUsize::new(MAX_BATCH);
    std::thread::scope(|s| {
        let limit = &limit;
        let validating = s.spawn(move || -> anyhow::Result<()> {
            let mut stopped = false;
            let wait = Duration::from_millis(100);
            while let Some(batch) = source.next_batch(limit.load(Relaxed), wait)? {
                if shutdown.is_requested() && !stopped {
                    // A pipe cannot be read again: what was read is still
                    // recorded, then the source ends.
                    source.stop();
                    stopped = true;
                }
                if batch.is_empty() {
                    if shutdown.is_requested() {
                        break;
                    }
                    continue;
                }
                let n = batch.len() as u64;
                let (validated, pending) =
                    processor.validate_intake(batch, crate::model::now_millis());
                if tx.send((n, validated, pending)).is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Ok(())
        });
        let writing = (|| -> anyhow::Result<()> {
            for (n, validated, pending) in rx {
                let started = Instant::now();
                let recorded = record_with_retry(store, validated, shutdown)?;
                let took = started.elapsed();
                metrics::histogram!(metric_names::BATCH_COMMIT_SECONDS).record(took.as_secs_f64());
                if let Some(target) = batch_time {
                    limit.store(batch_for(n as usize, took, target), Relaxed);
                }
                count_batch(&recorded);
                // Only now, with the batch committed, may anyone hear "accepted".
                ack::resolve(pending, &recorded);
                stats.record_batch(n, &recorded.votes, &recorded.rejections, recorded.replays);
                if let Some(sink) = sink {
                    sink.send(recorded.votes, recorded.rejections);
                }
            }
            Ok(())
        })();
        let validated = validating
            .join()
            .map_err(|_| anyhow::anyhow!("ballot validation thread panicked"))?;
        writing.and(validated)
    })
}

/// Counts what one batch recorded, for `/metrics`.
pub(crate) fn count_batch(r: &Recorded) {
    metrics::counter!(metric_names::BALLOTS_ACCEPTED).increment(r.votes.len() as u64);
    metrics::counter!(metric_names::BALLOTS_REPLAYED).increment(r.replays as u64);
    let mut by_reason = [0u64; RejectReason::ALL.len()];
    for rej in &r.rejections {
        by_reason[rej.reason as usize] += 1;
    }
    for (reason, n) in RejectReason::ALL.iter().zip(by_reason) {
        if n > 0 {
            metrics::counter!(metric_names::BALLOTS_REJECTED, "reason" => reason.as_str())
                .increment(n);
        }
    }
}

#[cfg(test)]
mod tests;
