//! The Kafka bus: `--bus kafka://HOST:PORT[,HOST:PORT…][?partitions=N&replication=R&prefix=P]`.
//!
//! Topics keep the original's names and JSON shapes, plus
//! `ballots` and `rejected_ballots`. Voter-level topics are keyed by
//! voter_id, so one voter's messages stay in one partition, in order; the
//! aggregate topics are compacted and keyed by their natural key.
//! `prefix` namespaces every topic and consumer group (tests run side by
//! side on one broker); `partitions` applies to topics this creates.
//!
//! - [`ballots`]: the processor's side: ballots in, one Kafka transaction
//!   per batch out (`votes_topic`, `rejected_ballots`, consumer offsets).
//! - [`votes`]: the aggregator's side: `votes_topic` in, read_committed.
//! - [`calls`]: `race_calls` and `alerts`, the race desk's and the alerts
//!   stage's records, each event once.
//! - [`Publisher`]: plain idempotent producing (simulator, registry,
//!   aggregate topics).

pub mod ballots;
pub mod calls;
pub(crate) mod intake;
pub mod messages;
pub(crate) mod votes;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::BusError;

/// The topics, a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    Voters,
    Candidates,
    Ballots,
    Votes,
    Rejected,
    VotesPerCandidate,
    TurnoutByLocation,
    /// The race desk's calls and projections.
    RaceCalls,
    /// The alerts stage's alerts, opened and resolved.
    Alerts,
}

impl Topic {
    pub const ALL: [Topic; 9] = [
        Topic::Voters,
        Topic::Candidates,
        Topic::Ballots,
        Topic::Votes,
        Topic::Rejected,
        Topic::VotesPerCandidate,
        Topic::TurnoutByLocation,
        Topic::RaceCalls,
        Topic::Alerts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Topic::Voters => "voters_topic",
            Topic::Candidates => "candidates_topic",
            Topic::Ballots => "ballots",
            Topic::Votes => "votes_topic",
            Topic::Rejected => "rejected_ballots",
            Topic::VotesPerCandidate => "aggregated_votes_per_candidate",
            Topic::TurnoutByLocation => "aggregated_turnout_by_location",
            Topic::RaceCalls => "race_calls",
            Topic::Alerts => "alerts",
        }
    }

    /// Readers of these want the latest value per key, not the history.
    fn compacted(self) -> bool {
        matches!(
            self,
            Topic::VotesPerCandidate | Topic::TurnoutByLocation | Topic::Candidates
        )
    }
}

/// The codec of every topic with one of the original's names (and of
/// `rejected_ballots`): none, so any Kafka client reads them as it comes,
/// with no compression library installed (kafka-python without its lz4
/// extra, the original dashboard's pin, cannot read lz4 at all). Only
/// the HTTP intake's producer of the internal `ballots` topic, which only
/// votestream reads, uses lz4.
pub const READABLE_CODEC: &str = "none";

/// Where the broker is and how topics are laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaBus {
    pub bootstrap: String,
    pub partitions: i32,
    /// `None`: three replicas when the cluster has three brokers, else one.
    pub replication: Option<i32>,
    pub prefix: String,
}

/// Partitions of the topics this creates, unless the URL says otherwise:
/// enough for a few instances of each stage to share the work.
pub const DEFAULT_PARTITIONS: i32 = 6;

impl KafkaBus {
    pub fn parse(url: &str) -> Result<KafkaBus, BusError> {
        let bad = |why: &str| BusError::BadUrl(url.to_string(), why.to_string());
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| bad("expected kafka://HOST:PORT"))?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        if hosts.is_empty() || hosts.split(',').any(|h| !h.contains(':')) {
            return Err(bad("every broker needs HOST:PORT"));
        }
        let mut bus = KafkaBus {
            bootstrap: hosts.to_string(),
            partitions: DEFAULT_PARTITIONS,
            replication: None,
            prefix: String::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |v: &str| {
                v.parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(&format!("{k} must be a positive integer, not {v:?}")))
            };
            match k {
                "partitions" => bus.partitions = number(v)?,
                "replication" => bus.replication = Some(number(v)?),
                "prefix" => {
                    if !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        return Err(bad(
                            "prefix may hold only letters, digits, '.', '_' and '-'",
                        ));
                    }
                    bus.prefix = v.to_string();
                }
                other => return Err(bad(&format!("unknown setting {other:?}"))),
            }
        }
        Ok(bus)
    }

    pub fn topic(&self, t: Topic) -> String {
        format!("{}{}", self.prefix, t.name())
    }

    /// The consumer group of a stage: its instances split the partitions.
    pub fn group(&self, stage: &str) -> String {
        format!("{}votestream-{stage}", self.prefix)
    }

    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "votestream")
            // Failures are reported by the calls that hit them.
            .set("log_level", "3");
        c
    }

    /// A consumer in a stage's group that commits offsets only as told and
    /// reads only committed transactions.
    pub fn consumer_config(&self, stage: &str) -> ClientConfig {
        let mut c = self.config();
        c.set("group.id", self.group(stage))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            // Fetch what is there soon: freshness over fewer requests.
            .set("fetch.wait.max.ms", "20")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        c
    }

    /// Creates every topic that does not exist yet.
    pub fn ensure_topics(&self) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = self.config().create()?;
        let brokers = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(15))?
            .brokers()
            .len() as i32;
        let replication = self.replication.unwrap_or(if brokers >= 3 { 3 } else { 1 });
        let names: Vec<String> = Topic::ALL.iter().map(|t| self.topic(*t)).collect();
        let topics: Vec<NewTopic<'_>> = Topic::ALL
            .iter()
            .zip(&names)
            .map(|(t, name)| {
                // One partition: readers see the calls and alerts in the
                // order they were recorded.
                let partitions = if matches!(t, Topic::RaceCalls | Topic::Alerts) {
                    1
                } else {
                    self.partitions
                };
                let nt = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
                if t.compacted() {
                    nt.set("cleanup.policy", "compact")
                } else {
                    nt
                }
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = blocking(admin.create_topics(&topics, &opts))??;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Delivery(format!("creating topic {name}: {code}")))
                }
            }
        }
        Ok(())
    }

    /// Creates one more topic (the benchmark's raw ceiling) like the others.
    pub fn create_topic(&self, name: &str) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = self.config().create()?;
        let replication = TopicReplication::Fixed(self.replication.unwrap_or(1));
        let topic = NewTopic::new(name, self.partitions, replication);
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for r in blocking(admin.create_topics([&topic], &opts))?? {
            if let Err((name, code)) = r {
                if code != RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(BusError::Delivery(format!("creating topic {name}: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Deletes every topic of this prefix (scratch runs: the benchmark).
    pub fn delete_topics(&self) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = self.config().create()?;
        let metadata = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(15))?;
        let names: Vec<&str> = metadata
            .topics()
            .iter()
            .map(|t| t.name())
            .filter(|n| !self.prefix.is_empty() && n.starts_with(&self.prefix))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        blocking(admin.delete_topics(&names, &opts))??;
        Ok(())
    }

    /// A plain (idempotent, acks=all) producer, in [`READABLE_CODEC`]: it
    /// writes the registry and aggregate topics (and the simulator's ballots).
    pub fn publisher(&self) -> Result<Publisher, BusError> {
        let producer = self
            .config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("compression.type", READABLE_CODEC)
            .set("queue.buffering.max.messages", "1000000")
            .create_with_context(Deliveries::default())?;
        Ok(Publisher { producer })
    }
}

/// Runs one of the admin API's futures to completion on a private runtime,
/// so it can be called from any thread, inside a runtime or not.
fn blocking<T: Send>(f: impl std::future::Future<Output = T> + Send) -> Result<T, BusError> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T, BusError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(f))
        })
        .join()
        .unwrap_or_else(|_| Err(BusError::Delivery("a Kafka admin call panicked".into())))
    })
}

/// Counts failed deliveries: a plain producer learns of them only later.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.to_string());
            }
        }
    }
}

/// Waits, a millisecond at a time, until every message sent is
/// acknowledged (at most `limit`), before a flush or a transaction's commit
/// (which flushes first). rdkafka's flush polls an event queue for up to
/// 100 ms per look, and a `ThreadedProducer`'s own thread serves that
/// queue, so a look never ends early: with any message in flight every
/// flush took 100 ms or more (every transaction of the processor did: a
/// batch of 2,400 votes took 110–180 ms to publish, 5 ms of it sending).
/// Called once nothing is in flight, the flush returns at its first look.
fn acked<C: ProducerContext + 'static>(producer: &ThreadedProducer<C>, limit: Duration) {
    let until = std::time::Instant::now() + limit;
    while producer.in_flight_count() > 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub struct Publisher {
    producer: ThreadedProducer<Deliveries>,
}

impl Publisher {
    /// Queues one message; waits while the local queue is full.
    pub fn send(&self, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> Result<(), BusError> {
        send_retrying(&self.producer, topic, key, payload, ())
    }

    /// [`send`](Self::send), with Kafka headers.
    pub fn send_headed(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<(), BusError> {
        send_with_headers(&self.producer, topic, key, payload, Some(headers), ())
    }

    /// Waits until every queued message is acknowledged by the broker;
    /// fails if any delivery failed since the last call.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let started = std::time::Instant::now();
        acked(&self.producer, timeout);
        self.producer
            .flush(timeout.saturating_sub(started.elapsed()))?;
        let failed = self.producer.context().failed.swap(0, Relaxed);
        if failed > 0 {
            let last = self
                .producer
                .context()
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            return Err(BusError::Delivery(format!(
                "{failed} messages were not delivered (last error: {last})"
            )));
        }
        Ok(())
    }
}

/// Sends, waiting for room while librdkafka's local queue is full.
/// `opaque` goes to the producer's delivery callback (dropped on failure).
pub(crate) fn send_retrying<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    opaque: C::DeliveryOpaque,
) -> Result<(), BusError> {
    send_with_headers(producer, topic, key, payload, None, opaque)
}

/// [`send_retrying`], with Kafka headers.
pub(crate) fn send_with_headers<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<rdkafka::message::OwnedHeaders>,
    opaque: C::DeliveryOpaque,
) -> Result<(), BusError> {
    let mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque> =
        BaseRecord::with_opaque_to(topic, opaque).payload(payload);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_settings_and_refuse_nonsense() {
        let b = KafkaBus::parse("kafka://127.0.0.1:9092").unwrap();
        assert_eq!(b.bootstrap, "127.0.0.1:9092");
        assert_eq!(b.partitions, DEFAULT_PARTITIONS);
        assert_eq!(b.topic(Topic::Votes), "votes_topic");
        let b = KafkaBus::parse("kafka://a:1,b:2/?partitions=3&replication=1&prefix=t1.").unwrap();
        assert_eq!(b.bootstrap, "a:1,b:2");
        assert_eq!((b.partitions, b.replication), (3, Some(1)));
        assert_eq!(b.topic(Topic::Ballots), "t1.ballots");
        assert_eq!(b.group("processor"), "t1.votestream-processor");
        for bad in [
            "kafka://",
            "kafka://host",
            "http://a:1",
            "kafka://a:1?partitions=0",
            "kafka://a:1?partitions=x",
            "kafka://a:1?color=red",
            "kafka://a:1?prefix=a/b",
        ] {
            assert!(KafkaBus::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
