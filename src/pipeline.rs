//! `votestream run`: every stage of the embedded shape in one process.
//!
//! Threads, not tasks, for the stages: each one is a tight loop over big
//! batches and a blocking store. The tokio runtime only serves HTTP.
//! `votestream serve` is the same without the simulator. With `--bus
//! kafka://…` the arrows are Kafka topics ([`kafka`]): the same stages, as
//! members of the consumer groups any other instance joins.
//!
//! ```text
//! simulator ─┬─ballots─► processor ─votes─► aggregator
//! HTTP intake┘  (acks after commit)  │           │
//!                    store: votes, results, progress ──► snapshots ──► HTTP
//! ```

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

mod kafka;

pub use kafka::simulate as simulate_to_kafka;
// The registry bootstrap lives with the generator (the server uses it too).
pub use crate::generate::{ensure_registry, generate_voters};

use crate::aggregate::engine::{Engine, Feed};
use crate::aggregate::stream::StreamEngine;
use crate::bus::kafka::intake::{BallotProducer, EarlyCheck};
use crate::bus::{memory, BusKind, Inbound, VoteSink};
use crate::model::{now_millis, Millis};
use crate::process::{self, retry, Processor, Registry};
use crate::results::Results;
use crate::serve;
use crate::shutdown::Shutdown;
use crate::simulate::{Rate, SimConfig, Simulation};
use crate::stats::{progress_bar, Stats};
use crate::store;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub store_url: String,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.http_workers.max(1))
        .enable_all()
        .build()?;
    let shutdown = Shutdown::default();
    shutdown.listen(rt.handle());

    let mut store = store::open(&cfg.store_url).context("opening the store")?;
    ensure_registry(
        &mut *store,
        &cfg.election_id,
        cfg.sim.seed,
        cfg.voters,
        cfg.progress,
    )?;
    let sim = if cfg.simulate {
        Some(Simulation::load(&mut *store, &cfg.election_id, &cfg.sim)?)
    } else {
        None
    };
    // After a restart, what was already received is replayed at full speed.
    let already = store
        .results(&cfg.election_id, crate::aggregate::BUILTIN)?
        .received as usize;
    let processor = Arc::new(Processor::new(Registry::load(&mut *store)?));
    let (ballot_tx, ballot_rx) = memory::ballots();
    let (vote_tx, vote_rx) = memory::votes();
    let (aggregator, sink) = match &cfg.bus {
        BusKind::Memory => (
            Aggregator::Memory(
                Engine::open(store::open(&cfg.store_url)?, cfg.sim.allowance_ms)?,
                vote_rx,
            ),
            serve::IntakeSink::Memory(ballot_tx.clone()),
        ),
        BusKind::Kafka(bus) => {
            bus.ensure_topics().context("creating the Kafka topics")?;
            (
                Aggregator::Kafka(Box::new(StreamEngine::open(
                    bus,
                    store::open(&cfg.store_url)?,
                    cfg.sim.allowance_ms,
                )?)),
                serve::IntakeSink::Kafka(BallotProducer::new(bus, early_check(&processor))?),
            )
        }
    };
    let health = Arc::new(serve::Health::default());
    // On the in-process bus every simulated ballot is this processor's work.
    health
        .sent_is_local
        .store(matches!(cfg.bus, BusKind::Memory), Relaxed);
    let (intake, intake_stop) = serve::Intake::start(sink);
    let snapshots = {
        let _guard = rt.enter();
        serve::snapshot::start(store::open(&cfg.store_url)?, stats.clone(), health.clone())
    };
    let listener = rt.block_on(tokio::net::TcpListener::bind(cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let shared = serve::Shared::new(
        store::open(&cfg.store_url)?,
        snapshots,
        cfg.election_id.clone(),
        &cfg.http,
        serve::Pipeline {
            intake: Some(intake),
            processor: Some(processor.clone()),
            health: health.clone(),
        },
    );
    let stop_http = shutdown.clone();
    rt.spawn(async move {
        let stop = async move {
            while !stop_http.is_requested() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if let Err(e) = serve::serve(listener, shared, stop).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    if let Some(path) = &cfg.addr_file {
        std::fs::write(path, addr.to_string()).context("writing --addr-file")?;
    }
    eprintln!(
        "dashboard: http://{addr}/  (results API: http://{addr}/api/v1/elections/{}/results)",
        cfg.election_id
    );

    let started = Instant::now();
    let stages = std::thread::scope(|s| -> anyhow::Result<()> {
        let processing = s.spawn(|| {
            // Owned here, so a failed processor closes the channel and a
            // simulator waiting to send is not left blocked on it.
            let mut ballot_rx = ballot_rx;
            let _running = Running::new(&health.processor_running);
            match &cfg.bus {
                BusKind::Memory => process::run(
                    &processor,
                    &mut *store,
                    &mut ballot_rx,
                    Some(&VoteSink::Memory(vote_tx)),
                    &stats,
                    &shutdown,
                ),
                BusKind::Kafka(bus) => store::open(&cfg.store_url)
                    .map_err(anyhow::Error::from)
                    .and_then(|profiles| {
                        let stage = kafka::Stage {
                            bus,
                            instance: &cfg.instance,
                            stats: &stats,
                            shutdown: &shutdown,
                        };
                        kafka::process(&stage, &processor, &mut *store, profiles)
                    }),
            }
        });
        let aggregating = s.spawn(|| {
            let _running = Running::new(&health.aggregator_running);
            aggregator.run(&stats, &shutdown)
        });
        let simulating = sim.as_ref().map(|sim| {
            let ballot_tx = ballot_tx.clone();
            let (stats, shutdown, bus) = (&stats, &shutdown, &cfg.bus);
            s.spawn(move || -> anyhow::Result<()> {
                match bus {
                    BusKind::Memory => {
                        sim.run(already, cfg.rate, shutdown, |batch| {
                            stats.sent.fetch_add(batch.len() as u64, Relaxed);
                            ballot_tx.send(batch)
                        });
                        Ok(())
                    }
                    BusKind::Kafka(bus) => {
                        kafka::simulate(bus, sim, already, cfg.rate, stats, shutdown)
                    }
                }
            })
        });
        // From here only the simulator and the HTTP intake hold the channel.
        drop(ballot_tx);
        let bar = progress_bar(
            cfg.progress && sim.is_some(),
            sim.as_ref().map_or(0, |s| s.len() as u64),
            "ballots",
        );
        let mut intake_stop = Some(intake_stop);
        let mut announced = false;
        while !aggregating.is_finished() {
            let sim_done = simulating.as_ref().is_none_or(|h| h.is_finished());
            if sim_done && simulating.is_some() && !announced && !cfg.until_done {
                announced = true;
                bar.finish_and_clear();
                eprintln!(
                    "simulation finished ({} ballots sent); still serving http://{addr}/ (Ctrl-C to stop)",
                    stats.sent.load(Relaxed)
                );
            }
            // The intake closes on Ctrl-C, or with --until-done once the
            // simulator is done; the processor then drains and stops.
            if shutdown.is_requested() || (cfg.until_done && sim_done) {
                if let Some(stop) = intake_stop.take() {
                    stop.stop();
                }
                // Kafka consumers do not see the end of a stream: stop them
                // once everything sent is recorded and counted.
                if matches!(cfg.bus, BusKind::Kafka(_)) && kafka::drained(&stats) {
                    shutdown.request();
                }
            }
            // A processor that ends before the aggregator has failed (the
            // memory aggregator ends with it; a Kafka one needs telling).
            if processing.is_finished() {
                shutdown.request();
            }
            if !announced {
                bar.set_position(stats.consumed.load(Relaxed));
                bar.set_message(format!(
                    "accepted {} rejected {} counted {}",
                    stats.accepted.load(Relaxed),
                    stats.rejected.load(Relaxed),
                    stats.aggregated_seq.load(Relaxed)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
        // Normally everything has ended by now; after a failed aggregator
        // the other stages are told to stop, so its error is reported
        // instead of the run waiting forever.
        if let Some(stop) = intake_stop.take() {
            stop.stop();
        }
        shutdown.request();
        if let Some(h) = simulating {
            h.join()
                .map_err(|_| anyhow::anyhow!("simulator panicked"))??;
        }
        processing
            .join()
            .map_err(|_| anyhow::anyhow!("processor panicked"))?
            .context("the processor stopped")?;
        aggregating
            .join()
            .map_err(|_| anyhow::anyhow!("aggregator panicked"))?
            .context("the aggregator stopped")?;
        Ok(())
    });
    let elapsed = started.elapsed();
    let results = stages.and_then(|()| {
        Ok(retry(&shutdown, || {
            store.results(&cfg.election_id, crate::aggregate::BUILTIN)
        })?)
    });
    // Bounded, on failure too: a request still waiting on the store must
    // not hold the process up.
    rt.shutdown_timeout(Duration::from_secs(2));
    let results = results?;
    Ok(Summary {
        received: (results.received as u64).saturating_sub(already as u64),
        results,
        elapsed,
        sent: stats.sent.load(Relaxed),
        replays: stats.replays.load(Relaxed),
        no_election: stats.no_election.load(Relaxed),
    })
}

/// A stage's "running" flag for `/readyz`: cleared however the stage ends,
/// by returning or by panicking.
struct Running<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> Running<'a> {
    fn new(flag: &'a std::sync::atomic::AtomicBool) -> Running<'a> {
        flag.store(true, Relaxed);
        Running(flag)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

/// The built-in engine, fed by the in-process bus or by Kafka.
enum Aggregator {
    Memory(Engine, crossbeam_channel::Receiver<Vec<crate::model::Vote>>),
    Kafka(Box<StreamEngine>),
}

impl Aggregator {
    fn run(self, stats: &Stats, shutdown: &Shutdown) -> anyhow::Result<()> {
        match self {
            Aggregator::Memory(mut engine, rx) => engine.run(Feed::Memory(rx), stats, shutdown)?,
            Aggregator::Kafka(mut engine) => engine.run(stats, shutdown, None)?,
        }
        Ok(())
    }
}

/// The Kafka intake's answer-at-once check: the processor's own validation,
/// against the registry it holds now.
fn early_check(processor: &Arc<Processor>) -> EarlyCheck {
    let processor = processor.clone();
    Arc::new(move |b| {
        processor
            .validate(Inbound::Ballot(b), now_millis())
            .err()
            .map(|r| (r.reason, r.detail))
    })
}

/// Lateness allowance in milliseconds from seconds on the command line.
pub fn allowance_ms(seconds: u64) -> Millis {
    (seconds as i64).saturating_mul(1000)
}
