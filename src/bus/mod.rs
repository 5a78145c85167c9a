//! The bus seam: how ballots reach the processor and accepted votes reach the
//! aggregator. Chosen by URL: `memory` (in-process channels, the embedded
//! default) or `kafka://HOST:PORT` (the distributed shape, [`kafka`]). A
//! JSON-lines file or stdin is a third ballot source, so stages can run as
//! separate processes on the embedded shape (`votestream simulate |
//! votestream process`).

pub mod kafka;
pub mod memory;

use std::io::BufRead;
use std::time::Duration;

use crate::model::{Ballot, Rejection, Source, Vote};
use crate::process::ack::Ack;

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

impl BusKind {
    pub fn parse(url: &str) -> Result<BusKind, BusError> {
        match url {
            "memory" | "memory://" => Ok(BusKind::Memory),
            u if u.starts_with("kafka://") => Ok(BusKind::Kafka(kafka::KafkaBus::parse(u)?)),
            other => Err(BusError::Unsupported(other.to_string())),
        }
    }
}

/// A message of the `ballots` topic: typed when it comes from inside the
/// process, raw bytes when it crossed a wire and still has to be parsed,
/// already refused when the edge (the HTTP API) found it bad but it must
/// still be recorded and counted. `Acked` wraps any of them when someone
/// waits for the answer, which comes once the ballot is committed;
/// `Sourced` when it was read from a bus position (Kafka), which the store
/// keeps with the outcome.
#[derive(Debug)]
pub enum Inbound {
    Ballot(Ballot),
    Raw(Vec<u8>),
    Rejected(Box<Rejection>),
    Acked(Box<Inbound>, Ack),
    Sourced(Box<Inbound>, Source),
}

/// Where the processor takes ballots from.
pub trait BallotSource: Send {
    /// Up to `max` ballots; an empty batch when none came within `wait`;
    /// `None` once the source has ended.
    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<Inbound>>, BusError>;
}

/// Where the processor puts what it recorded (`votes_topic`, `rejected_ballots`).
pub enum VoteSink {
    Memory(memory::VoteSender),
}

impl VoteSink {
    pub fn send(&self, votes: Vec<Vote>, rejections: Vec<Rejection>) {
        match self {
            // In process nobody consumes rejections: the store keeps them.
            VoteSink::Memory(tx) => {
                drop(rejections);
                tx.send(votes);
            }
        }
    }
}

/// Ballots as JSON lines from a file or stdin: one message per line.
pub struct LinesSource<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: BufRead + Send> LinesSource<R> {
    pub fn new(reader: R) -> Self {
        LinesSource {
            reader,
            line: Vec::new(),
        }
    }
}

impl<R: BufRead + Send> BallotSource for LinesSource<R> {
    fn next_batch(
        &mut self,
        max: usize,
        _wait: Duration,
    ) -> Result<Option<Vec<Inbound>>, BusError> {
        let mut out = Vec::new();
        while out.len() < max {
            self.line.clear();
            if self.reader.read_until(b'\n', &mut self.line)? == 0 {
                break;
            }
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
            if !self.line.is_empty() {
                out.push(Inbound::Raw(std::mem::take(&mut self.line)));
            }
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }
}
