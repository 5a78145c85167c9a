//! The SQLite store's reads: the registry scan, profiles, the votes log,
//! tallies, results and the recount.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::model::{format_voting_time, AgeBand, Gender, Vote, Voter};
use crate::results::{DemographicTally, MinuteTally, Results};
use crate::store::util::{voter_columns, Interner};
use crate::store::{LedgerEntry, Store, StoreError, VoterKey};
use crate::tally::{Tallies, TallyKey};

/// A voter from [`voter_columns`] starting at column `at`.
pub(super) fn profile(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Voter> {
    Ok(Voter {
        voter_id: r.get(at)?,
        voter_name: r.get(at + 1)?,
        date_of_birth: r.get(at + 2)?,
        gender: Gender::parse(&r.get::<_, String>(at + 3)?),
        nationality: r.get(at + 4)?,
        registration_number: r.get(at + 5)?,
        address_street: r.get(at + 6)?,
        address_city: r.get(at + 7)?,
        address_state: r.get(at + 8)?,
        address_country: r.get(at + 9)?,
        address_postcode: r.get(at + 10)?,
        email: r.get(at + 11)?,
        phone_number: r.get(at + 12)?,
        cell_number: r.get(at + 13)?,
        picture: r.get(at + 14)?,
        registered_age: r.get(at + 15)?,
    })
}

pub(super) fn scan_voters(
    store: &mut SqliteStore,
    f: &mut dyn FnMut(VoterKey<'_>),
) -> Result<(), StoreError> {
    let mut stmt = store.conn.prepare(
        "SELECT voter_id, address_state, registered_age, gender, voter_no FROM voters ORDER BY voter_no",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let voter_id = r.get_ref(0)?.as_str()?;
        let state = r.get_ref(1)?.as_str()?;
        let age: i64 = r.get(2)?;
        let gender = Gender::parse(r.get_ref(3)?.as_str()?);
        f(VoterKey {
            voter_no: r.get(4)?,
            voter_id,
            state,
            age: age.clamp(0, u32::MAX as i64) as u32,
            gender,
        });
    }
    Ok(())
}

pub(super) fn profiles(
    store: &mut SqliteStore,
    voter_nos: &[i64],
) -> Result<Vec<(i64, Voter)>, StoreError> {
    let mut stmt = store.conn.prepare_cached(&format!(
        "SELECT voter_no, {} FROM voters WHERE voter_no = ?1",
        voter_columns()
    ))?;
    let mut out = Vec::with_capacity(voter_nos.len());
    for no in voter_nos {
        if let Some(found) = stmt
            .query_row([no], |r| Ok((r.get(0)?, profile(r, 1)?)))
            .optional()?
        {
            out.push(found);
        }
    }
    Ok(out)
}

pub(super) fn load_offsets(
    store: &mut SqliteStore,
    engine: &str,
    topic: &str,
) -> Result<HashMap<i32, i64>, StoreError> {
    let mut stmt = store.conn.prepare_cached(
        "SELECT partition, next_offset FROM agg_offsets WHERE engine = ?1 AND topic = ?2",
    )?;
    let rows = stmt.query_map([engine, topic], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn ledger_after(
    store: &mut SqliteStore,
    after: i64,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let mut stmt = store.conn.prepare_cached(&format!(
        "SELECT seq, election_no, voter_no, candidate_id, cast_at, {} FROM votes
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        store.client_column()
    ))?;
    let mut rows = stmt.query(params![after, limit.min(i64::MAX as usize) as i64])?;
    let mut names = Interner::default();
    let mut out = Vec::with_capacity(limit.min(100_000));
    while let Some(r) = rows.next()? {
        out.push(LedgerEntry {
            seq: r.get(0)?,
            election_no: r.get(1)?,
            voter_no: r.get(2)?,
            candidate_id: names.get(r.get_ref(3)?.as_str()?),
            cast_at: r.get(4)?,
            client: r.get_ref(5)?.as_str_or_null()?.map(|c| names.get(c)),
        });
    }
    Ok(out)
}

pub(super) fn votes_after(
    store: &mut SqliteStore,
    after: i64,
    limit: usize,
) -> Result<Vec<Vote>, StoreError> {
    let mut stmt = store.conn.prepare_cached(&format!(
        "SELECT v.seq, v.ballot_id, v.election_id, v.voter_id, v.candidate_id, v.cast_at,
                r.address_state, r.registered_age, r.gender, v.election_no, v.voter_no, {}
         FROM votes v JOIN voters r ON r.voter_no = v.voter_no
         WHERE v.seq > ?1 ORDER BY v.seq LIMIT ?2",
        store.client_column()
    ))?;
    let mut rows = stmt.query(params![after, limit as i64])?;
    let mut names = Interner::default();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let age: i64 = r.get(7)?;
        out.push(Vote {
            seq: r.get(0)?,
            ballot_id: r.get(1)?,
            election_id: names.get(r.get_ref(2)?.as_str()?),
            voter_id: r.get(3)?,
            candidate_id: names.get(r.get_ref(4)?.as_str()?),
            cast_at: r.get(5)?,
            source: None,
            state: names.get(r.get_ref(6)?.as_str()?),
            age_band: AgeBand::of_age(age.clamp(0, 200) as u32),
            gender: Gender::parse(r.get_ref(8)?.as_str()?),
            election_no: r.get(9)?,
            voter_no: r.get(10)?,
            client: r.get_ref(11)?.as_str_or_null()?.map(|c| names.get(c)),
        });
    }
    Ok(out)
}

pub(super) fn load_tallies(
    store: &mut SqliteStore,
    engine: &str,
) -> Result<(Tallies, i64), StoreError> {
    let mut t = Tallies::default();
    let mut names = Interner::default();
    let c = &store.conn;
    let mut stmt = c.prepare(
        "SELECT election_id, candidate_id, votes FROM results_candidate WHERE engine = ?1",
    )?;
    let mut rows = stmt.query([engine])?;
    while let Some(r) = rows.next()? {
        let key = TallyKey::Candidate {
            election: names.get(r.get_ref(0)?.as_str()?),
            candidate: names.get(r.get_ref(1)?.as_str()?),
        };
        t.insert(key, r.get(2)?);
    }
    let mut stmt = c.prepare(
        "SELECT election_id, state, candidate_id, votes FROM results_state WHERE engine = ?1",
    )?;
    let mut rows = stmt.query([engine])?;
    while let Some(r) = rows.next()? {
        let key = TallyKey::State {
            election: names.get(r.get_ref(0)?.as_str()?),
            state: names.get(r.get_ref(1)?.as_str()?),
            candidate: names.get(r.get_ref(2)?.as_str()?),
        };
        t.insert(key, r.get(3)?);
    }
    let mut stmt = c.prepare(
        "SELECT election_id, age_band, gender, candidate_id, votes FROM results_demographic WHERE engine = ?1",
    )?;
    let mut rows = stmt.query([engine])?;
    while let Some(r) = rows.next()? {
        let Some(age_band) = AgeBand::parse(r.get_ref(1)?.as_str()?) else {
            continue;
        };
        let key = TallyKey::Demographic {
            election: names.get(r.get_ref(0)?.as_str()?),
            age_band,
            gender: Gender::parse(r.get_ref(2)?.as_str()?),
            candidate: names.get(r.get_ref(3)?.as_str()?),
        };
        t.insert(key, r.get(4)?);
    }
    let mut stmt = c.prepare(
        "SELECT election_id, minute, candidate_id, votes FROM results_minute WHERE engine = ?1",
    )?;
    let mut rows = stmt.query([engine])?;
    while let Some(r) = rows.next()? {
        let key = TallyKey::Minute {
            election: names.get(r.get_ref(0)?.as_str()?),
            minute: r.get(1)?,
            candidate: names.get(r.get_ref(2)?.as_str()?),
        };
        t.insert(key, r.get(3)?);
    }
    let mut stmt = c.prepare(
        "SELECT election_id, late_votes, max_cast_at FROM results_election WHERE engine = ?1",
    )?;
    let mut rows = stmt.query([engine])?;
    while let Some(r) = rows.next()? {
        let election = names.get(r.get_ref(0)?.as_str()?);
        t.insert(
            TallyKey::Late {
                election: election.clone(),
            },
            r.get(1)?,
        );
        if let Some(max) = r.get::<_, Option<i64>>(2)? {
            t.insert(TallyKey::MaxCastAt { election }, max);
        }
    }
    Ok((t, position(c, engine)?))
}

/// The seq an engine's saved results are exact up to (0 before its first
/// save): what a start loads, and what a save compares and sets.
pub(super) fn position(c: &rusqlite::Connection, engine: &str) -> Result<i64, StoreError> {
    Ok(c.query_row(
        "SELECT position FROM agg_progress WHERE engine = ?1",
        [engine],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(0))
}

pub(super) fn results(
    store: &mut SqliteStore,
    election_id: &str,
    engine: &str,
) -> Result<Results, StoreError> {
    let entry = store
        .elections()?
        .into_iter()
        .find(|e| e.election.election_id == election_id)
        .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))?;
    let mut res = Results::empty(entry.election, &entry.candidates);
    // One read transaction: every figure comes from the same snapshot.
    let tx = store.conn.transaction()?;
    res.registered_voters =
        tx.query_row("SELECT voters FROM registry_stats WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    {
        let mut stmt =
            tx.prepare_cached("SELECT outcome, n FROM ballot_counts WHERE election_id = ?1")?;
        let mut rows = stmt.query([election_id])?;
        while let Some(r) = rows.next()? {
            res.add_ballot_count(r.get(0)?, r.get(1)?);
        }
        let mut stmt = tx.prepare_cached(
            "SELECT candidate_id, votes FROM results_candidate WHERE engine = ?1 AND election_id = ?2",
        )?;
        let totals: HashMap<String, i64> = stmt
            .query_map([engine, election_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        res.set_candidate_totals(&totals);
        let mut stmt = tx.prepare_cached(
            "SELECT state, candidate_id, votes FROM results_state WHERE engine = ?1 AND election_id = ?2
             ORDER BY state",
        )?;
        let mut rows = stmt.query([engine, election_id])?;
        while let Some(r) = rows.next()? {
            res.add_state_votes(r.get(0)?, r.get(1)?, r.get(2)?);
        }
        let mut stmt = tx.prepare_cached(
            "SELECT age_band, gender, candidate_id, votes FROM results_demographic
             WHERE engine = ?1 AND election_id = ?2 ORDER BY age_band, gender, candidate_id",
        )?;
        res.demographics = stmt
            .query_map([engine, election_id], |r| {
                Ok(DemographicTally {
                    age_band: r.get(0)?,
                    gender: r.get(1)?,
                    candidate_id: r.get(2)?,
                    votes: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = tx.prepare_cached(
            "SELECT minute, candidate_id, votes FROM results_minute
             WHERE engine = ?1 AND election_id = ?2 ORDER BY minute, candidate_id",
        )?;
        res.timeline = stmt
            .query_map([engine, election_id], |r| {
                Ok(MinuteTally {
                    minute: format_voting_time(r.get(0)?),
                    candidate_id: r.get(1)?,
                    votes: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        res.late_votes = tx
            .query_row(
                "SELECT late_votes FROM results_election WHERE engine = ?1 AND election_id = ?2",
                [engine, election_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        res.tallied_to = tx
            .query_row(TALLIED_TO, [engine], |r| r.get(0))
            .optional()?;
    }
    tx.commit()?;
    Ok(res)
}

/// The position an engine's tallies are the ledger's prefix up to: the one
/// saved with them, unless an engine fed by Kafka counted too (its
/// partitions move apart, so no position says what the tallies hold).
const TALLIED_TO: &str = "SELECT COALESCE((SELECT position FROM agg_progress WHERE engine = ?1), 0)
     WHERE NOT EXISTS (SELECT 1 FROM agg_offsets WHERE engine = ?1)";

pub(super) fn recount(store: &mut SqliteStore, election_id: &str) -> Result<Tallies, StoreError> {
    let mut t = Tallies::default();
    let election: Arc<str> = Arc::from(election_id);
    let mut names = Interner::default();
    let mut stmt = store.conn.prepare(
        "SELECT v.candidate_id, r.address_state, r.registered_age, r.gender, v.cast_at / 60000, COUNT(*)
         FROM votes v JOIN voters r ON r.voter_no = v.voter_no
         WHERE v.election_id = ?1
         GROUP BY 1, 2, 3, 4, 5",
    )?;
    let mut rows = stmt.query([election_id])?;
    while let Some(r) = rows.next()? {
        let candidate = names.get(r.get_ref(0)?.as_str()?);
        let state = names.get(r.get_ref(1)?.as_str()?);
        let age: i64 = r.get(2)?;
        let gender = Gender::parse(r.get_ref(3)?.as_str()?);
        let minute: i64 = r.get(4)?;
        let n: i64 = r.get(5)?;
        t.add_recounted(
            &election,
            candidate,
            state,
            AgeBand::of_age(age.clamp(0, 200) as u32),
            gender,
            minute * crate::tally::MINUTE_MS,
            n,
        );
    }
    Ok(t)
}
