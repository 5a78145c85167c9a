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
use crate::bus::{BusKind, VoteSink};
use crate::process;
use crate::shutdown::Shutdown;
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
        ballot_tx,
        ballot_rx,
        vote_tx,
        aggregator,
        health,
        intake_stop,
        addr,
    } = stages;
    std::thread::scope(|s| -> anyhow::Result<()> {
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
                    stats,
                    shutdown,
                ),
                BusKind::Kafka(bus) => {
                    cfg.store_url
                        .open()
                        .map_err(anyhow::Error::from)
                        .and_then(|profiles| {
                            let stage = kafka::Stage {
                                bus,
                                instance: &cfg.instance,
                                stats,
                                shutdown,
                            };
                            kafka::process(&stage, &processor, &mut *store, profiles)
                        })
                }
            }
        });
        let aggregating = s.spawn(|| {
            let _running = Running::new(&health.aggregator_running);
            aggregator.run(stats, shutdown)
        });
        let simulating = sim.as_ref().map(|sim| {
            let ballot_tx = ballot_tx.clone();
            let bus = &cfg.bus;
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
                if matches!(cfg.bus, BusKind::Kafka(_)) && kafka::drained(stats) {
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

/// The built-in engine, fed by the in-process bus or by Kafka.
pub(super) enum Aggregator {
    Memory(Engine, crossbeam_channel::Receiver<Vec<crate::model::Vote>>),
    Kafka(Box<StreamEngine>),
}

impl Aggregator {
    pub(super) fn run(self, stats: &Stats, shutdown: &Shutdown) -> anyhow::Result<()> {
        match self {
            Aggregator::Memory(mut engine, rx) => engine.run(Feed::Memory(rx), stats, shutdown)?,
            Aggregator::Kafka(mut engine) => engine.run(stats, shutdown, None)?,
        }
        Ok(())
    }
}
