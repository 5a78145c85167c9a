//! Domain types shared by every stage.
//!
//! Values are parsed once at the edge (a ballot off the bus, a row from a CSV
//! import) and are trusted everywhere after that: a `Ballot` always has a
//! non-empty election, voter and candidate id and a cast time.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC. Every timestamp inside the pipeline.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

/// `YYYY-MM-DD HH:MM:SS`, UTC: the original's `voting_time` format.
pub fn format_voting_time(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => String::from("invalid"),
    }
}

/// Accepts the original's `YYYY-MM-DD HH:MM:SS` (UTC) and RFC 3339.
pub fn parse_time(s: &str) -> Option<Millis> {
    // Exactly this shape: chrono's %Y alone also takes signed and short
    // years ("-026"), which no RFC 3339 rendering of the ballot reads back.
    const SHAPE: &[u8; 19] = b"0000-00-00 00:00:00";
    let fixed = s.len() == SHAPE.len()
        && s.bytes().zip(SHAPE).all(|(c, &p)| {
            if p == b'0' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        });
    if fixed {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Gender as the registry records it; anything unrecognised on import is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
    Other,
}

impl Gender {
    pub const ALL: [Gender; 3] = [Gender::Female, Gender::Male, Gender::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Gender {
        match s.trim().to_ascii_lowercase().as_str() {
            "female" | "f" | "woman" => Gender::Female,
            "male" | "m" | "man" => Gender::Male,
            _ => Gender::Other,
        }
    }
}

/// Age bands for the demographic breakdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgeBand {
    A18_24,
    A25_34,
    A35_44,
    A45_54,
    A55_64,
    A65Plus,
}

impl AgeBand {
    pub const ALL: [AgeBand; 6] = [
        AgeBand::A18_24,
        AgeBand::A25_34,
        AgeBand::A35_44,
        AgeBand::A45_54,
        AgeBand::A55_64,
        AgeBand::A65Plus,
    ];

    pub fn of_age(age: u32) -> AgeBand {
        match age {
            0..=24 => AgeBand::A18_24,
            25..=34 => AgeBand::A25_34,
            35..=44 => AgeBand::A35_44,
            45..=54 => AgeBand::A45_54,
            55..=64 => AgeBand::A55_64,
            _ => AgeBand::A65Plus,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgeBand::A18_24 => "18-24",
            AgeBand::A25_34 => "25-34",
            AgeBand::A35_44 => "35-44",
            AgeBand::A45_54 => "45-54",
            AgeBand::A55_64 => "55-64",
            AgeBand::A65Plus => "65+",
        }
    }

    pub fn parse(s: &str) -> Option<AgeBand> {
        AgeBand::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// An election: candidates and votes belong to one. Voters are shared by all
/// elections, and vote at most once in each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Election {
    pub election_id: String,
    pub name: String,
    /// Ballots cast before this are rejected (`cast_before_open`).
    pub opens_at: Millis,
    /// When each state's polls close, if the election has a schedule: a
    /// ballot cast after its state's close is rejected (`polls_closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<PollClose>,
}

/// A poll-closing schedule in the real waves: the first wave closes at
/// `first_close`, and a state whose `close_step` is n closes n steps later.
/// Real nights have half-hour steps; a rehearsal can compress them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollClose {
    pub first_close: Millis,
    pub step_ms: Millis,
}

impl Election {
    /// When polls close in the state named `state` (full name, as voters'
    /// `address_state`), or None when the election has no schedule. A state
    /// the table does not know closes with the last wave.
    pub fn closes_at(&self, state: &str) -> Option<Millis> {
        let polls = self.polls?;
        let step = crate::states::state_by_name(state)
            .map_or(crate::states::LAST_CLOSE_STEP, |s| s.close_step);
        Some(polls.first_close + i64::from(step) * polls.step_ms)
    }
}

/// A row of the `candidates` table (and a `candidates_topic` message).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub candidate_id: String,
    pub election_id: String,
    pub candidate_name: String,
    pub party_affiliation: String,
    pub biography: String,
    pub campaign_platform: String,
    pub photo_url: String,
}

/// A voter's sixteen fields in the registry's order: the CSV header, the
/// `voters` table's columns, and the order every store reads them back in.
/// One list, so the places that spell a voter out cannot drift apart.
pub const VOTER_COLUMNS: [&str; 16] = [
    "voter_id",
    "voter_name",
    "date_of_birth",
    "gender",
    "nationality",
    "registration_number",
    "address_street",
    "address_city",
    "address_state",
    "address_country",
    "address_postcode",
    "email",
    "phone_number",
    "cell_number",
    "picture",
    "registered_age",
];

/// A row of the `voters` table. The topic shape nests the address (see
/// [`Voter::to_topic_json`]); the table keeps the original's flat columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Voter {
    pub voter_id: String,
    pub voter_name: String,
    /// ISO 8601 date, `YYYY-MM-DD`.
    pub date_of_birth: String,
    pub gender: Gender,
    pub nationality: String,
    pub registration_number: String,
    pub address_street: String,
    pub address_city: String,
    pub address_state: String,
    pub address_country: String,
    pub address_postcode: String,
    pub email: String,
    pub phone_number: String,
    pub cell_number: String,
    pub picture: String,
    pub registered_age: u32,
}

impl Voter {
    /// The `voters_topic` JSON object, as the original published it.
    pub fn to_topic_json(&self) -> serde_json::Value {
        serde_json::json!({
            "voter_id": self.voter_id,
            "voter_name": self.voter_name,
            "date_of_birth": self.date_of_birth,
            "gender": self.gender.as_str(),
            "nationality": self.nationality,
            "registration_number": self.registration_number,
            "address": {
                "street": self.address_street,
                "city": self.address_city,
                "state": self.address_state,
                "country": self.address_country,
                "postcode": self.address_postcode,
            },
            "email": self.email,
            "phone_number": self.phone_number,
            "cell_number": self.cell_number,
            "picture": self.picture,
            "registered_age": self.registered_age,
        })
    }
}

/// A ballot as cast: parsed, but not yet checked against the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ballot {
    pub ballot_id: String,
    pub election_id: String,
    pub voter_id: String,
    pub candidate_id: String,
    /// When the voter cast it (event time), not when it arrived.
    pub cast_at: Millis,
    /// Who sent it, as the intake that took it names them (see
    /// [`Vote::client`]); never read from what the sender wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Arc<str>>,
}

/// Why a ballot was not counted. A closed set: every rejection has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    MalformedJson,
    InvalidUtf8,
    WrongType,
    MissingField,
    InvalidField,
    TooLarge,
    UnknownElection,
    UnknownVoter,
    UnknownCandidate,
    AlreadyVoted,
    CastInFuture,
    CastBeforeOpen,
    /// The ballot id already names a ballot with other content (another
    /// election, voter or candidate): one id, one ballot.
    BallotIdReused,
    /// Cast after the polls closed in the voter's state, or arriving once
    /// the state's count was sealed.
    PollsClosed,
}

impl RejectReason {
    pub const ALL: [RejectReason; 14] = [
        RejectReason::MalformedJson,
        RejectReason::InvalidUtf8,
        RejectReason::WrongType,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::TooLarge,
        RejectReason::UnknownElection,
        RejectReason::UnknownVoter,
        RejectReason::UnknownCandidate,
        RejectReason::AlreadyVoted,
        RejectReason::CastInFuture,
        RejectReason::CastBeforeOpen,
        RejectReason::BallotIdReused,
        RejectReason::PollsClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::WrongType => "wrong_type",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnknownElection => "unknown_election",
            RejectReason::UnknownVoter => "unknown_voter",
            RejectReason::UnknownCandidate => "unknown_candidate",
            RejectReason::AlreadyVoted => "already_voted",
            RejectReason::CastInFuture => "cast_in_future",
            RejectReason::CastBeforeOpen => "cast_before_open",
            RejectReason::BallotIdReused => "ballot_id_reused",
            RejectReason::PollsClosed => "polls_closed",
        }
    }

    pub fn parse(s: &str) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A ballot that was not counted, kept with its reason (`rejected_ballots`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The ballot's id when it had one; otherwise a content hash, so a replayed
    /// bad message is still recognised as the same message.
    pub ballot_id: String,
    /// `None` when the message was too broken to name its election.
    pub election_id: Option<String>,
    pub voter_id: Option<String>,
    pub reason: RejectReason,
    pub detail: String,
    /// The message as received (lossily decoded, truncated to a few KiB).
    pub raw: String,
    pub received_at: Millis,
    /// The bus message it came from, when the bus has positions (Kafka).
    pub source: Option<Source>,
    /// Who sent it, when known (see [`Vote::client`]).
    pub client: Option<Arc<str>>,
}

/// A message's place on the bus: a Kafka partition of `ballots` and the
/// offset in it. The store keeps it with each vote and rejection, so that
/// after a crash between the store's commit and the bus's, the processor
/// can tell its own replay (publish the outcome again) from a duplicate
/// ballot sent twice (publish nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub partition: i32,
    pub offset: i64,
}

/// An accepted vote, enriched with what aggregation needs. The full
/// `votes_topic` shape (voter merged with candidate) is rendered from the
/// registry only where a bus carries bytes; in process this compact form is
/// passed instead.
#[derive(Clone, Debug, PartialEq)]
pub struct Vote {
    /// Position in the store's votes log: strictly increasing, gap-free per
    /// store. Aggregators resume from it.
    pub seq: i64,
    pub ballot_id: String,
    pub election_id: Arc<str>,
    pub voter_id: String,
    /// The store's integer keys for the election and the voter.
    pub election_no: i64,
    pub voter_no: i64,
    pub candidate_id: Arc<str>,
    pub state: Arc<str>,
    pub age_band: AgeBand,
    pub gender: Gender,
    pub cast_at: Millis,
    /// The bus message it came from (see [`Source`]).
    pub source: Option<Source>,
    /// Who sent the ballot: the HTTP API's caller (`http:<ip>#<token
    /// fingerprint>`) or the simulator's polling-place kiosk
    /// (`kiosk-<state>-<n>`); None when the path that brought it does not
    /// know (a ballot piped in, a record from before clients were kept).
    /// Shared: a client sends many ballots.
    pub client: Option<Arc<str>>,
}
