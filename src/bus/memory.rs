//! The in-process bus: bounded channels of batches. Bounded, so a fast
//! producer waits for a slow consumer instead of filling memory.

use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::{BallotSink, BallotSource, BusError, Inbound, VoteSink, VoteSource};
use crate::model::{Rejection, Vote};

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

impl BallotSink for BallotSender {
    fn send(&self, batch: Vec<Inbound>) -> Result<bool, BusError> {
        Ok(BallotSender::send(self, batch))
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

impl VoteSink for VoteSender {
    fn send(&self, votes: Vec<Vote>, rejections: Vec<Rejection>) {
        // In process nobody consumes rejections: the store keeps them.
        drop(rejections);
        if !votes.is_empty() {
            // A gone aggregator is not an error: it catches up from the store.
            let _ = self.0.send(votes);
        }
    }
}

impl VoteSource for Receiver<Vec<Vote>> {
    fn next_batch(&mut self, max: usize, wait: Duration) -> Option<Vec<Vote>> {
        let mut batch = match self.recv_timeout(wait) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => return Some(Vec::new()),
            Err(RecvTimeoutError::Disconnected) => return None,
        };
        while let Ok(more) = self.try_recv() {
            batch.extend(more);
            if batch.len() >= max {
                break;
            }
        }
        Some(batch)
    }
}
