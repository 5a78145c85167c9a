//! The stages of `votestream run` on the Kafka bus: the simulator produces
//! to `ballots`, the processor and the aggregator are consumer-group members
//! like any other instance (so a `run` and separate `process`/`aggregate`
//! processes can share the work).

use std::sync::atomic::Ordering::Relaxed;

use crate::bus::kafka::ballots::{KafkaBallots, VotePublisher};
use crate::bus::kafka::intake::BallotWriter;
use crate::bus::kafka::KafkaBus;
use crate::process::{self, Processor};
use crate::shutdown::Shutdown;
use crate::simulate::{Rate, Simulation};
use crate::stats::Stats;
use crate::store::Store;

/// What every Kafka stage of a `run` shares.
pub(super) struct Stage<'a> {
    pub bus: &'a KafkaBus,
    pub instance: &'a str,
    pub stats: &'a Stats,
    pub shutdown: &'a Shutdown,
}

/// Sends the simulated ballots to `ballots`, keyed by voter (the first
/// `unpaced` at full speed: a restart's replay of what was sent before).
pub fn simulate(
    bus: &KafkaBus,
    sim: &Simulation,
    unpaced: usize,
    rate: Rate,
    stats: &Stats,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        sim.registrations().is_empty(),
        "{}",
        super::MIDNIGHT_REGISTRATION
    );
    let sink = BallotWriter::new(bus)?;
    super::simulate_into(sim, &sink, unpaced, rate, stats, shutdown, &mut |_| {})
}

/// `profiles` is a second connection to the store (see `process::kafka`).
pub(super) fn process(
    stage: &Stage<'_>,
    processor: &Processor,
    store: &mut dyn Store,
    mut profiles: Box<dyn Store>,
) -> anyhow::Result<()> {
    let ballots = KafkaBallots::open(stage.bus)?;
    let mut publisher = VotePublisher::open(stage.bus, stage.instance)?;
    process::kafka::run(
        processor,
        store,
        &mut *profiles,
        &ballots,
        &mut publisher,
        stage.stats,
        stage.shutdown,
        None,
    )
}

/// With `--until-done`: everything simulated is recorded and counted.
pub(super) fn drained(stats: &Stats) -> bool {
    stats.consumed.load(Relaxed) >= stats.sent.load(Relaxed)
        && stats.counted.load(Relaxed) >= stats.accepted.load(Relaxed)
}
