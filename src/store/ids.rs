//! One ballot id, one ballot. Whoever chose the id (a client over HTTP, a
//! line of a file, a Kafka producer), the store keeps which content each id
//! first named (`ballot_ids`: the id and a fingerprint of its election,
//! voter and candidate). Then, in every store and on every path:
//!
//! - the same id with the same content is a replay: the first outcome
//!   stands, whatever it was (accepted, or rejected with its reason);
//! - the same id with other content is refused as `ballot_id_reused` and
//!   recorded under an id derived from the original and the new content, so
//!   nothing is silently merged and a replay of it is recognised in turn.
//!
//! Within a batch the ids are decided in arrival order (votes, then the
//! batch's own rejections), before the store's per-voter checks. The cast
//! time is not part of the content: the simulator and HTTP bodies without
//! `voting_time` stamp a ballot when it is sent, so a resend of one ballot
//! carries a new time; the first one stands.

use std::collections::HashMap;
use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use crate::model::{Rejection, Vote};

/// A fingerprint of a ballot's content. `None` for rejections recorded
/// before fingerprints were kept whose content is unknown: those match any
/// content (a replay, as they always were).
pub type Fingerprint = Option<i64>;

/// A 64-bit digest of byte strings, the same on every machine and run:
/// fingerprints and other keys the stores keep.
pub(crate) fn digest(parts: &[&[u8]]) -> i64 {
    // Fixed keys: fingerprints are stored, and must match across restarts.
    let mut h = SipHasher13::new_with_keys(0x6964_7300, 0x0070_7269_6e74);
    for p in parts {
        h.write_usize(p.len());
        h.write(p);
    }
    h.finish() as i64
}

/// The content a ballot id names: election, voter, candidate.
pub fn content_fingerprint(election: &str, voter: &str, candidate: &str) -> i64 {
    digest(&[
        b"ballot",
        election.as_bytes(),
        voter.as_bytes(),
        candidate.as_bytes(),
    ])
}

pub fn vote_fingerprint(v: &Vote) -> i64 {
    content_fingerprint(&v.election_id, &v.voter_id, &v.candidate_id)
}

/// A rejection's content: the ballot's when what was received names a voter
/// and a candidate (as text), else the bytes received.
pub fn rejection_fingerprint(election_id: Option<&str>, raw: &str) -> i64 {
    let value: Option<serde_json::Value> = raw
        .starts_with('{')
        .then(|| serde_json::from_str(raw).ok())
        .flatten();
    let field = |name: &str| value.as_ref()?.get(name)?.as_str();
    match (field("voter_id"), field("candidate_id")) {
        (Some(voter), Some(candidate)) => {
            let election = election_id.or_else(|| field("election_id")).unwrap_or("");
            content_fingerprint(election, voter, candidate)
        }
        _ => digest(&[b"raw", election_id.unwrap_or("").as_bytes(), raw.as_bytes()]),
    }
}

/// The fingerprint of a rejection recorded before fingerprints were kept:
/// unknown for an `already_voted` one, which kept nothing of its ballot.
pub fn recorded_fingerprint(election_id: Option<&str>, reason: &str, raw: &str) -> Fingerprint {
    if raw.is_empty() && reason == crate::model::RejectReason::AlreadyVoted.as_str() {
        return None;
    }
    Some(rejection_fingerprint(election_id, raw))
}

pub fn fingerprint_of(r: &Rejection) -> i64 {
    rejection_fingerprint(r.election_id.as_deref(), &r.raw)
}

/// The id a `ballot_id_reused` rejection is recorded under.
pub fn reused_id(ballot_id: &str, fingerprint: i64) -> String {
    format!("{ballot_id}~reused-{:016x}", fingerprint as u64)
}

/// What the id check decided for one ballot of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdCheck {
    /// The first use of its id: the store's other checks decide.
    New,
    /// The id already names this content in the store: its outcome stands.
    Stored,
    /// The same id and content as an earlier ballot of this batch.
    SameAs(Item),
    /// The id names other content: refused as `ballot_id_reused` (see
    /// [`Plan::reused`]).
    Reused,
}

/// A ballot of a batch: a vote (by its index in the batch as sorted), one of
/// the batch's rejections, or one of the plan's `ballot_id_reused` ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    Vote(usize),
    Rejection(usize),
    Reused(usize),
}

/// The id checks of a batch.
#[derive(Debug, Default)]
pub struct Plan {
    pub votes: Vec<IdCheck>,
    pub rejections: Vec<IdCheck>,
    /// The `ballot_id_reused` rejections, with the item each replaces.
    pub reused: Vec<(Rejection, Item)>,
    pub reused_checks: Vec<IdCheck>,
    pub vote_prints: Vec<i64>,
    pub rejection_prints: Vec<i64>,
    pub reused_prints: Vec<i64>,
}

/// Every distinct id of a batch, to look up in the store.
pub fn batch_ids<'a>(votes: &'a [Vote], rejections: &'a [Rejection]) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    votes
        .iter()
        .map(|v| v.ballot_id.as_str())
        .chain(rejections.iter().map(|r| r.ballot_id.as_str()))
        .filter(|id| seen.insert(*id))
        .collect()
}

/// A vote as the JSON it is kept as when it is rejected (the content its
/// fingerprint is computed from).
pub fn vote_raw(v: &Vote) -> String {
    serde_json::json!({
        "ballot_id": v.ballot_id,
        "election_id": &*v.election_id,
        "voter_id": v.voter_id,
        "candidate_id": &*v.candidate_id,
        "voting_time": crate::model::format_voting_time(v.cast_at),
    })
    .to_string()
}

impl Plan {
    /// Decides the ids of a batch, in arrival order: `arrival` lists the
    /// votes' indices in the order they came, and `rejections_after[j]` how
    /// many of them came before rejection `j` (missing: all of them).
    /// `claim(id, fingerprint)` answers what the store holds for an id
    /// (`Some(fingerprint)`), or `None` when it does not know the id; the
    /// id is then this batch's to claim (the store may record the claim at
    /// once, or later from [`Plan::new_claims`]).
    pub fn new<'a, E>(
        votes: &'a [Vote],
        arrival: &[usize],
        rejections: &'a [Rejection],
        rejections_after: &[usize],
        now: crate::model::Millis,
        mut claim: impl FnMut(&str, i64) -> Result<Option<Fingerprint>, E>,
    ) -> Result<Plan, E> {
        let mut plan = Plan {
            votes: vec![IdCheck::New; votes.len()],
            rejections: vec![IdCheck::New; rejections.len()],
            vote_prints: votes.iter().map(vote_fingerprint).collect(),
            rejection_prints: rejections.iter().map(fingerprint_of).collect(),
            ..Plan::default()
        };
        let mut firsts: HashMap<&str, (i64, Item)> = HashMap::with_capacity(votes.len());
        let mut derived: HashMap<String, usize> = HashMap::new();
        // Votes in arrival order, each rejection where it arrived among them.
        let mut items: Vec<(Item, &str, i64)> = Vec::with_capacity(votes.len() + rejections.len());
        let mut j = 0;
        let mut rejections_until = |rank: usize, items: &mut Vec<(Item, &'a str, i64)>| {
            while j < rejections.len() && rejections_after.get(j).is_some_and(|n| *n <= rank) {
                items.push((
                    Item::Rejection(j),
                    &rejections[j].ballot_id,
                    plan.rejection_prints[j],
                ));
                j += 1;
            }
        };
        for (rank, &i) in arrival.iter().enumerate() {
            rejections_until(rank, &mut items);
            items.push((Item::Vote(i), &votes[i].ballot_id, plan.vote_prints[i]));
        }
        rejections_until(usize::MAX, &mut items);
        for (k, r) in rejections.iter().enumerate().skip(j) {
            items.push((Item::Rejection(k), &r.ballot_id, plan.rejection_prints[k]));
        }
        for (item, id, print) in items {
            let check = match firsts.get(id) {
                Some((p, first)) if *p == print => IdCheck::SameAs(*first),
                Some(_) => IdCheck::Reused,
                None => match claim(id, print)? {
                    None => {
                        firsts.insert(id, (print, item));
                        IdCheck::New
                    }
                    Some(Some(p)) if p != print => IdCheck::Reused,
                    Some(_) => IdCheck::Stored,
                },
            };
            match item {
                Item::Vote(i) => plan.votes[i] = check,
                Item::Rejection(j) => plan.rejections[j] = check,
                Item::Reused(_) => {}
            }
            if check != IdCheck::Reused {
                continue;
            }
            let r = match item {
                Item::Vote(i) => reused_vote(&votes[i], print, now),
                // (Reused items are not in this loop.)
                Item::Rejection(j) | Item::Reused(j) => {
                    reused_rejection(&rejections[j], print, now)
                }
            };
            let k = plan.reused.len();
            // The derived id embeds the content: known means the same ballot.
            let check = match derived.get(&r.ballot_id) {
                Some(&first) => IdCheck::SameAs(Item::Reused(first)),
                None => match claim(&r.ballot_id, print)? {
                    None => {
                        derived.insert(r.ballot_id.clone(), k);
                        IdCheck::New
                    }
                    Some(_) => IdCheck::Stored,
                },
            };
            plan.reused.push((r, item));
            plan.reused_checks.push(check);
            plan.reused_prints.push(print);
        }
        Ok(plan)
    }

    /// The ids this batch claims, with their fingerprints.
    pub fn new_claims<'a>(
        &'a self,
        votes: &'a [Vote],
        rejections: &'a [Rejection],
    ) -> Vec<(&'a str, i64)> {
        let votes = votes.iter().zip(&self.votes).zip(&self.vote_prints);
        let rejections = rejections
            .iter()
            .zip(&self.rejections)
            .zip(&self.rejection_prints);
        let reused = self
            .reused
            .iter()
            .map(|(r, _)| r)
            .zip(&self.reused_checks)
            .zip(&self.reused_prints);
        votes
            .map(|((v, c), p)| (v.ballot_id.as_str(), c, p))
            .chain(rejections.map(|((r, c), p)| (r.ballot_id.as_str(), c, p)))
            .chain(reused.map(|((r, c), p)| (r.ballot_id.as_str(), c, p)))
            .filter(|(_, c, _)| **c == IdCheck::New)
            .map(|(id, _, p)| (id, *p))
            .collect()
    }

    /// The ids whose stored outcome the batch replays.
    pub fn stored_ids<'a>(
        &'a self,
        votes: &'a [Vote],
        rejections: &'a [Rejection],
    ) -> Vec<&'a str> {
        let votes = votes
            .iter()
            .zip(&self.votes)
            .map(|(v, c)| (v.ballot_id.as_str(), c));
        let rejections = rejections
            .iter()
            .zip(&self.rejections)
            .map(|(r, c)| (r.ballot_id.as_str(), c));
        let reused = self
            .reused
            .iter()
            .zip(&self.reused_checks)
            .map(|((r, _), c)| (r.ballot_id.as_str(), c));
        votes
            .chain(rejections)
            .chain(reused)
            .filter(|(_, c)| **c == IdCheck::Stored)
            .map(|(id, _)| id)
            .collect()
    }
}

fn reused_detail(ballot_id: &str, derived: &str) -> String {
    format!(
        "ballot id {ballot_id:?} already names a ballot with another election, voter or \
         candidate; a ballot id names one ballot (recorded as {derived:?})"
    )
}

fn reused_vote(v: &Vote, print: i64, now: crate::model::Millis) -> Rejection {
    let id = reused_id(&v.ballot_id, print);
    Rejection {
        detail: reused_detail(&v.ballot_id, &id),
        raw: vote_raw(v),
        ballot_id: id,
        election_id: Some(v.election_id.to_string()),
        voter_id: Some(v.voter_id.clone()),
        reason: crate::model::RejectReason::BallotIdReused,
        received_at: now,
        source: v.source,
        client: v.client.clone(),
    }
}

fn reused_rejection(r: &Rejection, print: i64, now: crate::model::Millis) -> Rejection {
    let id = reused_id(&r.ballot_id, print);
    Rejection {
        detail: reused_detail(&r.ballot_id, &id),
        ballot_id: id,
        reason: crate::model::RejectReason::BallotIdReused,
        received_at: now,
        ..r.clone()
    }
}
