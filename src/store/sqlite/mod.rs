//! The embedded store: one SQLite file in WAL mode, `synchronous = FULL`, so
//! a committed batch survives a crash of the process (and of the machine).
//!
//! Split as the PostgreSQL store is: this file the connection, the schema
//! and the registry; `write.rs` the batch and tally writes; `read.rs` the
//! rest. The SQL is the same tables in another dialect, so the two stores
//! repeat each other's shape on purpose.

mod alerts;
mod at;
mod desk;
mod gate;
mod read;
mod shown;
mod write;

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::ids;
use super::{
    check_election, sort_by_voter, unsort, Batch, ElectionEntry, OffsetMove, Recorded, Store,
    StoreError, VoterKey,
};
use super::{AlertResume, DeskLog, DeskLook, LedgerEntry, LedgerPosition, Seal};
use crate::model::{Candidate, Election, Millis, Vote, Voter};
use crate::results::{At, Results};
use crate::tally::{Tallies, TallyKey};

const SCHEMA: &str = include_str!("../sqlite_schema.sql");
/// A write batch's time: an aggregator's save waits for up to one, so this
/// bounds freshness; longer batches would add little speed.
const BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(100);

pub struct SqliteStore {
    conn: Connection,
    /// False when opened read-only: queries then keep no checkpoints.
    writable: bool,
    /// Whether votes and rejections have a `client` column: a database
    /// made before clients were kept, opened read-only, has none.
    clients: bool,
    /// This process's queue for writing the file (none when read-only).
    gate: Option<gate::Gate>,
    /// Whether the page cache was made big for recording batches.
    record_cache: bool,
}

impl SqliteStore {
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Checkpoints run beside the writers (gate.rs), not in them. The
        // page cache stays SQLite's small default until the connection
        // records a batch (see `record_cache`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.execute_batch(SCHEMA)?;
        add_source_columns(&conn)?;
        let mut store = SqliteStore {
            conn,
            writable: true,
            clients: true,
            gate: Some(gate::of(path)),
            record_cache: false,
        };
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
        let clients = has_column(&conn, "votes", "client")?
            && has_column(&conn, "rejected_ballots", "client")?;
        Ok(SqliteStore {
            conn,
            writable: false,
            clients,
            gate: None,
            record_cache: false,
        })
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

/// Brings a database made before the bus positions (or the poll schedule,
/// or the clients) were kept up to date (SQLite has no `ADD COLUMN IF NOT
/// EXISTS`).
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
        if !has_column(conn, table, "client")? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN client TEXT"))?;
        }
    }
    let has_polls: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('elections') WHERE name = 'polls_step_ms'",
        [],
        |r| r.get(0),
    )?;
    if !has_polls {
        conn.execute_batch(
            "ALTER TABLE elections ADD COLUMN polls_first_close INTEGER;
             ALTER TABLE elections ADD COLUMN polls_step_ms INTEGER;",
        )?;
    }
    Ok(())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get(0),
    )?)
}

impl SqliteStore {
    /// The column `client` is read from: NULL where the table has none.
    fn client_column(&self) -> &'static str {
        if self.clients {
            "client"
        } else {
            "NULL"
        }
    }
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
        let _turn = self.write_turn();
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

impl SqliteStore {
    /// Waits for this process's turn to write (see `gate.rs`); every write
    /// transaction takes one first and holds it until it has committed or
    /// rolled back.
    fn write_turn(&self) -> Option<gate::Turn> {
        self.gate.as_ref().map(|g| g.lock_arc())
    }

    /// A big page cache for the connection that records batches: the votes
    /// and ids indexes take inserts all over, and a batch should find their
    /// pages in memory. Every other connection (readers, the aggregator's
    /// small saves) keeps SQLite's default, so a server's memory does not
    /// grow by 256 MB a connection as the night goes on.
    fn use_record_cache(&mut self) -> Result<(), StoreError> {
        if !self.record_cache {
            self.conn.execute_batch("PRAGMA cache_size = -262144")?;
            self.record_cache = true;
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn put_election(&mut self, e: &Election, candidates: &[Candidate]) -> Result<(), StoreError> {
        check_election(e, candidates)?;
        let _turn = self.write_turn();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO elections (election_id, name, opens_at, polls_first_close, polls_step_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (election_id) DO UPDATE SET name = excluded.name, opens_at = excluded.opens_at,
                polls_first_close = excluded.polls_first_close, polls_step_ms = excluded.polls_step_ms",
            params![
                e.election_id,
                e.name,
                e.opens_at,
                e.polls.map(|p| p.first_close),
                e.polls.map(|p| p.step_ms)
            ],
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
        write::put_voters(self, voters)
    }

    fn elections(&mut self) -> Result<Vec<ElectionEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT election_id, name, opens_at, election_no, polls_first_close, polls_step_ms
             FROM elections ORDER BY election_id",
        )?;
        let elections: Vec<(Election, i64)> = stmt
            .query_map([], |r| {
                Ok((
                    Election {
                        election_id: r.get(0)?,
                        name: r.get(1)?,
                        opens_at: r.get(2)?,
                        polls: super::util::poll_close(r.get(4)?, r.get(5)?),
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
        // The PostgreSQL store maps the same row to a Candidate in its own
        // client's row type: a deliberate pair, one per dialect.
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
        read::scan_voters(self, f)
    }

    fn voter(&mut self, voter_id: &str) -> Result<Option<Voter>, StoreError> {
        let v = self
            .conn
            .query_row(
                &format!(
                    "SELECT {} FROM voters WHERE voter_id = ?1",
                    super::util::voter_columns()
                ),
                [voter_id],
                |r| read::profile(r, 0),
            )
            .optional()?;
        Ok(v)
    }

    fn profiles(&mut self, voter_nos: &[i64]) -> Result<Vec<(i64, Voter)>, StoreError> {
        read::profiles(self, voter_nos)
    }

    fn load_offsets(&mut self, engine: &str, topic: &str) -> Result<HashMap<i32, i64>, StoreError> {
        read::load_offsets(self, engine, topic)
    }

    fn add_tallies(
        &mut self,
        engine: &str,
        deltas: &[(TallyKey, i64)],
        topic: &str,
        moves: &[OffsetMove],
    ) -> Result<(), StoreError> {
        write::add_tallies(self, engine, deltas, topic, moves)
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
        read::votes_after(self, after, limit)
    }

    fn load_tallies(&mut self, engine: &str) -> Result<(Tallies, i64), StoreError> {
        read::load_tallies(self, engine)
    }

    fn batch_time(&self) -> Option<std::time::Duration> {
        Some(BATCH_TIME)
    }

    fn save_tallies(
        &mut self,
        engine: &str,
        changed: &[(TallyKey, i64)],
        from: i64,
        position: i64,
    ) -> Result<(), StoreError> {
        write::save_tallies(self, engine, changed, from, position)
    }

    fn results(&mut self, election_id: &str, engine: &str) -> Result<Results, StoreError> {
        read::results(self, election_id, engine)
    }

    fn ledger_after(&mut self, after: i64, limit: usize) -> Result<Vec<LedgerEntry>, StoreError> {
        read::ledger_after(self, after, limit)
    }

    fn rejections_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, crate::model::Rejection)>, StoreError> {
        at::rejections_after(self, after, limit)
    }

    fn results_at(&mut self, election_id: &str, at: At) -> Result<Results, StoreError> {
        at::results_at(self, election_id, at)
    }

    fn recount(&mut self, election_id: &str) -> Result<Tallies, StoreError> {
        read::recount(self, election_id)
    }

    fn seal_state(
        &mut self,
        election_id: &str,
        state: &str,
        at: Millis,
    ) -> Result<Seal, StoreError> {
        desk::seal_state(self, election_id, state, at)
    }

    fn desk_log(&mut self, election_id: &str) -> Result<DeskLog, StoreError> {
        desk::desk_log(self, election_id)
    }

    fn append_desk(
        &mut self,
        election_id: &str,
        next: i64,
        events: &[String],
    ) -> Result<(), StoreError> {
        desk::append_desk(self, election_id, next, events)
    }

    fn alert_events(&mut self, election_id: &str, from: i64) -> Result<Vec<String>, StoreError> {
        alerts::alert_events(self, election_id, from)
    }

    fn alert_resume(&mut self, election_id: &str) -> Result<Option<AlertResume>, StoreError> {
        alerts::alert_resume(self, election_id)
    }

    fn append_alerts(
        &mut self,
        election_id: &str,
        next: i64,
        events: &[String],
        from: LedgerPosition,
        to: &AlertResume,
    ) -> Result<(), StoreError> {
        alerts::append_alerts(self, election_id, next, events, from, to)
    }

    fn record_look(
        &mut self,
        election_id: &str,
        look: &DeskLook,
        events: &[String],
    ) -> Result<(), StoreError> {
        desk::record_look(self, election_id, look, events)
    }

    fn desk_looks(&mut self, election_id: &str) -> Result<Vec<DeskLook>, StoreError> {
        desk::desk_looks(self, election_id)
    }

    fn record_shown(&mut self, s: &crate::shown::Shown) -> Result<bool, StoreError> {
        shown::record_shown(self, s)
    }

    fn shown_results(
        &mut self,
        election_id: &str,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<crate::shown::Shown>, StoreError> {
        shown::shown_results(self, election_id, until, limit)
    }
}
