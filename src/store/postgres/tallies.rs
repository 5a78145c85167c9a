//! The PostgreSQL store's tally writes: an engine's changed counters with
//! its position (or its Kafka offsets), one transaction each.
//!
//! Set-based statements only (`unnest` arrays), for the reason `write.rs`
//! gives.

use postgres::Transaction;

use super::PgStore;
use crate::store::{OffsetMove, StoreError};
use crate::tally::TallyKey;

/// Writes changed tallies and the position in one transaction: one upsert
/// per results table, each with the values as arrays.
pub(super) fn save_tallies(
    store: &mut PgStore,
    engine: &str,
    changed: &[(TallyKey, i64)],
    from: i64,
    position: i64,
) -> Result<(), StoreError> {
    let mut t = Tables::default();
    for (key, value) in changed {
        t.add(key, *value);
    }
    store.with(|c| {
        let mut tx = c.transaction()?;
        // The row exists and is locked before it is compared: two engines of
        // one name cannot both pass the check.
        tx.execute(
            "INSERT INTO agg_progress (engine, position) VALUES ($1, 0) ON CONFLICT (engine) DO NOTHING",
            &[&engine],
        )?;
        let found: i64 = tx
            .query_one("SELECT position FROM agg_progress WHERE engine = $1 FOR UPDATE", &[&engine])?
            .try_get(0)?;
        if found != from {
            return Err(StoreError::EngineMoved {
                engine: engine.to_string(),
                expected: from,
                found,
            });
        }
        t.write(&mut tx, engine, false)?;
        tx.execute(
            "INSERT INTO agg_progress (engine, position) VALUES ($1, $2)
             ON CONFLICT (engine) DO UPDATE SET position = excluded.position",
            &[&engine, &position],
        )?;
        tx.commit()?;
        Ok(())
    })
}

/// Adds tally deltas and moves the engine's offsets, compare-and-set per
/// partition (see `Store::add_tallies`).
pub(super) fn add_tallies(
    store: &mut PgStore,
    engine: &str,
    deltas: &[(TallyKey, i64)],
    topic: &str,
    moves: &[OffsetMove],
) -> Result<(), StoreError> {
    let mut t = Tables::default();
    for (key, value) in deltas {
        t.add(key, *value);
    }
    store.with(|c| {
        let mut tx = c.transaction()?;
        for m in moves {
            // Locks the row (or, for a first offset, the key) until commit:
            // two instances cannot both move one partition from one place.
            let found: Option<i64> = tx
                .query_opt(
                    "SELECT next_offset FROM agg_offsets
                     WHERE engine = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
                    &[&engine, &topic, &m.partition],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            if found != m.from {
                return Err(StoreError::EngineMoved {
                    engine: format!("{engine} on {topic}[{}]", m.partition),
                    expected: m.from.unwrap_or(-1),
                    found: found.unwrap_or(-1),
                });
            }
            if m.from.is_none() {
                // Two first saves of one partition: the primary key fails
                // the later one, whose retry then finds the offset moved.
                tx.execute(
                    "INSERT INTO agg_offsets (engine, topic, partition, next_offset) VALUES ($1, $2, $3, $4)",
                    &[&engine, &topic, &m.partition, &m.to],
                )?;
            } else {
                tx.execute(
                    "UPDATE agg_offsets SET next_offset = $4 WHERE engine = $1 AND topic = $2 AND partition = $3",
                    &[&engine, &topic, &m.partition, &m.to],
                )?;
            }
        }
        t.write(&mut tx, engine, true)?;
        tx.commit()?;
        Ok(())
    })
}

type Texts<'a> = Vec<&'a str>;

/// Changed tallies, column by column, per results table.
#[derive(Default)]
struct Tables<'a> {
    candidate: (Vec<&'a str>, Vec<&'a str>, Vec<i64>),
    state: (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<i64>),
    demographic: (Texts<'a>, Texts<'a>, Texts<'a>, Texts<'a>, Vec<i64>),
    minute: (Vec<&'a str>, Vec<i64>, Vec<&'a str>, Vec<i64>),
    late: (Vec<&'a str>, Vec<i64>),
    max_cast: (Vec<&'a str>, Vec<i64>),
}

impl<'a> Tables<'a> {
    fn add(&mut self, key: &'a TallyKey, value: i64) {
        match key {
            TallyKey::Candidate {
                election,
                candidate,
            } => {
                let t = &mut self.candidate;
                t.0.push(election);
                t.1.push(candidate);
                t.2.push(value);
            }
            TallyKey::State {
                election,
                state,
                candidate,
            } => {
                let t = &mut self.state;
                t.0.push(election);
                t.1.push(state);
                t.2.push(candidate);
                t.3.push(value);
            }
            TallyKey::Demographic {
                election,
                age_band,
                gender,
                candidate,
            } => {
                let t = &mut self.demographic;
                t.0.push(election);
                t.1.push(age_band.as_str());
                t.2.push(gender.as_str());
                t.3.push(candidate);
                t.4.push(value);
            }
            TallyKey::Minute {
                election,
                minute,
                candidate,
            } => {
                let t = &mut self.minute;
                t.0.push(election);
                t.1.push(*minute);
                t.2.push(candidate);
                t.3.push(value);
            }
            TallyKey::Late { election } => {
                self.late.0.push(election);
                self.late.1.push(value);
            }
            TallyKey::MaxCastAt { election } => {
                self.max_cast.0.push(election);
                self.max_cast.1.push(value);
            }
        }
    }

    /// Upserts every table; `add` adds the values to what is stored (deltas
    /// from an engine fed by Kafka) instead of replacing it.
    fn write(
        &self,
        tx: &mut Transaction<'_>,
        engine: &str,
        add: bool,
    ) -> Result<(), postgres::Error> {
        let set = |table: &str, col: &str| {
            if add {
                format!("{col} = {table}.{col} + excluded.{col}")
            } else {
                format!("{col} = excluded.{col}")
            }
        };
        if !self.candidate.0.is_empty() {
            let t = &self.candidate;
            tx.execute(
                &format!(
                    "INSERT INTO results_candidate (engine, election_id, candidate_id, votes)
                 SELECT $1::text, * FROM unnest($2::text[], $3::text[], $4::int8[])
                 ON CONFLICT (engine, election_id, candidate_id) DO UPDATE SET {}",
                    set("results_candidate", "votes")
                ),
                &[&engine, &t.0, &t.1, &t.2],
            )?;
        }
        if !self.state.0.is_empty() {
            let t = &self.state;
            tx.execute(
                &format!(
                    "INSERT INTO results_state (engine, election_id, state, candidate_id, votes)
                 SELECT $1::text, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[])
                 ON CONFLICT (engine, election_id, state, candidate_id) DO UPDATE SET {}",
                    set("results_state", "votes")
                ),
                &[&engine, &t.0, &t.1, &t.2, &t.3],
            )?;
        }
        if !self.demographic.0.is_empty() {
            let t = &self.demographic;
            tx.execute(
                &format!("INSERT INTO results_demographic (engine, election_id, age_band, gender, candidate_id, votes)
                 SELECT $1::text, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
                 ON CONFLICT (engine, election_id, age_band, gender, candidate_id)
                 DO UPDATE SET {}", set("results_demographic", "votes")),
                &[&engine, &t.0, &t.1, &t.2, &t.3, &t.4],
            )?;
        }
        if !self.minute.0.is_empty() {
            let t = &self.minute;
            tx.execute(
                &format!(
                    "INSERT INTO results_minute (engine, election_id, minute, candidate_id, votes)
                 SELECT $1::text, * FROM unnest($2::text[], $3::int8[], $4::text[], $5::int8[])
                 ON CONFLICT (engine, election_id, minute, candidate_id) DO UPDATE SET {}",
                    set("results_minute", "votes")
                ),
                &[&engine, &t.0, &t.1, &t.2, &t.3],
            )?;
        }
        if !self.late.0.is_empty() {
            tx.execute(
                &format!(
                    "INSERT INTO results_election (engine, election_id, late_votes)
                 SELECT $1::text, * FROM unnest($2::text[], $3::int8[])
                 ON CONFLICT (engine, election_id) DO UPDATE SET {}",
                    set("results_election", "late_votes")
                ),
                &[&engine, &self.late.0, &self.late.1],
            )?;
        }
        if !self.max_cast.0.is_empty() {
            tx.execute(
                "INSERT INTO results_election (engine, election_id, max_cast_at)
                 SELECT $1::text, * FROM unnest($2::text[], $3::int8[])
                 ON CONFLICT (engine, election_id) DO UPDATE SET max_cast_at =
                    GREATEST(results_election.max_cast_at, excluded.max_cast_at)",
                &[&engine, &self.max_cast.0, &self.max_cast.1],
            )?;
        }
        Ok(())
    }
}
