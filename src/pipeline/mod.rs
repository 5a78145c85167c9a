//! `votestream run`: every stage of the embedded shape in one process.
//!
//! Threads, not tasks, for the stages: each one is a tight loop over big
//! batches and a blocking store. The tokio runtime only serves HTTP.
//! `votestream serve` is the same without the simulator. With `--bus
//! kafka://…` the arrows are Kafka topics ([`kafka`]): the same stages, as
//! members of the consumer groups any other instance joins.
//!
//! `wiring.rs` builds the stages and starts the server; `supervise.rs` runs
//! the stages on threads and decides when the run is over.
//!
//! ```text
//! simulator ─┬─ballots─► processor ─votes─► aggregator     race desk
//! HTTP intake┘  (acks after commit)  │           │         (seals, calls)
//!                    store: votes, results, progress, desk ──► snapshots ──► HTTP
//! ```

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod alerts;
pub mod desk;
mod kafka;
mod supervise;
pub mod webhook;
mod wiring;

pub use kafka::simulate as simulate_to_kafka;
// The registry bootstrap lives with the generator (the server uses it too).
pub use crate::generate::{ensure_registry, generate_voters};

use crate::bus::{BallotSink, BusKind};
use crate::model::Millis;
use crate::results::Results;
use crate::serve;
use crate::shutdown::Shutdown;
use crate::simulate::{Rate, Registration, SimConfig, Simulation};
use crate::stats::Stats;
use crate::store::{retry, StoreUrl};

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub store_url: StoreUrl,
    pub bus: BusKind,
    /// On Kafka: this process's name in its processor transactions (see
    /// `process --instance`).
    pub instance: String,
    pub election_id: String,
    pub voters: u64,
    pub sim: SimConfig,
    pub rate: Rate,
    pub until_done: bool,
    /// False for `serve`: ballots come only over HTTP.
    pub simulate: bool,
    pub http: serve::HttpOptions,
    /// Threads serving HTTP.
    pub http_workers: usize,
    /// Where to write the bound address (useful with port 0).
    pub addr_file: Option<std::path::PathBuf>,
    pub progress: bool,
    /// Run the race desk beside the aggregator (it seals states whose polls
    /// closed and records calls); off when a `votestream desk` runs apart.
    pub desk: bool,
    /// Run the alerts stage beside it; off when a `votestream alerts` runs apart.
    pub alerts: bool,
    /// Where the alerts stage also POSTs each alert change.
    pub alert_webhook: Option<webhook::WebhookUrl>,
}

/// What a finished run reports.
pub struct Summary {
    pub results: Results,
    pub elapsed: Duration,
    pub sent: u64,
    pub replays: u64,
    /// Ballots the election received during this run (its `received` now,
    /// less what it had at the start).
    pub received: u64,
    /// Ballots rejected with no usable election (none named, or unknown):
    /// no election's `received` counts them.
    pub no_election: u64,
    /// CPU time the process used during the run, every thread's.
    pub cpu: Duration,
    /// Of it, the alerts stage's (zero without the stage).
    pub alerts_cpu: Duration,
}

impl Summary {
    /// Every ballot sent is accounted for: sent = received by the election
    /// + with no usable election + replays (once everything was processed).
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{}\nsent {} ballots in {:.1} s ({:.0} ballots/s): {} received by election {}, {} with no usable election (unknown or unreadable); {} replays of earlier ballots skipped\n",
            self.results.render_text(),
            self.sent,
            secs,
            self.sent as f64 / secs,
            self.received,
            self.results.election.election_id,
            self.no_election,
            self.replays
        )
    }
}

/// Runs the whole embedded pipeline.
pub fn run(cfg: RunConfig) -> anyhow::Result<Summary> {
    run_with_stats(cfg, Arc::new(Stats::default()))
}

/// [`run`], with counters the caller can watch (the benchmark does).
pub fn run_with_stats(cfg: RunConfig, stats: Arc<Stats>) -> anyhow::Result<Summary> {
    let wiring::Wired {
        rt,
        shutdown,
        mut store,
        already,
        stages,
        snapshots_ended,
    } = wiring::wire(&cfg, &stats)?;
    let started = Instant::now();
    let cpu_before = crate::stats::process_cpu();
    let stages = supervise::run(&cfg, &stats, &shutdown, &mut *store, already, stages);
    let elapsed = started.elapsed();
    let cpu = crate::stats::process_cpu().saturating_sub(cpu_before);
    let results = stages.and_then(|()| {
        Ok(retry(&shutdown, || {
            store.results(&cfg.election_id, crate::aggregate::BUILTIN)
        })?)
    });
    // Bounded, on failure too: a request still waiting on the store must
    // not hold the process up.
    rt.shutdown_timeout(Duration::from_secs(2));
    // The server is gone: the last results it published are kept before
    // the process ends (bounded: a store that does not answer must not
    // hold it up).
    snapshots_ended.wait(Duration::from_secs(2));
    let results = results?;
    Ok(Summary {
        received: (results.received as u64).saturating_sub(already as u64),
        results,
        elapsed,
        sent: stats.sent.load(Relaxed),
        replays: stats.replays.load(Relaxed),
        no_election: stats.no_election.load(Relaxed),
        cpu,
        alerts_cpu: Duration::from_micros(stats.alerts_cpu_us.load(Relaxed)),
    })
}

/// Runs the simulator into `sink` (the first `unpaced` ballots at full
/// speed: a restart's replay of what was sent before), then waits until the
/// sink has everything. `register` adds the voters an injection registers
/// mid-night (see [`Simulation::registrations`]).
pub(crate) fn simulate_into(
    sim: &Simulation,
    sink: &dyn BallotSink,
    unpaced: usize,
    rate: Rate,
    stats: &Stats,
    shutdown: &Shutdown,
    register: &mut dyn FnMut(&Registration),
) -> anyhow::Result<()> {
    let mut failed = None;
    let send = |batch: Vec<crate::bus::Inbound>| {
        let n = batch.len() as u64;
        // Counted before it can be consumed, so "sent" never trails what
        // the processor has seen.
        stats.sent.fetch_add(n, Relaxed);
        match sink.send(batch) {
            Ok(open) => open,
            Err(e) => {
                stats.sent.fetch_sub(n, Relaxed);
                failed = Some(e);
                false
            }
        }
    };
    sim.run_registering(unpaced, rate, shutdown, send, register);
    if let Some(e) = failed {
        return Err(e.into());
    }
    sink.flush()?;
    Ok(())
}

/// Why a turnout injection needs `run` on the in-process bus.
pub const MIDNIGHT_REGISTRATION: &str = "--inject turnout registers voters in the \
    middle of the night, which only the processor of `votestream run` on the in-process bus \
    sees (`process` and the Kafka shape's processors load the registry when they start): \
    use `run --bus memory`";

/// Registers an injection's voters in the store, then has the processor
/// validate against the registry with them. Their ballots come next: a
/// failure here leaves them refused as unknown voters, and says so.
fn register_voters(
    store_url: &StoreUrl,
    processor: &crate::process::Processor,
    r: &Registration,
    shutdown: &Shutdown,
) {
    let registered = (|| -> anyhow::Result<()> {
        let mut st = store_url.open()?;
        retry(shutdown, || st.put_voters(&r.voters))?;
        let registry = retry(shutdown, || crate::process::Registry::load(&mut *st))?;
        processor.set_registry(registry);
        Ok(())
    })();
    match registered {
        Ok(()) => tracing::info!(
            voters = r.voters.len(),
            "registered voters mid-night (--inject turnout)"
        ),
        Err(e) => tracing::error!(error = %e, "registering voters mid-night (--inject turnout)"),
    }
}

/// Lateness allowance in milliseconds from seconds on the command line.
pub fn allowance_ms(seconds: u64) -> Millis {
    (seconds as i64).saturating_mul(1000)
}
