//! Ballots cast over HTTP onto the `ballots` topic. The answer waits for
//! the broker's acknowledgement (acks=all, idempotent producer): a 202 means
//! the ballot is durably in the stream. Whether it counts is decided later
//! by a processor; what the server can tell at once (an unknown voter, a
//! body that is not a ballot) it answers at once, after the ballot is on the
//! topic, so that it is still recorded and counted as rejected.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use rdkafka::message::{Header, OwnedHeaders};

use super::messages::{edge_rejection_header, EDGE_REJECTION_HEADER};
use super::{send_with_headers, KafkaBus, Publisher, Topic};
use crate::ack::{Ack, Decision, Outcome};
use crate::bus::{BallotSink, BusError, Inbound, Payload};
use crate::edge::ballot_json;
use crate::model::{Ballot, RejectReason, Rejection};

/// What the server can tell of a ballot at once (the processor's registry
/// check): the reason and detail it would be rejected with, if any. A
/// function, not the processor itself, so the bus stays below the stages.
pub type EarlyCheck = Arc<dyn Fn(Ballot) -> Option<(RejectReason, String)> + Send + Sync>;

/// Answers each waiter when its message is acknowledged; an undelivered
/// message drops its `Ack`, which the waiter reads as "not recorded".
struct Answers;

impl ClientContext for Answers {}

impl ProducerContext for Answers {
    type DeliveryOpaque = Box<(Ack, Decision)>;

    fn delivery(&self, result: &DeliveryResult<'_>, owed: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, "a ballot did not reach Kafka");
            return;
        }
        let (ack, decision) = *owed;
        let _ = ack.0.send(decision);
    }
}

pub struct BallotProducer {
    producer: ThreadedProducer<Answers>,
    topic: String,
    check: EarlyCheck,
}

impl BallotProducer {
    pub fn new(bus: &KafkaBus, check: EarlyCheck) -> Result<BallotProducer, BusError> {
        let producer = bus
            .config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "1000000")
            .create_with_context(Answers)?;
        Ok(BallotProducer {
            producer,
            topic: bus.topic(Topic::Ballots),
            check,
        })
    }

    /// Queues one ballot; its waiter (if any) hears back on delivery.
    fn send_one(&self, inbound: Inbound) {
        let mut headers = None;
        let (key, payload, ballot_id, early) = match inbound.body {
            Payload::Ballot(b) => {
                let payload = ballot_json(&b).into_bytes();
                let (key, id) = (b.voter_id.clone(), b.ballot_id.clone());
                let early = (self.check)(b);
                (Some(key), payload, id, early)
            }
            Payload::Rejected(r) => {
                headers = Some(refusal(&r));
                (
                    r.voter_id.clone(),
                    r.raw.into_bytes(),
                    r.ballot_id,
                    Some((r.reason, r.detail)),
                )
            }
            Payload::Raw(raw) => (None, raw, String::new(), None),
        };
        let outcome = match early {
            Some((reason, detail)) => Outcome::Rejected { reason, detail },
            None => Outcome::Queued,
        };
        let Some(ack) = inbound.ack else {
            tracing::warn!("a ballot without a waiter reached the Kafka intake");
            return;
        };
        let owed = Box::new((ack, Decision { ballot_id, outcome }));
        let key = key.as_deref().map(str::as_bytes);
        // On failure the answer is dropped: the waiter hears "not recorded".
        if let Err(e) = send_with_headers(&self.producer, &self.topic, key, &payload, headers, owed)
        {
            tracing::warn!(error = %e, "a ballot could not be queued for Kafka");
        }
    }
}

impl BallotSink for BallotProducer {
    /// Never refuses the batch as a whole: each ballot's waiter hears of
    /// its own delivery.
    fn send(&self, batch: Vec<Inbound>) -> Result<bool, BusError> {
        batch.into_iter().for_each(|b| self.send_one(b));
        Ok(true)
    }
}

/// The header that carries a refusal decided before the topic, so that
/// the processor records it as it was decided.
fn refusal(r: &Rejection) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header {
        key: EDGE_REJECTION_HEADER,
        value: Some(&edge_rejection_header(r)),
    })
}

/// Ballots nobody waits on (the simulator's, a replay's) onto the
/// `ballots` topic, keyed by voter so that one voter's ballots keep their
/// order.
pub struct BallotWriter {
    publisher: Publisher,
    topic: String,
}

impl BallotWriter {
    pub fn new(bus: &KafkaBus) -> Result<BallotWriter, BusError> {
        Ok(BallotWriter {
            publisher: bus.publisher()?,
            topic: bus.topic(Topic::Ballots),
        })
    }
}

impl BallotSink for BallotWriter {
    fn send(&self, batch: Vec<Inbound>) -> Result<bool, BusError> {
        for b in batch {
            match b.body {
                Payload::Ballot(b) => self.publisher.send(
                    &self.topic,
                    Some(b.voter_id.as_bytes()),
                    ballot_json(&b).as_bytes(),
                )?,
                // Keyed by the voter it names, if it names one: a replay of
                // a topic keeps one voter's ballots in order this way too.
                Payload::Raw(bytes) => {
                    let key = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| Some(v.get("voter_id")?.as_str()?.to_string()));
                    let key = key.as_deref().map(str::as_bytes);
                    self.publisher.send(&self.topic, key, &bytes)?
                }
                // A replay's refusals, recorded as they were decided.
                Payload::Rejected(r) => self.publisher.send_headed(
                    &self.topic,
                    r.voter_id.as_deref().map(str::as_bytes),
                    r.raw.as_bytes(),
                    refusal(&r),
                )?,
            }
        }
        Ok(true)
    }

    fn flush(&self) -> Result<(), BusError> {
        self.publisher.flush(Duration::from_secs(60))
    }
}
