//! The processor's side of Kafka: ballots in, and per batch one Kafka
//! transaction out that holds the batch's `votes_topic` and
//! `rejected_ballots` messages and the consumer offsets past it.
//!
//! The store commits first, Kafka second. A crash between the two leaves the
//! batch recorded but not published, and its offsets not committed: the
//! batch is read again (by this instance after a restart, or by whichever
//! instance takes the partition), the store recognises each message by its
//! (partition, offset) and hands back the stored outcome to publish again
//! (`Recorded::republish_*`). A ballot sent twice is two messages: the
//! second is a plain replay and publishes nothing. So a read_committed
//! consumer of `votes_topic` sees each accepted vote exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::messages::{parse_edge_rejection, rejection_json, vote_json, EDGE_REJECTION_HEADER};
use super::{send_retrying, KafkaBus, Topic};
use crate::bus::{BusError, Inbound};
use crate::model::{Candidate, Source, Vote, Voter};
use crate::store::{Recorded, Store, StoreError};

/// Counts rebalances, so a batch knows whether its partitions changed
/// owner while it was being read.
#[derive(Default)]
pub struct GroupContext {
    rebalances: AtomicU64,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Relaxed);
        tracing::info!(?rebalance, "consumer group rebalance");
    }
}

/// Ballots read from Kafka for one batch.
pub struct Polled {
    pub inbound: Vec<Inbound>,
    /// The next offset after the batch, per partition.
    pub ends: HashMap<i32, i64>,
    /// The group generation the batch was read in: the transaction commits
    /// the offsets only if that generation still owns the partitions.
    group: Option<ConsumerGroupMetadata>,
}

impl Polled {
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A `ballots` message as the processor takes it: the raw ballot, or the
/// refusal the HTTP edge already answered (its header).
pub fn inbound(m: &impl Message) -> Inbound {
    let payload = m.payload().unwrap_or_default();
    let refused = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == EDGE_REJECTION_HEADER)
            .and_then(|h| parse_edge_rejection(h.value?, payload))
    });
    match refused {
        Some(r) => Inbound::rejected(r),
        None => Inbound::raw(payload.to_vec()),
    }
}

/// The `ballots` topic, read by a processor instance in the group.
pub struct KafkaBallots {
    consumer: BaseConsumer<GroupContext>,
    topic: String,
}

impl KafkaBallots {
    pub fn open(bus: &KafkaBus) -> Result<KafkaBallots, BusError> {
        let topic = bus.topic(Topic::Ballots);
        let consumer: BaseConsumer<GroupContext> = bus
            .consumer_config("processor")
            .create_with_context(GroupContext::default())?;
        consumer.subscribe(&[&topic])?;
        Ok(KafkaBallots { consumer, topic })
    }

    /// Up to `max` ballots; waits up to `wait` for the first, then takes
    /// what is already there. A batch ends early at a rebalance.
    pub fn poll_batch(&self, max: usize, wait: Duration) -> Result<Polled, BusError> {
        let mut polled = Polled {
            inbound: Vec::new(),
            ends: HashMap::new(),
            group: None,
        };
        let deadline = Instant::now() + wait;
        let mut epoch = None;
        while polled.inbound.len() < max {
            let timeout = if polled.inbound.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let Some(next) = self.consumer.poll(timeout) else {
                break;
            };
            let rebalances = self.consumer.context().rebalances.load(Relaxed);
            if epoch.is_some_and(|e| e != rebalances) {
                // Keep this message: the transaction will be refused for
                // the old generation and the whole batch read again.
                epoch = Some(u64::MAX);
            }
            let m = match next {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "reading ballots from Kafka");
                    // The broker is away: do not spin on its errors.
                    std::thread::sleep(Duration::from_millis(20));
                    if polled.inbound.is_empty() && Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
            };
            if epoch.is_none() {
                epoch = Some(rebalances);
                polled.group = self.consumer.group_metadata();
            }
            let source = Source {
                partition: m.partition(),
                offset: m.offset(),
            };
            polled.ends.insert(source.partition, source.offset + 1);
            polled.inbound.push(inbound(&m).read_at(source));
            if epoch == Some(u64::MAX) {
                break;
            }
        }
        Ok(polled)
    }

    /// Goes back to the offsets last committed (with a transaction) for
    /// every partition this instance holds: everything read since is read
    /// again, whichever batches it was in.
    pub fn rewind(&self) -> Result<(), BusError> {
        let assigned = self.consumer.assignment()?;
        let committed = self
            .consumer
            .committed_offsets(assigned, Duration::from_secs(30))?;
        for e in committed.elements() {
            let to = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            if let Err(err) =
                self.consumer
                    .seek(&self.topic, e.partition(), to, Duration::from_secs(10))
            {
                tracing::info!(partition = e.partition(), error = %err, "not rewinding a partition");
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The transaction was aborted; the batch must be read again.
    #[error("Kafka transaction aborted: {0}")]
    Aborted(KafkaError),
    /// The producer cannot go on (fenced by a newer instance of the same
    /// transactional id, or a fatal broker error).
    #[error("Kafka producer failed: {0}")]
    Fatal(KafkaError),
    /// Committing the transaction outlived every timeout given to it:
    /// librdkafka can wait forever for a group coordinator that moved
    /// (confluentinc/librdkafka#5456, #5511). The producer is given up.
    #[error("the Kafka transaction commit has not returned after {0:?}")]
    Wedged(Duration),
    #[error("reading voter profiles: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Bus(#[from] BusError),
}

/// A batch's outcome rendered as messages, waiting for its transaction.
pub struct Prepared {
    votes: Vec<(String, Vec<u8>)>,
    rejections: Vec<(String, Vec<u8>)>,
    ends: HashMap<i32, i64>,
    group: Option<ConsumerGroupMetadata>,
}

/// Renders what a batch recorded as `votes_topic` and `rejected_ballots`
/// messages: the voter's profile merged with the candidate's.
#[derive(Default)]
pub struct Renderer {
    /// Election id → candidate id → candidate: looked up by `&str` per vote.
    candidates: HashMap<String, HashMap<String, Candidate>>,
}

impl Renderer {
    /// `profiles` holds (at least) the voters of the recorded votes.
    pub fn render(
        &mut self,
        store: &mut dyn Store,
        recorded: &Recorded,
        profiles: &HashMap<i64, Voter>,
        polled: Polled,
    ) -> Result<Prepared, PublishError> {
        let votes: Vec<&Vote> = recorded
            .votes
            .iter()
            .chain(&recorded.republish_votes)
            .collect();
        if votes.iter().any(|v| self.candidate(v).is_none()) {
            // Started, or an election was added since.
            for e in store.elections()? {
                for c in e.candidates {
                    self.candidates
                        .entry(c.election_id.clone())
                        .or_default()
                        .insert(c.candidate_id.clone(), c);
                }
            }
        }
        let mut out = Prepared {
            votes: Vec::with_capacity(votes.len()),
            rejections: Vec::new(),
            ends: polled.ends,
            group: polled.group,
        };
        for v in votes {
            let (Some(voter), Some(candidate)) = (profiles.get(&v.voter_no), self.candidate(v))
            else {
                // The store just accepted it against these very tables.
                return Err(PublishError::Bus(BusError::Delivery(format!(
                    "vote {} names a voter or candidate the store does not have",
                    v.ballot_id
                ))));
            };
            out.votes
                .push((v.voter_id.clone(), vote_json(v, voter, candidate)));
        }
        for r in recorded
            .rejections
            .iter()
            .chain(&recorded.republish_rejections)
        {
            let key = r.voter_id.clone().unwrap_or_else(|| r.ballot_id.clone());
            out.rejections.push((key, rejection_json(r)));
        }
        Ok(out)
    }

    fn candidate(&self, v: &Vote) -> Option<&Candidate> {
        self.candidates.get(&*v.election_id)?.get(&*v.candidate_id)
    }
}

/// The processor's transactional producer.
pub struct VotePublisher {
    /// Shared with the commit thread of the transaction in flight.
    producer: Arc<ThreadedProducer<DefaultProducerContext>>,
    bus: KafkaBus,
    instance: String,
    ballots: String,
    votes: String,
    rejected: String,
    /// An abort that failed (the broker was away): it must succeed before
    /// the next transaction can begin.
    abort_pending: bool,
    /// How long a commit may take before its producer is given up.
    wedged_after: Duration,
}

const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// Commit attempts after a retriable failure (each up to TXN_TIMEOUT).
const COMMIT_RETRIES: u32 = 2;
/// How long the commit waits for acks by itself before rdkafka's flush.
const ACKED_BEFORE_COMMIT: Duration = Duration::from_secs(10);
/// Past every timeout the commit's calls were given (10 s for the acks,
/// 30 s for the offsets, three commit attempts of 30 s): only a hang gets
/// here.
const WEDGED_AFTER: Duration = Duration::from_secs(150);

impl VotePublisher {
    /// `instance` names this processor: a restarted instance with the same
    /// name fences its predecessor and aborts its open transaction at once
    /// (a new name would leave it to time out, stalling read_committed
    /// readers until then).
    pub fn open(bus: &KafkaBus, instance: &str) -> Result<VotePublisher, BusError> {
        Ok(VotePublisher {
            producer: Arc::new(Self::producer(bus, instance)?),
            bus: bus.clone(),
            instance: instance.to_string(),
            ballots: bus.topic(Topic::Ballots),
            votes: bus.topic(Topic::Votes),
            rejected: bus.topic(Topic::Rejected),
            abort_pending: false,
            wedged_after: wedged_after(),
        })
    }

    fn producer(
        bus: &KafkaBus,
        instance: &str,
    ) -> Result<ThreadedProducer<DefaultProducerContext>, BusError> {
        let producer: ThreadedProducer<DefaultProducerContext> = bus
            .config()
            .set(
                "transactional.id",
                format!("{}votestream-processor-{instance}", bus.prefix),
            )
            // Long enough to outlast a broker restart; a crashed instance's
            // open transaction is aborted at once when it comes back.
            .set("transaction.timeout.ms", "120000")
            .set("linger.ms", "5")
            // votes_topic is what the original's consumers read.
            .set("compression.type", super::READABLE_CODEC)
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create()?;
        producer.init_transactions(TXN_TIMEOUT)?;
        Ok(producer)
    }

    /// Starts over with a new producer of the same transactional id, after
    /// the broker fenced the old one (its transaction outlived the timeout
    /// during a long outage). The caller reads the batches again.
    pub fn reopen(&mut self) -> Result<(), BusError> {
        self.producer = Arc::new(Self::producer(&self.bus, &self.instance)?);
        self.abort_pending = false;
        Ok(())
    }

    /// Publishes a batch's messages and its offsets in one transaction.
    pub fn publish(&mut self, batch: Prepared) -> Result<(), PublishError> {
        if self.abort_pending {
            self.producer
                .abort_transaction(TXN_TIMEOUT)
                .map_err(classify)?;
            self.abort_pending = false;
        }
        let began = Instant::now();
        self.producer.begin_transaction().map_err(classify)?;
        let sent = (|| -> Result<(), PublishError> {
            for (key, payload) in &batch.votes {
                send_retrying(
                    &self.producer,
                    &self.votes,
                    Some(key.as_bytes()),
                    payload,
                    (),
                )?;
            }
            for (key, payload) in &batch.rejections {
                send_retrying(
                    &self.producer,
                    &self.rejected,
                    Some(key.as_bytes()),
                    payload,
                    (),
                )?;
            }
            let mut offsets = TopicPartitionList::new();
            for (&partition, &next) in &batch.ends {
                offsets
                    .add_partition_offset(&self.ballots, partition, Offset::Offset(next))
                    .map_err(PublishError::Fatal)?;
            }
            tracing::debug!(queued = ?began.elapsed(), "produced");
            let group = batch.group.ok_or_else(|| {
                PublishError::Bus(BusError::Delivery(
                    "a batch without a consumer group".into(),
                ))
            })?;
            let r = self.commit(offsets, group);
            tracing::debug!(committed = ?began.elapsed(), "transaction");
            r
        })();
        if let Err(e) = &sent {
            // A wedged producer is busy in its commit: it is replaced, and
            // the new one's start aborts the transaction (fencing this one).
            if !matches!(e, PublishError::Fatal(_) | PublishError::Wedged(_)) {
                tracing::warn!(error = %e, "aborting the Kafka transaction; the batch will be read again");
                if let Err(abort) = self.producer.abort_transaction(TXN_TIMEOUT) {
                    self.abort_pending = true;
                    return Err(classify(abort));
                }
            }
        }
        sent
    }

    /// Adds the consumer offsets and commits, on a thread of its own that
    /// is abandoned (with its producer) if it never returns.
    fn commit(
        &self,
        offsets: TopicPartitionList,
        group: ConsumerGroupMetadata,
    ) -> Result<(), PublishError> {
        let producer = self.producer.clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("kafka-commit".into())
            .spawn(move || {
                let r = producer
                    .send_offsets_to_transaction(&offsets, &group, TXN_TIMEOUT)
                    .map_err(classify)
                    .and_then(|()| commit_retrying(&producer));
                let _ = tx.send(r);
            })
            .map_err(|e| PublishError::Bus(BusError::Delivery(e.to_string())))?;
        rx.recv_timeout(self.wedged_after)
            .unwrap_or(Err(PublishError::Wedged(self.wedged_after)))
    }
}

/// [`WEDGED_AFTER`], or for tests `VOTESTREAM_KAFKA_WEDGED_AFTER_MS`: the
/// hang it guards against cannot be caused at will, so a test makes an
/// ordinary slow commit (a broker restart) take the same path.
fn wedged_after() -> Duration {
    std::env::var("VOTESTREAM_KAFKA_WEDGED_AFTER_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(WEDGED_AFTER, Duration::from_millis)
}

fn commit_retrying(
    producer: &ThreadedProducer<DefaultProducerContext>,
) -> Result<(), PublishError> {
    // rdkafka's commit flushes first (see `super::acked`); past this wait
    // its own flush waits on.
    super::acked(producer, ACKED_BEFORE_COMMIT);
    let mut tries = 0;
    loop {
        match producer.commit_transaction(TXN_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e)) if e.is_retriable() && tries < COMMIT_RETRIES => {
                tries += 1;
                tracing::warn!(error = %e, "retrying the Kafka commit");
            }
            Err(e) => return Err(classify(e)),
        }
    }
}

fn classify(e: KafkaError) -> PublishError {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => PublishError::Fatal(e),
        _ => PublishError::Aborted(e),
    }
}
