//! Results as of a moment (`store/checkpoint.rs`), read from SQLite.

use rusqlite::{params, OptionalExtension, Transaction};

use super::SqliteStore;
use crate::model::{Gender, Millis, RejectReason, Rejection};
use crate::results::{At, Results};
use crate::store::checkpoint::{self, Checkpoint, Group, Ledger};
use crate::store::util::Interner;
use crate::store::{find_election, StoreError};

pub(super) fn results_at(
    store: &mut SqliteStore,
    election_id: &str,
    at: At,
) -> Result<Results, StoreError> {
    let entry = find_election(store, election_id)?;
    // One read transaction: the ledger, the checkpoints and the rejections
    // from the same snapshot.
    let tx = store.conn.transaction()?;
    let registered = tx.query_row("SELECT voters FROM registry_stats WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let (res, made) = checkpoint::results(&mut Snapshot(&tx), entry, registered, at)?;
    tx.commit()?;
    if store.writable && !made.is_empty() {
        // Apart from the read: a read transaction that turns into a write
        // fails at once if a batch committed meanwhile.
        let _turn = store.write_turn();
        let tx = store.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO tally_checkpoints (election_id, seq, max_cast_at, body)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?;
            for cp in &made {
                stmt.execute(params![election_id, cp.seq, cp.max_cast_at, cp.body])?;
            }
        }
        tx.commit()?;
    }
    Ok(res)
}

struct Snapshot<'a, 'c>(&'a Transaction<'c>);

impl Ledger for Snapshot<'_, '_> {
    fn end(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .0
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM votes", [], |r| r.get(0))?)
    }

    fn checkpoint(&mut self, election: &str, at: At) -> Result<Option<Checkpoint>, StoreError> {
        let (sql, bound) = match at {
            At::Seq(n) => ("seq <= ?2", n),
            At::Time(t) => ("(max_cast_at IS NULL OR max_cast_at <= ?2)", t),
        };
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT seq, max_cast_at, body FROM tally_checkpoints
             WHERE election_id = ?1 AND {sql} ORDER BY seq DESC LIMIT 1"
        ))?;
        Ok(stmt
            .query_row(params![election, bound], |r| {
                Ok(Checkpoint {
                    seq: r.get(0)?,
                    max_cast_at: r.get(1)?,
                    body: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn first_cast_after(
        &mut self,
        election: &str,
        after: i64,
        t: Millis,
    ) -> Result<Option<i64>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT seq FROM votes WHERE seq > ?1 AND election_id = ?2 AND cast_at > ?3
             ORDER BY seq LIMIT 1",
        )?;
        Ok(stmt
            .query_row(params![after, election, t], |r| r.get(0))
            .optional()?)
    }

    fn count(
        &mut self,
        election: &str,
        after: i64,
        until: i64,
        add: &mut dyn FnMut(Group<'_>),
    ) -> Result<Option<Millis>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT v.candidate_id, r.address_state, r.registered_age, r.gender, v.cast_at / 60000,
                    COUNT(*), MAX(v.cast_at)
             FROM votes v JOIN voters r ON r.voter_no = v.voter_no
             WHERE v.seq > ?1 AND v.seq <= ?2 AND v.election_id = ?3
             GROUP BY 1, 2, 3, 4, 5",
        )?;
        let mut rows = stmt.query(params![after, until, election])?;
        let mut latest = None;
        while let Some(r) = rows.next()? {
            let age: i64 = r.get(2)?;
            let minute: i64 = r.get(4)?;
            add(Group {
                candidate: r.get_ref(0)?.as_str()?,
                state: r.get_ref(1)?.as_str()?,
                age: age.clamp(0, 200) as u32,
                gender: Gender::parse(r.get_ref(3)?.as_str()?),
                minute: minute * crate::tally::MINUTE_MS,
                n: r.get(5)?,
            });
            latest = latest.max(Some(r.get::<_, i64>(6)?));
        }
        Ok(latest)
    }

    fn rejected(
        &mut self,
        election: &str,
        until: Option<Millis>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT reason, COUNT(*) FROM rejected_ballots
             WHERE election_id = ?1 AND received_at <= ?2 GROUP BY reason",
        )?;
        let rows = stmt.query_map(params![election, until.unwrap_or(Millis::MAX)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

pub(super) fn rejections_after(
    store: &mut SqliteStore,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, Rejection)>, StoreError> {
    let mut stmt = store.conn.prepare_cached(&format!(
        "SELECT id, ballot_id, election_id, voter_id, reason, detail, raw, received_at, {}
         FROM rejected_ballots WHERE id > ?1 ORDER BY id LIMIT ?2",
        store.client_column()
    ))?;
    let mut rows = stmt.query(params![after, limit as i64])?;
    let mut clients = Interner::default();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let reason: String = r.get(4)?;
        let rejection = Rejection {
            ballot_id: r.get(1)?,
            election_id: r.get(2)?,
            voter_id: r.get(3)?,
            reason: RejectReason::parse(&reason).ok_or(StoreError::UnknownReason(reason))?,
            detail: r.get(5)?,
            raw: r.get(6)?,
            received_at: r.get(7)?,
            source: None,
            client: r.get_ref(8)?.as_str_or_null()?.map(|c| clients.get(c)),
        };
        out.push((r.get(0)?, rejection));
    }
    Ok(out)
}
