//! The PostgreSQL side of "one ballot id, one ballot" (see `store::ids`):
//! the id check of a batch, set-based, and the migration that fills
//! `ballot_ids` from what a store recorded before it existed.

use std::collections::{HashMap, HashSet};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Transaction;

use crate::model::{Rejection, Vote};
use crate::store::ids::{self, Fingerprint, Plan};
use crate::store::StoreError;

/// Decides the ids of a batch: one look-up for all of them, and one more
/// for each derived id of a `ballot_id_reused` rejection (rare). The new
/// ids are claimed later, by [`claim`].
pub(super) fn plan(
    tx: &mut Transaction<'_>,
    votes: &[Vote],
    arrival: &[usize],
    rejections: &[Rejection],
    rejections_after: &[usize],
) -> Result<Plan, StoreError> {
    let ids = ids::batch_ids(votes, rejections);
    let mut known: HashMap<String, Fingerprint> = HashMap::new();
    for r in tx.query(
        "SELECT ballot_id, fingerprint FROM ballot_ids WHERE ballot_id = ANY($1::text[])",
        &[&ids],
    )? {
        known.insert(r.try_get(0)?, r.try_get(1)?);
    }
    let looked_up: HashSet<&str> = ids.iter().copied().collect();
    let now = crate::model::now_millis();
    Plan::new(
        votes,
        arrival,
        rejections,
        rejections_after,
        now,
        |id, _| {
            if let Some(print) = known.get(id) {
                return Ok(Some(*print));
            }
            if looked_up.contains(id) {
                return Ok(None);
            }
            let row = tx.query_opt(
                "SELECT fingerprint FROM ballot_ids WHERE ballot_id = $1",
                &[&id],
            )?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        },
    )
}

/// Records the ids a batch claimed, by binary COPY: every writer of
/// `ballot_ids` holds the recording lock, under which [`plan`] looked each
/// of these ids up and found none, so no row can conflict. (An INSERT … ON
/// CONFLICT took longer than the votes' own COPY.) Were one to conflict
/// all the same, the batch fails whole: no id is ever lost.
pub(super) fn claim(tx: &mut Transaction<'_>, claims: &[(&str, i64)]) -> Result<(), StoreError> {
    if claims.is_empty() {
        return Ok(());
    }
    let sink = tx.copy_in("COPY ballot_ids (ballot_id, fingerprint) FROM STDIN BINARY")?;
    let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8]);
    for (id, print) in claims {
        w.write(&[id, print])?;
    }
    w.finish()?;
    Ok(())
}

/// Rows read per round trip while filling `ballot_ids`.
const PAGE: i64 = 50_000;

/// Schema version 3: fills `ballot_ids` from the votes and rejections
/// already recorded (the first of an id wins). Runs once, under the
/// migration and recording locks.
pub(super) fn claim_recorded_ids(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
    let mut after = 0i64;
    loop {
        let rows = tx.query(
            "SELECT seq, ballot_id, election_id, voter_id, candidate_id FROM votes
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after, &PAGE],
        )?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        let mut claims: Vec<(&str, i64)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let print = ids::content_fingerprint(r.try_get(2)?, r.try_get(3)?, r.try_get(4)?);
            claims.push((r.try_get(1)?, print));
        }
        claim(tx, &claims)?;
    }
    let mut after = 0i64;
    loop {
        let rows = tx.query(
            "SELECT id, ballot_id, election_id, reason, raw FROM rejected_ballots
             WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &PAGE],
        )?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        let (mut ids_, mut prints) = (Vec::new(), Vec::new());
        for r in &rows {
            let print = ids::recorded_fingerprint(r.try_get(2)?, r.try_get(3)?, r.try_get(4)?);
            ids_.push(r.try_get::<_, &str>(1)?);
            prints.push(print);
        }
        tx.execute(
            "INSERT INTO ballot_ids (ballot_id, fingerprint)
             SELECT * FROM unnest($1::text[], $2::int8[]) ON CONFLICT (ballot_id) DO NOTHING",
            &[&ids_, &prints],
        )?;
    }
    Ok(())
}
