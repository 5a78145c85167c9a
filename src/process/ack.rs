//! Answers for ballots someone is waiting on (the HTTP API): each is sent
//! only after the batch holding the ballot has committed, so an answer of
//! "accepted" always means "durable". Each waiter is answered from its own
//! ballot's place in the batch, never by a ballot id (which a client
//! chooses, and which two requests may share).

use crate::model::RejectReason;
use crate::store::{Fate, Recorded};

/// What became of one ballot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Counted (now, or the first time this ballot was seen: `replay`).
    Accepted { replay: bool },
    Rejected {
        reason: RejectReason,
        detail: String,
    },
    /// Seen before (same ballot id, same content) and refused then: the
    /// first answer, again.
    RejectedBefore {
        reason: RejectReason,
        detail: String,
    },
    /// Durably on the Kafka `ballots` topic; a processor decides later.
    Queued,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub ballot_id: String,
    pub outcome: Outcome,
}

/// The sending half of an answer. Dropped unanswered when the batch could
/// not be written: the waiter then knows the ballot is not durable.
pub struct Ack(pub tokio::sync::oneshot::Sender<Decision>);

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// Where a waited-for ballot is in the batch handed to the store.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    Vote(usize),
    Rejection(usize),
}

/// An answer owed for a ballot of the batch being written.
pub(crate) struct Pending {
    pub slot: Slot,
    pub ballot_id: String,
    pub ack: Ack,
}

/// Answers every pending ballot from what the store decided for it.
pub(crate) fn resolve(pending: Vec<Pending>, recorded: &Recorded) {
    for p in pending {
        let fate = match p.slot {
            Slot::Vote(i) => recorded.vote_fates.get(i),
            Slot::Rejection(j) => recorded.rejection_fates.get(j),
        };
        let Some(fate) = fate else {
            // Not decided (never expected): dropping the ack answers "not
            // recorded", which is the only thing known to be true.
            tracing::error!(slot = ?p.slot, "no outcome for a waited-for ballot");
            continue;
        };
        let outcome = match fate.clone() {
            Fate::Accepted { replay } => Outcome::Accepted { replay },
            Fate::Rejected {
                reason,
                detail,
                replay,
            } => {
                // The store's words name the voter's first ballot; the
                // answer (and its replay) says the same without it.
                let detail = match reason {
                    RejectReason::AlreadyVoted => "voter already voted in this election".into(),
                    _ => detail,
                };
                if replay {
                    Outcome::RejectedBefore { reason, detail }
                } else {
                    Outcome::Rejected { reason, detail }
                }
            }
        };
        // The waiter may have given up (client gone): nothing to do then.
        let _ = p.ack.0.send(Decision {
            ballot_id: p.ballot_id,
            outcome,
        });
    }
}
