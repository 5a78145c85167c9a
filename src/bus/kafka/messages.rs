//! The JSON messages on the Kafka topics. Field names and types are the
//! original's, so its consumers keep working; the extra fields
//! (election_id, ballot_id, seq, cast_at, age_band) only add.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::{
    format_voting_time, AgeBand, Candidate, Gender, Millis, Rejection, Vote, Voter,
};

#[derive(Serialize)]
struct Address<'a> {
    street: &'a str,
    city: &'a str,
    state: &'a str,
    country: &'a str,
    postcode: &'a str,
}

/// A `votes_topic` message: the voter object merged with the candidate
/// object, plus `voting_time` and `vote`.
#[derive(Serialize)]
struct VoteOut<'a> {
    voter_id: &'a str,
    voter_name: &'a str,
    date_of_birth: &'a str,
    gender: &'a str,
    nationality: &'a str,
    registration_number: &'a str,
    address: Address<'a>,
    email: &'a str,
    phone_number: &'a str,
    cell_number: &'a str,
    picture: &'a str,
    registered_age: u32,
    candidate_id: &'a str,
    candidate_name: &'a str,
    party_affiliation: &'a str,
    biography: &'a str,
    campaign_platform: &'a str,
    photo_url: &'a str,
    voting_time: String,
    vote: u8,
    election_id: &'a str,
    ballot_id: &'a str,
    seq: i64,
    cast_at: Millis,
    age_band: &'a str,
}

pub fn vote_json(v: &Vote, voter: &Voter, candidate: &Candidate) -> Vec<u8> {
    let msg = VoteOut {
        voter_id: &voter.voter_id,
        voter_name: &voter.voter_name,
        date_of_birth: &voter.date_of_birth,
        gender: voter.gender.as_str(),
        nationality: &voter.nationality,
        registration_number: &voter.registration_number,
        address: Address {
            street: &voter.address_street,
            city: &voter.address_city,
            state: &voter.address_state,
            country: &voter.address_country,
            postcode: &voter.address_postcode,
        },
        email: &voter.email,
        phone_number: &voter.phone_number,
        cell_number: &voter.cell_number,
        picture: &voter.picture,
        registered_age: voter.registered_age,
        candidate_id: &candidate.candidate_id,
        candidate_name: &candidate.candidate_name,
        party_affiliation: &candidate.party_affiliation,
        biography: &candidate.biography,
        campaign_platform: &candidate.campaign_platform,
        photo_url: &candidate.photo_url,
        voting_time: format_voting_time(v.cast_at),
        vote: 1,
        election_id: &v.election_id,
        ballot_id: &v.ballot_id,
        seq: v.seq,
        cast_at: v.cast_at,
        age_band: v.age_band.as_str(),
    };
    serde_json::to_vec(&msg).unwrap_or_default()
}

// Cow: a string with escapes in it cannot be borrowed from the input.
#[derive(Deserialize)]
struct StateOnly<'a> {
    #[serde(borrow)]
    state: Cow<'a, str>,
}

/// What the aggregator reads of a `votes_topic` message.
#[derive(Deserialize)]
struct VoteIn<'a> {
    #[serde(borrow)]
    election_id: Cow<'a, str>,
    #[serde(borrow)]
    voter_id: Cow<'a, str>,
    #[serde(borrow)]
    ballot_id: Cow<'a, str>,
    #[serde(borrow)]
    candidate_id: Cow<'a, str>,
    #[serde(borrow)]
    gender: Cow<'a, str>,
    #[serde(borrow)]
    age_band: Cow<'a, str>,
    #[serde(borrow)]
    address: StateOnly<'a>,
    seq: i64,
    cast_at: Millis,
}

/// Parses a `votes_topic` message back into the compact vote the engine
/// counts (the store keys are not on the wire: zero).
pub fn parse_vote(
    bytes: &[u8],
    interner: &mut crate::store::util::Interner,
) -> Result<Vote, String> {
    let m: VoteIn<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let age_band =
        AgeBand::parse(&m.age_band).ok_or_else(|| format!("unknown age_band {:?}", m.age_band))?;
    Ok(Vote {
        seq: m.seq,
        ballot_id: m.ballot_id.into_owned(),
        election_id: interner.get(&m.election_id),
        voter_id: m.voter_id.into_owned(),
        election_no: 0,
        voter_no: 0,
        candidate_id: interner.get(&m.candidate_id),
        state: interner.get(&m.address.state),
        age_band,
        gender: Gender::parse(&m.gender),
        cast_at: m.cast_at,
        source: None,
        client: None,
    })
}

/// A `rejected_ballots` message: the ballot as received and why.
pub fn rejection_json(r: &Rejection) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ballot_id": r.ballot_id,
        "election_id": r.election_id,
        "voter_id": r.voter_id,
        "reason": r.reason.as_str(),
        "detail": r.detail,
        "raw": r.raw,
        "received_at": r.received_at,
        "client": r.client.as_deref(),
    }))
    .unwrap_or_default()
}

/// The Kafka header that marks a `ballots` message the HTTP edge already
/// refused: its value says how ([`edge_rejection_header`]), the payload is
/// what was sent. Without it the processor would parse the bare body again
/// and record another reason (the path's election id is not in the body),
/// or take two different refused requests with the same body for one.
pub const EDGE_REJECTION_HEADER: &str = "votestream-rejection";

/// The header's value: the rejection without its raw text.
pub fn edge_rejection_header(r: &Rejection) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ballot_id": r.ballot_id,
        "election_id": r.election_id,
        "voter_id": r.voter_id,
        "reason": r.reason.as_str(),
        "detail": r.detail,
        "received_at": r.received_at,
        "client": r.client.as_deref(),
    }))
    .unwrap_or_default()
}

/// The rejection a marked message carries, `None` if the header is not
/// one (the message is then parsed like any other). What it holds is made
/// storable by the processor like every rejection.
pub fn parse_edge_rejection(header: &[u8], payload: &[u8]) -> Option<Rejection> {
    #[derive(Deserialize)]
    struct Header {
        ballot_id: String,
        election_id: Option<String>,
        voter_id: Option<String>,
        reason: String,
        detail: String,
        received_at: Millis,
        #[serde(default)]
        client: Option<String>,
    }
    let h: Header = serde_json::from_slice(header).ok()?;
    Some(Rejection {
        reason: crate::model::RejectReason::parse(&h.reason)?,
        ballot_id: h.ballot_id,
        election_id: h.election_id,
        voter_id: h.voter_id,
        detail: h.detail,
        raw: crate::edge::storable_raw(payload),
        received_at: h.received_at,
        source: None,
        client: h.client.map(Into::into),
    })
}

/// A `candidates_topic` message: the candidates table's columns.
pub fn candidate_json(c: &Candidate) -> Vec<u8> {
    serde_json::to_vec(c).unwrap_or_default()
}

/// A `voters_topic` message.
pub fn voter_json(v: &Voter) -> Vec<u8> {
    serde_json::to_vec(&v.to_topic_json()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate;

    #[test]
    fn an_edge_rejection_reads_back_as_sent() {
        let r = Rejection {
            ballot_id: "http-1".into(),
            election_id: Some("e".into()),
            voter_id: None,
            reason: crate::model::RejectReason::InvalidField,
            detail: "the path's election id contains U+0000".into(),
            raw: "{}".into(),
            received_at: 7,
            source: None,
            client: Some("http-0123abcd@10.0.0.1".into()),
        };
        let back = parse_edge_rejection(&edge_rejection_header(&r), r.raw.as_bytes());
        assert_eq!(back, Some(r));
        assert_eq!(
            parse_edge_rejection(b"{\"reason\":\"nonsense\"}", b""),
            None
        );
    }

    #[test]
    fn a_vote_message_keeps_the_originals_fields_and_reads_back() {
        let voter = generate::voter(7, 3);
        let (_, candidates) = generate::default_election(0);
        let vote = Vote {
            seq: 12,
            ballot_id: "b-1".into(),
            election_id: "general-2026".into(),
            voter_id: voter.voter_id.clone(),
            election_no: 1,
            voter_no: 4,
            candidate_id: candidates[0].candidate_id.as_str().into(),
            state: voter.address_state.as_str().into(),
            age_band: AgeBand::A35_44,
            gender: voter.gender,
            cast_at: 1_700_000_000_000,
            source: None,
            client: None,
        };
        let bytes = vote_json(&vote, &voter, &candidates[0]);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let original = voter.to_topic_json();
        for (k, want) in original.as_object().unwrap() {
            assert_eq!(&v[k], want, "voter field {k}");
        }
        assert!(v["registered_age"].is_u64());
        assert_eq!(v["candidate_name"], candidates[0].candidate_name);
        assert_eq!(v["voting_time"], "2023-11-14 22:13:20");
        assert_eq!(v["vote"], 1);
        let mut interner = crate::store::util::Interner::default();
        let back = parse_vote(&bytes, &mut interner).unwrap();
        assert_eq!(back.seq, 12);
        assert_eq!(&*back.state, voter.address_state);
        assert_eq!(back.age_band, AgeBand::A35_44);
        assert!(parse_vote(b"{\"seq\": 1}", &mut interner).is_err());
    }
}
