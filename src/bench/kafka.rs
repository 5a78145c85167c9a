//! `votestream bench --bus kafka://… --store postgres://…`: the distributed
//! shape, exactly-once, end to end (simulator → `ballots` → processor →
//! store + `votes_topic` → aggregator → results), beside the raw ceilings
//! measured in the same run against the same servers: Kafka's own
//! ProducerPerformance (records the size of a `votes_topic` message) and
//! PostgreSQL's binary COPY of the same vote rows. Scratch databases and
//! topics (a fresh prefix) are removed at the end.

use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use anyhow::Context;
use postgres::{Client, NoTls};

use super::goals::{Goal, Report};
use super::postgres::{database_url, fresh, settle, VoteRows};
use super::{bench_config, cpu, freshness, render, with_freshness_probe, Row, FRESH_P99_MS};
use crate::bus::kafka::KafkaBus;
use crate::bus::BusKind;
use crate::generate::{self, DEFAULT_ELECTION_ID};
use crate::pipeline;
use crate::simulate::Rate;
use crate::stats::Stats;
use crate::store;

const REGISTRY_DB: &str = "votestream_bench_kafka_registry";
const E2E_DB: &str = "votestream_bench_kafka_e2e";
const LIVE_DB: &str = "votestream_bench_kafka_live";
/// Records ProducerPerformance sends.
const RAW_RECORDS: u64 = 1_000_000;
/// End to end, exactly-once, as a share of ProducerPerformance.
const PRODUCER_SHARE_PERCENT: f64 = 50.0;
const SHARE_GOAL: &str = "exactly-once end to end as a share of ProducerPerformance";
/// Freshness p99 at full speed on this shape; at a steady load it is held
/// to the same goal as the embedded shape.
const FRESH_MAX_P99_MS: f64 = 1000.0;

pub fn run(bus_url: &str, server_url: &str, voters: u64, progress: bool) -> anyhow::Result<Report> {
    let base = KafkaBus::parse(bus_url)?;
    let mut admin = Client::connect(server_url, NoTls)
        .with_context(|| format!("connecting to {server_url}"))?;
    let version: String = admin.query_one("SHOW server_version", &[])?.get(0);
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let buses: Vec<KafkaBus> = ["e2e", "live"]
        .iter()
        .map(|what| KafkaBus {
            prefix: format!("{}bench-{run_id}-{what}.", base.prefix),
            ..base.clone()
        })
        .collect();
    let out = measure(&mut admin, server_url, &buses, voters, progress);
    for db in [REGISTRY_DB, E2E_DB, LIVE_DB] {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    }
    for bus in &buses {
        if let Err(e) = bus.delete_topics() {
            tracing::warn!(error = %e, prefix = bus.prefix, "removing the benchmark's topics");
        }
    }
    let (rows, goals) = out?;
    let table = render(
        &format!(
            "votestream bench — Kafka bus ({}), PostgreSQL {version} store, {} cores",
            base.bootstrap,
            super::cores()
        ),
        &rows,
    );
    Ok(Report { table, goals })
}

fn measure(
    admin: &mut Client,
    server_url: &str,
    buses: &[KafkaBus],
    voters: u64,
    progress: bool,
) -> anyhow::Result<(Vec<Row>, Vec<Goal>)> {
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    fresh(admin, REGISTRY_DB, None)?;
    let mut st = store::open(&database_url(server_url, REGISTRY_DB))?;
    generate::ensure_registry(&mut *st, DEFAULT_ELECTION_ID, 42, voters, progress)?;
    drop(st);
    settle(server_url, REGISTRY_DB)?;

    // 1. End to end at full speed, with a reader polling the results.
    fresh(admin, E2E_DB, Some(REGISTRY_DB))?;
    let e2e_url = database_url(server_url, E2E_DB);
    let stats = Arc::new(Stats::default());
    stats.track_commits.store(true, Relaxed);
    let mut spent = None;
    let (summary, fresh_max) = with_freshness_probe(&e2e_url, stats, |url, stats| {
        let mut cfg = bench_config(url, voters, Rate::Max, progress)?;
        cfg.bus = BusKind::Kafka(buses[0].clone());
        let (summary, cpu) =
            cpu::from_first_ballot(&stats.clone(), || pipeline::run_with_stats(cfg, stats));
        spent = cpu;
        summary
    })?;
    let secs = summary.elapsed.as_secs_f64();
    let e2e = summary.results.accepted as f64 / secs;
    rows.push(Row {
        what: format!("end to end, exactly-once, {voters}-voter registry, rate max"),
        figure: format!("{e2e:.0} votes/s"),
        note: format!(
            "{} ballots ({} votes) in {secs:.2} s: simulator → ballots → processor → PostgreSQL + votes_topic (one Kafka transaction per batch) → aggregator → results (target ≥ 100k votes/s)",
            summary.sent, summary.results.accepted
        ),
    });
    let (row, goal) = freshness("at rate max", &fresh_max, FRESH_MAX_P99_MS);
    rows.push(row);
    goals.push(goal);
    let e2e_cpu = spent.context("the end-to-end phase did not run")?;

    // 2. Freshness under a steady live load.
    settle(server_url, E2E_DB)?;
    fresh(admin, LIVE_DB, Some(REGISTRY_DB))?;
    let live_rate = 20_000;
    let live_voters = voters.min(200_000);
    let stats = Arc::new(Stats::default());
    stats.track_commits.store(true, Relaxed);
    let live_url = database_url(server_url, LIVE_DB);
    let (_, fresh_live) = with_freshness_probe(&live_url, stats, |url, stats| {
        let mut cfg = bench_config(url, voters, Rate::PerSecond(live_rate), progress)?;
        cfg.bus = BusKind::Kafka(buses[1].clone());
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

    // 3. The ceilings, on the same servers.
    let size = message_size(&e2e_url)?;
    let before = cpu::Snapshot::take();
    match producer_performance(&buses[0], size) {
        Ok((records, mb)) => {
            let pp_cpu = before.until(&cpu::Snapshot::take());
            rows.push(Row {
                what: format!("raw Kafka ProducerPerformance, {size}-byte records, acks=all"),
                figure: format!("{records:.0} records/s"),
                note: format!(
                    "{mb:.1} MB/s, {RAW_RECORDS} records, lz4, same broker; end to end = {:.0}% of it (target ≥ {PRODUCER_SHARE_PERCENT:.0}%)",
                    100.0 * e2e / records
                ),
            });
            rows.extend(cpu_rows(
                &e2e_cpu,
                summary.results.accepted as f64,
                &pp_cpu,
                records,
            ));
            goals.push(Goal::share(
                SHARE_GOAL,
                e2e,
                records,
                PRODUCER_SHARE_PERCENT,
            ));
        }
        Err(e) => {
            rows.push(Row {
                what: "raw Kafka ProducerPerformance".into(),
                figure: "not measured".into(),
                note: format!("{e:#}"),
            });
            // Still a line in the summary, so a missing ceiling is seen.
            goals.push(
                Goal::share(SHARE_GOAL, e2e, f64::NAN, PRODUCER_SHARE_PERCENT)
                    .only_if(false, || "ProducerPerformance not measured".into()),
            );
        }
    }
    let raw = VoteRows::read(&e2e_url)?.copy_rate(false)?;
    rows.push(Row {
        what: "raw PostgreSQL binary COPY of the same vote rows".into(),
        figure: format!("{raw:.0} rows/s"),
        note: format!("end to end = {:.0}% of it", 100.0 * e2e / raw),
    });
    Ok((rows, goals))
}

/// Whose CPU each vote of the end-to-end phase cost, beside each record of
/// ProducerPerformance, and what the goal's rate would leave each vote.
fn cpu_rows(e2e: &cpu::Spent, votes: f64, pp: &cpu::Spent, pp_rate: f64) -> Vec<Row> {
    let cores = super::cores();
    let at_goal = pp_rate * PRODUCER_SHARE_PERCENT / 100.0;
    vec![
        e2e.vote_row(
            votes,
            &format!(
                "; the freshness probe included; at {PRODUCER_SHARE_PERCENT:.0}% of ProducerPerformance ({at_goal:.0} votes/s) {cores} cores allow {:.1} µs a vote",
                cpu::budget_us(cores, at_goal)
            ),
        ),
        Row {
            what: "CPU a record, ProducerPerformance (whole machine)".into(),
            figure: format!("{:.1} µs", pp.busy_us(RAW_RECORDS as f64)),
            note: format!(
                "{} (over {:.1} s, the JVM's start included)",
                pp.per(RAW_RECORDS as f64, "ProducerPerformance JVM"),
                pp.wall
            ),
        },
    ]
}

/// The average size of a `votes_topic` message for this registry.
fn message_size(url: &str) -> anyhow::Result<usize> {
    let mut st = store::open(url)?;
    let nos: Vec<i64> = (1..=100).collect();
    let profiles = st.profiles(&nos)?;
    let elections = st.elections()?;
    let candidate = elections
        .first()
        .and_then(|e| e.candidates.first())
        .context("no candidate in the registry")?;
    let total: usize = profiles
        .iter()
        .map(|(no, voter)| {
            let vote = crate::model::Vote {
                seq: *no,
                ballot_id: format!("{no:032x}"),
                election_id: DEFAULT_ELECTION_ID.into(),
                voter_id: voter.voter_id.clone(),
                election_no: 1,
                voter_no: *no,
                candidate_id: candidate.candidate_id.as_str().into(),
                state: voter.address_state.as_str().into(),
                age_band: crate::model::AgeBand::A35_44,
                gender: voter.gender,
                cast_at: crate::model::now_millis(),
                source: None,
                client: None,
            };
            crate::bus::kafka::messages::vote_json(&vote, voter, candidate).len()
        })
        .sum();
    Ok(total / profiles.len().max(1))
}

/// Runs Kafka's ProducerPerformance from the jars `scripts/kafka.sh`
/// fetched (VOTESTREAM_KAFKA_LIBS, default target/kafka/libs); returns
/// records/s and MB/s.
fn producer_performance(bus: &KafkaBus, size: usize) -> anyhow::Result<(f64, f64)> {
    let libs =
        std::env::var("VOTESTREAM_KAFKA_LIBS").unwrap_or_else(|_| "target/kafka/libs".into());
    anyhow::ensure!(
        std::path::Path::new(&libs).is_dir(),
        "no Kafka jars in {libs} (run `bash scripts/kafka.sh start` or set VOTESTREAM_KAFKA_LIBS)"
    );
    let topic = format!("{}raw_ceiling", bus.prefix);
    bus.create_topic(&topic)?;
    let out = Command::new("java")
        .args([
            "-Xmx512m",
            "-cp",
            &format!("{libs}/*"),
            "org.apache.kafka.tools.ProducerPerformance",
        ])
        .args(["--topic", &topic, "--num-records", &RAW_RECORDS.to_string()])
        .args(["--record-size", &size.to_string(), "--throughput", "-1"])
        .args([
            "--producer-props",
            &format!("bootstrap.servers={}", bus.bootstrap),
        ])
        .args([
            "acks=all",
            "linger.ms=5",
            "compression.type=lz4",
            "batch.size=262144",
        ])
        .output()
        .context("running java (ProducerPerformance)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "ProducerPerformance failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary line: "N records sent, R records/sec (M MB/sec), …".
    let last = text
        .lines()
        .rfind(|l| l.contains("records sent"))
        .context("no summary line from ProducerPerformance")?;
    let number_before = |unit: &str| -> Option<f64> {
        let i = last.find(unit)?;
        last[..i]
            .split_whitespace()
            .last()?
            .trim_start_matches('(')
            .parse()
            .ok()
    };
    let records = number_before(" records/sec").context("no records/sec")?;
    let mb = number_before(" MB/sec").unwrap_or(0.0);
    Ok((records, mb))
}
