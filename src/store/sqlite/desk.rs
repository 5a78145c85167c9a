//! The race desk's tables: the seals that make a state's count final, the
//! desk's events, each recorded once, and the looks that made them.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::model::Millis;
use crate::store::{DeskLog, DeskLook, Seal, StoreError};

fn election_no(tx: &rusqlite::Transaction<'_>, election_id: &str) -> Result<i64, StoreError> {
    tx.query_row(
        "SELECT election_no FROM elections WHERE election_id = ?1",
        [election_id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))
}

pub(super) fn seal_state(
    store: &mut SqliteStore,
    election_id: &str,
    state: &str,
    at: Millis,
) -> Result<Seal, StoreError> {
    // SQLite has one writer: once this transaction holds the write lock no
    // batch is being recorded, and every later one sees the seal.
    let _turn = store.write_turn();
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let no = election_no(&tx, election_id)?;
    let sealed: Option<(Millis, i64)> = tx
        .query_row(
            "SELECT sealed_at, final_votes FROM poll_seals WHERE election_no = ?1 AND state = ?2",
            params![no, state],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (sealed_at, final_votes) = match sealed {
        Some(found) => found,
        None => {
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM votes v JOIN voters r ON r.voter_no = v.voter_no
                 WHERE v.election_no = ?1 AND r.address_state = ?2",
                params![no, state],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO poll_seals (election_no, state, sealed_at, final_votes)
                 VALUES (?1, ?2, ?3, ?4)",
                params![no, state, at, n],
            )?;
            (at, n)
        }
    };
    tx.commit()?;
    Ok(Seal {
        state: state.to_string(),
        sealed_at,
        final_votes: final_votes as u64,
    })
}

pub(super) fn desk_log(store: &mut SqliteStore, election_id: &str) -> Result<DeskLog, StoreError> {
    let tx = store.conn.transaction()?;
    let no = election_no(&tx, election_id)?;
    let seals = {
        let mut stmt = tx.prepare_cached(
            "SELECT state, sealed_at, final_votes FROM poll_seals WHERE election_no = ?1
             ORDER BY sealed_at, state",
        )?;
        let rows = stmt.query_map([no], |r| {
            Ok(Seal {
                state: r.get(0)?,
                sealed_at: r.get(1)?,
                final_votes: r.get::<_, i64>(2)? as u64,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let events = {
        let mut stmt = tx.prepare_cached(
            "SELECT body FROM desk_events WHERE election_id = ?1 ORDER BY event_no",
        )?;
        let rows = stmt.query_map([election_id], |r| r.get(0))?;
        rows.collect::<Result<Vec<String>, _>>()?
    };
    tx.commit()?;
    Ok(DeskLog { seals, events })
}

pub(super) fn append_desk(
    store: &mut SqliteStore,
    election_id: &str,
    next: i64,
    events: &[String],
) -> Result<(), StoreError> {
    let _turn = store.write_turn();
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    append_events(&tx, election_id, next, events)?;
    tx.commit()?;
    Ok(())
}

/// Appends events numbered from `next`, if `next` are recorded.
fn append_events(
    tx: &rusqlite::Transaction<'_>,
    election_id: &str,
    next: i64,
    events: &[String],
) -> Result<(), StoreError> {
    let found: i64 = tx.query_row(
        "SELECT COUNT(*) FROM desk_events WHERE election_id = ?1",
        [election_id],
        |r| r.get(0),
    )?;
    if found != next {
        return Err(StoreError::EngineMoved {
            engine: format!("race desk of {election_id}"),
            expected: next,
            found,
        });
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO desk_events (election_id, event_no, body) VALUES (?1, ?2, ?3)",
    )?;
    for (i, body) in events.iter().enumerate() {
        insert.execute(params![election_id, next + i as i64, body])?;
    }
    Ok(())
}

pub(super) fn record_look(
    store: &mut SqliteStore,
    election_id: &str,
    look: &DeskLook,
    events: &[String],
) -> Result<(), StoreError> {
    let _turn = store.write_turn();
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    append_events(&tx, election_id, look.first_event, events)?;
    tx.execute(
        "INSERT INTO desk_looks (election_id, look_no, at, counted, accepted, seals, first_event, events)
         SELECT ?1, COUNT(*), ?2, ?3, ?4, ?5, ?6, ?7 FROM desk_looks WHERE election_id = ?1",
        params![
            election_id,
            look.at,
            look.counted,
            look.accepted,
            look.seals,
            look.first_event,
            events.len() as i64
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn desk_looks(
    store: &mut SqliteStore,
    election_id: &str,
) -> Result<Vec<DeskLook>, StoreError> {
    // A store written before looks were recorded, opened read-only, has no
    // such table: it has no looks either.
    let table: i64 = store.conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'desk_looks'",
        [],
        |r| r.get(0),
    )?;
    if table == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = store.conn.prepare_cached(
        "SELECT at, counted, accepted, seals, first_event, events FROM desk_looks
         WHERE election_id = ?1 ORDER BY look_no",
    )?;
    let rows = stmt.query_map([election_id], |r| {
        Ok(DeskLook {
            at: r.get(0)?,
            counted: r.get(1)?,
            accepted: r.get(2)?,
            seals: r.get(3)?,
            first_event: r.get(4)?,
            events: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
