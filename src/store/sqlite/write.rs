//! The SQLite store's writes: a batch of ballots, voters, and tallies with
//! their position. Each is one transaction.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::model::{RejectReason, Source, Voter};
use crate::store::ids::{Fingerprint, Plan};
use crate::store::outcome::{
    by_voter, new_rejections, same_source, BatchOutcome, RejectionOutcome, StoredRejection,
    VoteOutcome,
};
use crate::store::util::{voter_columns, TimeFormat};
use crate::store::{check_batch, check_voter, Batch, OffsetMove, Sealed, StoreError};
use crate::tally::TallyKey;

fn source_of(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<Source>> {
    Ok(match (r.get(at)?, r.get(at + 1)?) {
        (Some(partition), Some(offset)) => Some(Source { partition, offset }),
        _ => None,
    })
}

impl SqliteStore {
    /// Writes a batch by reference, so a failed attempt leaves it whole for
    /// a retry. `arrival` lists the (sorted) votes in the order they came.
    pub(super) fn try_record(
        &mut self,
        batch: &Batch,
        arrival: &[usize],
    ) -> Result<BatchOutcome, StoreError> {
        check_batch(batch)?;
        self.use_record_cache()?;
        let _turn = self.write_turn();
        let tx = self.conn.transaction()?;
        let mut counts: HashMap<(&str, &'static str), i64> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        {
            // The id check claims each new id as it goes (in arrival order).
            let mut claim = tx.prepare_cached(
                "INSERT INTO ballot_ids (ballot_id, fingerprint) VALUES (?1, ?2)
                 ON CONFLICT (ballot_id) DO NOTHING",
            )?;
            let mut claimed =
                tx.prepare_cached("SELECT fingerprint FROM ballot_ids WHERE ballot_id = ?1")?;
            outcome.plan = Plan::new(
                &batch.votes,
                arrival,
                &batch.rejections,
                &batch.rejections_after,
                crate::model::now_millis(),
                |id, print| -> Result<Option<Fingerprint>, StoreError> {
                    if claim.execute(params![id, print])? == 1 {
                        return Ok(None);
                    }
                    Ok(Some(claimed.query_row([id], |r| r.get(0))?))
                },
            )?;
            let mut stored_rejection = tx.prepare_cached(
                "SELECT reason, detail, src_partition, src_offset FROM rejected_ballots
                 WHERE ballot_id = ?1",
            )?;
            for id in outcome.plan.stored_ids(&batch.votes, &batch.rejections) {
                let found = stored_rejection
                    .query_row([id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get(1)?, source_of(r, 2)?))
                    })
                    .optional()?;
                if let Some((reason, detail, source)) = found {
                    let reason = RejectReason::parse(&reason).unwrap_or(RejectReason::InvalidField);
                    outcome.stored.insert(
                        id.to_string(),
                        StoredRejection {
                            reason,
                            detail,
                            source,
                        },
                    );
                }
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO votes (election_id, voter_id, candidate_id, voting_time, ballot_id, cast_at,
                    election_no, voter_no, src_partition, src_offset, client)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (election_no, voter_no) DO NOTHING",
            )?;
            let mut existing = tx.prepare_cached(
                "SELECT ballot_id, seq, src_partition, src_offset FROM votes
                 WHERE election_no = ?1 AND voter_no = ?2",
            )?;
            let sealed = sealed_states(&tx)?;
            let mut times = TimeFormat::default();
            for (i, v) in batch.votes.iter().enumerate() {
                if !by_voter(outcome.plan.votes[i], &v.ballot_id, &outcome.stored) {
                    outcome.votes.push(VoteOutcome::ById);
                    continue;
                }
                // A sealed state takes no new vote, but a replay of one it
                // took before is still told it was counted.
                let closed =
                    !sealed.is_empty() && sealed.contains(&(v.election_no, v.state.clone()));
                let inserted = !closed
                    && insert.execute(params![
                        &*v.election_id,
                        v.voter_id,
                        &*v.candidate_id,
                        times.format(v.cast_at),
                        v.ballot_id,
                        v.cast_at,
                        v.election_no,
                        v.voter_no,
                        v.source.map(|s| s.partition),
                        v.source.map(|s| s.offset),
                        v.client.as_deref()
                    ])? == 1;
                if inserted {
                    *counts.entry((&v.election_id, "accepted")).or_default() += 1;
                    outcome
                        .votes
                        .push(VoteOutcome::Accepted(tx.last_insert_rowid()));
                    continue;
                }
                let found: Option<(String, i64, Option<Source>)> = existing
                    .query_row(params![v.election_no, v.voter_no], |r| {
                        Ok((r.get(0)?, r.get(1)?, source_of(r, 2)?))
                    })
                    .optional()?;
                let Some((first, seq, source)) = found else {
                    // Not inserted and not there: only a seal refuses a new vote.
                    debug_assert!(closed);
                    outcome.votes.push(VoteOutcome::PollsClosed);
                    continue;
                };
                outcome
                    .votes
                    .push(if first == v.ballot_id && same_source(source, v.source) {
                        VoteOutcome::Republish(seq)
                    } else if first == v.ballot_id {
                        VoteOutcome::Replay
                    } else {
                        VoteOutcome::AlreadyVoted(first)
                    });
            }
            outcome.new_rejections = new_rejections(batch, &outcome.plan, &outcome.votes);
            let mut reject = tx.prepare_cached(
                "INSERT INTO rejected_ballots (ballot_id, election_id, voter_id, reason, detail, raw, received_at,
                    src_partition, src_offset, client)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (ballot_id) DO NOTHING",
            )?;
            for n in &outcome.new_rejections {
                // Its id was claimed by the id check.
                let r = &n.rejection;
                let inserted = reject.execute(params![
                    r.ballot_id,
                    r.election_id,
                    r.voter_id,
                    r.reason.as_str(),
                    r.detail,
                    r.raw,
                    r.received_at,
                    r.source.map(|s| s.partition),
                    r.source.map(|s| s.offset),
                    r.client.as_deref()
                ])? == 1;
                // Only a rejection inserted before this batch can be in the
                // table: the id check saw every other one.
                outcome.rejections.push(if inserted {
                    let election = r.election_id.as_deref().unwrap_or("");
                    *counts.entry((election, r.reason.as_str())).or_default() += 1;
                    RejectionOutcome::New
                } else {
                    RejectionOutcome::Replay
                });
            }
            let mut count = tx.prepare_cached(
                "INSERT INTO ballot_counts (election_id, outcome, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (election_id, outcome) DO UPDATE SET n = n + excluded.n",
            )?;
            for ((election, what), n) in counts {
                count.execute(params![election, what, n])?;
            }
        }
        tx.commit()?;
        Ok(outcome)
    }
}

pub(super) fn put_voters(store: &mut SqliteStore, voters: &[Voter]) -> Result<u64, StoreError> {
    voters.iter().try_for_each(check_voter)?;
    let _turn = store.write_turn();
    let tx = store.conn.transaction()?;
    let mut added = 0u64;
    {
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO voters ({})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            voter_columns()
        ))?;
        for v in voters {
            added += stmt.execute(params![
                v.voter_id,
                v.voter_name,
                v.date_of_birth,
                v.gender.as_str(),
                v.nationality,
                v.registration_number,
                v.address_street,
                v.address_city,
                v.address_state,
                v.address_country,
                v.address_postcode,
                v.email,
                v.phone_number,
                v.cell_number,
                v.picture,
                v.registered_age
            ])? as u64;
        }
        tx.execute(
            "UPDATE registry_stats SET voters = voters + ?1 WHERE id = 1",
            params![added as i64],
        )?;
    }
    tx.commit()?;
    Ok(added)
}

pub(super) fn add_tallies(
    store: &mut SqliteStore,
    engine: &str,
    deltas: &[(TallyKey, i64)],
    topic: &str,
    moves: &[OffsetMove],
) -> Result<(), StoreError> {
    let _turn = store.write_turn();
    // Immediate: the offset checks and the writes are one atomic step.
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for m in moves {
        let found: Option<i64> = tx
            .query_row(
                "SELECT next_offset FROM agg_offsets WHERE engine = ?1 AND topic = ?2 AND partition = ?3",
                params![engine, topic, m.partition],
                |r| r.get(0),
            )
            .optional()?;
        if found != m.from {
            return Err(StoreError::EngineMoved {
                engine: format!("{engine} on {topic}[{}]", m.partition),
                expected: m.from.unwrap_or(-1),
                found: found.unwrap_or(-1),
            });
        }
        tx.execute(
            "INSERT INTO agg_offsets (engine, topic, partition, next_offset) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET next_offset = excluded.next_offset",
            params![engine, topic, m.partition, m.to],
        )?;
    }
    write_tallies(&tx, engine, deltas, true)?;
    tx.commit()?;
    Ok(())
}

pub(super) fn save_tallies(
    store: &mut SqliteStore,
    engine: &str,
    changed: &[(TallyKey, i64)],
    from: i64,
    position: i64,
) -> Result<(), StoreError> {
    let _turn = store.write_turn();
    // Immediate: the position check and the write are one atomic step.
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = super::read::position(&tx, engine)?;
    if found != from {
        return Err(StoreError::EngineMoved {
            engine: engine.to_string(),
            expected: from,
            found,
        });
    }
    write_tallies(&tx, engine, changed, false)?;
    tx.execute(
        "INSERT INTO agg_progress (engine, position) VALUES (?1, ?2)
         ON CONFLICT (engine) DO UPDATE SET position = excluded.position",
        params![engine, position],
    )?;
    tx.commit()?;
    Ok(())
}

/// Upserts tallies into the results tables; `add` adds them to what is
/// stored (deltas from an engine fed by Kafka; for `max_cast_at` the larger
/// wins) instead of replacing it.
fn write_tallies(
    tx: &rusqlite::Transaction<'_>,
    engine: &str,
    changed: &[(TallyKey, i64)],
    add: bool,
) -> Result<(), StoreError> {
    let sql = |template: &str, col: &str| {
        let set = match (add, col) {
            (false, _) => format!("{col} = excluded.{col}"),
            (true, "max_cast_at") => {
                format!("{col} = MAX(COALESCE({col}, excluded.{col}), excluded.{col})")
            }
            (true, _) => format!("{col} = {col} + excluded.{col}"),
        };
        template.replace("{}", &set)
    };
    for (key, value) in changed {
        match key {
            TallyKey::Candidate { election, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_candidate (engine, election_id, candidate_id, votes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, &**candidate, value])?,
            TallyKey::State { election, state, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_state (engine, election_id, state, candidate_id, votes) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, &**state, &**candidate, value])?,
            TallyKey::Demographic { election, age_band, gender, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_demographic (engine, election_id, age_band, gender, candidate_id, votes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, age_band.as_str(), gender.as_str(), &**candidate, value])?,
            TallyKey::Minute { election, minute, candidate } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_minute (engine, election_id, minute, candidate_id, votes) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO UPDATE SET {}", "votes"))?
                .execute(params![engine, &**election, minute, &**candidate, value])?,
            TallyKey::Late { election } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_election (engine, election_id, late_votes) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET {}", "late_votes"))?
                .execute(params![engine, &**election, value])?,
            TallyKey::MaxCastAt { election } => tx
                .prepare_cached(&sql(
                    "INSERT INTO results_election (engine, election_id, max_cast_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET {}", "max_cast_at"))?
                .execute(params![engine, &**election, value])?,
        };
    }
    Ok(())
}

/// The states whose count is sealed, by election_no (usually none: then a
/// batch pays one tiny query).
pub(super) fn sealed_states(tx: &rusqlite::Transaction<'_>) -> Result<Sealed, StoreError> {
    let mut stmt = tx.prepare_cached("SELECT election_no, state FROM poll_seals")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, std::sync::Arc::from(r.get::<_, String>(1)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
