//! `race_calls` and `alerts`: a stage's numbered record (the race desk's
//! events, the alerts stage's changes), one partition (so every reader sees
//! them in the order they were recorded), keyed by election id. Each
//! message carries its event number; the writer reads the topic once when
//! it opens and from then on sends only numbers it has not seen, so an
//! event is on the topic once however often the desk restarts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{KafkaBus, Publisher, Topic};
use crate::bus::BusError;

pub struct EventTopic {
    publisher: Publisher,
    topic: String,
    /// Per election, the next event number the topic does not have.
    next: HashMap<String, i64>,
}

/// What a message must hold for the writer to resume from it.
#[derive(serde::Deserialize)]
struct Numbered {
    election_id: String,
    event_no: i64,
}

impl EventTopic {
    /// `which`: [`Topic::RaceCalls`] or [`Topic::Alerts`].
    pub fn open(bus: &KafkaBus, which: Topic) -> Result<EventTopic, BusError> {
        let topic = bus.topic(which);
        Ok(EventTopic {
            publisher: bus.publisher()?,
            next: read_numbers_patiently(bus, &topic)?,
            topic,
        })
    }

    /// The next event number the topic lacks for `election_id`.
    pub fn next(&self, election_id: &str) -> i64 {
        self.next.get(election_id).copied().unwrap_or(0)
    }

    /// Sends the events numbered from [`EventTopic::next`] on (earlier ones
    /// are on the topic already) and waits until the broker has them.
    /// `events` are `(event_no, event)`, in order, without gaps; each is
    /// sent as its JSON object with `election_id` and `event_no` added.
    pub fn publish<T: serde::Serialize>(
        &mut self,
        election_id: &str,
        events: &[(i64, &T)],
    ) -> Result<(), BusError> {
        let from = self.next(election_id);
        let mut last = None;
        for (no, event) in events.iter().filter(|(no, _)| *no >= from) {
            let mut body = serde_json::to_value(event).expect("an event serializes");
            if let Some(obj) = body.as_object_mut() {
                obj.insert("election_id".into(), election_id.into());
                obj.insert("event_no".into(), (*no).into());
            }
            let payload = serde_json::to_vec(&body).expect("JSON serializes");
            self.publisher
                .send(&self.topic, Some(election_id.as_bytes()), &payload)?;
            last = Some(*no);
        }
        if let Some(last) = last {
            self.publisher.flush(Duration::from_secs(30))?;
            self.next.insert(election_id.to_string(), last + 1);
        }
        Ok(())
    }
}

/// [`read_numbers`], again while the broker answers with what waiting can
/// clear: a topic created a moment ago may have no leader yet
/// (NotLeaderForPartition), and the stage must not die of it.
fn read_numbers_patiently(bus: &KafkaBus, topic: &str) -> Result<HashMap<String, i64>, BusError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match read_numbers(bus, topic) {
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tracing::warn!(topic, error = %e, "reading the topic's record again");
                std::thread::sleep(Duration::from_millis(250));
            }
            done => return done,
        }
    }
}

/// Reads the whole topic (it holds a few hundred records a night) for the
/// last event number of each election.
fn read_numbers(bus: &KafkaBus, topic: &str) -> Result<HashMap<String, i64>, BusError> {
    let consumer: BaseConsumer = bus
        .config()
        .set("group.id", bus.group(&format!("{topic}-reader")))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(15))?;
    let mut next = HashMap::new();
    if high <= low {
        return Ok(next);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(low))?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if Instant::now() > deadline {
            return Err(BusError::Delivery(format!(
                "reading {topic} to its end ({high}) took over 30 s"
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        if let Some(n) = m
            .payload()
            .and_then(|p| serde_json::from_slice::<Numbered>(p).ok())
        {
            let e = next.entry(n.election_id).or_insert(0);
            *e = (*e).max(n.event_no + 1);
        }
        if m.offset() + 1 >= high {
            return Ok(next);
        }
    }
}
