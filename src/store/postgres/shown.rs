//! The record of shown results (`store/shown.rs`), in PostgreSQL. The same
//! contract as the SQLite store's.

use postgres::error::SqlState;

use super::PgStore;
use crate::model::Millis;
use crate::shown::Shown;
use crate::store::{shown, StoreError};

pub(super) fn record_shown(store: &mut PgStore, s: &Shown) -> Result<bool, StoreError> {
    if !store.writable {
        return Err(StoreError::ReadOnly);
    }
    let (body, digest) = shown::encode(s)?;
    let inserted = store.with(|c| {
        Ok(c.execute(
            "INSERT INTO shown_results (election_id, digest, shown_at, seq, counted, body)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &s.election_id,
                &digest,
                &s.shown_at,
                &s.seq,
                &s.figures.counted,
                &body,
            ],
        )?)
    });
    match inserted {
        Ok(n) => Ok(n == 1),
        // A hot standby takes no writes.
        Err(StoreError::Postgres(e)) if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => {
            Err(StoreError::ReadOnly)
        }
        Err(e) => Err(e),
    }
}

pub(super) fn shown_results(
    store: &mut PgStore,
    election_id: &str,
    until: Millis,
    limit: usize,
) -> Result<Vec<Shown>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = store.with(|c| {
        let rows = c.query(
            "SELECT shown_at, seq, body FROM shown_results
             WHERE election_id = $1 AND shown_at <= $2
             ORDER BY shown_at DESC, counted DESC LIMIT $3",
            &[&election_id, &until, &limit],
        );
        match rows {
            Ok(rows) => Ok(rows),
            // A database made before shown results were kept, read by a
            // role that may not change its schema: nothing was kept.
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    })?;
    let mut out = rows
        .iter()
        .map(|r| {
            let body: String = r.try_get(2)?;
            shown::decode(election_id.to_string(), r.try_get(0)?, r.try_get(1)?, &body)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.reverse();
    Ok(out)
}
