//! The PostgreSQL store: the same tables and guarantees as the SQLite one,
//! for the distributed shape (several processes, one database).
//!
//! Sync `postgres` client: the stages are OS threads that call the store
//! synchronously. One connection per store; any failed call drops it and the
//! next call reconnects, so a database restart costs the callers' backoff and
//! retry (process::record_with_retry, the engine's save loop), never data:
//! every write is one transaction and idempotent when repeated (a commit
//! whose acknowledgement was lost is recognised as a replay on retry).

mod alerts;
mod at;
mod desk;
mod ids;
mod read;
mod shown;
mod tallies;
mod voted;
mod write;

pub use write::VOTE_COPY_TYPES;

use std::str::FromStr;
use std::time::Duration;

use postgres::config::TargetSessionAttrs;
use postgres::{Client, Config, NoTls};

use super::{
    check_election, sort_by_voter, unsort, Batch, ElectionEntry, Recorded, Store, StoreError,
    VoterKey,
};
use super::{AlertResume, DeskLog, DeskLook, LedgerEntry, LedgerPosition, Seal};
use crate::model::{Candidate, Election, Millis, Voter};
use crate::results::{At, Results};
use crate::tally::{Tallies, TallyKey};

const SCHEMA: &str = include_str!("../postgres_schema.sql");

/// Advisory lock keys (any 64-bit constants, distinct from each other).
/// Migrations: so concurrent opens of a fresh database do not race.
const MIGRATE_LOCK: i64 = 0x766f_7465_0000_0001;
/// Vote recording: see write.rs, why writers of `votes` take turns.
const RECORD_LOCK: i64 = 0x766f_7465_0000_0002;

pub struct PgStore {
    config: Config,
    client: Option<Client>,
    /// False when opened read-only: queries then keep no checkpoints.
    writable: bool,
    /// Whether votes and rejections have a `client` column: a database
    /// made before clients were kept, opened read-only, has none.
    clients: bool,
    /// The voters that may have voted, for the batches this handle records.
    voted: voted::Voted,
}

impl PgStore {
    /// Connects and brings the schema up to date.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config = Config::from_str(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("votestream");
        }
        let mut store = PgStore {
            config,
            client: None,
            writable: true,
            clients: true,
            voted: voted::Voted::default(),
        };
        store.with(|c| {
            // One transaction: the lock is held until the schema is committed.
            c.batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({MIGRATE_LOCK}); {SCHEMA} COMMIT;"
            ))?;
            // Version 3 fills `ballot_ids` from what is already recorded,
            // with no batch being recorded meanwhile.
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RECORD_LOCK])?;
            if tx
                .query_opt("SELECT 1 FROM schema_version WHERE version = 3", &[])?
                .is_none()
            {
                ids::claim_recorded_ids(&mut tx)?;
                tx.execute("INSERT INTO schema_version (version) VALUES (3)", &[])?;
            }
            tx.commit()?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Connects for reading only (`results`, `audit`): no schema change, and
    /// every session is `default_transaction_read_only`, so a read-only role
    /// or a hot standby serves it and nothing can be written by mistake.
    pub fn open_read_only(url: &str) -> Result<PgStore, StoreError> {
        let mut store = PgStore {
            config: read_only_config(url)?,
            client: None,
            writable: false,
            clients: false,
            voted: voted::Voted::default(),
        };
        store.clients = store.with(|c| {
            let row = c.query_one(
                "SELECT COUNT(*) = 2 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND column_name = 'client'
                   AND table_name IN ('votes', 'rejected_ballots')",
                &[],
            )?;
            Ok(row.try_get(0)?)
        })?;
        Ok(store)
    }

    /// The column `client` is read from: NULL where the table has none.
    fn client_column(&self) -> &'static str {
        if self.clients {
            "client"
        } else {
            "NULL"
        }
    }

    /// Runs `f` on a live connection, (re)connecting first if needed. On any
    /// error the connection is dropped: after a server restart or a broken
    /// socket it is unusable, and after a failed statement a fresh session is
    /// the simplest known state. Callers retry with backoff.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let client = match &mut self.client {
            Some(c) if !c.is_closed() => c,
            slot => {
                tracing::debug!("connecting to PostgreSQL");
                slot.insert(self.config.connect(NoTls)?)
            }
        };
        let out = f(client);
        if out.is_err() {
            self.client = None;
        }
        out
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The sync client blocks on its own runtime to say goodbye, which
        // panics on a tokio worker thread (the HTTP router's state is dropped
        // there at shutdown). Off a runtime, close in place; on one, elsewhere.
        if let Some(client) = self.client.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(client));
            } else {
                drop(client);
            }
        }
    }
}

impl Store for PgStore {
    fn put_election(&mut self, e: &Election, candidates: &[Candidate]) -> Result<(), StoreError> {
        check_election(e, candidates)?;
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO elections (election_id, name, opens_at, polls_first_close, polls_step_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (election_id) DO UPDATE SET name = excluded.name, opens_at = excluded.opens_at,
                    polls_first_close = excluded.polls_first_close, polls_step_ms = excluded.polls_step_ms",
                &[
                    &e.election_id,
                    &e.name,
                    &e.opens_at,
                    &e.polls.map(|p| p.first_close),
                    &e.polls.map(|p| p.step_ms),
                ],
            )?;
            let stmt = tx.prepare(
                "INSERT INTO candidates (candidate_id, election_id, candidate_name, party_affiliation,
                    biography, campaign_platform, photo_url) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (election_id, candidate_id) DO UPDATE SET candidate_name = excluded.candidate_name,
                    party_affiliation = excluded.party_affiliation, biography = excluded.biography,
                    campaign_platform = excluded.campaign_platform, photo_url = excluded.photo_url",
            )?;
            for cand in candidates {
                tx.execute(
                    &stmt,
                    &[
                        &cand.candidate_id,
                        &e.election_id,
                        &cand.candidate_name,
                        &cand.party_affiliation,
                        &cand.biography,
                        &cand.campaign_platform,
                        &cand.photo_url,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn put_voters(&mut self, voters: &[Voter]) -> Result<u64, StoreError> {
        write::put_voters(self, voters)
    }

    fn elections(&mut self) -> Result<Vec<ElectionEntry>, StoreError> {
        self.with(|c| {
            // COLLATE "C": the same order as SQLite's, whatever the database's locale.
            let rows = c.query(
                "SELECT election_id, name, opens_at, election_no, polls_first_close, polls_step_ms
                 FROM elections ORDER BY election_id COLLATE \"C\"",
                &[],
            )?;
            let cands = c.query(
                "SELECT candidate_id, election_id, candidate_name, party_affiliation, biography,
                    campaign_platform, photo_url FROM candidates
                 ORDER BY election_id COLLATE \"C\", candidate_id COLLATE \"C\"",
                &[],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let election = Election {
                    election_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    opens_at: r.try_get(2)?,
                    polls: super::util::poll_close(r.try_get(4)?, r.try_get(5)?),
                };
                // The same row→Candidate mapping as the SQLite store's, in
                // this client's row type: a deliberate pair, one per dialect.
                let mut candidates = Vec::new();
                for cr in &cands {
                    if cr.try_get::<_, &str>(1)? == election.election_id {
                        candidates.push(Candidate {
                            candidate_id: cr.try_get(0)?,
                            election_id: cr.try_get(1)?,
                            candidate_name: cr.try_get(2)?,
                            party_affiliation: cr.try_get(3)?,
                            biography: cr.try_get(4)?,
                            campaign_platform: cr.try_get(5)?,
                            photo_url: cr.try_get(6)?,
                        });
                    }
                }
                out.push(ElectionEntry {
                    no: r.try_get(3)?,
                    election,
                    candidates,
                });
            }
            Ok(out)
        })
    }

    fn scan_voters(&mut self, f: &mut dyn FnMut(VoterKey<'_>)) -> Result<(), StoreError> {
        read::scan_voters(self, f)
    }

    fn voter(&mut self, voter_id: &str) -> Result<Option<Voter>, StoreError> {
        self.with(|c| {
            let r = c.query_opt(
                &format!(
                    "SELECT {} FROM voters WHERE voter_id = $1",
                    super::util::voter_columns()
                ),
                &[&voter_id],
            )?;
            Ok(r.map(|r| read::profile(&r, 0)).transpose()?)
        })
    }

    fn profiles(&mut self, voter_nos: &[i64]) -> Result<Vec<(i64, Voter)>, StoreError> {
        read::profiles(self, voter_nos)
    }

    fn load_offsets(
        &mut self,
        engine: &str,
        topic: &str,
    ) -> Result<std::collections::HashMap<i32, i64>, StoreError> {
        read::load_offsets(self, engine, topic)
    }

    fn add_tallies(
        &mut self,
        engine: &str,
        deltas: &[(TallyKey, i64)],
        topic: &str,
        moves: &[crate::store::OffsetMove],
    ) -> Result<(), StoreError> {
        tallies::add_tallies(self, engine, deltas, topic, moves)
    }

    fn record(&mut self, mut batch: Batch) -> Result<Recorded, (StoreError, Batch)> {
        // Key order walks the uniqueness index forward. Stable, so one
        // voter's ballots keep their arrival order (the first one wins).
        let (positions, arrival) = sort_by_voter(&mut batch);
        match write::try_record(self, &batch, &arrival) {
            Ok(outcome) => Ok(outcome.apply(batch, &positions)),
            Err(e) => Err((e, unsort(batch, &positions))),
        }
    }

    fn votes_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<crate::model::Vote>, StoreError> {
        read::votes_after(self, after, limit)
    }

    fn load_tallies(&mut self, engine: &str) -> Result<(Tallies, i64), StoreError> {
        read::load_tallies(self, engine)
    }

    fn save_tallies(
        &mut self,
        engine: &str,
        changed: &[(TallyKey, i64)],
        from: i64,
        position: i64,
    ) -> Result<(), StoreError> {
        tallies::save_tallies(self, engine, changed, from, position)
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

/// The client settings of a read-only store. Its sessions are read-only, so
/// every server looks read-only to them: a `target_session_attrs=read-write`
/// (a multi-host URL that picks the primary) would refuse them all, and any
/// server of the list, a hot standby too, serves reads.
fn read_only_config(url: &str) -> Result<Config, StoreError> {
    let mut config = Config::from_str(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("votestream (read-only)");
    }
    let options = match config.get_options() {
        Some(o) => format!("{o} -c default_transaction_read_only=on"),
        None => "-c default_transaction_read_only=on".to_string(),
    };
    config.options(&options);
    if config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite {
        config.target_session_attrs(TargetSessionAttrs::Any);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_store_takes_any_server_of_a_multi_host_url() {
        let url =
            "postgres://postgres@pg-1:5432,pg-2:5433/votestream?target_session_attrs=read-write";
        let writer = Config::from_str(url).unwrap();
        assert_eq!(writer.get_hosts().len(), 2);
        assert_eq!(writer.get_ports(), &[5432, 5433]);
        assert_eq!(
            writer.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        let reader = read_only_config(url).unwrap();
        assert_eq!(reader.get_hosts().len(), 2);
        assert_eq!(reader.get_target_session_attrs(), TargetSessionAttrs::Any);
        assert!(reader
            .get_options()
            .unwrap()
            .contains("default_transaction_read_only=on"));
    }
}
