//! The PostgreSQL store's reads: registry scan, the votes log, tallies,
//! the results read model and the recount. Orders use `COLLATE "C"` so they
//! match SQLite's byte order whatever the database's locale.

use std::collections::HashMap;
use std::sync::Arc;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{IsolationLevel, Row};

use super::PgStore;
use crate::model::{format_voting_time, AgeBand, Gender, Vote, Voter};
use crate::results::{DemographicTally, MinuteTally, Results};
use crate::store::util::{voter_columns, Interner};
use crate::store::{LedgerEntry, Store, StoreError, VoterKey};
use crate::tally::{Tallies, TallyKey};

pub(super) fn age_of(years: i32) -> u32 {
    u32::try_from(years).unwrap_or(0)
}

pub(super) fn scan_voters(
    store: &mut PgStore,
    f: &mut dyn FnMut(VoterKey<'_>),
) -> Result<(), StoreError> {
    store.with(|c| {
        // Streamed: a 10M-voter registry is never held as rows in memory.
        let mut rows = c.query_raw(
            "SELECT voter_id, address_state, registered_age, gender, voter_no FROM voters ORDER BY voter_no",
            std::iter::empty::<i64>(),
        )?;
        while let Some(r) = rows.next()? {
            f(VoterKey {
                voter_no: r.try_get(4)?,
                voter_id: r.try_get(0)?,
                state: r.try_get(1)?,
                age: age_of(r.try_get(2)?),
                gender: Gender::parse(r.try_get(3)?),
            });
        }
        Ok(())
    })
}

/// A voter from [`voter_columns`] starting at column `at`.
pub(super) fn profile(r: &Row, at: usize) -> Result<Voter, postgres::Error> {
    Ok(Voter {
        voter_id: r.try_get(at)?,
        voter_name: r.try_get(at + 1)?,
        date_of_birth: r.try_get(at + 2)?,
        gender: Gender::parse(r.try_get(at + 3)?),
        nationality: r.try_get(at + 4)?,
        registration_number: r.try_get(at + 5)?,
        address_street: r.try_get(at + 6)?,
        address_city: r.try_get(at + 7)?,
        address_state: r.try_get(at + 8)?,
        address_country: r.try_get(at + 9)?,
        address_postcode: r.try_get(at + 10)?,
        email: r.try_get(at + 11)?,
        phone_number: r.try_get(at + 12)?,
        cell_number: r.try_get(at + 13)?,
        picture: r.try_get(at + 14)?,
        registered_age: age_of(r.try_get(at + 15)?),
    })
}

pub(super) fn profiles(
    store: &mut PgStore,
    voter_nos: &[i64],
) -> Result<Vec<(i64, Voter)>, StoreError> {
    let mut sorted = voter_nos.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    store.with(|c| {
        let rows = c.query(
            &format!(
                "SELECT voter_no, {} FROM voters WHERE voter_no = ANY($1::int8[])",
                voter_columns()
            ),
            &[&sorted],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let no: i64 = r.try_get(0)?;
            let v = profile(&r, 1)?;
            out.push((no, v));
        }
        Ok(out)
    })
}

pub(super) fn load_offsets(
    store: &mut PgStore,
    engine: &str,
    topic: &str,
) -> Result<HashMap<i32, i64>, StoreError> {
    store.with(|c| {
        let mut out = HashMap::new();
        for r in c.query(
            "SELECT partition, next_offset FROM agg_offsets WHERE engine = $1 AND topic = $2",
            &[&engine, &topic],
        )? {
            out.insert(r.try_get(0)?, r.try_get(1)?);
        }
        Ok(out)
    })
}

pub(super) fn ledger_after(
    store: &mut PgStore,
    after: i64,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let client = store.client_column();
    store.with(|c| {
        let rows = c.query(
            &format!(
                "SELECT seq, election_no, voter_no, candidate_id, cast_at, {client} FROM votes
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
            ),
            &[&after, &(limit.min(i64::MAX as usize) as i64)],
        )?;
        let mut names = Interner::default();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(LedgerEntry {
                seq: r.try_get(0)?,
                election_no: r.try_get(1)?,
                voter_no: r.try_get(2)?,
                candidate_id: names.get(r.try_get(3)?),
                cast_at: r.try_get(4)?,
                client: r.try_get::<_, Option<&str>>(5)?.map(|c| names.get(c)),
            });
        }
        Ok(out)
    })
}

pub(super) fn votes_after(
    store: &mut PgStore,
    after: i64,
    limit: usize,
) -> Result<Vec<Vote>, StoreError> {
    let client = store.client_column();
    store.with(|c| {
        let rows = c.query(
            &format!(
                "SELECT v.seq, v.ballot_id, v.election_id, v.voter_id, v.candidate_id, v.cast_at,
                    r.address_state, r.registered_age, r.gender, v.election_no, v.voter_no,
                    {client}
                 FROM votes v JOIN voters r ON r.voter_no = v.voter_no
                 WHERE v.seq > $1 ORDER BY v.seq LIMIT $2"
            ),
            &[&after, &(limit.min(i64::MAX as usize) as i64)],
        )?;
        let mut names = Interner::default();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Vote {
                seq: r.try_get(0)?,
                ballot_id: r.try_get(1)?,
                election_id: names.get(r.try_get(2)?),
                voter_id: r.try_get(3)?,
                candidate_id: names.get(r.try_get(4)?),
                cast_at: r.try_get(5)?,
                source: None,
                state: names.get(r.try_get(6)?),
                age_band: AgeBand::of_age(age_of(r.try_get(7)?).min(200)),
                gender: Gender::parse(r.try_get(8)?),
                election_no: r.try_get(9)?,
                voter_no: r.try_get(10)?,
                client: r.try_get::<_, Option<&str>>(11)?.map(|c| names.get(c)),
            });
        }
        Ok(out)
    })
}

pub(super) fn load_tallies(
    store: &mut PgStore,
    engine: &str,
) -> Result<(Tallies, i64), StoreError> {
    store.with(|c| {
        let mut t = Tallies::default();
        let mut names = Interner::default();
        // One snapshot: the tallies and the position they are exact up to.
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let q = |tx: &mut postgres::Transaction<'_>, sql: &str| tx.query(sql, &[&engine]);
        for r in q(&mut tx, "SELECT election_id, candidate_id, votes FROM results_candidate WHERE engine = $1")? {
            let key = TallyKey::Candidate {
                election: names.get(r.try_get(0)?),
                candidate: names.get(r.try_get(1)?),
            };
            t.insert(key, r.try_get(2)?);
        }
        for r in q(&mut tx, "SELECT election_id, state, candidate_id, votes FROM results_state WHERE engine = $1")? {
            let key = TallyKey::State {
                election: names.get(r.try_get(0)?),
                state: names.get(r.try_get(1)?),
                candidate: names.get(r.try_get(2)?),
            };
            t.insert(key, r.try_get(3)?);
        }
        for r in q(
            &mut tx,
            "SELECT election_id, age_band, gender, candidate_id, votes FROM results_demographic WHERE engine = $1",
        )? {
            let Some(age_band) = AgeBand::parse(r.try_get(1)?) else {
                continue;
            };
            let key = TallyKey::Demographic {
                election: names.get(r.try_get(0)?),
                age_band,
                gender: Gender::parse(r.try_get(2)?),
                candidate: names.get(r.try_get(3)?),
            };
            t.insert(key, r.try_get(4)?);
        }
        for r in q(&mut tx, "SELECT election_id, minute, candidate_id, votes FROM results_minute WHERE engine = $1")? {
            let key = TallyKey::Minute {
                election: names.get(r.try_get(0)?),
                minute: r.try_get(1)?,
                candidate: names.get(r.try_get(2)?),
            };
            t.insert(key, r.try_get(3)?);
        }
        for r in q(&mut tx, "SELECT election_id, late_votes, max_cast_at FROM results_election WHERE engine = $1")? {
            let election = names.get(r.try_get(0)?);
            t.insert(
                TallyKey::Late {
                    election: election.clone(),
                },
                r.try_get(1)?,
            );
            if let Some(max) = r.try_get::<_, Option<i64>>(2)? {
                t.insert(TallyKey::MaxCastAt { election }, max);
            }
        }
        let position = match tx.query_opt("SELECT position FROM agg_progress WHERE engine = $1", &[&engine])? {
            Some(r) => r.try_get(0)?,
            None => 0,
        };
        tx.commit()?;
        Ok((t, position))
    })
}

pub(super) fn results(
    store: &mut PgStore,
    election_id: &str,
    engine: &str,
) -> Result<Results, StoreError> {
    let entry = store
        .elections()?
        .into_iter()
        .find(|e| e.election.election_id == election_id)
        .ok_or_else(|| StoreError::UnknownElection(election_id.to_string()))?;
    let mut res = Results::empty(entry.election, &entry.candidates);
    store.with(|c| {
        // One snapshot: every figure is consistent with every other.
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        res.registered_voters = tx
            .query_one("SELECT voters FROM registry_stats WHERE id = 1", &[])?
            .try_get(0)?;
        for r in tx.query(
            "SELECT outcome, n FROM ballot_counts WHERE election_id = $1",
            &[&election_id],
        )? {
            res.add_ballot_count(r.try_get(0)?, r.try_get(1)?);
        }
        let args: [&(dyn postgres::types::ToSql + Sync); 2] = [&engine, &election_id];
        let mut totals: HashMap<String, i64> = HashMap::new();
        for r in tx.query(
            "SELECT candidate_id, votes FROM results_candidate WHERE engine = $1 AND election_id = $2",
            &args,
        )? {
            totals.insert(r.try_get(0)?, r.try_get(1)?);
        }
        res.set_candidate_totals(&totals);
        for r in tx.query(
            "SELECT state, candidate_id, votes FROM results_state WHERE engine = $1 AND election_id = $2
             ORDER BY state COLLATE \"C\"",
            &args,
        )? {
            res.add_state_votes(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        }
        res.demographics = tx
            .query(
                "SELECT age_band, gender, candidate_id, votes FROM results_demographic
                 WHERE engine = $1 AND election_id = $2
                 ORDER BY age_band COLLATE \"C\", gender COLLATE \"C\", candidate_id COLLATE \"C\"",
                &args,
            )?
            .iter()
            .map(|r: &Row| {
                Ok(DemographicTally {
                    age_band: r.try_get(0)?,
                    gender: r.try_get(1)?,
                    candidate_id: r.try_get(2)?,
                    votes: r.try_get(3)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()?;
        res.timeline = tx
            .query(
                "SELECT minute, candidate_id, votes FROM results_minute
                 WHERE engine = $1 AND election_id = $2 ORDER BY minute, candidate_id COLLATE \"C\"",
                &args,
            )?
            .iter()
            .map(|r: &Row| {
                Ok(MinuteTally {
                    minute: format_voting_time(r.try_get(0)?),
                    candidate_id: r.try_get(1)?,
                    votes: r.try_get(2)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()?;
        res.late_votes = match tx.query_opt(
            "SELECT late_votes FROM results_election WHERE engine = $1 AND election_id = $2",
            &args,
        )? {
            Some(r) => r.try_get(0)?,
            None => 0,
        };
        // As in SQLite (`sqlite/read.rs`, TALLIED_TO).
        res.tallied_to = match tx.query_opt(
            "SELECT COALESCE((SELECT position FROM agg_progress WHERE engine = $1), 0)
             WHERE NOT EXISTS (SELECT 1 FROM agg_offsets WHERE engine = $1)",
            &[&engine],
        )? {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        };
        tx.commit()?;
        Ok(())
    })?;
    Ok(res)
}

pub(super) fn recount(store: &mut PgStore, election_id: &str) -> Result<Tallies, StoreError> {
    store.with(|c| {
        let election: Arc<str> = Arc::from(election_id);
        let mut names = Interner::default();
        let rows = c.query(
            "SELECT v.candidate_id, r.address_state, r.registered_age, r.gender, v.cast_at / 60000, COUNT(*)
             FROM votes v JOIN voters r ON r.voter_no = v.voter_no
             WHERE v.election_id = $1
             GROUP BY 1, 2, 3, 4, 5",
            &[&election_id],
        )?;
        let mut t = Tallies::default();
        for r in rows {
            let candidate = names.get(r.try_get(0)?);
            let state = names.get(r.try_get(1)?);
            let age = age_of(r.try_get(2)?);
            let gender = Gender::parse(r.try_get(3)?);
            let minute: i64 = r.try_get(4)?;
            let n: i64 = r.try_get(5)?;
            t.add_recounted(
                &election,
                candidate,
                state,
                AgeBand::of_age(age.min(200)),
                gender,
                minute * crate::tally::MINUTE_MS,
                n,
            );
        }
        Ok(t)
    })
}
