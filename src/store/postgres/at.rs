//! Results as of a moment (`store/checkpoint.rs`), read from PostgreSQL.

use postgres::{IsolationLevel, Transaction};

use super::read::age_of;
use super::PgStore;
use crate::model::{Gender, Millis, RejectReason, Rejection};
use crate::results::{At, Results};
use crate::store::checkpoint::{self, Checkpoint, Group, Ledger};
use crate::store::util::Interner;
use crate::store::{find_election, StoreError};

pub(super) fn results_at(
    store: &mut PgStore,
    election_id: &str,
    at: At,
) -> Result<Results, StoreError> {
    let entry = find_election(store, election_id)?;
    let writable = store.writable;
    store.with(|c| {
        // One snapshot: the ledger, the checkpoints and the rejections agree.
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let registered = tx
            .query_one("SELECT voters FROM registry_stats WHERE id = 1", &[])?
            .try_get(0)?;
        let (res, made) = checkpoint::results(&mut Snapshot(&mut tx), entry, registered, at)?;
        tx.commit()?;
        if writable && !made.is_empty() {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare(
                "INSERT INTO tally_checkpoints (election_id, seq, max_cast_at, body)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )?;
            for cp in &made {
                tx.execute(&stmt, &[&election_id, &cp.seq, &cp.max_cast_at, &cp.body])?;
            }
            tx.commit()?;
        }
        Ok(res)
    })
}

struct Snapshot<'a, 'c>(&'a mut Transaction<'c>);

impl Ledger for Snapshot<'_, '_> {
    fn end(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .0
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM votes", &[])?
            .try_get(0)?)
    }

    fn checkpoint(&mut self, election: &str, at: At) -> Result<Option<Checkpoint>, StoreError> {
        let (sql, bound) = match at {
            At::Seq(n) => ("seq <= $2", n),
            At::Time(t) => ("(max_cast_at IS NULL OR max_cast_at <= $2)", t),
        };
        let row = self.0.query_opt(
            &format!(
                "SELECT seq, max_cast_at, body FROM tally_checkpoints
                 WHERE election_id = $1 AND {sql} ORDER BY seq DESC LIMIT 1"
            ),
            &[&election, &bound],
        )?;
        row.map(|r| {
            Ok(Checkpoint {
                seq: r.try_get(0)?,
                max_cast_at: r.try_get(1)?,
                body: r.try_get(2)?,
            })
        })
        .transpose()
    }

    fn first_cast_after(
        &mut self,
        election: &str,
        after: i64,
        t: Millis,
    ) -> Result<Option<i64>, StoreError> {
        let row = self.0.query_opt(
            "SELECT seq FROM votes WHERE seq > $1 AND election_id = $2 AND cast_at > $3
             ORDER BY seq LIMIT 1",
            &[&after, &election, &t],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    fn count(
        &mut self,
        election: &str,
        after: i64,
        until: i64,
        add: &mut dyn FnMut(Group<'_>),
    ) -> Result<Option<Millis>, StoreError> {
        let rows = self.0.query(
            "SELECT v.candidate_id, r.address_state, r.registered_age, r.gender, v.cast_at / 60000,
                    COUNT(*), MAX(v.cast_at)
             FROM votes v JOIN voters r ON r.voter_no = v.voter_no
             WHERE v.seq > $1 AND v.seq <= $2 AND v.election_id = $3
             GROUP BY 1, 2, 3, 4, 5",
            &[&after, &until, &election],
        )?;
        let mut latest = None;
        for r in rows {
            let minute: i64 = r.try_get(4)?;
            add(Group {
                candidate: r.try_get(0)?,
                state: r.try_get(1)?,
                age: age_of(r.try_get(2)?),
                gender: Gender::parse(r.try_get(3)?),
                minute: minute * crate::tally::MINUTE_MS,
                n: r.try_get(5)?,
            });
            latest = latest.max(Some(r.try_get::<_, i64>(6)?));
        }
        Ok(latest)
    }

    fn rejected(
        &mut self,
        election: &str,
        until: Option<Millis>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self.0.query(
            "SELECT reason, COUNT(*) FROM rejected_ballots
             WHERE election_id = $1 AND received_at <= $2 GROUP BY reason",
            &[&election, &until.unwrap_or(Millis::MAX)],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

pub(super) fn rejections_after(
    store: &mut PgStore,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, Rejection)>, StoreError> {
    let client = store.client_column();
    store.with(|c| {
        let rows = c.query(
            &format!(
                "SELECT id, ballot_id, election_id, voter_id, reason, detail, raw, received_at,
                    {client}
                 FROM rejected_ballots WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            &[&after, &(limit as i64)],
        )?;
        let mut clients = Interner::default();
        rows.iter()
            .map(|r| {
                let reason: String = r.try_get(4)?;
                let rejection = Rejection {
                    ballot_id: r.try_get(1)?,
                    election_id: r.try_get(2)?,
                    voter_id: r.try_get(3)?,
                    reason: RejectReason::parse(&reason)
                        .ok_or(StoreError::UnknownReason(reason))?,
                    detail: r.try_get(5)?,
                    raw: r.try_get(6)?,
                    received_at: r.try_get(7)?,
                    source: None,
                    client: r.try_get::<_, Option<&str>>(8)?.map(|c| clients.get(c)),
                };
                Ok((r.try_get(0)?, rejection))
            })
            .collect()
    })
}
