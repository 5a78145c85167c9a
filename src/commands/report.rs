//! `results`, `audit` (a recount against the stored tallies) and `bench`
//! (the embedded, PostgreSQL, Kafka and HTTP shapes).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use votestream::aggregate::BUILTIN;
use votestream::bench::{self, goals};
use votestream::bus::BusKind;
use votestream::model::{format_voting_time, Millis};
use votestream::results::At;
use votestream::shown::ShownAt;
use votestream::store::{self, StoreKind, StoreUrl};

use crate::Common;

#[derive(Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "VOTESTREAM_JSON")]
    json: bool,
    /// Results as of a moment of the night: a time (RFC 3339, or
    /// `YYYY-MM-DD HH:MM:SS` in UTC): the votes counted until the first vote
    /// cast after it. Recounted from the votes ledger, e.g.
    /// `votestream results --at 2026-11-03T21:00:00Z`.
    #[arg(long, env = "VOTESTREAM_AT", value_parser = parse_time_at, conflicts_with = "at_seq")]
    at: Option<At>,
    /// Results as of a position in the votes ledger (`votes.seq`): the
    /// votes recorded up to position N, e.g. `votestream results --at-seq 50000`.
    #[arg(long, env = "VOTESTREAM_AT_SEQ")]
    at_seq: Option<u64>,
    /// What the dashboard and the results API showed at a time (RFC 3339,
    /// or `YYYY-MM-DD HH:MM:SS` in UTC): the last results `serve` or `run`
    /// published at or before it, with when they were published and the
    /// ledger position they are exact to, e.g.
    /// `votestream results --shown-at 2026-11-03T21:14:00Z`. Published
    /// results trail the ledger, so this differs from `--at`.
    #[arg(long, env = "VOTESTREAM_SHOWN_AT", value_parser = votestream::shown::parse_at, conflicts_with_all = ["at", "at_seq"])]
    shown_at: Option<Millis>,
}

fn parse_time_at(s: &str) -> Result<At, String> {
    match At::parse(s) {
        Ok(at @ At::Time(_)) => Ok(at),
        Ok(At::Seq(_)) => Err("a time, not a number (a ledger position is --at-seq)".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, env = "VOTESTREAM_BENCH_VOTERS", default_value_t = 1_000_000, value_parser = super::range::at_least_one_u64, allow_negative_numbers = true)]
    voters: u64,
    /// A kafka:// URL (with a postgres:// --store) benchmarks the
    /// distributed shape: exactly-once end to end beside Kafka's
    /// ProducerPerformance and PostgreSQL's COPY (scratch topics and databases).
    #[arg(long, env = "VOTESTREAM_BUS", default_value = "memory")]
    bus: String,
    /// A postgres:// URL benchmarks a PostgreSQL store (scratch databases on
    /// that server, dropped afterwards); otherwise the embedded SQLite shape.
    #[arg(long, env = "VOTESTREAM_STORE")]
    store: Option<String>,
    /// Where to put the scratch databases (removed afterwards).
    #[arg(long, env = "VOTESTREAM_BENCH_DIR", default_value = "target/bench")]
    dir: PathBuf,
    /// Measure the race desk instead: its cost to the embedded pipeline,
    /// and the deciding vote → call latency over SSE (on the bus and store
    /// given: `--bus kafka://… --store postgres://…` for the Kafka shape).
    #[arg(long, env = "VOTESTREAM_BENCH_DESK")]
    desk: bool,
    /// Measure the alerts stage instead: its cost to the embedded pipeline
    /// (alternated runs with and without it) and its own reading rate.
    #[arg(long, env = "VOTESTREAM_BENCH_ALERTS")]
    alerts: bool,
    /// Measure the HTTP side instead: ballot intake and SSE fan-out.
    #[arg(long, env = "VOTESTREAM_BENCH_HTTP")]
    http: bool,
    /// Measure results as of a moment instead, on the existing store
    /// --store names (its own night: make a 10M-vote one with `run`), e.g.
    /// `votestream bench --time-travel --store sqlite://night.db`.
    #[arg(long, env = "VOTESTREAM_BENCH_TIME_TRAVEL", requires = "store")]
    time_travel: bool,
    /// With --time-travel: random positions (and as many times) queried.
    #[arg(long, env = "VOTESTREAM_BENCH_QUERIES", default_value_t = 1000, value_parser = super::range::at_least_one_u64, allow_negative_numbers = true)]
    queries: u64,
    /// With --time-travel: the election.
    #[arg(long, env = "VOTESTREAM_ELECTION", default_value = "general-2026")]
    election: String,
    /// With --http: concurrent keep-alive connections casting ballots.
    #[arg(long, env = "VOTESTREAM_BENCH_CONNECTIONS", default_value_t = 256, value_parser = super::range::at_least_one, allow_negative_numbers = true)]
    connections: usize,
    /// With --http: concurrent SSE viewers.
    #[arg(long, env = "VOTESTREAM_BENCH_VIEWERS", default_value_t = 5000)]
    viewers: usize,
    /// With --http: the viewers as streams of HTTP/2 connections (prior
    /// knowledge, no TLS), this many a connection (at most the 256 the
    /// server allows), as a proxy in front of the server would carry them;
    /// 0: one socket each (HTTP/1.1).
    #[arg(long, env = "VOTESTREAM_BENCH_H2_STREAMS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    h2_streams: u16,
    /// With --http: seconds per measurement.
    #[arg(long, env = "VOTESTREAM_BENCH_SECONDS", default_value_t = 10, value_parser = super::range::at_least_one_u64, allow_negative_numbers = true)]
    seconds: u64,
    /// Run the shape N times back to back, each on fresh scratch databases
    /// and topics, printing each run's table, then one summary of the goals:
    /// every run's value, min / median / max, spread and in how many runs
    /// each was met, e.g. `votestream bench --repeat 5`. The embedded,
    /// PostgreSQL, Kafka and --http shapes; --desk, --alerts and
    /// --time-travel run once whatever N (--alerts alternates its own runs).
    #[arg(long, env = "VOTESTREAM_BENCH_REPEAT", default_value_t = 1, value_parser = super::range::at_least_one, allow_negative_numbers = true)]
    repeat: usize,
}

pub fn results(a: ResultsArgs) -> anyhow::Result<ExitCode> {
    let mut st = open_existing(&a.common)?;
    if let Some(at) = a.shown_at {
        return shown_at(&mut *st, &a.common.election, at, a.json);
    }
    let at = match (a.at, a.at_seq) {
        (Some(at), _) => Some(at),
        (None, Some(n)) => Some(At::Seq(i64::try_from(n).context("--at-seq is too large")?)),
        (None, None) => None,
    };
    let r = match at {
        Some(at) => st.results_at(&a.common.election, at)?,
        None => st.results(&a.common.election, BUILTIN)?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `results --shown-at`: the last published results at or before `at`.
fn shown_at(
    st: &mut dyn store::Store,
    election: &str,
    at: Millis,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !st
        .elections()?
        .iter()
        .any(|e| e.election.election_id == election)
    {
        anyhow::bail!("no election {election} in the store");
    }
    let answer = ShownAt {
        election_id: election.to_string(),
        at,
        shown: st.shown_results(election, at, 1)?.pop(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let when = |t: Millis| format_voting_time(t) + " UTC";
    let Some(s) = &answer.shown else {
        println!(
            "nothing was shown for election {election} at or before {}: no published results are kept from before then",
            when(at)
        );
        return Ok(ExitCode::SUCCESS);
    };
    let position = match s.seq {
        Some(seq) => format!("exact to ledger position {seq}"),
        None => "at no known ledger position".to_string(),
    };
    let f = &s.figures;
    println!(
        "shown for election {election} at {}: published {}, {position}",
        when(at),
        when(s.shown_at)
    );
    println!(
        "  accepted {}  rejected {}  counted {}",
        f.accepted, f.rejected, f.counted
    );
    for (reason, n) in &f.rejected_by_reason {
        println!("  rejected {reason}: {n}");
    }
    for (candidate, n) in &f.candidates {
        println!("  {candidate}: {n}");
    }
    for state in &f.states {
        println!("  {}: {}", state.state, state.count);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(a: AuditArgs) -> anyhow::Result<ExitCode> {
    let mut st = open_existing(&a.common)?;
    let report = votestream::audit::audit(&mut *st, &a.common.election, BUILTIN)?;
    if report.is_clean() {
        println!(
            "audit passed: {} votes in election {}; every tally matches a recount of the votes table",
            report.votes, report.election_id
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("audit FAILED for election {}:", report.election_id);
    for d in &report.differences {
        println!("  {d}");
    }
    Ok(ExitCode::from(1))
}

/// `results` and `audit` only read: they open the store read-only and never
/// create one (a mistyped path is an error, not an empty election).
fn open_existing(common: &Common) -> anyhow::Result<Box<dyn store::Store>> {
    let opening = || format!("opening {} read-only", common.store);
    let url = common.store_url().with_context(opening)?;
    if let StoreKind::SqliteFile(path) = url.kind() {
        if !std::path::Path::new(path).exists() {
            anyhow::bail!("no store at {path}: `results` and `audit` read an existing store and never create one");
        }
    }
    url.open_read_only().with_context(opening)
}

pub fn bench(a: BenchArgs, progress: bool) -> anyhow::Result<ExitCode> {
    // --time-travel requires --store, so the flag alone says which runs.
    if (a.time_travel || a.alerts || a.desk) && a.repeat > 1 {
        eprintln!("note: --repeat applies to the shapes with goals; this measurement runs once");
    }
    let once = if let (true, Some(url)) = (a.time_travel, &a.store) {
        Some(bench::at::run(url, &a.election, a.queries)?)
    } else if a.alerts {
        Some(bench::alerts::run(a.voters, &a.dir)?)
    } else if a.desk {
        Some(bench::desk::run(
            a.voters,
            &a.bus,
            a.store.as_deref(),
            &a.dir,
        )?)
    } else {
        None
    };
    if let Some(report) = once {
        print!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    let shape = Shape::pick(&a)?;
    let mut runs = Vec::new();
    for i in 1..=a.repeat {
        let report = shape.run(&a, progress)?;
        if a.repeat > 1 {
            println!("run {i} of {}\n", a.repeat);
        }
        println!("{}", report.table);
        runs.push(report.goals);
    }
    let title = format!(
        "goals, {} shape, {}",
        shape.name(),
        goals::count_runs(a.repeat)
    );
    print!("{}", goals::render_summary(&title, &runs));
    Ok(ExitCode::SUCCESS)
}

/// The shapes that check goals, as the flags pick them.
enum Shape {
    /// The server URL of the PostgreSQL store beside the Kafka bus.
    Kafka(String),
    Postgres(String),
    Http,
    Embedded,
}

impl Shape {
    fn pick(a: &BenchArgs) -> anyhow::Result<Shape> {
        // Only a PostgreSQL --store changes what is benchmarked; any other is
        // ignored (the embedded benchmark makes its own scratch files).
        let pg = a
            .store
            .as_deref()
            .and_then(|u| StoreUrl::parse(u).ok())
            .filter(|u| *u.kind() == StoreKind::Postgres)
            .map(|u| u.as_str().to_string());
        Ok(if let BusKind::Kafka(_) = BusKind::parse(&a.bus)? {
            Shape::Kafka(pg.context("--bus kafka://… needs --store postgres://…")?)
        } else if let Some(url) = pg {
            Shape::Postgres(url)
        } else if a.http {
            Shape::Http
        } else {
            Shape::Embedded
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Shape::Kafka(_) => "Kafka + PostgreSQL",
            Shape::Postgres(_) => "PostgreSQL store",
            Shape::Http => "HTTP",
            Shape::Embedded => "embedded",
        }
    }

    fn run(&self, a: &BenchArgs, progress: bool) -> anyhow::Result<goals::Report> {
        match self {
            Shape::Kafka(pg) => bench::kafka::run(&a.bus, pg, a.voters, progress),
            Shape::Postgres(url) => bench::postgres::run(url, a.voters, progress),
            Shape::Http => {
                let cfg = bench::http::HttpBench {
                    voters: a.voters,
                    connections: a.connections,
                    viewers: a.viewers,
                    h2_streams: usize::from(a.h2_streams),
                    seconds: a.seconds,
                };
                bench::http::run(&cfg, &a.dir)
            }
            Shape::Embedded => bench::run(a.voters, &a.dir, progress),
        }
    }
}
