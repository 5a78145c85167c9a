//! The bus seam: how ballots reach the processor and accepted votes reach the
//! aggregator. Chosen by URL: `memory` (in-process channels, the embedded
//! default) or `kafka://HOST:PORT` (the distributed shape, [`kafka`]). A
//! JSON-lines file or stdin is a third ballot source, so stages can run as
//! separate processes on the embedded shape (`votestream simulate |
//! votestream process`).

pub mod kafka;
pub mod memory;

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use crate::ack::Ack;
use crate::model::{Ballot, Rejection, Source, Vote};

/// A closed set of buses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusKind {
    Memory,
    Kafka(kafka::KafkaBus),
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("unsupported bus `{0}`: expected `memory` or `kafka://HOST:PORT`")]
    Unsupported(String),
    #[error("bad Kafka URL `{0}`: {1}")]
    BadUrl(String, String),
    #[error("reading ballots: {0}")]
    Io(#[from] std::io::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("Kafka: {0}")]
    Delivery(String),
}

impl BusError {
    /// Whether waiting can clear it: a broker or coordinator that is away
    /// or moving, a timeout. A bad URL, a refused setting or a failing
    /// input file cannot.
    pub fn is_transient(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode as C;
        match self {
            BusError::Unsupported(_) | BusError::BadUrl(..) => false,
            BusError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
            ),
            BusError::Kafka(e) => matches!(
                e.rdkafka_error_code(),
                Some(
                    C::BrokerTransportFailure
                        | C::AllBrokersDown
                        | C::OperationTimedOut
                        | C::TimedOutQueue
                        | C::RequestTimedOut
                        | C::NetworkException
                        | C::LeaderNotAvailable
                        | C::NotLeaderForPartition
                        | C::PreferredLeaderNotAvailable
                        | C::CoordinatorLoadInProgress
                        | C::CoordinatorNotAvailable
                        | C::NotCoordinator
                        | C::RebalanceInProgress
                )
            ),
            // A message the broker did not take in time.
            BusError::Delivery(_) => true,
        }
    }
}

impl BusKind {
    pub fn parse(url: &str) -> Result<BusKind, BusError> {
        match url {
            "memory" | "memory://" => Ok(BusKind::Memory),
            u if u.starts_with("kafka://") => Ok(BusKind::Kafka(kafka::KafkaBus::parse(u)?)),
            other => Err(BusError::Unsupported(other.to_string())),
        }
    }
}

/// A message of the `ballots` topic, with what travels beside it: who
/// waits for its answer, and where on the bus it was read. Both are
/// optional and independent, so no stage has to unwrap layers to reach the
/// ballot.
#[derive(Debug)]
pub struct Inbound {
    pub body: Payload,
    /// Someone waiting for the answer (the HTTP API). It is answered only
    /// once the ballot is committed, from the ballot's own place in its
    /// batch.
    pub ack: Option<Ack>,
    /// The bus position it was read from (Kafka): the store keeps it with
    /// the outcome, to recognise the message when it is read again.
    pub source: Option<Source>,
}

/// What a ballot message holds: typed when it comes from inside the
/// process, raw bytes when it crossed a wire and still has to be parsed,
/// already refused when the edge (the HTTP API) found it bad but it must
/// still be recorded and counted.
#[derive(Clone, Debug)]
pub enum Payload {
    Ballot(Ballot),
    Raw(Vec<u8>),
    Rejected(Box<Rejection>),
}

impl Inbound {
    pub fn ballot(b: Ballot) -> Inbound {
        Payload::Ballot(b).into()
    }

    pub fn raw(bytes: Vec<u8>) -> Inbound {
        Payload::Raw(bytes).into()
    }

    pub fn rejected(r: Rejection) -> Inbound {
        Payload::Rejected(Box::new(r)).into()
    }

    pub fn with_ack(self, ack: Ack) -> Inbound {
        Inbound {
            ack: Some(ack),
            ..self
        }
    }

    pub fn read_at(self, source: Source) -> Inbound {
        Inbound {
            source: Some(source),
            ..self
        }
    }
}

impl From<Payload> for Inbound {
    fn from(body: Payload) -> Inbound {
        Inbound {
            body,
            ack: None,
            source: None,
        }
    }
}

/// Where the processor takes ballots from.
pub trait BallotSource: Send {
    /// Up to `max` ballots; an empty batch when none came within `wait`;
    /// `None` once the source has ended.
    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<Inbound>>, BusError>;
    /// Stop taking new input: later batches hold only what was already
    /// read, then the source ends. Sources that can be read again after a
    /// restart (a channel that is closed anyway, Kafka) need nothing.
    fn stop(&mut self) {}
}

/// Where ballots are handed on: the in-process processor's channel, or
/// Kafka's `ballots` topic. The HTTP intake and the simulator write to one
/// of these without knowing which; a waiter's answer comes from whoever
/// decides (the processor after its commit, Kafka once it has the ballot).
pub trait BallotSink: Send {
    /// `Ok(false)` once nobody takes ballots any more (the processor has
    /// gone), which ends the writer without being the sink's failure.
    fn send(&self, batch: Vec<Inbound>) -> Result<bool, BusError>;
    /// Waits until everything sent is durably handed on.
    fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }
}

/// Where the processor puts what it recorded (`votes_topic`,
/// `rejected_ballots`), outside a transaction with its input: on Kafka the
/// processor publishes in one transaction with its consumer offsets
/// instead (`process::kafka`), which this cannot express.
pub trait VoteSink: Send + Sync {
    fn send(&self, votes: Vec<Vote>, rejections: Vec<Rejection>);
}

/// Where an aggregator takes accepted votes from, in seq order.
pub trait VoteSource: Send {
    /// Up to about `max` votes; an empty batch when none came within
    /// `wait`; `None` once the source has ended.
    fn next_batch(&mut self, max: usize, wait: Duration) -> Option<Vec<Vote>>;
}

/// Ballots as JSON lines from a file or stdin: one message per line.
///
/// A thread reads the input into a channel, so a batch is whatever arrived
/// within the processor's wait: under light load a ballot piped in is
/// recorded within that wait, not once 65,536 lines have come. A stop
/// ([`BallotSource::stop`]) ends the source after what was already read,
/// which a pipe could not give again.
pub struct LinesSource {
    rx: crossbeam_channel::Receiver<Vec<Vec<u8>>>,
    /// Lines received but not yet handed out (a chunk larger than asked).
    pending: std::collections::VecDeque<Vec<u8>>,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stopped: bool,
}

/// Lines the reader sends at once at most; it sends fewer as soon as it
/// has read everything the input had for now.
const LINES_CHUNK: usize = 4096;
/// Chunks waiting in the channel: the reader waits beyond that.
const CHUNKS_QUEUED: usize = 64;

impl LinesSource {
    pub fn new(input: impl Read + Send + 'static) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(CHUNKS_QUEUED);
        let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = stopping.clone();
        let spawned = std::thread::Builder::new()
            .name("lines-reader".into())
            .spawn(move || read_lines(BufReader::with_capacity(1 << 20, input), &tx, &stop));
        if let Err(e) = spawned {
            // The channel is closed with it: the source reads as ended.
            tracing::error!(error = %e, "cannot start the input reader thread");
        }
        LinesSource {
            rx,
            pending: Default::default(),
            stopping,
            stopped: false,
        }
    }
}

/// The reader thread: lines (without their end) in chunks, until the
/// input ends, fails, or a stop is asked. A read error is sent as the
/// last chunk's error.
fn read_lines<R: Read>(
    mut reader: BufReader<R>,
    tx: &crossbeam_channel::Sender<Vec<Vec<u8>>>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut chunk = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading ballots stopped");
                0
            }
        };
        if n == 0 {
            break;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !line.is_empty() {
            chunk.push(line);
        }
        // An empty buffer means the next read would wait for the input:
        // hand over what there is now.
        if chunk.len() >= LINES_CHUNK || reader.buffer().is_empty() {
            if !chunk.is_empty() && tx.send(std::mem::take(&mut chunk)).is_err() {
                return;
            }
            if stop.load(SeqCst) {
                return;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk);
    }
}

impl BallotSource for LinesSource {
    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<Inbound>>, BusError> {
        use crossbeam_channel::RecvTimeoutError;
        if self.pending.is_empty() {
            match self.rx.recv_timeout(wait) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                // After a stop, the reader is waiting for input it will not
                // hand over: everything read is recorded, so the source ends.
                Err(RecvTimeoutError::Timeout) if self.stopped => return Ok(None),
                Err(RecvTimeoutError::Timeout) => return Ok(Some(Vec::new())),
            }
        }
        while self.pending.len() < max {
            match self.rx.try_recv() {
                Ok(chunk) => self.pending.extend(chunk),
                Err(_) => break,
            }
        }
        let n = self.pending.len().min(max);
        Ok(Some(self.pending.drain(..n).map(Inbound::raw).collect()))
    }

    fn stop(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.stopped = true;
    }
}
