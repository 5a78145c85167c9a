//! What a store decided for a batch, and how that becomes [`Recorded`]:
//! the same for every backend, so they cannot disagree.

use std::collections::HashMap;

use super::ids::{vote_raw, IdCheck, Item, Plan};
use super::Batch;
use crate::model::{RejectReason, Rejection, Source, Vote};

/// What became of one ballot of a batch, for whoever waits for its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Counted (now, or the first time: `replay`).
    Accepted { replay: bool },
    /// Not counted, with the reason recorded (now, or the first time).
    Rejected {
        reason: RejectReason,
        detail: String,
        replay: bool,
    },
}

impl Fate {
    fn again(&self) -> Fate {
        match self.clone() {
            Fate::Accepted { .. } => Fate::Accepted { replay: true },
            Fate::Rejected { reason, detail, .. } => Fate::Rejected {
                reason,
                detail,
                replay: true,
            },
        }
    }
}

/// The outcome of recording one batch, after the store had the last word on
/// uniqueness.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Accepted votes with their `seq` filled in, in seq order.
    pub votes: Vec<Vote>,
    /// Rejections actually recorded (including votes the store refused as
    /// `already_voted` or `ballot_id_reused`).
    pub rejections: Vec<Rejection>,
    /// Ballots seen before (same ballot id, same content): not counted again.
    pub replays: usize,
    /// Replays of the very bus message recorded before (same source): the
    /// processor died between the store's commit and the bus's, so their
    /// outcome was never published. Votes come with their stored seq.
    pub republish_votes: Vec<Vote>,
    pub republish_rejections: Vec<Rejection>,
    /// What became of each vote and each rejection of the batch, in the
    /// order the batch had when it was handed to the store.
    pub vote_fates: Vec<Fate>,
    pub rejection_fates: Vec<Fate>,
}

/// What the store decided for one vote of a batch by its voter.
#[derive(Debug)]
pub enum VoteOutcome {
    /// Recorded with this seq.
    Accepted(i64),
    /// The same ballot was accepted before.
    Replay,
    /// The same bus message was recorded before, as this seq (see
    /// [`Recorded::republish_votes`]).
    Republish(i64),
    /// The voter had already voted, with this ballot id.
    AlreadyVoted(String),
    /// New, but the voter's state is sealed: its count is final.
    PollsClosed,
    /// Decided by its id alone (see [`by_voter`]).
    ById,
}

/// Whether a vote goes on to the per-voter check: a new id, or the replay of
/// a stored vote (whose seq and source the check finds).
pub fn by_voter(check: IdCheck, id: &str, stored: &HashMap<String, StoredRejection>) -> bool {
    match check {
        IdCheck::New => true,
        IdCheck::Stored => !stored.contains_key(id),
        IdCheck::SameAs(_) | IdCheck::Reused => false,
    }
}

/// What the store decided for one rejection it was asked to insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionOutcome {
    New,
    /// This ballot id was rejected before.
    Replay,
    /// The same bus message was rejected before (see [`Recorded::republish_rejections`]).
    Republish,
}

/// A rejection already recorded under an id the batch replays.
#[derive(Clone, Debug)]
pub struct StoredRejection {
    pub reason: RejectReason,
    pub detail: String,
    pub source: Option<Source>,
}

/// A rejection to insert, and which ballot of the batch it answers for.
#[derive(Debug)]
pub struct NewRejection {
    pub rejection: Rejection,
    pub item: Item,
}

/// The store's decisions for a batch (its votes sorted as the store sorted
/// them).
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub plan: Plan,
    /// One per vote.
    pub votes: Vec<VoteOutcome>,
    pub stored: HashMap<String, StoredRejection>,
    pub new_rejections: Vec<NewRejection>,
    /// One per new rejection.
    pub rejections: Vec<RejectionOutcome>,
}

/// Whether a replay came from the very message stored before: only then was
/// its outcome possibly never published.
pub fn same_source(stored: Option<Source>, incoming: Option<Source>) -> bool {
    stored.is_some() && stored == incoming
}

/// The rejections to insert once the votes are decided: the batch's own
/// with a new id, the `already_voted` and `polls_closed` ones (in vote
/// order), and the
/// `ballot_id_reused` ones with a new derived id.
pub fn new_rejections(batch: &Batch, plan: &Plan, votes: &[VoteOutcome]) -> Vec<NewRejection> {
    let own = batch
        .rejections
        .iter()
        .enumerate()
        .filter(|(j, _)| plan.rejections[*j] == IdCheck::New)
        .map(|(j, r)| NewRejection {
            rejection: r.clone(),
            item: Item::Rejection(j),
        });
    let already = batch
        .votes
        .iter()
        .zip(votes)
        .enumerate()
        .filter_map(|(i, (v, o))| match o {
            VoteOutcome::AlreadyVoted(first) => Some(NewRejection {
                rejection: Rejection {
                    ballot_id: v.ballot_id.clone(),
                    election_id: Some(v.election_id.to_string()),
                    voter_id: Some(v.voter_id.clone()),
                    reason: RejectReason::AlreadyVoted,
                    detail: format!("voter already voted in this election (ballot {first})"),
                    raw: vote_raw(v),
                    received_at: crate::model::now_millis(),
                    source: v.source,
                    client: v.client.clone(),
                },
                item: Item::Vote(i),
            }),
            VoteOutcome::PollsClosed => Some(NewRejection {
                rejection: Rejection {
                    ballot_id: v.ballot_id.clone(),
                    election_id: Some(v.election_id.to_string()),
                    voter_id: Some(v.voter_id.clone()),
                    reason: RejectReason::PollsClosed,
                    detail: format!(
                        "the count in {} is sealed: its polls closed and the lateness allowance has passed",
                        v.state
                    ),
                    raw: vote_raw(v),
                    received_at: crate::model::now_millis(),
                    source: v.source,
                    client: v.client.clone(),
                },
                item: Item::Vote(i),
            }),
            _ => None,
        });
    let reused = plan
        .reused
        .iter()
        .enumerate()
        .filter(|(k, _)| plan.reused_checks[*k] == IdCheck::New)
        .map(|(k, (r, _))| NewRejection {
            rejection: r.clone(),
            item: Item::Reused(k),
        });
    own.chain(already).chain(reused).collect()
}

impl BatchOutcome {
    /// Moves the batch into what was recorded. `positions[i]` is where the
    /// store's i-th vote was in the batch it was handed.
    pub fn apply(self, batch: Batch, positions: &[usize]) -> Recorded {
        let BatchOutcome {
            plan,
            votes: vote_outcomes,
            stored,
            new_rejections,
            rejections: rejection_outcomes,
        } = self;
        let mut out = Recorded::default();
        let mut fates: HashMap<Item, Fate> = HashMap::new();
        for (n, o) in new_rejections.into_iter().zip(rejection_outcomes) {
            let r = n.rejection;
            fates.insert(
                n.item,
                Fate::Rejected {
                    reason: r.reason,
                    detail: r.detail.clone(),
                    replay: o != RejectionOutcome::New,
                },
            );
            match o {
                RejectionOutcome::New => out.rejections.push(r),
                RejectionOutcome::Replay => out.replays += 1,
                RejectionOutcome::Republish => {
                    out.replays += 1;
                    out.republish_rejections.push(r);
                }
            }
        }
        // A replay of what the store holds under the id.
        let replay_stored = |out: &mut Recorded, id: &str, again: Rejection| {
            out.replays += 1;
            match stored.get(id) {
                Some(s) => {
                    if same_source(s.source, again.source) {
                        out.republish_rejections.push(Rejection {
                            reason: s.reason,
                            detail: s.detail.clone(),
                            ..again
                        });
                    }
                    Fate::Rejected {
                        reason: s.reason,
                        detail: s.detail.clone(),
                        replay: true,
                    }
                }
                None => Fate::Accepted { replay: true },
            }
        };
        for (k, check) in plan.reused_checks.iter().enumerate() {
            if *check == IdCheck::Stored {
                let r = plan.reused[k].0.clone();
                let id = r.ballot_id.clone();
                let fate = replay_stored(&mut out, &id, r);
                fates.insert(Item::Reused(k), fate);
            }
        }
        out.replays += plan
            .reused_checks
            .iter()
            .filter(|c| matches!(c, IdCheck::SameAs(_)))
            .count();
        let mut sorted_votes: Vec<Option<Fate>> = Vec::with_capacity(batch.votes.len());
        for (i, (mut v, o)) in batch.votes.into_iter().zip(vote_outcomes).enumerate() {
            let fate = match o {
                VoteOutcome::Accepted(seq) => {
                    v.seq = seq;
                    out.votes.push(v);
                    Some(Fate::Accepted { replay: false })
                }
                VoteOutcome::Replay => {
                    out.replays += 1;
                    Some(Fate::Accepted { replay: true })
                }
                VoteOutcome::Republish(seq) => {
                    out.replays += 1;
                    v.seq = seq;
                    out.republish_votes.push(v);
                    Some(Fate::Accepted { replay: true })
                }
                VoteOutcome::AlreadyVoted(_) | VoteOutcome::PollsClosed => {
                    fates.get(&Item::Vote(i)).cloned()
                }
                VoteOutcome::ById => match plan.votes[i] {
                    IdCheck::Stored => {
                        let again = Rejection {
                            ballot_id: v.ballot_id.clone(),
                            election_id: Some(v.election_id.to_string()),
                            voter_id: Some(v.voter_id.clone()),
                            reason: RejectReason::AlreadyVoted,
                            detail: String::new(),
                            raw: vote_raw(&v),
                            received_at: crate::model::now_millis(),
                            source: v.source,
                            client: v.client.clone(),
                        };
                        Some(replay_stored(&mut out, &v.ballot_id, again))
                    }
                    IdCheck::Reused => reused_fate(&plan, &fates, Item::Vote(i)),
                    IdCheck::SameAs(_) | IdCheck::New => None,
                },
            };
            if let Some(f) = &fate {
                fates.insert(Item::Vote(i), f.clone());
            }
            sorted_votes.push(fate);
        }
        let mut rejection_fates = Vec::with_capacity(batch.rejections.len());
        for (j, r) in batch.rejections.into_iter().enumerate() {
            let fate = match plan.rejections[j] {
                IdCheck::New => fates.get(&Item::Rejection(j)).cloned(),
                IdCheck::Stored => {
                    let id = r.ballot_id.clone();
                    Some(replay_stored(&mut out, &id, r))
                }
                IdCheck::Reused => reused_fate(&plan, &fates, Item::Rejection(j)),
                IdCheck::SameAs(_) => None,
            };
            if let Some(f) = &fate {
                fates.insert(Item::Rejection(j), f.clone());
            }
            rejection_fates.push(fate);
        }
        // Second pass: a ballot the batch held twice gets the first's answer.
        let mut same_as = |check: IdCheck, fate: Option<Fate>| -> Fate {
            if let IdCheck::SameAs(first) = check {
                out.replays += 1;
                if let Some(f) = fates.get(&first) {
                    return f.again();
                }
            }
            fate.unwrap_or_else(|| lost("no outcome for a ballot of the batch"))
        };
        let mut vote_fates = vec![Fate::Accepted { replay: false }; sorted_votes.len()];
        for (i, fate) in sorted_votes.into_iter().enumerate() {
            vote_fates[positions[i]] = same_as(plan.votes[i], fate);
        }
        let rejection_fates = rejection_fates
            .into_iter()
            .enumerate()
            .map(|(j, f)| same_as(plan.rejections[j], f))
            .collect();
        out.vote_fates = vote_fates;
        out.rejection_fates = rejection_fates;
        out
    }
}

/// The fate of the `ballot_id_reused` rejection that replaced `item`.
fn reused_fate(plan: &Plan, fates: &HashMap<Item, Fate>, item: Item) -> Option<Fate> {
    let k = plan.reused.iter().position(|(_, of)| *of == item)?;
    match plan.reused_checks[k] {
        IdCheck::SameAs(first) => fates.get(&first).map(Fate::again),
        _ => fates.get(&Item::Reused(k)).cloned(),
    }
}

/// Never expected: every ballot of a batch is decided. Said rather than
/// panicking: the answer is then an honest "not counted".
fn lost(what: &str) -> Fate {
    tracing::error!("{what}");
    Fate::Rejected {
        reason: RejectReason::InvalidField,
        detail: what.to_string(),
        replay: false,
    }
}
