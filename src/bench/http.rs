//! `votestream bench --http`: the HTTP side, against a real `votestream
//! serve` child process on 127.0.0.1. Load is bounded in count and time and
//! stops by itself.
//!
//! - intake: many keep-alive connections POST distinct ballots; a ballot
//!   counts when it was answered 202 (committed, durable);
//! - fan-out: N Server-Sent Events viewers while ballots keep arriving; an
//!   update's delay is its arrival time minus the snapshot's `generated_at`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::goals::{Goal, Report, Target};
use super::viewers::{h2_viewers, viewer, Watch};
use crate::generate::{voter, DEFAULT_ELECTION_ID};

pub(crate) const TOKEN: &str = "bench-token";
/// Ballots/s answered 202 (committed) the intake goal asks for.
const INTAKE_GOAL: f64 = 30_000.0;
/// Viewers the fan-out goal asks for, each with 95% of updates < 500 ms,
/// within this server RSS.
const FANOUT_VIEWERS: usize = 20_000;
const FANOUT_RSS_MB: f64 = 500.0;

pub struct HttpBench {
    pub voters: u64,
    pub connections: usize,
    pub viewers: usize,
    /// Viewers as streams of one HTTP/2 connection each this many; 0: a
    /// socket each (HTTP/1.1).
    pub h2_streams: usize,
    pub seconds: u64,
}

pub fn run(cfg: &HttpBench, dir: &Path) -> anyhow::Result<Report> {
    // This process holds one socket a viewer or connection, the server as
    // many again: both need room above the usual hard limit of 20,000.
    let sockets = (viewer_sockets(cfg) + cfg.connections) as u64 + 1_024;
    crate::serve::limits::raise_open_files_limit(sockets);
    std::fs::create_dir_all(dir)?;
    let db = dir.join("http.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let url = format!("sqlite://{}", db.display());
    let mut st = crate::store::open(&url)?;
    crate::generate::ensure_registry(&mut *st, DEFAULT_ELECTION_ID, 42, cfg.voters, false)?;
    drop(st);
    let (connections, viewers) = (sockets.to_string(), (cfg.viewers + 64).to_string());
    let flags = [
        "--max-connections",
        &connections,
        "--max-sse-viewers",
        &viewers,
    ];
    let mut server = Server::start(&url, &flags, dir)?;
    // The load generator on both cores: with one, it fell behind 20,000
    // viewers' frames and its own lag read as the server's.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let next_voter = Arc::new(AtomicU64::new(0));
    let intake = rt.block_on(intake(
        &server.addr,
        cfg,
        next_voter.clone(),
        Duration::from_secs(cfg.seconds),
    ))?;
    let rss_after_intake = server.rss_mb();
    let pid = server.child.id();
    let fanout = rt.block_on(fanout(&server.addr, cfg, next_voter, pid))?;
    // Measured while the viewers' sockets are still open.
    let rss_fanout = fanout.rss_mb;
    server.stop();
    let mut out = String::new();
    use std::fmt::Write;
    let _ = writeln!(out, "| what | figure | note |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| HTTP ballot intake, each answered 202 after its commit | {:.0} ballots/s | {} accepted in {:.1} s over {} keep-alive connections; p50 {:.1} ms, p99 {:.1} ms; {} other answers; server RSS {:.0} MB (target ≥ 30k/s) |",
        intake.accepted as f64 / intake.secs, intake.accepted, intake.secs, cfg.connections,
        intake.p50_ms, intake.p99_ms, intake.other, rss_after_intake
    );
    let _ = writeln!(
        out,
        "| SSE fan-out | {} viewers | {}; {} updates delivered once all watched, {:.1}% within 500 ms (p50 {:.0} ms, p95 {:.0} ms); {} viewers watching, {:.1} s after the first connected (meanwhile {} updates, {:.1}% within 500 ms); server RSS {:.0} MB (target ≥ {FANOUT_VIEWERS} with 95% < 500 ms at ≤ {FANOUT_RSS_MB:.0} MB) |",
        cfg.viewers, transport(cfg), fanout.updates, fanout.within_500 * 100.0, fanout.p50_ms, fanout.p95_ms,
        fanout.connected, fanout.ramp_s, fanout.ramp_updates, fanout.ramp_within_500 * 100.0, rss_fanout
    );
    let goals = goals(cfg, &intake, &fanout);
    Ok(Report { table: out, goals })
}

/// Intake's rate, and fan-out as two goals: the viewers served, and the
/// server's RSS while serving them. Fewer viewers tried than the goal names
/// can meet neither, whatever the figures.
fn goals(cfg: &HttpBench, intake: &IntakeResult, fanout: &FanoutResult) -> Vec<Goal> {
    let tried = cfg.viewers;
    let enough = tried >= FANOUT_VIEWERS;
    let too_few =
        || format!("only {tried} viewers tried; the goal needs --viewers {FANOUT_VIEWERS}");
    vec![
        Goal::new(
            "durable intake (202 after commit)",
            intake.accepted as f64 / intake.secs,
            "ballots/s",
            Target::AtLeast(INTAKE_GOAL),
        ),
        Goal::new(
            "SSE viewers with 95% of updates < 500 ms",
            fanout.connected as f64,
            "viewers",
            Target::AtLeast(FANOUT_VIEWERS as f64),
        )
        .only_if(enough, too_few)
        .only_if(fanout.within_500 >= 0.95, || {
            "under 95% of updates within 500 ms".into()
        }),
        Goal::new(
            "server RSS during SSE fan-out",
            fanout.rss_mb,
            "MB",
            Target::AtMost(FANOUT_RSS_MB),
        )
        .only_if(enough, too_few)
        .only_if(fanout.rss_mb > 0.0, || {
            "the server was gone (no RSS to read): see serve.log in --dir".into()
        }),
    ]
}

/// A `votestream serve` child for a benchmark, SIGTERMed by [`Server::stop`].
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

impl Server {
    /// `serve` over `url` on a free port, with `extra` flags (a bus).
    pub(crate) fn start(url: &str, extra: &[&str], dir: &Path) -> anyhow::Result<Server> {
        let addr_file = dir.join("http.addr");
        let _ = std::fs::remove_file(&addr_file);
        let child = Command::new(std::env::current_exe()?)
            .args([
                "serve",
                "--store",
                url,
                "--listen",
                "127.0.0.1:0",
                "--api-token",
                TOKEN,
            ])
            .args(["--admin-token", TOKEN, "--rate-limit", "0"])
            .args(extra)
            .arg("--addr-file")
            .arg(&addr_file)
            .stdout(Stdio::null())
            // Kept, so a server that ends early says why.
            .stderr(std::fs::File::create(dir.join("serve.log"))?)
            .spawn()
            .context("starting votestream serve")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                if !addr.is_empty() {
                    return Ok(Server { child, addr });
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn rss_mb(&self) -> f64 {
        rss_mb(self.child.id())
    }

    pub(crate) fn stop(&mut self) {
        // SIGTERM: the server drains and exits; then make sure it is gone.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct IntakeResult {
    accepted: u64,
    other: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn intake(
    addr: &str,
    cfg: &HttpBench,
    next: Arc<AtomicU64>,
    duration: Duration,
) -> anyhow::Result<IntakeResult> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(cfg.connections)
        .build_http();
    let uri: hyper::Uri =
        format!("http://{addr}/api/v1/elections/{DEFAULT_ELECTION_ID}/ballots").parse()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cfg.connections {
        let (client, uri, next, voters) = (client.clone(), uri.clone(), next.clone(), cfg.voters);
        tasks.push(tokio::spawn(async move {
            let mut lat = hdrhistogram::Histogram::<u64>::new(3).ok();
            let (mut ok, mut other) = (0u64, 0u64);
            while started.elapsed() < duration {
                let i = next.fetch_add(1, Relaxed);
                if i >= voters {
                    break;
                }
                let v = voter(42, i);
                let candidate = ["c-management", "c-savior", "c-tech-republic"][(i % 3) as usize];
                let body = format!(
                    r#"{{"voter_id":"{}","candidate_id":"{candidate}"}}"#,
                    v.voter_id
                );
                let req = hyper::Request::post(uri.clone())
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)));
                let Ok(req) = req else { continue };
                let t = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        if status == hyper::StatusCode::ACCEPTED {
                            ok += 1;
                            if let Some(h) = lat.as_mut() {
                                let _ = h.record(t.elapsed().as_micros() as u64);
                            }
                        } else {
                            other += 1;
                        }
                    }
                    Err(_) => other += 1,
                }
            }
            (ok, other, lat)
        }));
    }
    let mut all = hdrhistogram::Histogram::<u64>::new(3)?;
    let (mut accepted, mut other) = (0, 0);
    for t in tasks {
        let (ok, o, lat) = t.await?;
        accepted += ok;
        other += o;
        if let Some(h) = lat {
            let _ = all.add(h);
        }
    }
    Ok(IntakeResult {
        accepted,
        other,
        secs: started.elapsed().as_secs_f64(),
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

struct FanoutResult {
    connected: u64,
    updates: u64,
    within_500: f64,
    p50_ms: f64,
    p95_ms: f64,
    rss_mb: f64,
    /// From the first viewer's connection to all of them watching, and
    /// the updates delivered meanwhile.
    ramp_s: f64,
    ramp_updates: u64,
    ramp_within_500: f64,
}

async fn fanout(
    addr: &str,
    cfg: &HttpBench,
    next: Arc<AtomicU64>,
    server_pid: u32,
) -> anyhow::Result<FanoutResult> {
    let watch = Arc::new(Watch::new()?);
    let measure = Duration::from_secs(cfg.seconds);
    let began = Instant::now();
    let mut viewers = Vec::new();
    if cfg.h2_streams == 0 {
        for i in 0..cfg.viewers {
            let (addr, watch) = (addr.to_string(), watch.clone());
            viewers.push(tokio::spawn(async move { viewer(&addr, watch).await }));
            if i % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(20)).await; // the listen backlog
            }
        }
    } else {
        let mut left = cfg.viewers;
        while left > 0 {
            let n = left.min(cfg.h2_streams);
            left -= n;
            let (addr, watch) = (addr.to_string(), watch.clone());
            viewers.push(tokio::spawn(
                async move { h2_viewers(&addr, n, watch).await },
            ));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Updates count once every viewer watches: while thousands still
    // connect, each getting the whole current snapshot, the server is
    // answering connections, not fanning out.
    while watch.watching.load(Relaxed) < cfg.viewers as u64 && began.elapsed() < RAMP_LIMIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.steady.store(true, Relaxed);
    let ramp_s = began.elapsed().as_secs_f64();
    // Keep results changing while viewers watch: a light trickle of ballots.
    let trickle = HttpBench {
        connections: 4,
        ..*cfg
    };
    let load = intake(addr, &trickle, next, measure);
    let start = Instant::now();
    let _ = load.await;
    let rest = measure.saturating_sub(start.elapsed());
    tokio::time::sleep(rest).await;
    let rss_mb = rss_mb(server_pid);
    for v in &viewers {
        v.abort();
    }
    let taken = |h: &std::sync::Mutex<hdrhistogram::Histogram<u64>>| {
        h.lock()
            .map(|h| h.clone())
            .map_err(|_| anyhow::anyhow!("poisoned"))
    };
    let (h, ramp) = (taken(&watch.delays)?, taken(&watch.ramp)?);
    Ok(FanoutResult {
        connected: watch.watching.load(Relaxed),
        updates: h.len(),
        within_500: within_500(&h),
        ramp_updates: ramp.len(),
        ramp_within_500: within_500(&ramp),
        p50_ms: h.value_at_quantile(0.5) as f64,
        p95_ms: h.value_at_quantile(0.95) as f64,
        rss_mb,
        ramp_s,
    })
}

fn within_500(h: &hdrhistogram::Histogram<u64>) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.count_between(0, 500) as f64 / h.len() as f64
    }
}

/// How long the viewers may take to connect before the updates count anyway.
const RAMP_LIMIT: Duration = Duration::from_secs(60);

/// How the viewers reach the server, for the table.
fn transport(cfg: &HttpBench) -> String {
    match cfg.h2_streams {
        0 => "a socket each (HTTP/1.1)".into(),
        n => format!(
            "as streams of {} HTTP/2 connections, {n} a connection (as a proxy in front would carry them)",
            viewer_sockets(cfg)
        ),
    }
}

/// Sockets the viewers hold.
fn viewer_sockets(cfg: &HttpBench) -> usize {
    match cfg.h2_streams {
        0 => cfg.viewers,
        n => cfg.viewers.div_ceil(n),
    }
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(viewers: usize, within_500: f64, rss_mb: f64) -> Vec<Goal> {
        let cfg = HttpBench {
            voters: 1000,
            connections: 4,
            viewers,
            h2_streams: 0,
            seconds: 1,
        };
        let intake = IntakeResult {
            accepted: 40_000,
            other: 0,
            secs: 1.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
        };
        let fanout = FanoutResult {
            connected: viewers as u64,
            updates: 100,
            within_500,
            p50_ms: 10.0,
            p95_ms: 100.0,
            rss_mb,
            ramp_s: 1.0,
            ramp_updates: 0,
            ramp_within_500: 0.0,
        };
        goals(&cfg, &intake, &fanout)
    }

    #[test]
    fn fewer_viewers_than_the_goal_say_so_and_meet_neither_fanout_goal() {
        let g = fan(5000, 1.0, 100.0);
        assert!(g[0].met, "intake at 40k/s meets 30k/s");
        for goal in &g[1..] {
            assert!(!goal.met, "{goal:?}");
            let note = goal.note.as_deref().unwrap_or_default();
            assert!(note.contains("only 5000 viewers tried"), "{note}");
        }
    }

    #[test]
    fn fanout_at_the_goal_needs_the_share_and_the_rss() {
        assert!(fan(20_000, 0.96, 400.0)[1..].iter().all(|g| g.met));
        let slow = fan(20_000, 0.90, 400.0);
        assert!(!slow[1].met && slow[2].met);
        let heavy = fan(20_000, 0.96, 600.0);
        assert!(heavy[1].met && !heavy[2].met);
        // A server that is gone reads 0 MB: that meets nothing.
        let gone = fan(20_000, 0.96, 0.0);
        assert!(!gone[2].met, "{:?}", gone[2]);
    }
}
