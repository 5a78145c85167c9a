//! The race desk's tables: the seals that make a state's count final, the
//! desk's events, each recorded once, and the looks that made them. The
//! same contract as the SQLite store's (tests/store_contract.rs runs it on
//! both).

use super::{PgStore, RECORD_LOCK};
use crate::model::Millis;
use crate::store::{DeskLog, DeskLook, Seal, StoreError};

fn election_no(tx: &mut postgres::Transaction<'_>, election_id: &str) -> Result<i64, StoreError> {
    tx.query_opt(
        "SELECT election_no FROM elections WHERE election_id = $1",
        &[&election_id],
    )?
    .map(|r| r.try_get(0))
    .transpose()?
    .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))
}

pub(super) fn seal_state(
    store: &mut PgStore,
    election_id: &str,
    state: &str,
    at: Millis,
) -> Result<Seal, StoreError> {
    store.with(|c| {
        let mut tx = c.transaction()?;
        // Every batch is recorded under this lock and reads the seals after
        // taking it: a batch either committed before the count below, or
        // sees the seal and refuses the state's new votes.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RECORD_LOCK])?;
        let no = election_no(&mut tx, election_id)?;
        let row = tx.query_opt(
            "SELECT sealed_at, final_votes FROM poll_seals WHERE election_no = $1 AND state = $2",
            &[&no, &state],
        )?;
        let (sealed_at, final_votes): (i64, i64) = match row {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => {
                let n: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM votes v JOIN voters r ON r.voter_no = v.voter_no
                         WHERE v.election_no = $1 AND r.address_state = $2",
                        &[&no, &state],
                    )?
                    .try_get(0)?;
                tx.execute(
                    "INSERT INTO poll_seals (election_no, state, sealed_at, final_votes)
                     VALUES ($1, $2, $3, $4)",
                    &[&no, &state, &at, &n],
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
    })
}

pub(super) fn desk_log(store: &mut PgStore, election_id: &str) -> Result<DeskLog, StoreError> {
    store.with(|c| {
        let mut tx = c.build_transaction().read_only(true).start()?;
        let no = election_no(&mut tx, election_id)?;
        let seals = tx
            .query(
                "SELECT state, sealed_at, final_votes FROM poll_seals WHERE election_no = $1
                 ORDER BY sealed_at, state COLLATE \"C\"",
                &[&no],
            )?
            .iter()
            .map(|r| {
                Ok(Seal {
                    state: r.try_get(0)?,
                    sealed_at: r.try_get(1)?,
                    final_votes: r.try_get::<_, i64>(2)? as u64,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()?;
        let events = tx
            .query(
                "SELECT body FROM desk_events WHERE election_id = $1 ORDER BY event_no",
                &[&election_id],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()?;
        tx.commit()?;
        Ok(DeskLog { seals, events })
    })
}

pub(super) fn append_desk(
    store: &mut PgStore,
    election_id: &str,
    next: i64,
    events: &[String],
) -> Result<(), StoreError> {
    store.with(|c| {
        let mut tx = c.transaction()?;
        append_events(&mut tx, election_id, next, events)?;
        tx.commit()?;
        Ok(())
    })
}

/// Appends events numbered from `next`, if `next` are recorded.
fn append_events(
    tx: &mut postgres::Transaction<'_>,
    election_id: &str,
    next: i64,
    events: &[String],
) -> Result<(), StoreError> {
    // Two desks appending at once: the second waits here, then sees the
    // first one's events and moves no further.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
        &[&election_id],
    )?;
    let found: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM desk_events WHERE election_id = $1",
            &[&election_id],
        )?
        .try_get(0)?;
    if found != next {
        return Err(StoreError::EngineMoved {
            engine: format!("race desk of {election_id}"),
            expected: next,
            found,
        });
    }
    let numbers: Vec<i64> = (0..events.len() as i64).map(|i| next + i).collect();
    tx.execute(
        "INSERT INTO desk_events (election_id, event_no, body)
         SELECT $1, * FROM unnest($2::int8[], $3::text[])",
        &[&election_id, &numbers, &events],
    )?;
    Ok(())
}

pub(super) fn record_look(
    store: &mut PgStore,
    election_id: &str,
    look: &DeskLook,
    events: &[String],
) -> Result<(), StoreError> {
    store.with(|c| {
        let mut tx = c.transaction()?;
        // Under the events' lock: looks are numbered as densely as they.
        append_events(&mut tx, election_id, look.first_event, events)?;
        tx.execute(
            "INSERT INTO desk_looks
               (election_id, look_no, at, counted, accepted, seals, first_event, events)
             SELECT $1, COUNT(*), $2, $3, $4, $5, $6, $7 FROM desk_looks WHERE election_id = $1",
            &[
                &election_id,
                &look.at,
                &look.counted,
                &look.accepted,
                &look.seals,
                &look.first_event,
                &(events.len() as i64),
            ],
        )?;
        tx.commit()?;
        Ok(())
    })
}

pub(super) fn desk_looks(
    store: &mut PgStore,
    election_id: &str,
) -> Result<Vec<DeskLook>, StoreError> {
    store.with(|c| {
        // A database written before looks were recorded, opened read-only,
        // has no such table: it has no looks either.
        let table: Option<String> = c
            .query_one("SELECT to_regclass('desk_looks')::text", &[])?
            .try_get(0)?;
        if table.is_none() {
            return Ok(Vec::new());
        }
        let rows = c.query(
            "SELECT at, counted, accepted, seals, first_event, events FROM desk_looks
             WHERE election_id = $1 ORDER BY look_no",
            &[&election_id],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DeskLook {
                    at: r.try_get(0)?,
                    counted: r.try_get(1)?,
                    accepted: r.try_get(2)?,
                    seals: r.try_get(3)?,
                    first_event: r.try_get(4)?,
                    events: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(StoreError::from)
    })
}
