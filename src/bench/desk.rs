//! `votestream bench --desk`: what the race desk costs and how fast a call
//! reaches a viewer.
//!
//! - Cost: the embedded pipeline at full speed with the desk and without,
//!   in alternating pairs on one machine (the desk reads the persisted
//!   results every 250 ms beside it).
//! - Call latency: a `votestream serve` (on the bus and store given) over a
//!   small fresh registry, one SSE viewer at the fastest refresh the
//!   stream allows (500 ms). For each state in turn, ballots for one
//!   candidate are cast over HTTP until the leader's margin exceeds the
//!   state's registered voters not yet counted: that ballot is the deciding
//!   one. The latency is from its 202 (in the embedded shape, sent after
//!   the commit; on Kafka, once the ballot is durably on the topic, so
//!   there it includes processing) to the first SSE frame whose record
//!   holds the state's call.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use super::http::{Server, TOKEN};
use super::{bench_config, copy_db, cores, remove_db, render, sqlite_url, Row};
use crate::generate::{self, DEFAULT_ELECTION_ID};
use crate::pipeline::{self, RunConfig};
use crate::simulate::Rate;
use crate::store::{self, VoterKey};

/// Enough voters for every state to have a few, few enough to cast quickly.
const LATENCY_VOTERS: u64 = 3_000;

pub fn run(voters: u64, bus: &str, store_url: Option<&str>, dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    let mut rows = Vec::new();
    let kafka = bus.starts_with("kafka://");
    if !kafka {
        rows.extend(cost(voters, dir)?);
    }
    let url = match store_url {
        Some(u) => u.to_string(),
        None => {
            let db = dir.join("desk-latency.db");
            remove_db(&db);
            sqlite_url(&db)
        }
    };
    let [shown, recorded] = latency(&url, bus, dir)?;
    let shape = if kafka { "Kafka shape" } else { "embedded" };
    for (h, what) in [
        (shown, "call shown (the state's status)"),
        (recorded, "call in the record (desk events)"),
    ] {
        rows.push(Row {
            what: format!("deciding vote → {what} over SSE, {shape}"),
            figure: format!(
                "p50 {:.0} ms, p99 {:.0} ms",
                h.value_at_quantile(0.5) as f64,
                h.value_at_quantile(0.99) as f64
            ),
            note: format!(
                "{} states called one by one, max {} ms; one viewer at the 500 ms refresh",
                h.len(),
                h.max()
            ),
        });
    }
    Ok(render(
        &format!("votestream bench --desk — {bus}, {} cores", cores()),
        &rows,
    ))
}

/// Two alternating pairs of full-speed runs, without and with the desk.
fn cost(voters: u64, dir: &Path) -> anyhow::Result<Vec<Row>> {
    Ok(vec![stage_cost(
        voters,
        dir,
        "the desk",
        2,
        |cfg| cfg.desk = true,
        &|_| Ok(String::new()),
    )?])
}

/// `pairs` alternating pairs of full-speed embedded runs (off, on, on,
/// off, …) without and with a stage `enable` turns on; one row with both
/// rates and their ratio, and what `after` says of the last run with the
/// stage (given its store's URL).
pub(crate) fn stage_cost(
    voters: u64,
    dir: &Path,
    stage: &str,
    pairs: usize,
    enable: fn(&mut RunConfig),
    after: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Row> {
    let registry = dir.join("stage-registry.db");
    remove_db(&registry);
    let mut st = store::open(&sqlite_url(&registry))?;
    generate::ensure_registry(&mut *st, DEFAULT_ELECTION_ID, 42, voters, false)?;
    drop(st);
    let mut rates: BTreeMap<bool, Vec<f64>> = BTreeMap::new();
    let order = [false, true, true, false]
        .into_iter()
        .cycle()
        .take(2 * pairs);
    let mut said = String::new();
    // (stage's, run's) CPU seconds over the runs with the stage.
    let mut cpu = (0.0, 0.0);
    for with in order {
        let db = dir.join("stage-e2e.db");
        copy_db(&registry, &db)?;
        let mut cfg = bench_config(&sqlite_url(&db), voters, Rate::Max, false)?;
        if with {
            enable(&mut cfg);
        }
        let s = pipeline::run(cfg)?;
        rates
            .entry(with)
            .or_default()
            .push(s.results.accepted as f64 / s.elapsed.as_secs_f64());
        if with {
            said = after(&sqlite_url(&db))?;
            cpu.0 += s.alerts_cpu.as_secs_f64();
            cpu.1 += s.cpu.as_secs_f64();
        }
        remove_db(&db);
    }
    remove_db(&registry);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (off, on) = (mean(&rates[&false]), mean(&rates[&true]));
    if cpu.0 > 0.0 {
        said.push_str(&format!(
            "; the stage's thread used {:.2} s of the runs' {:.1} s of CPU ({:.1}%)",
            cpu.0,
            cpu.1,
            100.0 * cpu.0 / cpu.1
        ));
    }
    Ok(Row {
        what: format!("end to end, {voters}-voter registry, rate max, with {stage}"),
        figure: format!("{:.0} votes/s", on),
        note: format!(
            "without: {:.0} votes/s; with/without = {:.1}% (runs {:?} / {:?}, alternated){said}",
            off,
            100.0 * on / off,
            rates[&true].iter().map(|r| r.round()).collect::<Vec<_>>(),
            rates[&false].iter().map(|r| r.round()).collect::<Vec<_>>()
        ),
    })
}

/// Per state, the time to the first frame that shows it called, and to the
/// first whose record holds the call.
fn latency(url: &str, bus: &str, dir: &Path) -> anyhow::Result<[Histogram<u64>; 2]> {
    let mut st = store::open(url)?;
    generate::ensure_registry(&mut *st, DEFAULT_ELECTION_ID, 42, LATENCY_VOTERS, false)?;
    let mut by_state: BTreeMap<String, Vec<String>> = BTreeMap::new();
    st.scan_voters(&mut |v: VoterKey<'_>| {
        by_state
            .entry(v.state.to_string())
            .or_default()
            .push(v.voter_id.to_string())
    })?;
    drop(st);
    let mut server = Server::start(url, &["--bus", bus], dir)?;
    let frames = watch(&server)?;
    let mut shown = Histogram::<u64>::new(3)?;
    let mut recorded = Histogram::<u64>::new(3)?;
    let candidate = "c-management";
    for (state, voters) in &by_state {
        let deciding = voters.len() / 2 + 1;
        let mut decided_at = None;
        for v in &voters[..deciding] {
            let body = format!(r#"{{"voter_id":"{v}","candidate_id":"{candidate}"}}"#);
            let status = cast(&server, &body)?;
            anyhow::ensure!(status == 202, "a ballot was refused ({status})");
            decided_at = Some(Instant::now());
        }
        let decided_at = decided_at.context("a state with no voter")?;
        let deadline = decided_at + Duration::from_secs(30);
        let mut seen = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = frames
                .recv_timeout(left)
                .with_context(|| format!("{state} was not called within 30 s"))?;
            let ms = frame
                .at
                .saturating_duration_since(decided_at)
                .as_millis()
                .max(1) as u64;
            if !seen && frame.shown.iter().any(|s| s == state) {
                seen = true;
                shown.record(ms)?;
            }
            if frame.recorded.iter().any(|s| s == state) {
                if !seen {
                    shown.record(ms)?;
                }
                recorded.record(ms)?;
                break;
            }
        }
    }
    server.stop();
    Ok([shown, recorded])
}

/// One SSE frame: when it arrived, the states it shows as called and the
/// states whose call is in its record.
struct Frame {
    at: Instant,
    shown: Vec<String>,
    recorded: Vec<String>,
}

/// One ballot, one connection; the answer's status code.
fn cast(server: &Server, body: &str) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect(&server.addr)?;
    write!(
            s,
            "POST /api/v1/elections/{DEFAULT_ELECTION_ID}/ballots HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.addr,
            body.len()
        )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let code = answer.split(' ').nth(1).unwrap_or("0").parse()?;
    Ok(code)
}

/// An SSE viewer on a thread: each frame's arrival and the states it
/// shows as called in the desk's record.
fn watch(server: &Server) -> anyhow::Result<mpsc::Receiver<Frame>> {
    let mut s = TcpStream::connect(&server.addr)?;
    write!(
            s,
            "GET /api/v1/elections/{DEFAULT_ELECTION_ID}/results/stream?interval_ms=500 HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr
        )?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { return };
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let at = Instant::now();
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(data) else {
                continue;
            };
            let desk = &frame["desk"];
            let recorded: Vec<String> = desk["events"]
                .as_array()
                .map(|events| {
                    events
                        .iter()
                        .filter(|e| e["kind"] == "called")
                        .filter_map(|e| e["race"]["state"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let frame = Frame {
                at,
                shown: desk["states"]
                    .as_array()
                    .map(|states| {
                        states
                            .iter()
                            .filter(|s| s["status"]["status"] == "called")
                            .filter_map(|s| s["state"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                recorded,
            };
            if tx.send(frame).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
