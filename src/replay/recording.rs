//! The recording: a store's ballots in the order they were received, each
//! with the moment it was received, handed to the processor at that
//! moment's pace.
//!
//! Votes come from the ledger in seq order (the order they were recorded)
//! and rejections in their order of recording. Votes keep no arrival time,
//! so a vote's moment is the night's clock when it was recorded: the latest
//! cast time in the ledger up to it (it never goes back, so the ledger's
//! order is kept). A rejection's moment is when it was received. The two
//! streams are merged by moment.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::bus::{BallotSource, BusError, Inbound};
use crate::model::{Ballot, Millis, Rejection, Vote};
use crate::store::{Store, StoreError};

/// Rows read from the source store at a time.
const CHUNK: usize = 10_000;

/// How fast the recording is played: its gaps divided by a factor, or none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    Max,
    Times(f64),
}

impl Speed {
    /// `max`, or a factor followed by `x`: `1x`, `50x`, `2.5x`.
    pub fn parse(s: &str) -> Result<Speed, String> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.strip_suffix('x').map(str::parse::<f64>) {
            Some(Ok(f)) if f.is_finite() && f > 0.0 => Ok(Speed::Times(f)),
            _ => Err(format!(
                "speed {s:?}: expected `max` or a factor above 0 followed by x (1x, 50x)"
            )),
        }
    }
}

/// One ballot of the recording, due at `at` (recording time, ms).
pub(super) struct Entry {
    pub(super) at: Millis,
    /// A vote's (election_no, voter_no), the order a store numbers a
    /// batch's votes in.
    pub(super) key: Option<(i64, i64)>,
    pub(super) inbound: Inbound,
}

/// Where recorded ballots come from, in the order they were received: a
/// store ([`Recording`]) or the `ballots` topic (`replay::topic`).
pub(super) trait Tape: Send {
    fn next(&mut self) -> Result<Option<Entry>, BusError>;
}

/// What was read from the source and not yet handed on.
pub(super) struct Recording {
    store: Box<dyn Store>,
    votes: VecDeque<Vote>,
    rejections: VecDeque<Rejection>,
    vote_after: i64,
    rejection_after: i64,
    votes_done: bool,
    rejections_done: bool,
    /// The latest cast time among the votes handed on.
    clock: Option<Millis>,
}

impl Recording {
    pub(super) fn new(store: Box<dyn Store>) -> Recording {
        Recording {
            store,
            votes: VecDeque::new(),
            rejections: VecDeque::new(),
            vote_after: 0,
            rejection_after: 0,
            votes_done: false,
            rejections_done: false,
            clock: None,
        }
    }

    fn refill(&mut self) -> Result<(), StoreError> {
        if self.votes.is_empty() && !self.votes_done {
            let chunk = self.store.votes_after(self.vote_after, CHUNK)?;
            self.votes_done = chunk.len() < CHUNK;
            self.vote_after = chunk.last().map_or(self.vote_after, |v| v.seq);
            self.votes.extend(chunk);
        }
        if self.rejections.is_empty() && !self.rejections_done {
            let chunk = self.store.rejections_after(self.rejection_after, CHUNK)?;
            self.rejections_done = chunk.len() < CHUNK;
            if let Some((id, _)) = chunk.last() {
                self.rejection_after = *id;
            }
            self.rejections.extend(chunk.into_iter().map(|(_, r)| r));
        }
        Ok(())
    }

    /// The next ballot received; a vote first when both came at one moment.
    fn take(&mut self) -> Result<Option<Entry>, StoreError> {
        self.refill()?;
        let vote_at = self.votes.front().map(|v| self.clock.max(Some(v.cast_at)));
        let rejection_at = self.rejections.front().map(|r| r.received_at);
        let take_vote = match (vote_at, rejection_at) {
            (Some(v), Some(r)) => v <= Some(r),
            (v, _) => v.is_some(),
        };
        if take_vote {
            let Some(v) = self.votes.pop_front() else {
                return Ok(None);
            };
            let key = Some((v.election_no, v.voter_no));
            self.clock = self.clock.max(Some(v.cast_at));
            // As raw bytes, so it is parsed and validated again.
            let ballot = Ballot {
                ballot_id: v.ballot_id,
                election_id: v.election_id.to_string(),
                voter_id: v.voter_id,
                candidate_id: v.candidate_id.to_string(),
                cast_at: v.cast_at,
                client: v.client,
            };
            let raw = crate::edge::ballot_json(&ballot).into_bytes();
            return Ok(Some(Entry {
                at: self.clock.unwrap_or(v.cast_at),
                key,
                inbound: Inbound::raw(raw),
            }));
        }
        Ok(self.rejections.pop_front().map(|r| Entry {
            at: r.received_at,
            key: None,
            // Decided as it was: see the module `replay` for why.
            inbound: Inbound::rejected(r),
        }))
    }
}

impl Tape for Recording {
    fn next(&mut self) -> Result<Option<Entry>, BusError> {
        self.take()
            .map_err(|e| BusError::Io(std::io::Error::other(e)))
    }
}

/// The recording as the processor's ballot source, paced, within a window.
pub(super) struct Paced {
    tape: Box<dyn Tape>,
    speed: Speed,
    from: Option<Millis>,
    until: Option<Millis>,
    /// The recording time of the first ballot handed on, and when.
    started: Option<(Millis, Instant)>,
    waiting: Option<Entry>,
    ended: bool,
}

impl Paced {
    pub(super) fn new(
        tape: Box<dyn Tape>,
        speed: Speed,
        from: Option<Millis>,
        until: Option<Millis>,
    ) -> Paced {
        Paced {
            tape,
            speed,
            from,
            until,
            started: None,
            waiting: None,
            ended: false,
        }
    }

    /// The next ballot within the window, read ahead and kept until due.
    fn peek(&mut self) -> Result<Option<&Entry>, BusError> {
        while self.waiting.is_none() && !self.ended {
            match self.tape.next()? {
                Some(e) if self.from.is_some_and(|f| e.at < f) => continue,
                Some(e) if self.until.is_some_and(|u| e.at > u) => self.ended = true,
                Some(e) => self.waiting = Some(e),
                None => self.ended = true,
            }
        }
        Ok(self.waiting.as_ref())
    }

    /// When a ballot recorded at `at` is due.
    fn due(&mut self, at: Millis) -> Instant {
        let (first, t0) = *self.started.get_or_insert((at, Instant::now()));
        match self.speed {
            Speed::Max => t0,
            Speed::Times(f) => {
                t0 + Duration::from_secs_f64((at - first).max(0) as f64 / 1000.0 / f)
            }
        }
    }
}

impl BallotSource for Paced {
    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<Inbound>>, BusError> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut last = None;
        while out.len() < max {
            let (at, key) = match self.peek()? {
                Some(e) => (e.at, e.key),
                None if out.is_empty() => return Ok(None),
                None => break,
            };
            // A store numbers a batch's votes in (election, voter) order, so
            // a vote numbered after one that sorts above it came in a later
            // batch: it starts one here too, and the ledger keeps the
            // original's order (its windows, its lateness, what the race
            // desk was shown at each position).
            if key.is_some() && key <= last {
                break;
            }
            let due = self.due(at);
            let now = Instant::now();
            if due <= now {
                if let Some(e) = self.waiting.take() {
                    last = last.max(e.key);
                    out.push(e.inbound);
                }
                continue;
            }
            // Hand on what is due; wait for the next only within `wait`.
            if !out.is_empty() {
                break;
            }
            if due > deadline {
                std::thread::sleep(deadline.saturating_duration_since(now));
                break;
            }
            std::thread::sleep(due - now);
        }
        Ok(Some(out))
    }

    fn stop(&mut self) {
        self.ended = true;
        self.waiting = None;
    }
}
