//! The bad ballots the simulator sends, one of each kind in turn, so every
//! rejection reason is exercised.

use super::Simulation;
use crate::bus::Inbound;
use crate::model::{Ballot, Millis};

/// The kinds of bad ballot the simulator sends, in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    UnknownVoter,
    HostileVoterId,
    UnknownCandidate,
    UnknownElection,
    CastInFuture,
    CastBeforeOpen,
    MalformedJson,
    WrongType,
    MissingField,
    InvalidUtf8,
    TooLarge,
    /// A real voter's ballot cast after their state's polls closed; only in
    /// a night, where there is a schedule to break.
    AfterClose,
}

pub(super) const INVALID_KINDS: [Invalid; 11] = [
    Invalid::UnknownVoter,
    Invalid::HostileVoterId,
    Invalid::UnknownCandidate,
    Invalid::UnknownElection,
    Invalid::CastInFuture,
    Invalid::CastBeforeOpen,
    Invalid::MalformedJson,
    Invalid::WrongType,
    Invalid::MissingField,
    Invalid::InvalidUtf8,
    Invalid::TooLarge,
];

/// In a night, one more kind in the turn: rare, like every bad kind.
pub(super) const NIGHT_KINDS: [Invalid; 12] = {
    let mut kinds = [Invalid::AfterClose; 12];
    let mut i = 0;
    while i < INVALID_KINDS.len() {
        kinds[i] = INVALID_KINDS[i];
        i += 1;
    }
    kinds
};

impl Simulation {
    pub(super) fn bad_ballot(
        &self,
        kind: Invalid,
        voter: u32,
        ballot_id: String,
        now: Millis,
    ) -> Inbound {
        let e = self.election.election_id.clone();
        let voter_id = self.voters[voter as usize].id.clone();
        let candidate_id = self
            .candidates
            .first()
            .map(|c| c.candidate_id.clone())
            .unwrap_or_default();
        let ballot = |voter_id: String, election_id: String, candidate_id: String, cast_at| {
            Inbound::ballot(Ballot {
                ballot_id: ballot_id.clone(),
                election_id,
                voter_id,
                candidate_id,
                cast_at,
                client: Some(self.kiosk_of(voter)),
            })
        };
        let raw = |s: String| Inbound::raw(s.into_bytes());
        match kind {
            Invalid::UnknownVoter => {
                ballot(format!("unregistered-{ballot_id}"), e, candidate_id, now)
            }
            Invalid::HostileVoterId => ballot(
                format!("<script>alert('{ballot_id}')</script>'; DROP TABLE votes;--"),
                e,
                candidate_id,
                now,
            ),
            Invalid::UnknownCandidate => ballot(voter_id, e, "no-such-candidate".into(), now),
            Invalid::UnknownElection => {
                ballot(voter_id, "no-such-election".into(), candidate_id, now)
            }
            Invalid::CastInFuture => ballot(voter_id, e, candidate_id, now + 3_600_000),
            Invalid::CastBeforeOpen => ballot(
                voter_id,
                e,
                candidate_id,
                self.election.opens_at - 3_600_000,
            ),
            Invalid::MalformedJson => raw(format!(r#"{{"ballot_id": "{ballot_id}", "voter_id": "#)),
            Invalid::WrongType => raw(format!(
                r#"{{"ballot_id":"{ballot_id}","election_id":"{e}","voter_id":12345,"candidate_id":"{candidate_id}","voting_time":"2026-11-03 12:00:00"}}"#
            )),
            Invalid::MissingField => raw(format!(
                r#"{{"ballot_id":"{ballot_id}","election_id":"{e}","voter_id":"{voter_id}","voting_time":"2026-11-03 12:00:00"}}"#
            )),
            Invalid::InvalidUtf8 => {
                let mut b = format!(r#"{{"ballot_id":"{ballot_id}","voter_id":""#).into_bytes();
                b.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
                Inbound::raw(b)
            }
            // Planned after the close, so sent after it too; the floor only
            // guards a caller that builds it early.
            Invalid::AfterClose => {
                let close = self.close_of(voter).unwrap_or(now);
                ballot(voter_id, e, candidate_id, now.max(close + 1))
            }
            Invalid::TooLarge => raw(format!(
                r#"{{"ballot_id":"{ballot_id}","padding":"{}"}}"#,
                "x".repeat(crate::edge::MAX_MESSAGE_BYTES)
            )),
        }
    }
}
