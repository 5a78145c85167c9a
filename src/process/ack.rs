//! Answers for ballots someone is waiting on (the HTTP API): each is sent
//! only after the batch holding the ballot has committed, so an answer of
//! "accepted" always means "durable".

use std::collections::HashMap;

use crate::model::RejectReason;
use crate::store::Recorded;

/// What became of one ballot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Counted (now, or the first time this ballot id was seen: `replay`).
    Accepted { replay: bool },
    Rejected {
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

/// An answer owed for a ballot of the batch being written.
pub(crate) struct Pending {
    pub ballot_id: String,
    /// Set when validation already rejected it; the store only records it.
    pub early: Option<(RejectReason, String)>,
    pub ack: Ack,
}

/// Answers every pending ballot from what the store recorded.
pub(crate) fn resolve(pending: Vec<Pending>, recorded: &Recorded) {
    if pending.is_empty() {
        return;
    }
    let mut decided: HashMap<&str, Outcome> = pending
        .iter()
        .filter(|p| p.early.is_none())
        .map(|p| (p.ballot_id.as_str(), already_voted()))
        .collect();
    // Scans are over the batch, lookups in the (small) pending map.
    for v in &recorded.votes {
        if let Some(o) = decided.get_mut(v.ballot_id.as_str()) {
            *o = Outcome::Accepted { replay: false };
        }
    }
    for id in &recorded.replayed_votes {
        if let Some(o) = decided.get_mut(id.as_str()) {
            if !matches!(o, Outcome::Accepted { .. }) {
                *o = Outcome::Accepted { replay: true };
            }
        }
    }
    for r in &recorded.rejections {
        if r.reason == RejectReason::AlreadyVoted {
            if let Some(o) = decided.get_mut(r.ballot_id.as_str()) {
                // Not the store's detail (it names the first ballot): a replay
                // must get the same words.
                *o = already_voted();
            }
        } else if let Some(o) = decided.get_mut(r.ballot_id.as_str()) {
            // A validated ballot the store refused (process::record isolates
            // it): answered with the rejection recorded for it.
            if !matches!(o, Outcome::Accepted { .. }) {
                *o = Outcome::Rejected {
                    reason: r.reason,
                    detail: r.detail.clone(),
                };
            }
        }
    }
    let decided: HashMap<String, Outcome> = decided
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for p in pending {
        let outcome = match p.early {
            Some((reason, detail)) => Outcome::Rejected { reason, detail },
            // A validated ballot neither accepted, replayed nor newly refused
            // is the replay of an earlier `already_voted`.
            None => decided
                .get(&p.ballot_id)
                .cloned()
                .unwrap_or_else(already_voted),
        };
        // The waiter may have given up (client gone): nothing to do then.
        let _ = p.ack.0.send(Decision {
            ballot_id: p.ballot_id,
            outcome,
        });
    }
}

fn already_voted() -> Outcome {
    Outcome::Rejected {
        reason: RejectReason::AlreadyVoted,
        detail: "voter already voted in this election".to_string(),
    }
}
