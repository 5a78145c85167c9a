//! The PostgreSQL store's writes: registry load and vote recording (the
//! results tables are written by `tallies.rs`).
//!
//! Set-based statements only (binary COPY, `unnest` arrays): a round trip per
//! row would cap the store at a few thousand rows a second.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::Transaction;

use super::{voted, PgStore, RECORD_LOCK};

/// The column types of a binary COPY into `votes` (seq, election_id,
/// voter_id, candidate_id, voting_time, ballot_id, cast_at, election_no,
/// voter_no); the benchmark's raw ceiling copies the same rows.
pub const VOTE_COPY_TYPES: [Type; 9] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];
use super::ids;
use crate::model::{RejectReason, Rejection};
use crate::model::{Source, Voter};
use crate::store::outcome::{
    by_voter, new_rejections, same_source, BatchOutcome, RejectionOutcome, StoredRejection,
    VoteOutcome,
};
use crate::store::util::{voter_columns, TimeFormat};
use crate::store::{check_batch, check_voter, Batch, Sealed, StoreError};

/// Adds voters, skipping ids already registered; returns how many were new.
///
/// The common case (a fresh chunk of a generated or imported registry) is
/// one binary COPY straight into `voters`. Only when that hits an id that is
/// already there does the chunk go the slower way: COPY into a temporary
/// table, then `INSERT … ON CONFLICT DO NOTHING` in registration order.
pub(super) fn put_voters(store: &mut PgStore, voters: &[Voter]) -> Result<u64, StoreError> {
    voters.iter().try_for_each(check_voter)?;
    let ages = voters
        .iter()
        .map(|v| {
            i32::try_from(v.registered_age).map_err(|_| StoreError::OutOfRange {
                what: format!(
                    "voter {:?}: registered_age {}",
                    v.voter_id, v.registered_age
                ),
            })
        })
        .collect::<Result<Vec<i32>, _>>()?;
    let direct = store.with(|c| {
        let mut tx = c.transaction()?;
        let copied = copy_voters(&mut tx, "voters", voters, &ages, false);
        match copied {
            Ok(n) => {
                add_registered(&mut tx, n)?;
                tx.commit()?;
                Ok(Some(n))
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(None),
            Err(e) => Err(e.into()),
        }
    });
    if let Some(n) = direct? {
        return Ok(n);
    }
    store.with(|c| {
        let mut tx = c.transaction()?;
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE voters_in ON COMMIT DROP AS SELECT 0::bigint AS ord, {columns}
             FROM voters WITH NO DATA",
            columns = voter_columns()
        ))?;
        copy_voters(&mut tx, "voters_in", voters, &ages, true)?;
        let added = tx.execute(
            &format!(
                "INSERT INTO voters ({columns}) SELECT {columns} FROM voters_in
                 ORDER BY ord ON CONFLICT (voter_id) DO NOTHING",
                columns = voter_columns()
            ),
            &[],
        )?;
        add_registered(&mut tx, added)?;
        tx.commit()?;
        Ok(added)
    })
}

fn add_registered(tx: &mut Transaction<'_>, n: u64) -> Result<(), postgres::Error> {
    tx.execute(
        "UPDATE registry_stats SET voters = voters + $1 WHERE id = 1",
        &[&(n as i64)],
    )?;
    Ok(())
}

fn copy_voters(
    tx: &mut Transaction<'_>,
    table: &str,
    voters: &[Voter],
    ages: &[i32],
    with_ord: bool,
) -> Result<u64, postgres::Error> {
    let (columns, mut types) = if with_ord {
        (format!("ord, {}", voter_columns()), vec![Type::INT8])
    } else {
        (voter_columns().to_string(), vec![])
    };
    types.extend([Type::TEXT; 15]);
    types.push(Type::INT4);
    let sink = tx.copy_in(&format!("COPY {table} ({columns}) FROM STDIN BINARY"))?;
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for (i, (v, age)) in voters.iter().zip(ages).enumerate() {
        let ord = i as i64;
        let fields: [&(dyn postgres::types::ToSql + Sync); 16] = [
            &v.voter_id,
            &v.voter_name,
            &v.date_of_birth,
            &v.gender.as_str(),
            &v.nationality,
            &v.registration_number,
            &v.address_street,
            &v.address_city,
            &v.address_state,
            &v.address_country,
            &v.address_postcode,
            &v.email,
            &v.phone_number,
            &v.cell_number,
            &v.picture,
            age,
        ];
        if with_ord {
            let mut row: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&ord];
            row.extend(fields);
            w.write(&row)?;
        } else {
            w.write(&fields)?;
        }
    }
    w.finish()
}

/// Records a batch (sorted by election_no, voter_no) in one transaction.
///
/// Why writers take turns: the engine resumes from `votes_after(position)`
/// and treats `seq` as a log position, so a vote with a lower seq must never
/// become visible after one with a higher seq was read. With a sequence and
/// concurrent writers that happens (seq is drawn at insert, visibility comes
/// at commit, in any order). So every recording transaction first takes one
/// transaction-scoped advisory lock, then assigns `max(seq) + 1 …` to what it
/// inserts: seq order is commit order, and seqs have no gaps (a rolled-back
/// batch draws nothing). The lock is released only after the commit is
/// visible, so the next writer's `max(seq)` (a new statement, a new
/// snapshot) sees it. Holding the lock also makes the uniqueness look-up
/// below authoritative: nobody else inserts votes meanwhile, and the
/// `UNIQUE (election_no, voter_no)` constraint still backs it up.
pub(super) fn try_record(
    store: &mut PgStore,
    batch: &Batch,
    arrival: &[usize],
) -> Result<BatchOutcome, StoreError> {
    check_batch(batch)?;
    // Out of the store while the closure borrows it; put back whatever
    // happens (what it caught up on was committed by others either way).
    let mut voted = std::mem::take(&mut store.voted);
    let out = store.with(|c| {
        let mut tx = c.transaction()?;
        // Separate statements: a statement's snapshot is taken before it
        // starts, so reading max(seq) in the locking statement would miss
        // the previous holder's commit.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RECORD_LOCK])?;
        let last_seq: i64 = tx
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM votes", &[])?
            .try_get(0)?;
        voted.catch_up(&mut tx, last_seq)?;
        let mut outcome = BatchOutcome {
            plan: ids::plan(
                &mut tx,
                &batch.votes,
                arrival,
                &batch.rejections,
                &batch.rejections_after,
            )?,
            ..BatchOutcome::default()
        };
        outcome.stored = stored_rejections(
            &mut tx,
            &outcome.plan.stored_ids(&batch.votes, &batch.rejections),
        )?;
        let existing = existing_ballots(&mut tx, batch, &voted)?;
        // Read under the lock: a seal commits under it too (desk.rs).
        let sealed: Sealed = tx
            .query("SELECT election_no, state FROM poll_seals", &[])?
            .iter()
            .map(|r| Ok((r.try_get(0)?, Arc::from(r.try_get::<_, &str>(1)?))))
            .collect::<Result<_, postgres::Error>>()?;
        outcome.votes = decide_votes(batch, &existing, &sealed, last_seq, &outcome);
        copy_votes(&mut tx, batch, &outcome.votes)?;
        let mut counts: HashMap<(&str, &'static str), i64> = HashMap::new();
        for (v, o) in batch.votes.iter().zip(&outcome.votes) {
            if matches!(o, VoteOutcome::Accepted(_)) {
                *counts.entry((&v.election_id, "accepted")).or_default() += 1;
            }
        }
        outcome.new_rejections = new_rejections(batch, &outcome.plan, &outcome.votes);
        let rejections: Vec<&Rejection> = outcome
            .new_rejections
            .iter()
            .map(|n| &n.rejection)
            .collect();
        outcome.rejections = insert_rejections(&mut tx, &rejections)?;
        for (r, o) in rejections.iter().zip(&outcome.rejections) {
            if *o == RejectionOutcome::New {
                let election = r.election_id.as_deref().unwrap_or("");
                *counts.entry((election, r.reason.as_str())).or_default() += 1;
            }
        }
        ids::claim(
            &mut tx,
            &outcome.plan.new_claims(&batch.votes, &batch.rejections),
        )?;
        let (mut elections, mut outcomes, mut ns) = (vec![], vec![], vec![]);
        for ((e, o), n) in counts {
            elections.push(e);
            outcomes.push(o);
            ns.push(n);
        }
        tx.execute(
            "INSERT INTO ballot_counts (election_id, outcome, n)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
             ON CONFLICT (election_id, outcome) DO UPDATE SET n = ballot_counts.n + excluded.n",
            &[&elections, &outcomes, &ns],
        )?;
        tx.commit()?;
        let accepted = || {
            batch
                .votes
                .iter()
                .zip(&outcome.votes)
                .filter_map(|(v, o)| match o {
                    VoteOutcome::Accepted(seq) => Some((v, *seq)),
                    _ => None,
                })
        };
        let end = accepted().map(|(_, seq)| seq).max().unwrap_or(last_seq);
        voted.committed(accepted().map(|(v, _)| (v.election_no, v.voter_no)), end);
        Ok(outcome)
    });
    let unique = |e: &StoreError| match e {
        StoreError::Postgres(e) => e.code() == Some(&SqlState::UNIQUE_VIOLATION),
        _ => false,
    };
    if out.as_ref().is_err_and(unique) {
        // A vote the bits missed (were one ever to): start again from the
        // table itself.
        voted = voted::Voted::default();
    }
    store.voted = voted;
    out
}

/// A vote already in the table.
struct Stored {
    ballot_id: String,
    seq: i64,
    source: Option<Source>,
}

/// The vote already recorded for each distinct key of the batch that has one.
fn existing_ballots(
    tx: &mut Transaction<'_>,
    batch: &Batch,
    voted: &voted::Voted,
) -> Result<HashMap<(i64, i64), Stored>, postgres::Error> {
    // The batch is sorted by key, so each election's voters form one run.
    let mut out = HashMap::new();
    let mut start = 0;
    while start < batch.votes.len() {
        let election = batch.votes[start].election_no;
        let mut voters = Vec::new();
        let mut end = start;
        while end < batch.votes.len() && batch.votes[end].election_no == election {
            let no = batch.votes[end].voter_no;
            if voters.last() != Some(&no) && voted.maybe(election, no) {
                voters.push(no);
            }
            end += 1;
        }
        if voters.is_empty() {
            start = end;
            continue;
        }
        // One index descent per voter, whatever the table's statistics: a
        // `LIMIT` keeps the subquery from being flattened into a join the
        // planner may hash. (`voter_no = ANY($2)` was planned, on a table
        // not yet analyzed, as a scan of the election's whole index with
        // the array as a filter: a batch's look-up grew with the ledger.)
        for r in tx.query(
            "SELECT v.voter_no, v.ballot_id, v.seq, v.src_partition, v.src_offset
             FROM unnest($2::int8[]) AS k (voter_no)
             CROSS JOIN LATERAL (
                 SELECT voter_no, ballot_id, seq, src_partition, src_offset FROM votes
                 WHERE election_no = $1 AND voter_no = k.voter_no LIMIT 1
             ) AS v",
            &[&election, &voters],
        )? {
            let no: i64 = r.try_get(0)?;
            let source = match (r.try_get(3)?, r.try_get(4)?) {
                (Some(partition), Some(offset)) => Some(Source { partition, offset }),
                _ => None,
            };
            let stored = Stored {
                ballot_id: r.try_get(1)?,
                seq: r.try_get(2)?,
                source,
            };
            out.insert((election, no), stored);
        }
        start = end;
    }
    Ok(out)
}

/// Decides each vote as the SQLite store does, one by one in batch order:
/// the first ballot of a key not yet in the table is accepted; any other is
/// a replay when its ballot id is the key's recorded one, else already_voted;
/// a new one in a sealed state is polls_closed. Votes the id check decided
/// are left out.
fn decide_votes(
    batch: &Batch,
    existing: &HashMap<(i64, i64), Stored>,
    sealed: &Sealed,
    last_seq: i64,
    decided: &BatchOutcome,
) -> Vec<VoteOutcome> {
    let mut out = Vec::with_capacity(batch.votes.len());
    let mut next = last_seq;
    let mut owner: Option<((i64, i64), &str)> = None;
    for (i, v) in batch.votes.iter().enumerate() {
        if !by_voter(decided.plan.votes[i], &v.ballot_id, &decided.stored) {
            out.push(VoteOutcome::ById);
            continue;
        }
        let key = (v.election_no, v.voter_no);
        let first = match owner {
            Some((k, ballot)) if k == key => ballot,
            _ => match existing.get(&key) {
                Some(stored) => {
                    owner = Some((key, &stored.ballot_id));
                    if stored.ballot_id == v.ballot_id && same_source(stored.source, v.source) {
                        out.push(VoteOutcome::Republish(stored.seq));
                        continue;
                    }
                    &stored.ballot_id
                }
                None if !sealed.is_empty()
                    && sealed.contains(&(v.election_no, v.state.clone())) =>
                {
                    out.push(VoteOutcome::PollsClosed);
                    continue;
                }
                None => {
                    next += 1;
                    owner = Some((key, &v.ballot_id));
                    out.push(VoteOutcome::Accepted(next));
                    continue;
                }
            },
        };
        out.push(if first == v.ballot_id {
            VoteOutcome::Replay
        } else {
            VoteOutcome::AlreadyVoted(first.to_string())
        });
    }
    out
}

fn copy_votes(
    tx: &mut Transaction<'_>,
    batch: &Batch,
    outcome: &[VoteOutcome],
) -> Result<(), postgres::Error> {
    if !outcome
        .iter()
        .any(|o| matches!(o, VoteOutcome::Accepted(_)))
    {
        return Ok(());
    }
    let sink = tx.copy_in(
        "COPY votes (seq, election_id, voter_id, candidate_id, voting_time, ballot_id, cast_at,
            election_no, voter_no, src_partition, src_offset, client) FROM STDIN BINARY",
    )?;
    let types: Vec<Type> = VOTE_COPY_TYPES
        .iter()
        .cloned()
        .chain([Type::INT4, Type::INT8, Type::TEXT])
        .collect();
    let mut w = BinaryCopyInWriter::new(sink, &types);
    let mut times = TimeFormat::default();
    for (v, o) in batch.votes.iter().zip(outcome) {
        let VoteOutcome::Accepted(seq) = o else {
            continue;
        };
        w.write(&[
            seq,
            &&*v.election_id,
            &v.voter_id,
            &&*v.candidate_id,
            &times.format(v.cast_at),
            &v.ballot_id,
            &v.cast_at,
            &v.election_no,
            &v.voter_no,
            &v.source.map(|s| s.partition),
            &v.source.map(|s| s.offset),
            &v.client.as_deref(),
        ])?;
    }
    w.finish()?;
    Ok(())
}

/// The rejections recorded under ids the batch replays.
fn stored_rejections(
    tx: &mut Transaction<'_>,
    ids: &[&str],
) -> Result<HashMap<String, StoredRejection>, postgres::Error> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    for r in tx.query(
        "SELECT ballot_id, reason, detail, src_partition, src_offset FROM rejected_ballots
         WHERE ballot_id = ANY($1::text[])",
        &[&ids],
    )? {
        let source = match (r.try_get(3)?, r.try_get(4)?) {
            (Some(partition), Some(offset)) => Some(Source { partition, offset }),
            _ => None,
        };
        let reason: &str = r.try_get(1)?;
        let stored = StoredRejection {
            reason: RejectReason::parse(reason).unwrap_or(RejectReason::InvalidField),
            detail: r.try_get(2)?,
            source,
        };
        out.insert(r.try_get(0)?, stored);
    }
    Ok(out)
}

/// Inserts rejections unique by ballot id. Within the batch the first of a
/// ballot id wins, as one-by-one inserts would; a ballot id already stored
/// is a replay, or a republish when it came from the very same message.
fn insert_rejections(
    tx: &mut Transaction<'_>,
    rejections: &[&crate::model::Rejection],
) -> Result<Vec<RejectionOutcome>, postgres::Error> {
    if rejections.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = HashSet::new();
    let firsts: Vec<&crate::model::Rejection> = rejections
        .iter()
        .copied()
        .filter(|r| seen.insert(r.ballot_id.as_str()))
        .collect();
    let texts = |f: &dyn Fn(&crate::model::Rejection) -> Option<&str>| -> Vec<Option<&str>> {
        firsts.iter().map(|r| f(r)).collect()
    };
    let ids = texts(&|r| Some(r.ballot_id.as_str()));
    let elections = texts(&|r| r.election_id.as_deref());
    let voters = texts(&|r| r.voter_id.as_deref());
    let reasons = texts(&|r| Some(r.reason.as_str()));
    let details = texts(&|r| Some(r.detail.as_str()));
    let raws = texts(&|r| Some(r.raw.as_str()));
    let received: Vec<i64> = firsts.iter().map(|r| r.received_at).collect();
    let partitions: Vec<Option<i32>> = firsts
        .iter()
        .map(|r| r.source.map(|s| s.partition))
        .collect();
    let offsets: Vec<Option<i64>> = firsts.iter().map(|r| r.source.map(|s| s.offset)).collect();
    let clients = texts(&|r| r.client.as_deref());
    let rows = tx.query(
        "INSERT INTO rejected_ballots (ballot_id, election_id, voter_id, reason, detail, raw, received_at,
            src_partition, src_offset, client)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::int8[], $8::int4[], $9::int8[], $10::text[])
         ON CONFLICT (ballot_id) DO NOTHING RETURNING ballot_id",
        &[
            &ids,
            &elections,
            &voters,
            &reasons,
            &details,
            &raws,
            &received,
            &partitions,
            &offsets,
            &clients,
        ],
    )?;
    let mut inserted = HashSet::with_capacity(rows.len());
    for r in &rows {
        inserted.insert(r.try_get::<_, &str>(0)?);
    }
    // Only messages with a bus position can be their own replay.
    let again: Vec<&str> = firsts
        .iter()
        .filter(|r| r.source.is_some() && !inserted.contains(r.ballot_id.as_str()))
        .map(|r| r.ballot_id.as_str())
        .collect();
    let mut stored_sources: HashMap<String, Source> = HashMap::new();
    if !again.is_empty() {
        for r in tx.query(
            "SELECT ballot_id, src_partition, src_offset FROM rejected_ballots
             WHERE ballot_id = ANY($1::text[]) AND src_partition IS NOT NULL",
            &[&again],
        )? {
            let source = Source {
                partition: r.try_get(1)?,
                offset: r.try_get(2)?,
            };
            stored_sources.insert(r.try_get(0)?, source);
        }
    }
    let mut seen = HashSet::new();
    Ok(rejections
        .iter()
        .map(|r| {
            let first = seen.insert(r.ballot_id.as_str());
            if first && inserted.contains(r.ballot_id.as_str()) {
                RejectionOutcome::New
            } else if first && same_source(stored_sources.get(&r.ballot_id).copied(), r.source) {
                RejectionOutcome::Republish
            } else {
                RejectionOutcome::Replay
            }
        })
        .collect())
}
