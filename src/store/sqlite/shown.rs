//! The record of shown results (`store/shown.rs`), in SQLite.

use rusqlite::params;

use super::SqliteStore;
use crate::model::Millis;
use crate::shown::Shown;
use crate::store::{shown, StoreError};

pub(super) fn record_shown(store: &mut SqliteStore, s: &Shown) -> Result<bool, StoreError> {
    if !store.writable {
        return Err(StoreError::ReadOnly);
    }
    let (body, digest) = shown::encode(s)?;
    let _turn = store.write_turn();
    let mut stmt = store.conn.prepare_cached(
        "INSERT INTO shown_results (election_id, digest, shown_at, seq, counted, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    )?;
    let n = stmt.execute(params![
        s.election_id,
        digest,
        s.shown_at,
        s.seq,
        s.figures.counted,
        body
    ])?;
    Ok(n == 1)
}

pub(super) fn shown_results(
    store: &mut SqliteStore,
    election_id: &str,
    until: Millis,
    limit: usize,
) -> Result<Vec<Shown>, StoreError> {
    // A database made before shown results were kept, opened read-only,
    // has no such table: nothing was kept.
    let kept: bool = store.conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'shown_results'",
        [],
        |r| r.get(0),
    )?;
    if !kept {
        return Ok(Vec::new());
    }
    let mut stmt = store.conn.prepare_cached(
        "SELECT shown_at, seq, body FROM shown_results
         WHERE election_id = ?1 AND shown_at <= ?2
         ORDER BY shown_at DESC, counted DESC LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![election_id, until, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let body: String = r.get(2)?;
        out.push(shown::decode(
            election_id.to_string(),
            r.get(0)?,
            r.get(1)?,
            &body,
        )?);
    }
    out.reverse();
    Ok(out)
}
