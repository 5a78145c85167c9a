//! The aggregator's side of Kafka: `votes_topic`, read_committed, in the
//! aggregator group. The store holds the offsets that count (written with
//! the results, see `Store::add_tallies`); the group's committed offsets
//! only tell a new owner of a partition where to start reading, and never
//! run ahead of the store's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{KafkaBus, Topic};
use crate::bus::BusError;

/// One `votes_topic` message.
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

pub struct KafkaVotes {
    consumer: BaseConsumer,
    topic: String,
}

impl KafkaVotes {
    pub fn open(bus: &KafkaBus) -> Result<KafkaVotes, BusError> {
        let topic = bus.topic(Topic::Votes);
        let consumer: BaseConsumer = bus.consumer_config("aggregator").create()?;
        consumer.subscribe(&[&topic])?;
        Ok(KafkaVotes { consumer, topic })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Up to `max` messages; waits up to `wait` for the first.
    pub fn poll_batch(&self, max: usize, wait: Duration) -> Vec<Delivered> {
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        while out.len() < max {
            let timeout = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => out.push(Delivered {
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                }),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading votes from Kafka");
                    // The broker is away: do not spin on its errors.
                    std::thread::sleep(Duration::from_millis(20));
                    if out.is_empty() && Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        out
    }

    /// Moves a partition's reading position (after another instance counted
    /// further than this one read).
    pub fn seek(&self, partition: i32, offset: Option<i64>) {
        let to = offset.map_or(Offset::Beginning, Offset::Offset);
        if let Err(e) = self
            .consumer
            .seek(&self.topic, partition, to, Duration::from_secs(10))
        {
            tracing::info!(partition, error = %e, "not seeking a partition (no longer ours?)");
        }
    }

    /// Tells the group how far the store has counted (a hint for the next
    /// owner of these partitions; the store has the last word).
    pub fn commit_hint(&self, next: &HashMap<i32, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in next {
            if tpl
                .add_partition_offset(&self.topic, p, Offset::Offset(o))
                .is_err()
            {
                return;
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "committing aggregator offsets to Kafka");
        }
    }
}
