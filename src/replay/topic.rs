//! The `ballots` topic as a recording, for a replay in the distributed
//! shape: each partition from a moment (the first offset at or after it,
//! `offsets_for_times`) or from its beginning, up to the end offsets it
//! had when the replay started (the live night may go on writing; the
//! replay stops where the topic stood), merged across partitions by the
//! messages' timestamps. Nothing is committed: the replay's consumer is no
//! member of any group the live pipeline reads with.
//!
//! The messages are the ballots as cast, so each is decided again, raw,
//! the HTTP edge's refusals (their header) apart: see `replay` for which
//! decisions can differ.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::recording::{Entry, Tape};
use crate::bus::kafka::{ballots, KafkaBus, Topic};
use crate::bus::BusError;
use crate::model::Millis;

const TIMEOUT: Duration = Duration::from_secs(15);

pub(super) struct TopicTape {
    consumer: BaseConsumer,
    topic: String,
    /// Per partition still being read: the next offset to take, and the
    /// end offset it stops at.
    reading: BTreeMap<i32, (i64, i64)>,
    /// What was read and not yet handed on, per partition, in offset order.
    read: HashMap<i32, VecDeque<Entry>>,
    /// The latest timestamp seen: a message without one takes it.
    clock: Millis,
}

impl TopicTape {
    /// Reads from `from` (a moment, ms) or the beginning; the end is now.
    pub(super) fn open(bus: &KafkaBus, from: Option<Millis>) -> Result<TopicTape, BusError> {
        let topic = bus.topic(Topic::Ballots);
        let consumer: BaseConsumer = bus
            .config()
            .set("group.id", bus.group("replay"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(BusError::Delivery(format!(
                "no topic {topic} on {} to replay from",
                bus.bootstrap
            )));
        }
        let mut reading = BTreeMap::new();
        for &p in &partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, TIMEOUT)?;
            reading.insert(p, (low, high));
        }
        if let Some(t) = from {
            let mut ask = TopicPartitionList::new();
            for &p in &partitions {
                ask.add_partition_offset(&topic, p, Offset::Offset(t))?;
            }
            for e in consumer.offsets_for_times(ask, TIMEOUT)?.elements() {
                if let Some((next, end)) = reading.get_mut(&e.partition()) {
                    // No offset: nothing at or after the moment.
                    *next = match e.offset() {
                        Offset::Offset(o) => o,
                        _ => *end,
                    };
                }
            }
        }
        reading.retain(|_, (next, end)| next < end);
        let mut assign = TopicPartitionList::new();
        for (&p, &(next, _)) in &reading {
            assign.add_partition_offset(&topic, p, Offset::Offset(next))?;
        }
        consumer.assign(&assign)?;
        Ok(TopicTape {
            consumer,
            topic,
            read: reading.keys().map(|&p| (p, VecDeque::new())).collect(),
            reading,
            clock: Millis::MIN,
        })
    }

    /// Polls once; files what came under its partition.
    fn poll(&mut self) -> Result<(), BusError> {
        let Some(m) = self.consumer.poll(Duration::from_millis(500)) else {
            // Offsets a reader never sees (transaction markers) still move
            // its position: a partition whose position reached its end is done.
            let positions = self.consumer.position()?;
            for e in positions.elements_for_topic(&self.topic) {
                if let (Offset::Offset(o), Some((next, _))) =
                    (e.offset(), self.reading.get_mut(&e.partition()))
                {
                    *next = (*next).max(o);
                }
            }
            self.reading.retain(|_, (next, end)| next < end);
            return Ok(());
        };
        let m = m?;
        let Some((next, end)) = self.reading.get_mut(&m.partition()) else {
            return Ok(());
        };
        if m.offset() >= *end {
            *next = *end;
        } else {
            *next = m.offset() + 1;
            let at = m.timestamp().to_millis().unwrap_or(self.clock);
            self.clock = self.clock.max(at);
            if let Some(q) = self.read.get_mut(&m.partition()) {
                q.push_back(Entry {
                    at,
                    key: None,
                    inbound: ballots::inbound(&m),
                });
            }
        }
        if next >= end {
            self.reading.remove(&m.partition());
        }
        Ok(())
    }
}

impl Tape for TopicTape {
    /// The earliest of the partitions' next messages, once every partition
    /// still being read has one to compare.
    fn next(&mut self) -> Result<Option<Entry>, BusError> {
        while self
            .reading
            .keys()
            .any(|p| self.read.get(p).is_none_or(VecDeque::is_empty))
        {
            self.poll()?;
        }
        let earliest = self
            .read
            .iter()
            .filter_map(|(p, q)| q.front().map(|e| (e.at, *p)))
            .min();
        Ok(earliest.and_then(|(_, p)| self.read.get_mut(&p)?.pop_front()))
    }
}
