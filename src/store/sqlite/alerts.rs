//! The alerts stage's tables: its events, each recorded once, and where it
//! stands, saved with them.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::{alerts_moved as moved, AlertResume, LedgerPosition, StoreError};

pub(super) fn alert_events(
    store: &mut SqliteStore,
    election_id: &str,
    from: i64,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = store.conn.prepare_cached(
        "SELECT body FROM alert_events WHERE election_id = ?1 AND event_no >= ?2 ORDER BY event_no",
    )?;
    let rows = stmt.query_map(params![election_id, from], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

pub(super) fn alert_resume(
    store: &mut SqliteStore,
    election_id: &str,
) -> Result<Option<AlertResume>, StoreError> {
    Ok(store
        .conn
        .query_row(
            "SELECT votes_after, rejections_after, state FROM alert_state WHERE election_id = ?1",
            [election_id],
            |r| {
                Ok(AlertResume {
                    at: LedgerPosition {
                        votes: r.get(0)?,
                        rejections: r.get(1)?,
                    },
                    state: r.get(2)?,
                })
            },
        )
        .optional()?)
}

pub(super) fn append_alerts(
    store: &mut SqliteStore,
    election_id: &str,
    next: i64,
    events: &[String],
    from: LedgerPosition,
    to: &AlertResume,
) -> Result<(), StoreError> {
    let _turn = store.write_turn();
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row(
        "SELECT COUNT(*) FROM alert_events WHERE election_id = ?1",
        [election_id],
        |r| r.get(0),
    )?;
    let at: LedgerPosition = tx
        .query_row(
            "SELECT votes_after, rejections_after FROM alert_state WHERE election_id = ?1",
            [election_id],
            |r| {
                Ok(LedgerPosition {
                    votes: r.get(0)?,
                    rejections: r.get(1)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default();
    if found != next || at != from {
        return Err(moved(election_id, next, found));
    }
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO alert_events (election_id, event_no, body) VALUES (?1, ?2, ?3)",
        )?;
        for (i, body) in events.iter().enumerate() {
            insert.execute(params![election_id, next + i as i64, body])?;
        }
    }
    tx.execute(
        "INSERT INTO alert_state (election_id, votes_after, rejections_after, state)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (election_id) DO UPDATE SET votes_after = excluded.votes_after,
             rejections_after = excluded.rejections_after, state = excluded.state",
        params![election_id, to.at.votes, to.at.rejections, to.state],
    )?;
    tx.commit()?;
    Ok(())
}
