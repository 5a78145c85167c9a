//! The store seam: where the registry, the votes (the ground truth), the
//! rejections and the aggregated results live. Chosen by URL scheme:
//! `sqlite://path` (embedded default) or `postgres://…` / `postgresql://…`.
//! Both backends pass the same contract suite (tests/store_contract.rs).
//!
//! The methods are few and coarse on purpose: each is one transaction, so a
//! crash between two calls never leaves half a batch behind.

mod checkpoint;
mod error;
pub(crate) mod ids;
mod outcome;
mod postgres;
mod retry;
mod shown;
mod sqlite;
mod url;
pub mod util;

pub use checkpoint::EVERY as CHECKPOINT_EVERY;
pub use error::ErrorClass;
pub use outcome::{Fate, Recorded};
pub use postgres::{PgStore, VOTE_COPY_TYPES};
pub use retry::{retry, Backoff};
pub use sqlite::SqliteStore;
pub use url::{StoreKind, StoreUrl};

use std::collections::HashMap;

use crate::model::{Candidate, Election, Gender, Millis, Rejection, Vote, Voter};
use crate::results::{At, Results};
use crate::shown::Shown;
use crate::tally::{Tallies, TallyKey};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL `{0}`: expected sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("unexpected value in the SQLite store: {0}")]
    SqliteValue(#[from] rusqlite::types::FromSqlError),
    #[error("unknown election `{0}`")]
    UnknownElection(String),
    /// Another engine of the same name saved since this one loaded: its
    /// results are newer, and saving ours would mix two positions.
    #[error("engine `{engine}` moved on elsewhere: expected position {expected}, found {found}")]
    EngineMoved {
        engine: String,
        expected: i64,
        found: i64,
    },
    /// PostgreSQL cannot keep U+0000 in text, so no backend accepts it: the
    /// same data must be storable in every store. The edge (`crate::edge`)
    /// turns such ballots into `invalid_field` rejections before they get
    /// here; if one still does, the processor isolates it (see
    /// [`ErrorClass::Content`]).
    #[error("{what} contains U+0000 (NUL), which a store cannot keep verbatim")]
    NulInText { what: String },
    #[error("{what} is out of range for the store")]
    OutOfRange { what: String },
    #[error("unknown rejection reason `{0}` in the store")]
    UnknownReason(String),
    #[error("unreadable tally checkpoint: {0}")]
    BadCheckpoint(String),
    #[error("unreadable record of shown results: {0}")]
    BadShown(String),
    /// A write asked of a store opened read-only, or of a server that only
    /// reads (a hot standby).
    #[error("the store is read-only")]
    ReadOnly,
}

/// Refuses text a store could not read back verbatim (see [`StoreError::NulInText`]).
pub fn check_text(what: &str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::NulInText {
            what: what.to_string(),
        });
    }
    Ok(())
}

/// [`check_text`] over every text field of a voter.
pub fn check_voter(v: &Voter) -> Result<(), StoreError> {
    let fields = [
        ("voter_id", &v.voter_id),
        ("voter_name", &v.voter_name),
        ("date_of_birth", &v.date_of_birth),
        ("nationality", &v.nationality),
        ("registration_number", &v.registration_number),
        ("address_street", &v.address_street),
        ("address_city", &v.address_city),
        ("address_state", &v.address_state),
        ("address_country", &v.address_country),
        ("address_postcode", &v.address_postcode),
        ("email", &v.email),
        ("phone_number", &v.phone_number),
        ("cell_number", &v.cell_number),
        ("picture", &v.picture),
    ];
    for (name, value) in fields {
        if value.contains('\0') {
            return check_text(&format!("voter {:?}: {name}", v.voter_id), value);
        }
    }
    Ok(())
}

/// [`check_text`] over an election and its candidates.
pub fn check_election(e: &Election, candidates: &[Candidate]) -> Result<(), StoreError> {
    check_text("election_id", &e.election_id)?;
    check_text("election name", &e.name)?;
    for c in candidates {
        for (name, value) in [
            ("candidate_id", &c.candidate_id),
            ("candidate_name", &c.candidate_name),
            ("party_affiliation", &c.party_affiliation),
            ("biography", &c.biography),
            ("campaign_platform", &c.campaign_platform),
            ("photo_url", &c.photo_url),
        ] {
            check_text(&format!("candidate {:?}: {name}", c.candidate_id), value)?;
        }
    }
    Ok(())
}

/// [`check_text`] over what a batch would write. The processor never hands
/// over such text, so this only guards against a new producer of batches.
pub fn check_batch(batch: &Batch) -> Result<(), StoreError> {
    for v in &batch.votes {
        check_text("ballot_id", &v.ballot_id)?;
        check_text("voter_id", &v.voter_id)?;
    }
    for r in &batch.rejections {
        check_text("rejection ballot_id", &r.ballot_id)?;
        check_text(
            "rejection election_id",
            r.election_id.as_deref().unwrap_or(""),
        )?;
        check_text("rejection voter_id", r.voter_id.as_deref().unwrap_or(""))?;
        check_text("rejection detail", &r.detail)?;
        check_text("rejection raw", &r.raw)?;
    }
    Ok(())
}

/// What the processor and the simulator need to know about one voter.
pub struct VoterKey<'a> {
    pub voter_no: i64,
    pub voter_id: &'a str,
    pub state: &'a str,
    pub age: u32,
    pub gender: Gender,
}

/// One partition's offsets moving in [`Store::add_tallies`]: from the next
/// offset the store had (`None`: none yet) to the next one after the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetMove {
    pub partition: i32,
    pub from: Option<i64>,
    pub to: i64,
}

/// An election as stored: its integer key, and its candidates.
#[derive(Clone, Debug)]
pub struct ElectionEntry {
    pub no: i64,
    pub election: Election,
    pub candidates: Vec<Candidate>,
}

/// A validated batch on its way into the store.
#[derive(Debug, Default)]
pub struct Batch {
    pub votes: Vec<Vote>,
    pub rejections: Vec<Rejection>,
    /// For each rejection, how many of the votes arrived before it (missing:
    /// all of them): ballot ids are decided in arrival order.
    pub rejections_after: Vec<usize>,
}

/// Sorts a batch's votes by (election, voter), stably: a store walks its
/// uniqueness index forward instead of at random. Returns where each sorted
/// vote was (`positions`), and the sorted indices in arrival order.
pub(crate) fn sort_by_voter(batch: &mut Batch) -> (Vec<usize>, Vec<usize>) {
    let mut tagged: Vec<(usize, Vote)> = std::mem::take(&mut batch.votes)
        .into_iter()
        .enumerate()
        .collect();
    tagged.sort_by_key(|(_, v)| (v.election_no, v.voter_no));
    let (positions, votes): (Vec<usize>, Vec<Vote>) = tagged.into_iter().unzip();
    batch.votes = votes;
    let mut arrival = vec![0; positions.len()];
    for (sorted, &at) in positions.iter().enumerate() {
        arrival[at] = sorted;
    }
    (positions, arrival)
}

/// Undoes [`sort_by_voter`], for a batch handed back for a retry.
pub(crate) fn unsort(mut batch: Batch, positions: &[usize]) -> Batch {
    let mut tagged: Vec<(usize, Vote)> = positions.iter().copied().zip(batch.votes).collect();
    tagged.sort_by_key(|(at, _)| *at);
    batch.votes = tagged.into_iter().map(|(_, v)| v).collect();
    batch
}

pub trait Store: Send {
    /// Creates or updates an election and its candidates.
    fn put_election(
        &mut self,
        election: &Election,
        candidates: &[Candidate],
    ) -> Result<(), StoreError>;
    /// Adds voters (already present ids are left as they are); returns how many were new.
    fn put_voters(&mut self, voters: &[Voter]) -> Result<u64, StoreError>;
    /// Every election with its candidates.
    fn elections(&mut self) -> Result<Vec<ElectionEntry>, StoreError>;
    /// Calls `f` for every registered voter, in registration order.
    fn scan_voters(&mut self, f: &mut dyn FnMut(VoterKey<'_>)) -> Result<(), StoreError>;
    /// One voter's full profile.
    fn voter(&mut self, voter_id: &str) -> Result<Option<Voter>, StoreError>;
    /// Records validated votes and rejections in one transaction. The store
    /// enforces one vote per voter per election and recognises replays. On
    /// failure nothing was written and the batch comes back for a retry.
    // The batch comes back by value on the (cold) failure path: its vectors
    // move, no ballot is copied, so a few more bytes in `Err` cost nothing.
    #[allow(clippy::result_large_err)]
    fn record(&mut self, batch: Batch) -> Result<Recorded, (StoreError, Batch)>;
    /// How long one [`Store::record`] should take at most, where every
    /// other writer waits for it to end (SQLite's single write lock: the
    /// aggregator's saves queue behind the processor's batches). `None`
    /// where writers do not wait for each other, and a batch may be as
    /// large as the input allows.
    fn batch_time(&self) -> Option<std::time::Duration> {
        None
    }
    /// Accepted votes with `seq > after`, in seq order, at most `limit`.
    fn votes_after(&mut self, after: i64, limit: usize) -> Result<Vec<Vote>, StoreError>;
    /// The votes ledger alone, without the voters' profiles: entries with
    /// `seq > after`, in seq order, at most `limit` (what the alerts stage
    /// reads; it knows each voter's state already).
    fn ledger_after(&mut self, after: i64, limit: usize) -> Result<Vec<LedgerEntry>, StoreError>;
    /// Recorded rejections with `id > after` (their order of recording), at
    /// most `limit`, each with its id: what a replay re-drives beside the votes.
    fn rejections_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Rejection)>, StoreError>;
    /// An engine's persisted tallies and the seq they are exact up to.
    fn load_tallies(&mut self, engine: &str) -> Result<(Tallies, i64), StoreError>;
    /// Writes changed tallies and the new position in one transaction, only
    /// if the stored position is still `from` (else `EngineMoved`, nothing
    /// written): two engines of one name never interleave their saves.
    fn save_tallies(
        &mut self,
        engine: &str,
        changed: &[(TallyKey, i64)],
        from: i64,
        position: i64,
    ) -> Result<(), StoreError>;
    /// Adds tally deltas (for `MaxCastAt` the larger value wins) and moves an
    /// engine's offsets on a bus topic, in one transaction, only if every
    /// partition's stored offset is still the move's `from` (else
    /// `EngineMoved`, nothing written). This is how an engine fed by Kafka
    /// counts each vote exactly once, however many instances share the topic.
    fn add_tallies(
        &mut self,
        engine: &str,
        deltas: &[(TallyKey, i64)],
        topic: &str,
        moves: &[OffsetMove],
    ) -> Result<(), StoreError>;
    /// An engine's next offset to read, per partition of a bus topic.
    fn load_offsets(&mut self, engine: &str, topic: &str) -> Result<HashMap<i32, i64>, StoreError>;
    /// Full profiles of voters, by voter_no (`votes_topic` messages carry them).
    fn profiles(&mut self, voter_nos: &[i64]) -> Result<Vec<(i64, Voter)>, StoreError>;
    /// The read model for one election, as the results API shows it.
    fn results(&mut self, election_id: &str, engine: &str) -> Result<Results, StoreError>;
    /// The read model as of a moment of the night, recounted from the votes
    /// ledger up to it (from the nearest tally checkpoint: `checkpoint.rs`);
    /// `as_of` says where it stands. A writable store keeps the checkpoints
    /// the query made.
    fn results_at(&mut self, election_id: &str, at: At) -> Result<Results, StoreError>;
    /// Every tally recomputed from the votes table alone (for `audit`).
    fn recount(&mut self, election_id: &str) -> Result<Tallies, StoreError>;
    /// Seals a state's count: no new vote for it is recorded after this
    /// commits (`polls_closed`), so the votes counted in it at that moment,
    /// returned, are all it will ever have. Sealing again changes nothing.
    fn seal_state(
        &mut self,
        election_id: &str,
        state: &str,
        at: Millis,
    ) -> Result<Seal, StoreError>;
    /// The seals and the desk's events of an election.
    fn desk_log(&mut self, election_id: &str) -> Result<DeskLog, StoreError>;
    /// Appends desk events numbered `next`, `next + 1`, ..., only if `next`
    /// events are recorded (else `EngineMoved`, nothing written): an event
    /// is recorded once even when a desk restarts or a second one runs.
    fn append_desk(
        &mut self,
        election_id: &str,
        next: i64,
        events: &[String],
    ) -> Result<(), StoreError>;
    /// The alerts stage's events of an election numbered `from` on, in order
    /// (their number is `from` plus their index), as JSON the store does not read.
    fn alert_events(&mut self, election_id: &str, from: i64) -> Result<Vec<String>, StoreError>;
    /// Where the alerts stage of an election stands; None before its first save.
    fn alert_resume(&mut self, election_id: &str) -> Result<Option<AlertResume>, StoreError>;
    /// Appends alert events numbered `next`, `next + 1`, ... and moves the
    /// stage to `to`, in one transaction, only if `next` events are recorded
    /// and the stage stands at `from` (else `EngineMoved`, nothing written):
    /// after a restart, or beside a second stage, no alert is recorded twice.
    fn append_alerts(
        &mut self,
        election_id: &str,
        next: i64,
        events: &[String],
        from: LedgerPosition,
        to: &AlertResume,
    ) -> Result<(), StoreError>;
    /// Appends one look of the race desk that changed something, with the
    /// events it made (numbered from `look.first_event`, only if that many
    /// are recorded, else `EngineMoved`), in one transaction: the record of
    /// what the desk was shown, so a replay can show its own desk the same.
    fn record_look(
        &mut self,
        election_id: &str,
        look: &DeskLook,
        events: &[String],
    ) -> Result<(), StoreError>;
    /// The desk's recorded looks of an election, in order.
    fn desk_looks(&mut self, election_id: &str) -> Result<Vec<DeskLook>, StoreError>;
    /// Keeps one published state of an election's results, unless the same
    /// figures are kept already (several servers publish the same results):
    /// returns whether it was new. A read-only store refuses (`ReadOnly`).
    fn record_shown(&mut self, shown: &Shown) -> Result<bool, StoreError>;
    /// The kept published results of an election shown at or before
    /// `until`, the latest `limit` of them, in the order they were shown.
    fn shown_results(
        &mut self,
        election_id: &str,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<Shown>, StoreError>;
}

/// The states whose count is sealed, as `(election_no, state)`.
pub(crate) type Sealed = std::collections::HashSet<(i64, std::sync::Arc<str>)>;

/// A state whose count is final (see [`Store::seal_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    pub state: String,
    pub sealed_at: Millis,
    /// The votes counted in the state: all it will ever have.
    pub final_votes: u64,
}

/// What the race desk has recorded for one election.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeskLog {
    pub seals: Vec<Seal>,
    /// The desk's events in order (their number is their index), as JSON
    /// the store does not read.
    pub events: Vec<String>,
}

/// One accepted vote as the ledger holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    pub seq: i64,
    pub election_no: i64,
    pub voter_no: i64,
    pub candidate_id: std::sync::Arc<str>,
    pub cast_at: Millis,
    /// Who sent the ballot (see `model::Ballot::client`), when known.
    pub client: Option<std::sync::Arc<str>>,
}

/// A place in the ledger: the votes up to a seq and the rejections up to an
/// id have been read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerPosition {
    pub votes: i64,
    pub rejections: i64,
}

/// What the alerts stage saves with its events: where it stands and its
/// detectors' state (JSON the store does not read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertResume {
    pub at: LedgerPosition,
    pub state: String,
}

/// Another alerts stage moved first: its events or its position differ
/// from what this one expected.
pub(crate) fn alerts_moved(election_id: &str, expected: i64, found: i64) -> StoreError {
    StoreError::EngineMoved {
        engine: format!("alerts of {election_id}"),
        expected,
        found,
    }
}

/// One look of the race desk that sealed a state or made events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskLook {
    /// The look's clock (ms): its events' `at`, its seals' `sealed_at`.
    pub at: Millis,
    /// The votes counted in the results it was shown (its events' `position`).
    pub counted: i64,
    /// The election's votes recorded when it read them, after its seals: a
    /// state it sealed has no vote past these.
    pub accepted: i64,
    /// How many states it sealed.
    pub seals: i64,
    /// Its events are numbered from here, `events` of them.
    pub first_event: i64,
    pub events: i64,
}

/// One election as stored, or `UnknownElection`.
pub(crate) fn find_election(
    store: &mut dyn Store,
    election_id: &str,
) -> Result<ElectionEntry, StoreError> {
    store
        .elections()?
        .into_iter()
        .find(|e| e.election.election_id == election_id)
        .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))
}

/// Opens the store a URL names, creating its schema if needed.
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    StoreUrl::parse(url)?.open()
}

/// Opens an existing store for reading only (see [`StoreUrl::open_read_only`]).
pub fn open_read_only(url: &str) -> Result<Box<dyn Store>, StoreError> {
    StoreUrl::parse(url)?.open_read_only()
}
