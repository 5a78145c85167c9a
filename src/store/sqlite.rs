//! The embedded store: one SQLite file in WAL mode, `synchronous = FULL`, so
//! a committed batch survives a crash of the process (and of the machine).

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::ids::{self, Fingerprint, Plan};
use super::outcome::{
    by_voter, new_rejections, same_source, BatchOutcome, RejectionOutcome, StoredRejection,
    VoteOutcome,
};
use super::util::{Interner, TimeFormat};
use super::{
    check_batch, check_election, check_voter, sort_by_voter, unsort, Batch, ElectionEntry,
    OffsetMove, Recorded, Store, StoreError, VoterKey,
};
use crate::model::{
    format_voting_time, AgeBand, Candidate, Election, Gender, RejectReason, Source, Vote, Voter,
};
use crate::results::{DemographicTally, MinuteTally, Results, StateTally};
use crate::tally::{Tallies, TallyKey};

const SCHEMA: &str = include_str!("sqlite_schema.sql");

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Big batches and a big page cache: the votes index takes random inserts.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA cache_size = -262144;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 16384;",
        )?;
        conn.execute_batch(SCHEMA)?;
        add_source_columns(&conn)?;
        let mut store = SqliteStore { conn };
        store.claim_recorded_ids()?;
        Ok(store)
    }
}

impl SqliteStore {
    /// Opens an existing database for reading only (`results`, `audit`):
    /// never creates the file, never changes the schema or the journal mode,
    /// and works on a file the process may not write. A WAL database needs
    /// its `-shm` index; when that cannot be created beside a read-only file,
    /// the file is read as immutable (nothing else can be writing it then).
    pub fn open_read_only(path: &str) -> Result<SqliteStore, StoreError> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let probe = |uri: &str| -> Result<Connection, StoreError> {
            let conn = Connection::open_with_flags(uri, flags)?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(conn)
        };
        let file = uri_path(path);
        let conn = match probe(&format!("file:{file}?mode=ro")) {
            Ok(conn) => conn,
            Err(first) => probe(&format!("file:{file}?mode=ro&immutable=1")).map_err(|_| first)?,
        };
        Ok(SqliteStore { conn })
    }
}

/// A path as the path part of an SQLite `file:` URI.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Brings a database made before the bus positions were kept up to date
/// (SQLite has no `ADD COLUMN IF NOT EXISTS`).
fn add_source_columns(conn: &Connection) -> Result<(), StoreError> {
    for table in ["votes", "rejected_ballots"] {
        let has: bool = conn.query_row(
            &format!(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = 'src_offset'"
            ),
            [],
            |r| r.get(0),
        )?;
        if !has {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN src_partition INTEGER;
                 ALTER TABLE {table} ADD COLUMN src_offset INTEGER;"
            ))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Version 3: fills `ballot_ids` from the votes and rejections a store
    /// made before it existed (the first of an id wins), once.
    fn claim_recorded_ids(&mut self) -> Result<(), StoreError> {
        let version = |c: &Connection| -> rusqlite::Result<i64> {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
        };
        if version(&self.conn)? >= 3 || self.conn.is_readonly(rusqlite::MAIN_DB)? {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if version(&tx)? < 3 {
            let mut claim = tx.prepare(
                "INSERT INTO ballot_ids (ballot_id, fingerprint) VALUES (?1, ?2)
                 ON CONFLICT (ballot_id) DO NOTHING",
            )?;
            let mut votes = tx.prepare(
                "SELECT ballot_id, election_id, voter_id, candidate_id FROM votes ORDER BY seq",
            )?;
            let mut rows = votes.query([])?;
            while let Some(r) = rows.next()? {
                let print = ids::content_fingerprint(
                    r.get_ref(1)?.as_str()?,
                    r.get_ref(2)?.as_str()?,
                    r.get_ref(3)?.as_str()?,
                );
                claim.execute(params![r.get_ref(0)?.as_str()?, print])?;
            }
            let mut rejected = tx.prepare(
                "SELECT ballot_id, election_id, reason, raw FROM rejected_ballots ORDER BY id",
            )?;
            let mut rows = rejected.query([])?;
            while let Some(r) = rows.next()? {
                let election: Option<String> = r.get(1)?;
                let (reason, raw) = (r.get_ref(2)?.as_str()?, r.get_ref(3)?.as_str()?);
                let print = ids::recorded_fingerprint(election.as_deref(), reason, raw);
                claim.execute(params![r.get_ref(0)?.as_str()?, print])?;
            }
        }
        tx.execute_batch("PRAGMA user_version = 3")?;
        tx.commit()?;
        Ok(())
    }
}

/// The voters table's columns, in [`profile`]'s order.
const PROFILE_COLUMNS: &str = "voter_id, voter_name, date_of_birth, gender, nationality,
    registration_number, address_street, address_city, address_state, address_country,
    address_postcode, email, phone_number, cell_number, picture, registered_age";

/// A voter from [`PROFILE_COLUMNS`] starting at column `at`.
fn profile(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Voter> {
    Ok(Voter {
        voter_id: r.get(at)?,
        voter_name: r.get(at + 1)?,
        date_of_birth: r.get(at + 2)?,
        gender: Gender::parse(&r.get::<_, String>(at + 3)?),
        nationality: r.get(at + 4)?,
        registration_number: r.get(at + 5)?,
        address_street: r.get(at + 6)?,
        address_city: r.get(at + 7)?,
        address_state: r.get(at + 8)?,
        address_country: r.get(at + 9)?,
        address_postcode: r.get(at + 10)?,
        email: r.get(at + 11)?,
        phone_number: r.get(at + 12)?,
        cell_number: r.get(at + 13)?,
        picture: r.get(at + 14)?,
        registered_age: r.get(at + 15)?,
    })
}

fn source_of(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<Source>> {
    Ok(match (r.get(at)?, r.get(at + 1)?) {
        (Some(partition), Some(offset)) => Some(Source { partition, offset }),
        _ => None,
    })
}

impl SqliteStore {
    /// Writes a batch by reference, so a failed attempt leaves it whole for
    /// a retry. `arrival` lists the (sorted) votes in the order they came.
    fn try_record(&mut self, batch: &Batch, arrival: &[usize]) -> Result<BatchOutcome, StoreError> {
        check_batch(batch)?;
        let tx = self.conn.transaction()?;
        let mut counts: HashMap<(&str, &'static str), i64> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        {
            // The id check claims each new id as it goes (in arrival order).
            let mut claim = tx.prepare_cached(
                "INSERT INTO ballot_ids (ballot_id, fingerprint) VALUES (?1, ?2)
                 ON CONFLICT (ballot_id) DO NOTHING",
            )?;
            let mut claimed =
                tx.prepare_cached("SELECT fingerprint FROM ballot_ids WHERE ballot_id = ?1")?;
            outcome.plan = Plan::new(
                &batch.votes,
                arrival,
                &batch.rejections,
                &batch.rejections_after,
                crate::model::now_millis(),
                |id, print| -> Result<Option<Fingerprint>, StoreError> {
                    if claim.execute(params![id, print])? == 1 {
                        return Ok(None);
                    }
                    Ok(Some(claimed.query_row([id], |r| r.get(0))?))
                },
            )?;
            let mut stored_rejection = tx.prepare_cached(
                "SELECT reason, detail, src_partition, src_offset FROM rejected_ballots
                 WHERE ballot_id = ?1",
            )?;
            for id in outcome.plan.stored_ids(&batch.votes, &batch.rejections) {
                let found = stored_rejection
                    .query_row([id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get(1)?, source_of(r, 2)?))
                    })
                    .optional()?;
                if let Some((reason, detail, source)) = found {
                    let reason = RejectReason::parse(&reason).unwrap_or(RejectReason::InvalidField);
                    outcome.stored.insert(
                        id.to_string(),
                        StoredRejection {
                            reason,
                            detail,
                            source,
                        },
                    );
                }
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO votes (election_id, voter_id, candidate_id, voting_time, ballot_id, cast_at,
                    election_no, voter_no, src_partition, src_offset)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (election_no, voter_no) DO NOTHING",
            )?;
            let mut existing = tx.prepare_cached(
                "SELECT ballot_id, seq, src_partition, src_offset FROM votes
                 WHERE election_no = ?1 AND voter_no = ?2",
            )?;
            let mut times = TimeFormat::default();
            for (i, v) in batch.votes.iter().enumerate() {
                if !by_voter(outcome.plan.votes[i], &v.ballot_id, &outcome.stored) {
                    outcome.votes.push(VoteOutcome::ById);
                    continue;
                }
                let inserted = insert.execute(params![
                    &*v.election_id,
                    v.voter_id,
                    &*v.candidate_id,
                    times.format(v.cast_at),
                    v.ballot_id,
                    v.cast_at,
                    v.election_no,
                    v.voter_no,
                    v.source.map(|s| s.partition),
                    v.source.map(|s| s.offset)
                ])?;
                if inserted == 1 {
                    *counts.entry((&v.election_id, "accepted")).or_default() += 1;
                    outcome
                        .votes
                        .push(VoteOutcome::Accepted(tx.last_insert_rowid()));
                    continue;
                }
                let (first, seq, source): (String, i64, Option<Source>) = existing
                    .query_row(params![v.election_no, v.voter_no], |r| {
                        Ok((r.get(0)?, r.get(1)?, source_of(r, 2)?))
                    })?;
                outcome
                    .votes
                    .push(if first == v.ballot_id && same_source(source, v.source) {
                        VoteOutcome::Republish(seq)
                    } else if first == v.ballot_id {
                        VoteOutcome::Replay
                    } else {
                        VoteOutcome::AlreadyVoted(first)
                    });
            }
            outcome.new_rejections = new_rejections(batch, &outcome.plan, &outcome.votes);
            let mut reject = tx.prepare_cached(
                "INSERT INTO rejected_ballots (ballot_id, election_id, voter_id, reason, detail, raw, received_at,
                    src_partition, src_offset)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (ballot_id) DO NOTHING",
            )?;
            for n in &outcome.new_rejections {
                // Its id was claimed by the id check.
                let r = &n.rejection;
                let inserted = reject.execute(params![
                    r.ballot_id,
                    r.election_id,
                    r.voter_id,
                    r.reason.as_str(),
                    r.detail,
                    r.raw,
                    r.received_at,
                    r.source.map(|s| s.partition),
                    r.source.map(|s| s.offset)
                ])? == 1;
                // Only a rejection inserted before this batch can be in the
                // table: the id check saw every other one.
                outcome.rejections.push(if inserted {
                    let election = r.election_id.as_deref().unwrap_or("");
                    *counts.entry((election, r.reason.as_str())).or_default() += 1;
                    RejectionOutcome::New
                } else {
                    RejectionOutcome::Replay
                });
            }
            let mut count = tx.prepare_cached(
                "INSERT INTO ballot_counts (election_id, outcome, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (election_id, outcome) DO UPDATE SET n = n + excluded.n",
            )?;
            for ((election, what), n) in counts {
                count.execute(params![election, what, n])?;
            }
        }
        tx.commit()?;
        Ok(outcome)
    }
}

impl Store for SqliteStore {
    fn put_election(&mut self, e: &Election, candidates: &[Candidate]) -> Result<(), StoreError> {
        check_election(e, candidates)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO elections (election_id, name, opens_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (election_id) DO UPDATE SET name = excluded.name, opens_at = excluded.opens_at",
            params![e.election_id, e.name, e.opens_at],
        )?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO candidates (candidate_id, election_id, candidate_name, party_affiliation,
                    biography, campaign_platform, photo_url) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (election_id, candidate_id) DO UPDATE SET candidate_name = excluded.candidate_name,
                    party_affiliation = excluded.party_affiliation, biography = excluded.biography,
                    campaign_platform = excluded.campaign_platform, photo_url = excluded.photo_url",
            )?;
            for c in candidates {
                stmt.execute(params![
                    c.candidate_id,
                    e.election_id,
                    c.candidate_name,
                    c.party_affiliation,
                    c.biography,
                    c.campaign_platform,
                    c.photo_url
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn put_voters(&mut self, voters: &[Voter]) -> Result<u64, StoreError> {
        voters.iter().try_for_each(check_voter)?;
        let tx = self.conn.transaction()?;
        let mut added = 0u64;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO voters (voter_id, voter_name, date_of_birth, gender, nationality,
                    registration_number, address_street, address_city, address_state, address_country,
                    address_postcode, email, phone_number, cell_number, picture, registered_age)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            for v in voters {
                added += stmt.execute(params![
                    v.voter_id,
                    v.voter_name,
                    v.date_of_birth,
                    v.gender.as_str(),
                    v.nationality,
                    v.registration_number,
                    v.address_street,
                    v.address_city,
                    v.address_state,
                    v.address_country,
                    v.address_postcode,
                    v.email,
                    v.phone_number,
                    v.cell_number,
                    v.picture,
                    v.registered_age
                ])? as u64;
            }
            tx.execute(
                "UPDATE registry_stats SET voters = voters + ?1 WHERE id = 1",
                params![added as i64],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    fn elections(&mut self) -> Result<Vec<ElectionEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT election_id, name, opens_at, election_no FROM elections ORDER BY election_id",
        )?;
        let elections: Vec<(Election, i64)> = stmt
            .query_map([], |r| {
                Ok((
                    Election {
                        election_id: r.get(0)?,
                        name: r.get(1)?,
                        opens_at: r.get(2)?,
                    },
                    r.get(3)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut cstmt = self.conn.prepare(
            "SELECT candidate_id, election_id, candidate_name, party_affiliation, biography,
                campaign_platform, photo_url FROM candidates WHERE election_id = ?1 ORDER BY candidate_id",
        )?;
        let mut out = Vec::with_capacity(elections.len());
        for (e, no) in elections {
            let cands = cstmt
                .query_map([&e.election_id], |r| {
                    Ok(Candidate {
                        candidate_id: r.get(0)?,
                        election_id: r.get(1)?,
                        candidate_name: r.get(2)?,
                        party_affiliation: r.get(3)?,
                        biography: r.get(4)?,
                        campaign_platform: r.get(5)?,
                        photo_url: r.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            out.push(ElectionEntry {
                no,
                election: e,
                candidates: cands,
            });
        }
        Ok(out)
    }

    fn scan_voters(&mut self, f: &mut dyn FnMut(VoterKey<'_>)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT voter_id, address_state, registered_age, gender, voter_no FROM voters ORDER BY voter_no",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let voter_id = r.get_ref(0)?.as_str()?;
            let state = r.get_ref(1)?.as_str()?;
            let age: i64 = r.get(2)?;
            let gender = Gender::parse(r.get_ref(3)?.as_str()?);
            f(VoterKey {
                voter_no: r.get(4)?,
                voter_id,
                state,
                age: age.clamp(0, u32::MAX as i64) as u32,
                gender,
            });
        }
        Ok(())
    }

    fn voter(&mut self, voter_id: &str) -> Result<Option<Voter>, StoreError> {
        let v = self
            .conn
            .query_row(
                &format!("SELECT {PROFILE_COLUMNS} FROM voters WHERE voter_id = ?1"),
                [voter_id],
                |r| profile(r, 0),
            )
            .optional()?;
        Ok(v)
    }

    fn profiles(&mut self, voter_nos: &[i64]) -> Result<Vec<(i64, Voter)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT voter_no, {PROFILE_COLUMNS} FROM voters WHERE voter_no = ?1"
        ))?;
        let mut out = Vec::with_capacity(voter_nos.len());
        for no in voter_nos {
            if let Some(found) = stmt
                .query_row([no], |r| Ok((r.get(0)?, profile(r, 1)?)))
                .optional()?
            {
                out.push(found);
            }
        }
        Ok(out)
    }

    fn load_offsets(&mut self, engine: &str, topic: &str) -> Result<HashMap<i32, i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT partition, next_offset FROM agg_offsets WHERE engine = ?1 AND topic = ?2",
        )?;
        let rows = stmt.query_map([engine, topic], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_tallies(
        &mut self,
        engine: &str,
        deltas: &[(TallyKey, i64)],
        topic: &str,
        moves: &[OffsetMove],
    ) -> Result<(), StoreError> {
        // Immediate: the offset checks and the writes are one atomic step.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for m in moves {
            let found: Option<i64> = tx
                .query_row(
                    "SELECT next_offset FROM agg_offsets WHERE engine = ?1 AND topic = ?2 AND partition = ?3",
                    params![engine, topic, m.partition],
                    |r| r.get(0),
                )
                .optional()?;
            if found != m.from {
                return Err(StoreError::EngineMoved {
                    engine: format!("{engine} on {topic}[{}]", m.partition),
                    expected: m.from.unwrap_or(-1),
                    found: found.unwrap_or(-1),
                });
            }
            tx.execute(
                "INSERT INTO agg_offsets (engine, topic, partition, next_offset) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET next_offset = excluded.next_offset",
                params![engine, topic, m.partition, m.to],
            )?;
        }
        write_tallies(&tx, engine, deltas, true)?;
        tx.commit()?;
        Ok(())
    }

    fn record(&mut self, mut batch: Batch) -> Result<Recorded, (StoreError, Batch)> {
        // In key order the uniqueness index is walked forward instead of at
        // random. Stable, so one voter's ballots keep their arrival order.
        let (positions, arrival) = sort_by_voter(&mut batch);
        match self.try_record(&batch, &arrival) {
            Ok(outcome) => Ok(outcome.apply(batch, &positions)),
            Err(e) => Err((e, unsort(batch, &positions))),
        }
    }

    fn votes_after(&mut self, after: i64, limit: usize) -> Result<Vec<Vote>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT v.seq, v.ballot_id, v.election_id, v.voter_id, v.candidate_id, v.cast_at,
                    r.address_state, r.registered_age, r.gender, v.election_no, v.voter_no
             FROM votes v JOIN voters r ON r.voter_no = v.voter_no
             WHERE v.seq > ?1 ORDER BY v.seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after, limit as i64])?;
        let mut names = Interner::default();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let age: i64 = r.get(7)?;
            out.push(Vote {
                seq: r.get(0)?,
                ballot_id: r.get(1)?,
                election_id: names.get(r.get_ref(2)?.as_str()?),
                voter_id: r.get(3)?,
                candidate_id: names.get(r.get_ref(4)?.as_str()?),
                cast_at: r.get(5)?,
                source: None,
                state: names.get(r.get_ref(6)?.as_str()?),
                age_band: AgeBand::of_age(age.clamp(0, 200) as u32),
                gender: Gender::parse(r.get_ref(8)?.as_str()?),
                election_no: r.get(9)?,
                voter_no: r.get(10)?,
            });
        }
        Ok(out)
    }

    fn load_tallies(&mut self, engine: &str) -> Result<(Tallies, i64), StoreError> {
        let mut t = Tallies::default();
        let mut names = Interner::default();
        let c = &self.conn;
        let mut stmt = c.prepare(
            "SELECT election_id, candidate_id, votes FROM results_candidate WHERE engine = ?1",
        )?;
        let mut rows = stmt.query([engine])?;
        while let Some(r) = rows.next()? {
            let key = TallyKey::Candidate {
                election: names.get(r.get_ref(0)?.as_str()?),
                candidate: names.get(r.get_ref(1)?.as_str()?),
            };
            t.insert(key, r.get(2)?);
        }
        let mut stmt = c.prepare(
            "SELECT election_id, state, candidate_id, votes FROM results_state WHERE engine = ?1",
        )?;
        let mut rows = stmt.query([engine])?;
        while let Some(r) = rows.next()? {
            let key = TallyKey::State {
                election: names.get(r.get_ref(0)?.as_str()?),
                state: names.get(r.get_ref(1)?.as_str()?),
                candidate: names.get(r.get_ref(2)?.as_str()?),
            };
            t.insert(key, r.get(3)?);
        }
        let mut stmt = c.prepare(
            "SELECT election_id, age_band, gender, candidate_id, votes FROM results_demographic WHERE engine = ?1",
        )?;
        let mut rows = stmt.query([engine])?;
        while let Some(r) = rows.next()? {
            let Some(age_band) = AgeBand::parse(r.get_ref(1)?.as_str()?) else {
                continue;
            };
            let key = TallyKey::Demographic {
                election: names.get(r.get_ref(0)?.as_str()?),
                age_band,
                gender: Gender::parse(r.get_ref(2)?.as_str()?),
                candidate: names.get(r.get_ref(3)?.as_str()?),
            };
            t.insert(key, r.get(4)?);
        }
        let mut stmt = c.prepare(
            "SELECT election_id, minute, candidate_id, votes FROM results_minute WHERE engine = ?1",
        )?;
        let mut rows = stmt.query([engine])?;
        while let Some(r) = rows.next()? {
            let key = TallyKey::Minute {
                election: names.get(r.get_ref(0)?.as_str()?),
                minute: r.get(1)?,
                candidate: names.get(r.get_ref(2)?.as_str()?),
            };
            t.insert(key, r.get(3)?);
        }
        let mut stmt = c.prepare(
            "SELECT election_id, late_votes, max_cast_at FROM results_election WHERE engine = ?1",
        )?;
        let mut rows = stmt.query([engine])?;
        while let Some(r) = rows.next()? {
            let election = names.get(r.get_ref(0)?.as_str()?);
            t.insert(
                TallyKey::Late {
                    election: election.clone(),
                },
                r.get(1)?,
            );
            if let Some(max) = r.get::<_, Option<i64>>(2)? {
                t.insert(TallyKey::MaxCastAt { election }, max);
            }
        }
        let position = c
            .query_row(
                "SELECT position FROM agg_progress WHERE engine = ?1",
                [engine],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        Ok((t, position))
    }

    fn save_tallies(
        &mut self,
        engine: &str,
        changed: &[(TallyKey, i64)],
        from: i64,
        position: i64,
    ) -> Result<(), StoreError> {
        // Immediate: the position check and the write are one atomic step.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: i64 = tx
            .query_row(
                "SELECT position FROM agg_progress WHERE engine = ?1",
                [engine],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if found != from {
            return Err(StoreError::EngineMoved {
                engine: engine.to_string(),
                expected: from,
                found,
            });
        }
        write_tallies(&tx, engine, changed, false)?;
        tx.execute(
            "INSERT INTO agg_progress (engine, position) VALUES (?1, ?2)
             ON CONFLICT (engine) DO UPDATE SET position = excluded.position",
            params![engine, position],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn results(&mut self, election_id: &str, engine: &str) -> Result<Results, StoreError> {
        let entry = self
            .elections()?
            .into_iter()
            .find(|e| e.election.election_id == election_id)
            .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))?;
        let mut res = Results::empty(entry.election, &entry.candidates);
        // One read transaction: every figure comes from the same snapshot.
        let tx = self.conn.transaction()?;
        res.registered_voters =
            tx.query_row("SELECT voters FROM registry_stats WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        {
            let mut stmt =
                tx.prepare_cached("SELECT outcome, n FROM ballot_counts WHERE election_id = ?1")?;
            let mut rows = stmt.query([election_id])?;
            while let Some(r) = rows.next()? {
                res.add_ballot_count(r.get(0)?, r.get(1)?);
            }
            let mut stmt = tx.prepare_cached(
                "SELECT candidate_id, votes FROM results_candidate WHERE engine = ?1 AND election_id = ?2",
            )?;
            let totals: HashMap<String, i64> = stmt
                .query_map([engine, election_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for c in &mut res.candidates {
                c.total_votes = totals.get(&c.candidate_id).copied().unwrap_or(0);
            }
            res.counted = totals.values().sum();
            let mut stmt = tx.prepare_cached(
                "SELECT state, candidate_id, votes FROM results_state WHERE engine = ?1 AND election_id = ?2
                 ORDER BY state",
            )?;
            let mut rows = stmt.query([engine, election_id])?;
            while let Some(r) = rows.next()? {
                let state: String = r.get(0)?;
                let votes: i64 = r.get(2)?;
                if res
                    .states
                    .last()
                    .map(|s: &StateTally| s.state != state)
                    .unwrap_or(true)
                {
                    res.states.push(StateTally {
                        state,
                        ..StateTally::default()
                    });
                }
                if let Some(s) = res.states.last_mut() {
                    s.count += votes;
                    s.by_candidate.insert(r.get(1)?, votes);
                }
            }
            let mut stmt = tx.prepare_cached(
                "SELECT age_band, gender, candidate_id, votes FROM results_demographic
                 WHERE engine = ?1 AND election_id = ?2 ORDER BY age_band, gender, candidate_id",
            )?;
            res.demographics = stmt
                .query_map([engine, election_id], |r| {
                    Ok(DemographicTally {
                        age_band: r.get(0)?,
                        gender: r.get(1)?,
                        candidate_id: r.get(2)?,
                        votes: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt = tx.prepare_cached(
                "SELECT minute, candidate_id, votes FROM results_minute
                 WHERE engine = ?1 AND election_id = ?2 ORDER BY minute, candidate_id",
            )?;
            res.timeline = stmt
                .query_map([engine, election_id], |r| {
                    Ok(MinuteTally {
                        minute: format_voting_time(r.get(0)?),
                        candidate_id: r.get(1)?,
                        votes: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            res.late_votes = tx
                .query_row(
                    "SELECT late_votes FROM results_election WHERE engine = ?1 AND election_id = ?2",
                    [engine, election_id],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
        }
        tx.commit()?;
        Ok(res)
    }

    fn recount(&mut self, election_id: &str) -> Result<Tallies, StoreError> {
        let mut t = Tallies::default();
        let election: Arc<str> = Arc::from(election_id);
        let mut names = Interner::default();
        let mut stmt = self.conn.prepare(
            "SELECT v.candidate_id, r.address_state, r.registered_age, r.gender, v.cast_at / 60000, COUNT(*)
             FROM votes v JOIN voters r ON r.voter_no = v.voter_no
             WHERE v.election_id = ?1
             GROUP BY 1, 2, 3, 4, 5",
        )?;
        let mut rows = stmt.query([election_id])?;
        while let Some(r) = rows.next()? {
            let candidate = names.get(r.get_ref(0)?.as_str()?);
            let state = names.get(r.get_ref(1)?.as_str()?);
            let age: i64 = r.get(2)?;
            let gender = Gender::parse(r.get_ref(3)?.as_str()?);
            let minute: i64 = r.get(4)?;
            let n: i64 = r.get(5)?;
            t.add_recounted(
                &election,
                candidate,
                state,
                AgeBand::of_age(age.clamp(0, 200) as u32),
                gender,
                minute * crate::tally::MINUTE_MS,
                n,
            );
        }
        Ok(t)
    }
}

/// Upserts tallies into the results tables; `add` adds them to what is
/// stored (deltas from an engine fed by Kafka; for `max_cast_at` the larger
/// wins) instead of replacing it.
fn write_tallies(
    tx: &rusqlite::Transaction<'_>,
    engine: &str,
    changed: &[(TallyKey, i64)],
    add: bool,
) -> Result<(), StoreError> {
    let sql = |template: &str, col: &str| {
        let set = match (add, col) {
            (false, _) => format!("{col} = excluded.{col}"),
            (true, "max_cast_at") => {
                format!("{col} = MAX(COALESCE({col}, excluded.{col}), excluded.{col})")
            }
            (true, _) => format!("{col} = {col} + excluded.{col}"),
        };
        template.replace("{}", &set)
    };
    for (key, value) in changed {
        match key {
            TallyKey::Candidate { election, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_candidate (engine, election_id, candidate_id, votes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, &**candidate, value])?,
            TallyKey::State { election, state, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_state (engine, election_id, state, candidate_id, votes) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, &**state, &**candidate, value])?,
            TallyKey::Demographic { election, age_band, gender, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_demographic (engine, election_id, age_band, gender, candidate_id, votes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, age_band.as_str(), gender.as_str(), &**candidate, value])?,
            TallyKey::Minute { election, minute, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_minute (engine, election_id, minute, candidate_id, votes) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, minute, &**candidate, value])?,
            TallyKey::Late { election } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_election (engine, election_id, late_votes) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET {}", "late_votes"))?
                .execute(params![engine, &**election, value])?,
            TallyKey::MaxCastAt { election } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_election (engine, election_id, max_cast_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET {}", "max_cast_at"))?
                .execute(params![engine, &**election, value])?,
        };
    }
    Ok(())
}
