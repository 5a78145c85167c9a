//! The edge: where text from outside becomes text the pipeline trusts. One
//! set of rules for every path a ballot, a rejection or an admin value can
//! take (an HTTP body, path or header, a `ballots` message, a line of a file
//! or of stdin, a CSV or randomuser import, an admin request):
//!
//! - no U+0000 (NUL): PostgreSQL cannot keep it in text, and every store
//!   must be able to keep the same data, so no store accepts it;
//! - no lone surrogates: a Rust string cannot hold one, the JSON parser
//!   refuses a `\uD800` escape without its pair (`malformed_json`), and
//!   bytes that are not UTF-8 (CESU-8 surrogates included) are
//!   `invalid_utf8`;
//! - ids are 1 to [`MAX_ID_BYTES`] bytes, names at most [`MAX_NAME_BYTES`],
//!   other text at most [`MAX_TEXT_BYTES`];
//! - a JSON body is an object: an array would be read field by position;
//! - a rejection keeps at most [`RAW_KEPT_BYTES`] of what was sent and an
//!   error message echoes at most [`ECHO_BYTES`] of a bad value.
//!
//! Values that pass are wrapped ([`Id`]) where the type can carry the proof;
//! [`storable_rejection`] is the one funnel every rejection passes through
//! on its way to a store, whoever built it.

use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

use crate::model::{Ballot, RejectReason, Rejection};

/// Ids (ballot, election, voter, candidate): no registry id is longer.
pub const MAX_ID_BYTES: usize = 128;
/// Larger messages are rejected unread (`too_large`).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Names (of an election, a candidate, a party, a voter).
pub const MAX_NAME_BYTES: usize = 256;
/// Any other text field (addresses, biographies, URLs, …).
pub const MAX_TEXT_BYTES: usize = 4096;
/// How much of a bad message is kept with its rejection.
pub const RAW_KEPT_BYTES: usize = 4096;
/// How much of a rejection's explanation is kept.
pub const DETAIL_KEPT_BYTES: usize = 1024;
/// How much of a bad value an error message repeats.
pub const ECHO_BYTES: usize = 64;

/// What kind of text a field holds, and so its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Id,
    Name,
    Text,
}

impl Kind {
    pub fn max_bytes(self) -> usize {
        match self {
            Kind::Id => MAX_ID_BYTES,
            Kind::Name => MAX_NAME_BYTES,
            Kind::Text => MAX_TEXT_BYTES,
        }
    }
}

/// Why a field's text was refused; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{field} is empty")]
    Empty { field: String },
    #[error("{field} is {len} bytes; the limit is {max}")]
    TooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("{field} contains U+0000 (NUL) at byte {at}, which no store can keep")]
    Nul { field: String, at: usize },
}

/// Checks one field against the rules for its kind (ids may not be empty).
pub fn check(kind: Kind, field: &str, value: &str) -> Result<(), TextError> {
    if kind == Kind::Id && value.is_empty() {
        return Err(TextError::Empty {
            field: field.to_string(),
        });
    }
    if value.len() > kind.max_bytes() {
        return Err(TextError::TooLong {
            field: field.to_string(),
            len: value.len(),
            max: kind.max_bytes(),
        });
    }
    if let Some(at) = memchr(value) {
        return Err(TextError::Nul {
            field: field.to_string(),
            at,
        });
    }
    Ok(())
}

fn memchr(value: &str) -> Option<usize> {
    value.bytes().position(|b| b == 0)
}

/// An id that passed [`check`]: 1 to [`MAX_ID_BYTES`] bytes, no NUL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    pub fn parse(field: &str, value: impl Into<String>) -> Result<Id, TextError> {
        let value = value.into();
        check(Kind::Id, field, &value)?;
        Ok(Id(value))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The first problem of a ballot's ids, if any: every ballot, whatever
/// its path, is checked here before the registry is asked about it.
pub fn check_ballot(b: &Ballot) -> Result<(), TextError> {
    check(Kind::Id, "ballot_id", &b.ballot_id)?;
    check(Kind::Id, "election_id", &b.election_id)?;
    check(Kind::Id, "voter_id", &b.voter_id)?;
    check(Kind::Id, "candidate_id", &b.candidate_id)?;
    match &b.client {
        Some(c) => check(Kind::Id, "client", c),
        None => Ok(()),
    }
}

/// Refuses a JSON array: serde would read it into a struct by position.
/// Anything else that is not an object is left to the parser, whose own
/// error says what it is.
pub fn json_object(text: &str) -> Result<(), &'static str> {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => Err("the body must be a JSON object, not an array"),
        _ => Ok(()),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A bad value as an error message may show it: quoted, at most
/// [`ECHO_BYTES`] of it, NUL escaped by the quoting, its length when cut.
pub fn echo(s: &str) -> String {
    let kept = prefix(s, ECHO_BYTES);
    if kept.len() == s.len() {
        format!("{s:?}")
    } else {
        format!("{kept:?}… ({} bytes)", s.len())
    }
}

/// Text made storable: each NUL replaced by U+FFFD, cut to `max` bytes.
pub fn storable(s: &str, max: usize) -> String {
    if s.contains('\0') {
        prefix(&s.replace('\0', "\u{FFFD}"), max).to_string()
    } else {
        prefix(s, max).to_string()
    }
}

/// Bytes as received, made storable: lossily decoded, NUL replaced, at
/// most [`RAW_KEPT_BYTES`] (a cut may split a character: it becomes U+FFFD).
pub fn storable_raw(raw: &[u8]) -> String {
    let kept = &raw[..raw.len().min(RAW_KEPT_BYTES)];
    storable(&String::from_utf8_lossy(kept), RAW_KEPT_BYTES)
}

/// A stable id for a message that has no usable one (fixed keys: it must
/// match across restarts, so a replayed bad message is recognised).
pub fn content_id(raw: &[u8]) -> String {
    let mut h = SipHasher13::new_with_keys(0x766f_7465, 0x7374_7265_616d);
    h.write(raw);
    format!("raw-{:032x}", h.finish128().as_u128())
}

/// Every rejection passes here on its way to a store: ids that break the
/// rules are dropped (a ballot id is replaced by one derived from the bad
/// id and the message, stable across replays), the explanation and the
/// message are cut and NUL-free. A rejection that already complies comes
/// back as it was.
pub fn storable_rejection(mut r: Rejection) -> Rejection {
    if check(Kind::Id, "ballot_id", &r.ballot_id).is_err() {
        let mut named = r.ballot_id.clone().into_bytes();
        named.push(0xff); // not UTF-8: no id plus raw can collide with another
        named.extend_from_slice(r.raw.as_bytes());
        r.ballot_id = content_id(&named);
    }
    for id in [&mut r.election_id, &mut r.voter_id] {
        if id
            .as_deref()
            .is_some_and(|v| check(Kind::Id, "id", v).is_err())
        {
            *id = None;
        }
    }
    if r.client
        .as_deref()
        .is_some_and(|c| check(Kind::Id, "client", c).is_err())
    {
        r.client = None;
    }
    if r.detail.len() > DETAIL_KEPT_BYTES || r.detail.contains('\0') {
        r.detail = storable(&r.detail, DETAIL_KEPT_BYTES);
    }
    if r.raw.len() > RAW_KEPT_BYTES || r.raw.contains('\0') {
        r.raw = storable(&r.raw, RAW_KEPT_BYTES);
    }
    r
}

/// The rejection for a ballot whose ids break the rules: only what can be
/// stored is kept (see [`storable_rejection`]).
pub fn invalid_ballot(b: &Ballot, e: &TextError, raw: String, now: i64) -> Rejection {
    storable_rejection(Rejection {
        ballot_id: b.ballot_id.clone(),
        election_id: Some(b.election_id.clone()),
        voter_id: Some(b.voter_id.clone()),
        reason: RejectReason::InvalidField,
        detail: e.to_string(),
        raw,
        received_at: now,
        source: None,
        client: b.client.clone(),
    })
}

/// The JSON line for a ballot, as the simulator and the API put it on the
/// bus: the one wire shape every path into the processor reads. `client`
/// is there only when the ballot has one, so a ballot without one is the
/// same line as before clients were kept.
pub fn ballot_json(b: &Ballot) -> String {
    let mut line = ballot_content(b);
    if let Some(client) = &b.client {
        line["client"] = serde_json::Value::from(&**client);
    }
    line.to_string()
}

/// What a rejection keeps of a typed ballot: its content without its
/// client, so the same ballot retried from elsewhere is recognised as the
/// same ballot (the id check fingerprints what a rejection keeps).
pub fn ballot_raw(b: &Ballot) -> String {
    ballot_content(b).to_string()
}

fn ballot_content(b: &Ballot) -> serde_json::Value {
    serde_json::json!({
        "ballot_id": b.ballot_id,
        "election_id": b.election_id,
        "voter_id": b.voter_id,
        "candidate_id": b.candidate_id,
        "voting_time": chrono::DateTime::from_timestamp_millis(b.cast_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_nul_free() {
        assert!(Id::parse("voter_id", "v-1").is_ok());
        assert_eq!(
            Id::parse("voter_id", "").unwrap_err().to_string(),
            "voter_id is empty"
        );
        assert_eq!(
            Id::parse("voter_id", "a\0b").unwrap_err().to_string(),
            "voter_id contains U+0000 (NUL) at byte 1, which no store can keep"
        );
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert!(matches!(
            Id::parse("election_id", long),
            Err(TextError::TooLong { len: 129, .. })
        ));
        // Hostile but storable text is an id like any other.
        assert!(Id::parse("voter_id", "'; DROP TABLE votes; -- \t 🗳️").is_ok());
    }

    #[test]
    fn an_array_body_is_not_an_object() {
        assert!(json_object(" \n[\"b\",\"e\"]").is_err());
        assert!(json_object("{\"a\":1}").is_ok());
        assert!(json_object("garbage").is_ok(), "left to the parser");
    }

    #[test]
    fn a_rejection_is_made_storable_and_stays_stable() {
        let r = Rejection {
            ballot_id: "b\0".into(),
            election_id: Some("e".repeat(60_000)),
            voter_id: Some("v\0".into()),
            reason: RejectReason::MalformedJson,
            detail: format!("bad\0{}", "d".repeat(5000)),
            raw: format!("{{\0{}", "r".repeat(60_000)),
            received_at: 0,
            source: None,
            client: Some("c\0".into()),
        };
        let a = storable_rejection(r.clone());
        let b = storable_rejection(r);
        assert_eq!(a, b, "a replay gets the same id");
        assert!(a.ballot_id.starts_with("raw-"));
        assert_eq!(a.election_id, None);
        assert_eq!(a.voter_id, None);
        assert_eq!(a.client, None);
        assert!(a.detail.len() <= DETAIL_KEPT_BYTES && !a.detail.contains('\0'));
        assert!(a.raw.len() <= RAW_KEPT_BYTES && !a.raw.contains('\0'));
        assert!(a.raw.starts_with("{\u{FFFD}"));
        let fine = storable_rejection(a.clone());
        assert_eq!(fine, a, "a storable rejection is left as it was");
    }

    #[test]
    fn echo_and_prefix_cut_on_a_character_boundary() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(echo("a\0"), "\"a\\0\"");
        let long = "é".repeat(100);
        let e = echo(&long);
        assert!(e.ends_with("… (200 bytes)"), "{e}");
        assert!(e.len() < ECHO_BYTES + 24, "{e}");
    }
}
