//! The alerts stage's tables: its events, each recorded once, and where it
//! stands, saved with them. The same contract as the SQLite store's
//! (tests/store_contract.rs runs it on both).

use super::PgStore;
use crate::store::{alerts_moved as moved, AlertResume, LedgerPosition, StoreError};

pub(super) fn alert_events(
    store: &mut PgStore,
    election_id: &str,
    from: i64,
) -> Result<Vec<String>, StoreError> {
    store.with(|c| {
        Ok(c.query(
            "SELECT body FROM alert_events WHERE election_id = $1 AND event_no >= $2
                 ORDER BY event_no",
            &[&election_id, &from],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?)
    })
}

pub(super) fn alert_resume(
    store: &mut PgStore,
    election_id: &str,
) -> Result<Option<AlertResume>, StoreError> {
    store.with(|c| {
        let row = c.query_opt(
            "SELECT votes_after, rejections_after, state FROM alert_state WHERE election_id = $1",
            &[&election_id],
        )?;
        Ok(match row {
            Some(r) => Some(AlertResume {
                at: LedgerPosition {
                    votes: r.try_get(0)?,
                    rejections: r.try_get(1)?,
                },
                state: r.try_get(2)?,
            }),
            None => None,
        })
    })
}

pub(super) fn append_alerts(
    store: &mut PgStore,
    election_id: &str,
    next: i64,
    events: &[String],
    from: LedgerPosition,
    to: &AlertResume,
) -> Result<(), StoreError> {
    store.with(|c| {
        let mut tx = c.transaction()?;
        // Two stages saving at once: the second waits here, then sees the
        // first one's move and makes none.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 11))",
            &[&election_id],
        )?;
        let found: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM alert_events WHERE election_id = $1",
                &[&election_id],
            )?
            .try_get(0)?;
        let at = match tx.query_opt(
            "SELECT votes_after, rejections_after FROM alert_state WHERE election_id = $1",
            &[&election_id],
        )? {
            Some(r) => LedgerPosition {
                votes: r.try_get(0)?,
                rejections: r.try_get(1)?,
            },
            None => LedgerPosition::default(),
        };
        if found != next || at != from {
            return Err(moved(election_id, next, found));
        }
        let numbers: Vec<i64> = (0..events.len() as i64).map(|i| next + i).collect();
        tx.execute(
            "INSERT INTO alert_events (election_id, event_no, body)
             SELECT $1, * FROM unnest($2::int8[], $3::text[])",
            &[&election_id, &numbers, &events],
        )?;
        tx.execute(
            "INSERT INTO alert_state (election_id, votes_after, rejections_after, state)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (election_id) DO UPDATE SET votes_after = excluded.votes_after,
                 rejections_after = excluded.rejections_after, state = excluded.state",
            &[&election_id, &to.at.votes, &to.at.rejections, &to.state],
        )?;
        tx.commit()?;
        Ok(())
    })
}
