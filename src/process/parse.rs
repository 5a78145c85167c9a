//! The edge of the processor: raw bytes off the bus become a [`Ballot`] or a
//! [`Rejection`] that says exactly what was wrong.

use std::sync::Arc;

use serde::Deserialize;

use crate::edge::{self, Kind};
pub use crate::edge::{ballot_json, content_id, MAX_ID_BYTES, MAX_MESSAGE_BYTES, RAW_KEPT_BYTES};
use crate::model::{parse_time, Ballot, Millis, RejectReason, Rejection};

/// The `ballots` topic's JSON shape. Extra fields are allowed and ignored.
#[derive(Deserialize)]
struct WireBallot {
    ballot_id: String,
    election_id: String,
    voter_id: String,
    candidate_id: String,
    voting_time: String,
    /// Set by the intake that put the ballot on the bus, not by the voter.
    #[serde(default)]
    client: Option<String>,
}

/// Parses one message of the `ballots` topic.
pub fn parse_ballot(raw: &[u8], now: Millis) -> Result<Ballot, Box<Rejection>> {
    let reject = |reason, detail: String| Box::new(rejection_for_raw(raw, reason, detail, now));
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(reject(
            RejectReason::TooLarge,
            format!(
                "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                raw.len()
            ),
        ));
    }
    let text = std::str::from_utf8(raw).map_err(|e| {
        reject(
            RejectReason::InvalidUtf8,
            format!(
                "message is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    edge::json_object(text).map_err(|why| reject(RejectReason::WrongType, why.to_string()))?;
    let wire: WireBallot =
        serde_json::from_str(text).map_err(|e| reject(json_error_reason(&e), e.to_string()))?;
    for (name, value) in [
        ("ballot_id", wire.ballot_id.as_str()),
        ("election_id", &wire.election_id),
        ("voter_id", &wire.voter_id),
        ("candidate_id", &wire.candidate_id),
        // Optional: absent from what was written before clients were kept.
        ("client", wire.client.as_deref().unwrap_or("-")),
    ] {
        edge::check(Kind::Id, name, value)
            .map_err(|e| reject(RejectReason::InvalidField, e.to_string()))?;
    }
    let cast_at = parse_time(&wire.voting_time).ok_or_else(|| {
        reject(
            RejectReason::InvalidField,
            format!(
                "voting_time {:?} is neither `YYYY-MM-DD HH:MM:SS` nor RFC 3339",
                edge::prefix(&wire.voting_time, edge::ECHO_BYTES)
            ),
        )
    })?;
    Ok(Ballot {
        ballot_id: wire.ballot_id,
        election_id: wire.election_id,
        voter_id: wire.voter_id,
        candidate_id: wire.candidate_id,
        cast_at,
        client: wire.client.map(Arc::from),
    })
}

/// Which rejection a JSON decoding error is.
pub fn json_error_reason(e: &serde_json::Error) -> RejectReason {
    let msg = e.to_string();
    if e.is_syntax() || e.is_eof() {
        RejectReason::MalformedJson
    } else if msg.starts_with("missing field") {
        RejectReason::MissingField
    } else if msg.starts_with("invalid type") {
        RejectReason::WrongType
    } else {
        RejectReason::InvalidField
    }
}

/// A rejection for a message we could not fully parse: keep whatever ids it
/// does carry, and name it by its content when it has no ballot id, so a
/// replay of the same bad message is recognised.
fn rejection_for_raw(raw: &[u8], reason: RejectReason, detail: String, now: Millis) -> Rejection {
    let value: Option<serde_json::Value> = if raw.len() <= MAX_MESSAGE_BYTES {
        serde_json::from_slice(raw).ok()
    } else {
        None
    };
    // Only ids that pass the edge's rules are kept (an id with NUL, say,
    // could not be stored).
    let field = |name: &str| -> Option<String> {
        let s = value.as_ref()?.get(name)?.as_str()?;
        edge::check(Kind::Id, name, s).ok().map(|()| s.to_string())
    };
    let ballot_id = field("ballot_id").unwrap_or_else(|| content_id(raw));
    Rejection {
        ballot_id,
        election_id: field("election_id"),
        voter_id: field("voter_id"),
        reason,
        detail: edge::storable(&detail, edge::DETAIL_KEPT_BYTES),
        // Lossy already; NUL, which no store can keep, becomes U+FFFD like
        // any byte that is not UTF-8.
        raw: edge::storable_raw(raw),
        received_at: now,
        source: None,
        client: field("client").map(Arc::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(raw: &[u8]) -> RejectReason {
        parse_ballot(raw, 0).unwrap_err().reason
    }

    #[test]
    fn each_malformation_has_its_own_reason() {
        assert_eq!(reason(b"{not json"), RejectReason::MalformedJson);
        assert_eq!(reason(b""), RejectReason::MalformedJson);
        assert_eq!(reason(&[0x7b, 0xff, 0xfe, 0x7d]), RejectReason::InvalidUtf8);
        assert_eq!(
            reason(br#"{"ballot_id":"b","election_id":"e","voter_id":7,"candidate_id":"c","voting_time":"2026-01-01 00:00:00"}"#),
            RejectReason::WrongType
        );
        assert_eq!(
            reason(br#"{"ballot_id":"b","election_id":"e","candidate_id":"c","voting_time":"2026-01-01 00:00:00"}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(br#"{"ballot_id":"b","election_id":"e","voter_id":"v","candidate_id":"c","voting_time":"yesterday"}"#),
            RejectReason::InvalidField
        );
        assert_eq!(
            reason(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
            RejectReason::TooLarge
        );
        assert_eq!(reason(b"[1,2,3]"), RejectReason::WrongType);
    }

    #[test]
    fn an_array_is_not_read_by_position() {
        let r = parse_ballot(br#"["b","e","v","c","2026-01-01 00:00:00"]"#, 0).unwrap_err();
        assert_eq!(r.reason, RejectReason::WrongType);
        assert!(r.detail.contains("not an array"), "{}", r.detail);
    }

    #[test]
    fn a_rejection_keeps_the_ids_it_could_read() {
        let raw = br#"{"ballot_id":"b-1","election_id":"e","voter_id":"v","candidate_id":5,"voting_time":"x"}"#;
        let r = parse_ballot(raw, 0).unwrap_err();
        assert_eq!(r.ballot_id, "b-1");
        assert_eq!(r.voter_id.as_deref(), Some("v"));
        assert!(r.detail.contains("invalid type"), "{}", r.detail);
    }

    #[test]
    fn a_message_without_id_is_named_by_its_content() {
        let a = parse_ballot(b"garbage", 0).unwrap_err();
        let b = parse_ballot(b"garbage", 5).unwrap_err();
        let c = parse_ballot(b"garbage!", 0).unwrap_err();
        assert_eq!(a.ballot_id, b.ballot_id);
        assert_ne!(a.ballot_id, c.ballot_id);
    }

    #[test]
    fn nul_never_reaches_a_rejection() {
        let raw = br#"{"ballot_id":"b\u0000","voter_id":"v\u0000","election_id":"e","candidate_id":5,"voting_time":"x"}"#;
        let r = parse_ballot(raw, 0).unwrap_err();
        assert_eq!(r.reason, RejectReason::WrongType);
        assert!(r.ballot_id.starts_with("raw-"), "{}", r.ballot_id);
        assert_eq!(r.voter_id, None);
        assert_eq!(r.election_id.as_deref(), Some("e"));
        let r = parse_ballot(b"garbage\0", 0).unwrap_err();
        assert_eq!(r.raw, "garbage\u{FFFD}");
        assert!(!r.detail.contains('\0'));
    }

    #[test]
    fn round_trips_through_json() {
        let b = Ballot {
            ballot_id: "b".into(),
            election_id: "e".into(),
            voter_id: "v".into(),
            candidate_id: "c".into(),
            cast_at: 1_700_000_000_123,
            client: None,
        };
        let line = ballot_json(&b);
        assert!(!line.contains("client"), "{line}");
        assert_eq!(parse_ballot(line.as_bytes(), 0).unwrap(), b);
        let b = Ballot {
            client: Some("kiosk-TX-3".into()),
            ..b
        };
        assert_eq!(parse_ballot(ballot_json(&b).as_bytes(), 0).unwrap(), b);
    }

    #[test]
    fn a_bad_client_is_refused_and_a_good_one_kept_with_a_rejection() {
        let raw = br#"{"ballot_id":"b","election_id":"e","voter_id":"v","candidate_id":"c","voting_time":"2026-01-01 00:00:00","client":""}"#;
        assert_eq!(reason(raw), RejectReason::InvalidField);
        let raw = br#"{"ballot_id":"b","election_id":"e","voter_id":"v","candidate_id":5,"voting_time":"x","client":"kiosk-OH-1"}"#;
        let r = parse_ballot(raw, 0).unwrap_err();
        assert_eq!(r.client.as_deref(), Some("kiosk-OH-1"));
    }
}
