//! What someone waiting on a ballot (an HTTP request) is told. The types sit
//! at the bottom because both the bus (the Kafka intake answers "queued")
//! and the processor (answers after the commit) send them.

use crate::model::RejectReason;

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
