//! Answers for ballots someone is waiting on (the HTTP API): each is sent
//! only after the batch holding the ballot has committed, so an answer of
//! "accepted" always means "durable". Each waiter is answered from its own
//! ballot's place in the batch, never by a ballot id (which a client
//! chooses, and which two requests may share).

use crate::model::RejectReason;
use crate::store::{Fate, Recorded};
// The answer types live a layer down (the bus sends them too).
pub use crate::ack::{Ack, Decision, Outcome};

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
