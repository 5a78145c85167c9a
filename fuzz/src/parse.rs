//! `process::parse`: any bytes become a ballot with valid fields or a
//! rejection with a reason, the same way every time.

use votestream::model::Ballot;
use votestream::process::parse::{ballot_json, parse_ballot, MAX_ID_BYTES, MAX_MESSAGE_BYTES};

pub fn check(data: &[u8]) {
    let now = 1_750_000_000_000;
    let first = parse_ballot(data, now);
    // Deterministic: a replayed bad message must get the same id.
    let again = parse_ballot(data, now);
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => {
            assert_eq!(a.ballot_id, b.ballot_id);
            assert_eq!(a.reason, b.reason);
        }
        _ => panic!("parse_ballot gave two different outcomes for one input"),
    }
    match first {
        Ok(b) => check_ballot(data, &b),
        Err(r) => {
            crate::check_rejection(&r);
            assert_eq!(r.received_at, now);
        }
    }
}

fn check_ballot(data: &[u8], b: &Ballot) {
    assert!(data.len() <= MAX_MESSAGE_BYTES);
    for id in [&b.ballot_id, &b.election_id, &b.voter_id, &b.candidate_id] {
        assert!(!id.is_empty() && id.len() <= MAX_ID_BYTES, "id {id:?}");
    }
    // What the API puts on the bus reads back as the same ballot.
    let line = ballot_json(b);
    let back = parse_ballot(line.as_bytes(), 0)
        .unwrap_or_else(|r| panic!("re-encoded ballot rejected: {r:?}\n{line}"));
    assert_eq!(&back, b, "ballot changed through ballot_json: {line}");
}
