//! The in-process bus: bounded channels of batches. Bounded, so a fast
//! producer waits for a slow consumer instead of filling memory.

use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::{BallotSource, BusError, Inbound};
use crate::model::Vote;

/// Batches in flight per channel.
const CAPACITY: usize = 128;

pub fn ballots() -> (BallotSender, MemoryBallots) {
    let (tx, rx) = bounded(CAPACITY);
    (BallotSender(tx), MemoryBallots(rx))
}

pub fn votes() -> (VoteSender, Receiver<Vec<Vote>>) {
    let (tx, rx) = bounded(CAPACITY);
    (VoteSender(tx), rx)
}

#[derive(Clone)]
pub struct BallotSender(Sender<Vec<Inbound>>);

impl BallotSender {
    /// False once the processor has gone.
    pub fn send(&self, batch: Vec<Inbound>) -> bool {
        self.0.send(batch).is_ok()
    }
}

pub struct MemoryBallots(Receiver<Vec<Inbound>>);

impl BallotSource for MemoryBallots {
    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<Inbound>>, BusError> {
        let mut out = match self.0.recv_timeout(wait) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => return Ok(Some(Vec::new())),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
        };
        while out.len() < max {
            match self.0.try_recv() {
                Ok(more) => out.extend(more),
                Err(_) => break,
            }
        }
        Ok(Some(out))
    }
}

#[derive(Clone)]
pub struct VoteSender(Sender<Vec<Vote>>);

impl VoteSender {
    pub fn send(&self, votes: Vec<Vote>) {
        if !votes.is_empty() {
            // A gone aggregator is not an error: it catches up from the store.
            let _ = self.0.send(votes);
        }
    }
}
