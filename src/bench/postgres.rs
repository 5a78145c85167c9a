//! `votestream bench --store postgres://…`: the stages against a PostgreSQL
//! server, each in a scratch database (created from a registry template,
//! dropped at the end), beside PostgreSQL's raw binary COPY of the same vote
//! rows into a comparable table, measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};

use super::goals::{Goal, Report};
use super::{bench_config, cpu, processing_rate, render, Row, STORE_SHARE_PERCENT};
use crate::generate::{self, DEFAULT_ELECTION_ID};
use crate::pipeline;
use crate::process::MAX_BATCH;
use crate::simulate::Rate;
use crate::stats::Stats;
use crate::store;

const REGISTRY_DB: &str = "votestream_bench_registry";
const PROCESS_DB: &str = "votestream_bench_process";
const E2E_DB: &str = "votestream_bench_e2e";

pub fn run(server_url: &str, voters: u64, progress: bool) -> anyhow::Result<Report> {
    let mut admin = Client::connect(server_url, NoTls)
        .with_context(|| format!("connecting to {server_url}"))?;
    let version: String = admin.query_one("SHOW server_version", &[])?.get(0);
    let out = measure(&mut admin, server_url, voters, progress);
    for db in [REGISTRY_DB, PROCESS_DB, E2E_DB] {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    }
    let (rows, goals) = out?;
    let table = render(
        &format!(
            "votestream bench — PostgreSQL {version} store, in-process bus, {} cores",
            super::cores()
        ),
        &rows,
    );
    Ok(Report { table, goals })
}

fn measure(
    admin: &mut Client,
    server_url: &str,
    voters: u64,
    progress: bool,
) -> anyhow::Result<(Vec<Row>, Vec<Goal>)> {
    let mut rows = Vec::new();
    fresh(admin, REGISTRY_DB, None)?;
    let registry_url = database_url(server_url, REGISTRY_DB);
    let mut st = store::open(&registry_url)?;
    let t = Instant::now();
    generate::ensure_registry(&mut *st, DEFAULT_ELECTION_ID, 42, voters, progress)?;
    let secs = t.elapsed().as_secs_f64();
    drop(st);
    rows.push(Row {
        what: format!("generate {voters} voters into PostgreSQL"),
        figure: format!("{secs:.2} s"),
        note: format!(
            "{:.0} voters/s, binary COPY, generated while written (target: 1M in ≤ 10 s)",
            voters as f64 / secs
        ),
    });

    fresh(admin, PROCESS_DB, Some(REGISTRY_DB))?;
    let (row, votes) = processing_rate(&database_url(server_url, PROCESS_DB))?;
    rows.push(row);

    fresh(admin, E2E_DB, Some(REGISTRY_DB))?;
    let e2e_url = database_url(server_url, E2E_DB);
    let cfg = bench_config(&e2e_url, voters, Rate::Max, progress)?;
    let stats = Arc::new(Stats::default());
    let (summary, e2e_cpu) =
        cpu::from_first_ballot(&stats.clone(), || pipeline::run_with_stats(cfg, stats));
    let summary = summary?;
    let secs = summary.elapsed.as_secs_f64();
    let e2e = summary.results.accepted as f64 / secs;
    rows.push(Row {
        what: format!("end to end, durable, {voters}-voter registry, rate max"),
        figure: format!("{e2e:.0} votes/s"),
        note: format!(
            "{} ballots ({} votes) in {secs:.2} s, {:.0} ballots/s (target ≥ 150k votes/s)",
            summary.sent,
            summary.results.accepted,
            summary.sent as f64 / secs
        ),
    });

    let mut e2e_rows = VoteRows::read(&e2e_url)?;
    let raw = e2e_rows.copy_rate(false)?;
    rows.push(Row {
        what: "raw PostgreSQL binary COPY of the same vote rows".into(),
        figure: format!("{raw:.0} rows/s"),
        note: format!(
            "same columns and indexes, {MAX_BATCH} rows per committed COPY; end to end = {:.0}% of it, processor = {:.0}%",
            100.0 * e2e / raw,
            100.0 * votes / raw
        ),
    });
    let before = cpu::Snapshot::take();
    let with_ids = e2e_rows.copy_rate(true)?;
    let ids_cpu = before.until(&cpu::Snapshot::take());
    rows.push(Row {
        what: "raw binary COPY of the vote rows and their ballot ids".into(),
        figure: format!("{with_ids:.0} rows/s"),
        note: format!(
            "as above, each vote's id into a copy of ballot_ids too (the least \"one ballot id, one ballot\" writes); end to end = {:.0}% of it",
            100.0 * e2e / with_ids
        ),
    });
    let n = summary.results.accepted as f64;
    if let Some(e2e_cpu) = e2e_cpu {
        rows.push(e2e_cpu.vote_row(
            n,
            &format!(
                "; the COPY of rows and ids above: {:.1} µs a row ({})",
                ids_cpu.busy_us(n),
                ids_cpu.per(n, "programs run")
            ),
        ));
    }
    let goal = Goal::share(
        "end to end as a share of binary COPY",
        e2e,
        raw,
        STORE_SHARE_PERCENT,
    );
    Ok((rows, vec![goal]))
}

/// Creates `db` afresh, empty or as a copy of `template`.
pub(super) fn fresh(admin: &mut Client, db: &str, template: Option<&str>) -> anyhow::Result<()> {
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
    let Some(template) = template else {
        admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
        return Ok(());
    };
    // A store that was just dropped may take a moment to disconnect, and a
    // template must have no connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin.batch_execute(&format!(
            "CREATE DATABASE {db} TEMPLATE {template} STRATEGY = FILE_COPY"
        )) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "template busy; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e).context(format!("copying {template} into {db}")),
        }
    }
}

/// Does now the upkeep a phase left behind (autovacuum of the tables it
/// filled, a checkpoint of what it wrote), so that the next phase measures
/// itself: the e2e phase's 240,000 votes were vacuumed in the middle of
/// the 20,000 ballots/s phase, and its commits waited on the disk.
pub(super) fn settle(server: &str, db: &str) -> anyhow::Result<()> {
    let mut c = Client::connect(&database_url(server, db), NoTls)
        .with_context(|| format!("connecting to {db}"))?;
    c.batch_execute("VACUUM ANALYZE")?;
    c.batch_execute("CHECKPOINT")?;
    Ok(())
}

/// The server URL with its database replaced.
pub(super) fn database_url(server: &str, db: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

type VoteRow = (i64, String, String, String, String, String, i64, i64, i64);

/// The vote rows of a PostgreSQL store, in ledger order, read once for the
/// raw ceilings, with the connection they are copied back through.
pub(super) struct VoteRows {
    c: Client,
    rows: Vec<VoteRow>,
}

impl VoteRows {
    pub(super) fn read(url: &str) -> anyhow::Result<VoteRows> {
        let mut c = Client::connect(url, NoTls)?;
        let rows = c
            .query(
                "SELECT seq, election_id, voter_id, candidate_id, voting_time, ballot_id, cast_at,
                    election_no, voter_no FROM votes ORDER BY seq",
                &[],
            )?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                    r.get(8),
                )
            })
            .collect();
        Ok(VoteRows { c, rows })
    }

    /// Copies the rows into a fresh table of the same shape with binary
    /// COPY, one committed transaction per processor-sized batch; with
    /// `ids`, each one's ballot id into a copy of `ballot_ids` too, in the
    /// same transaction: the least any store keeping "one ballot id, one
    /// ballot" writes.
    pub(super) fn copy_rate(&mut self, ids: bool) -> anyhow::Result<f64> {
        let VoteRows { c, rows } = self;
        c.batch_execute(
            "DROP TABLE IF EXISTS raw_votes; CREATE TABLE raw_votes (LIKE votes INCLUDING ALL);
             DROP TABLE IF EXISTS raw_ids; CREATE TABLE raw_ids (LIKE ballot_ids INCLUDING ALL)",
        )?;
        let t = Instant::now();
        for chunk in rows.chunks(MAX_BATCH) {
            let mut tx = c.transaction()?;
            let sink = tx.copy_in(
                "COPY raw_votes (seq, election_id, voter_id, candidate_id, voting_time, ballot_id,
                    cast_at, election_no, voter_no) FROM STDIN BINARY",
            )?;
            let mut w = BinaryCopyInWriter::new(sink, &store::VOTE_COPY_TYPES);
            for r in chunk {
                w.write(&[&r.0, &r.1, &r.2, &r.3, &r.4, &r.5, &r.6, &r.7, &r.8])?;
            }
            w.finish()?;
            if ids {
                let sink = tx.copy_in("COPY raw_ids (ballot_id, fingerprint) FROM STDIN BINARY")?;
                let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8]);
                for r in chunk {
                    let print = crate::store::ids::content_fingerprint(&r.1, &r.2, &r.3);
                    w.write(&[&r.5, &print])?;
                }
                w.finish()?;
            }
            tx.commit()?;
        }
        let rate = rows.len() as f64 / t.elapsed().as_secs_f64();
        c.batch_execute("DROP TABLE raw_votes; DROP TABLE raw_ids")?;
        Ok(rate)
    }
}
