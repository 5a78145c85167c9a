//! `votestream bench`: measures each stage of the embedded shape and the
//! whole pipeline on this machine, and prints one table.
//!
//! Every figure comes from a real run against a fresh SQLite file with the
//! same settings `run` uses (WAL, synchronous = FULL), beside the raw rate of
//! inserting the same rows into a comparable table, so the pipeline's share
//! of that ceiling is visible. [`postgres`] is the same for a PostgreSQL
//! store (`votestream bench --store postgres://…`). Each shape also returns
//! its goals as data ([`goals`]), for the summary of repeated runs.

pub mod alerts;
pub mod at;
pub(crate) mod cpu;
pub mod desk;
pub mod goals;
pub mod http;
pub mod kafka;
pub mod postgres;
mod viewers;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rusqlite::{params, Connection};

use crate::aggregate::BUILTIN;
use crate::generate::{self, DEFAULT_ELECTION_ID};
use crate::pipeline::{self, RunConfig};
use crate::process::{Processor, Registry, MAX_BATCH};
use crate::simulate::{Rate, SimConfig, Simulation};
use crate::stats::Stats;
use crate::store::{self, StoreUrl};
use goals::{Goal, Report, Target};

/// What end to end must reach as a share of the storage's raw insert rate.
pub(crate) const STORE_SHARE_PERCENT: f64 = 75.0;
/// Freshness p99 at a steady load, and the embedded shape's at full speed.
pub(crate) const FRESH_P99_MS: f64 = 250.0;
/// How often the freshness probe reads the results: a read can only come
/// late, so this adds at most 10 ms to what is measured. (Every 2 ms, a read
/// of all the results 125 times as often as the dashboard's own, took a
/// fifth of the Kafka shape's end-to-end rate on 2 cores.)
const PROBE_EVERY: Duration = Duration::from_millis(10);

pub(crate) struct Row {
    pub(crate) what: String,
    pub(crate) figure: String,
    pub(crate) note: String,
}

pub fn run(voters: u64, dir: &Path, progress: bool) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    let registry_db = dir.join("registry.db");
    remove_db(&registry_db);

    // 1. Registry generation.
    let url = sqlite_url(&registry_db);
    let mut st = store::open(&url)?;
    let t = Instant::now();
    generate::ensure_registry(&mut *st, DEFAULT_ELECTION_ID, 42, voters, progress)?;
    let secs = t.elapsed().as_secs_f64();
    drop(st);
    rows.push(Row {
        what: format!("generate {voters} voters into SQLite"),
        figure: format!("{:.2} s", secs),
        note: format!("{:.0} voters/s (target: 1M in ≤ 5 s)", voters as f64 / secs),
    });

    // 2. The processor alone: ballots already in memory, validated and recorded.
    let proc_db = dir.join("process.db");
    copy_db(&registry_db, &proc_db)?;
    let (ballots, votes) = processing_rate(&sqlite_url(&proc_db))?;
    rows.push(ballots);

    // 3. The whole pipeline at full speed, with nothing watching it.
    let e2e_db = dir.join("e2e.db");
    copy_db(&registry_db, &e2e_db)?;
    let summary = pipeline::run(bench_config(
        &sqlite_url(&e2e_db),
        voters,
        Rate::Max,
        progress,
    )?)?;
    let secs = summary.elapsed.as_secs_f64();
    let e2e_votes = summary.results.accepted as f64 / secs;
    rows.push(Row {
        what: format!("end to end, durable, {voters}-voter registry, rate max"),
        figure: format!("{:.0} votes/s", e2e_votes),
        note: format!(
            "{} ballots ({} votes) in {:.2} s, {:.0} ballots/s (target ≥ 300k votes/s)",
            summary.sent,
            summary.results.accepted,
            secs,
            summary.sent as f64 / secs
        ),
    });

    // The same run again, with a reader polling the results every 2 ms.
    let fresh_db = dir.join("fresh.db");
    copy_db(&registry_db, &fresh_db)?;
    let stats = Arc::new(Stats::default());
    stats.track_commits.store(true, Relaxed);
    let (_, fresh_max) = with_freshness_probe(&sqlite_url(&fresh_db), stats, |url, stats| {
        pipeline::run_with_stats(bench_config(url, voters, Rate::Max, progress)?, stats)
    })?;
    let (row, goal) = freshness("at rate max", &fresh_max, FRESH_P99_MS);
    rows.push(row);
    goals.push(goal);

    // 4. Freshness under a steady live load.
    let live_db = dir.join("live.db");
    copy_db(&registry_db, &live_db)?;
    let live_rate = 20_000;
    let live_voters = voters.min(100_000);
    let stats = Arc::new(Stats::default());
    stats.track_commits.store(true, Relaxed);
    let (_, fresh_live) = with_freshness_probe(&sqlite_url(&live_db), stats, |url, stats| {
        let mut cfg = bench_config(url, voters, Rate::PerSecond(live_rate), progress)?;
        cfg.sim.turnout = live_voters as f64 / voters as f64;
        pipeline::run_with_stats(cfg, stats)
    })?;
    let (row, goal) = freshness(
        &format!("at {live_rate} ballots/s"),
        &fresh_live,
        FRESH_P99_MS,
    );
    rows.push(row);
    goals.push(goal);

    // 5. The ceiling: the same vote rows straight into a comparable table.
    let e2e_rows = vote_rows(&sqlite_url(&e2e_db))?;
    let raw = raw_insert_rate(&e2e_rows, &dir.join("raw.db"), false)?;
    rows.push(Row {
        what: "raw SQLite insert of the same vote rows".into(),
        figure: format!("{:.0} rows/s", raw),
        note: format!(
            "same table, index, batch size and pragmas; pipeline end to end = {:.0}% of it, processor = {:.0}%",
            100.0 * e2e_votes / raw,
            100.0 * votes / raw
        ),
    });
    let with_ids = raw_insert_rate(&e2e_rows, &dir.join("raw_ids.db"), true)?;
    rows.push(Row {
        what: "raw SQLite insert of the vote rows and their ballot ids".into(),
        figure: format!("{:.0} rows/s", with_ids),
        note: format!(
            "as above, each vote's id into ballot_ids too (the least \"one ballot id, one ballot\" writes); end to end = {:.0}% of it",
            100.0 * e2e_votes / with_ids
        ),
    });
    goals.push(Goal::share(
        "end to end as a share of raw SQLite insert",
        e2e_votes,
        raw,
        STORE_SHARE_PERCENT,
    ));

    for db in [
        "registry.db",
        "process.db",
        "e2e.db",
        "fresh.db",
        "live.db",
        "raw.db",
        "raw_ids.db",
    ] {
        remove_db(&dir.join(db));
    }
    let table = render(
        &format!(
            "votestream bench — embedded shape (SQLite, in-process bus), {} cores",
            cores()
        ),
        &rows,
    );
    Ok(Report { table, goals })
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

pub(crate) fn bench_config(
    url: &str,
    voters: u64,
    rate: Rate,
    progress: bool,
) -> anyhow::Result<RunConfig> {
    Ok(RunConfig {
        store_url: StoreUrl::parse(url)?,
        bus: crate::bus::BusKind::Memory,
        instance: "bench".into(),
        election_id: DEFAULT_ELECTION_ID.to_string(),
        voters,
        sim: SimConfig::default(),
        rate,
        until_done: true,
        simulate: true,
        http: crate::serve::HttpOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            tokens: crate::serve::Tokens {
                api: crate::serve::Tokens::random(),
                admin: crate::serve::Tokens::random(),
            },
            rate_limit: 0.0,
            rate_burst: 1.0,
            max_body: crate::edge::MAX_MESSAGE_BYTES,
            limits: crate::serve::Limits::default(),
        },
        http_workers: 1,
        addr_file: None,
        progress,
        // The pipeline's own rate; the desk's cost is measured apart.
        desk: false,
        alerts: false,
        alert_webhook: None,
    })
}

/// Runs `f` while a reader polls the results read model (what the API
/// serves) every [`PROBE_EVERY`]; each committed batch's freshness is the
/// time from its commit to the first read that shows it counted.
fn with_freshness_probe<T>(
    url: &str,
    stats: Arc<Stats>,
    f: impl FnOnce(&str, Arc<Stats>) -> anyhow::Result<T>,
) -> anyhow::Result<(T, Histogram<u64>)> {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen: Arc<std::sync::Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let probe = {
        let (url, done, seen) = (url.to_string(), done.clone(), seen.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut st = store::open(&url)?;
            let mut last = 0;
            while !done.load(Relaxed) {
                if let Ok(r) = st.results(DEFAULT_ELECTION_ID, BUILTIN) {
                    // Seqs are gap-free from 1 in a fresh store: counted == last seq visible.
                    if r.counted > last {
                        last = r.counted;
                        if let Ok(mut s) = seen.lock() {
                            s.push((last, Instant::now()));
                        }
                    }
                }
                std::thread::sleep(PROBE_EVERY);
            }
            Ok(())
        })
    };
    let out = f(url, stats.clone());
    done.store(true, Relaxed);
    probe
        .join()
        .map_err(|_| anyhow::anyhow!("probe panicked"))??;
    let out = out?;
    let mut hist = Histogram::<u64>::new(3)?;
    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let commits = stats
        .commits
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    for (seq, n, at) in commits.iter() {
        if let Some((_, visible)) = seen.iter().find(|(s, _)| s >= seq) {
            let ms = visible.saturating_duration_since(*at).as_micros() as u64;
            hist.record_n(ms.max(1), *n)?;
        }
    }
    Ok((out, hist))
}

/// The freshness row for a load (`at`: "at rate max") and its p99 goal.
fn freshness(at: &str, h: &Histogram<u64>, target_ms: f64) -> (Row, Goal) {
    let p99 = h.value_at_quantile(0.99) as f64 / 1000.0;
    let row = Row {
        what: format!("freshness {at}"),
        figure: format!(
            "p50 {:.0} ms, p99 {p99:.0} ms",
            h.value_at_quantile(0.5) as f64 / 1000.0,
        ),
        note: format!(
            "accepted (committed) → visible in the results read model; {} votes sampled (target p99 ≤ {target_ms:.0} ms)",
            h.len()
        ),
    };
    // An empty histogram reads p99 = 0, which would pass.
    let goal = Goal::new(
        format!("freshness p99 {at}"),
        p99,
        "ms",
        Target::AtMost(target_ms),
    )
    .only_if(!h.is_empty(), || "no votes sampled".into());
    (row, goal)
}

/// Validates and records every simulated ballot, in the processor's batch
/// size, with nothing else running. Returns the row and the votes/s.
fn processing_rate(url: &str) -> anyhow::Result<(Row, f64)> {
    let mut st = store::open(url)?;
    let sim = Simulation::load(&mut *st, DEFAULT_ELECTION_ID, &SimConfig::default())?;
    let processor = Processor::new(Registry::load(&mut *st)?);
    let now = crate::model::now_millis();
    let ballots: Vec<_> = (0..sim.len()).map(|i| sim.ballot(i, now)).collect();
    let n = ballots.len();
    let mut accepted = 0;
    let t = Instant::now();
    let mut it = ballots.into_iter();
    loop {
        let batch: Vec<_> = it.by_ref().take(MAX_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let r = st
            .record(processor.validate_batch(batch, now))
            .map_err(|(e, _)| e)?;
        accepted += r.votes.len();
    }
    let secs = t.elapsed().as_secs_f64();
    let votes = accepted as f64 / secs;
    Ok((
        Row {
            what: "processor alone (validate + record)".into(),
            figure: format!("{:.0} votes/s", votes),
            note: format!(
                "{n} ballots in {secs:.2} s, {:.0} ballots/s",
                n as f64 / secs
            ),
        },
        votes,
    ))
}

type VoteRow = (String, String, String, String, String, i64, i64, i64);

/// The vote rows of the SQLite store at `from`, in ledger order: what the
/// raw ceilings insert.
fn vote_rows(from: &str) -> anyhow::Result<Vec<VoteRow>> {
    let src = Connection::open(from.trim_start_matches("sqlite://"))?;
    let rows = src
        .prepare(
            "SELECT election_id, voter_id, candidate_id, voting_time, ballot_id, cast_at, election_no, voter_no
             FROM votes ORDER BY seq",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Inserts `rows` into a fresh table of the same shape at `to`, and with
/// `ids` each one's ballot id into `ballot_ids` too, in the same
/// transaction: the least any store keeping "one ballot id, one ballot"
/// writes.
fn raw_insert_rate(rows: &[VoteRow], to: &Path, ids: bool) -> anyhow::Result<f64> {
    remove_db(to);
    // The same schema and pragmas as the store (which checkpoints on a
    // thread of its own, so no checkpoint here slows the commits either).
    drop(store::open(&sqlite_url(to))?);
    let mut dst = Connection::open(to)?;
    dst.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -262144; PRAGMA wal_autocheckpoint = 0;")?;
    let t = Instant::now();
    for chunk in rows.chunks(MAX_BATCH) {
        let tx = dst.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO votes (election_id, voter_id, candidate_id, voting_time, ballot_id, cast_at,
                    election_no, voter_no) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut claim = tx.prepare_cached(
                "INSERT INTO ballot_ids (ballot_id, fingerprint) VALUES (?1, ?2)",
            )?;
            for r in chunk {
                stmt.execute(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7])?;
                if ids {
                    let print = crate::store::ids::content_fingerprint(&r.0, &r.1, &r.2);
                    claim.execute(params![r.4, print])?;
                }
            }
        }
        tx.commit()?;
    }
    Ok(rows.len() as f64 / t.elapsed().as_secs_f64())
}

pub(crate) fn render(title: &str, rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.what.chars().count())
        .max()
        .unwrap_or(0);
    let f = rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!("{title}\n\n");
    for r in rows {
        let _ = writeln!(out, "{:<w$}  {:>f$}  {}", r.what, r.figure, r.note);
    }
    out
}

pub(crate) fn sqlite_url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

pub(crate) fn copy_db(from: &Path, to: &Path) -> anyhow::Result<()> {
    remove_db(to);
    // A checkpointed copy: open, checkpoint, copy the main file.
    Connection::open(from)?.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    std::fs::copy(from, to)?;
    Ok(())
}

pub(crate) fn remove_db(p: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}
