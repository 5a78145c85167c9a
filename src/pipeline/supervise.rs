//! Running the stages of a run on threads, and deciding when the run is
//! over: the intake closes on Ctrl-C or when the simulator is done, the
//! processor drains, and a stage that fails stops the others so that its
//! error is what the run reports.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;

use super::wiring::Stages;
use super::{kafka, RunConfig};
use crate::aggregate::engine::{Engine, Feed};
use crate::aggregate::stream::StreamEngine;
use crate::bus::kafka::KafkaBus;
use crate::bus::{BallotSource, VoteSink, VoteSource};
use crate::process;
use crate::shutdown::Shutdown;
use crate::simulate::Registration;
use crate::stats::{progress_bar, Stats};
use crate::store::Store;

pub(super) fn run(
    cfg: &RunConfig,
    stats: &Stats,
    shutdown: &Shutdown,
    store: &mut dyn Store,
    already: usize,
    stages: Stages,
) -> anyhow::Result<()> {
    let Stages {
        sim,
        processor,
        processing,
        aggregator,
        in_process,
        health,
        desk,
        alerts,
        intake_stop,
        addr,
    } = stages;
    let (sim, sim_sink) = sim.unzip();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let processing = s.spawn(|| {
            // Owned here, so a failed processor closes the channel and a
            // simulator waiting to send is not left blocked on it.
            let processing = processing;
            let _running = Running::new(&health.processor_running);
            match processing {
                Processing::Plain { mut ballots, votes } => process::run(
                    &processor,
                    &mut *store,
                    &mut *ballots,
                    Some(&*votes),
                    stats,
                    shutdown,
                ),
                Processing::Transactional(bus) => cfg
                    .store_url
                    .open()
                    .map_err(anyhow::Error::from)
                    .and_then(|profiles| {
                        let stage = kafka::Stage {
                            bus: &bus,
                            instance: &cfg.instance,
                            stats,
                            shutdown,
                        };
                        kafka::process(&stage, &processor, &mut *store, profiles)
                    }),
            }
        });
        let aggregating = s.spawn(|| {
            let _running = Running::new(&health.aggregator_running);
            aggregator.run(stats, shutdown)
        });
        // The desk only reads what the store holds and records its own
        // tables: it stops when the run does, and a failed look is retried.
        if let Some(desk) = desk {
            s.spawn(|| desk.run(super::desk::DESK_EVERY, shutdown));
        }
        // Likewise the alerts stage: it reads the ledger, records its own,
        // at a lower CPU priority: it never takes a core the count needs,
        // and catches up whenever the count leaves one idle.
        if let Some(alerts) = alerts {
            s.spawn(|| {
                super::alerts::yield_to_the_count();
                alerts.run(super::alerts::ALERTS_EVERY, shutdown);
                let used = crate::stats::thread_cpu().as_micros() as u64;
                stats.alerts_cpu_us.store(used, Relaxed);
            });
        }
        // The simulator owns its sink: once it is done, only the HTTP
        // intake holds the processor's channel.
        let registering = &processor;
        let simulating = sim.as_ref().zip(sim_sink).map(|(sim, sink)| {
            s.spawn(move || {
                let mut register = |r: &Registration| {
                    super::register_voters(&cfg.store_url, registering, r, shutdown)
                };
                super::simulate_into(
                    sim,
                    &*sink,
                    already,
                    cfg.rate,
                    stats,
                    shutdown,
                    &mut register,
                )
            })
        });
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
                if !in_process && kafka::drained(stats) {
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

/// How the processor stage runs.
pub(super) enum Processing {
    /// Records what the source brings, then hands the votes on.
    Plain {
        ballots: Box<dyn BallotSource>,
        votes: Box<dyn VoteSink>,
    },
    /// Kafka's consume–process–produce loop, which commits its input
    /// offsets in the transaction that publishes its output (see
    /// `process::kafka`): no plain source and sink can say that.
    Transactional(KafkaBus),
}

/// The built-in engine, fed by the in-process bus or by Kafka (where it
/// keeps its own offsets in the store, see `aggregate::stream`).
pub(super) enum Aggregator {
    InProcess(Engine, Box<dyn VoteSource>),
    Kafka(Box<StreamEngine>),
}

impl Aggregator {
    pub(super) fn run(self, stats: &Stats, shutdown: &Shutdown) -> anyhow::Result<()> {
        match self {
            Aggregator::InProcess(mut engine, votes) => {
                engine.run(Feed::Bus(votes), stats, shutdown)?
            }
            Aggregator::Kafka(mut engine) => engine.run(stats, shutdown, None)?,
        }
        Ok(())
    }
}
