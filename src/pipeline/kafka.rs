//! The stages of `votestream run` on the Kafka bus: the simulator produces
//! to `ballots`, the processor and the aggregator are consumer-group members
//! like any other instance (so a `run` and separate `process`/`aggregate`
//! processes can share the work).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::bus::kafka::ballots::{KafkaBallots, VotePublisher};
use crate::bus::kafka::{KafkaBus, Topic};
use crate::bus::Payload;
use crate::process::{self, parse::ballot_json, Processor};
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
    let publisher = bus.publisher()?;
    let topic = bus.topic(Topic::Ballots);
    let mut failed = None;
    sim.run(unpaced, rate, shutdown, |batch| {
        let n = batch.len() as u64;
        for b in batch {
            let sent = match b.body {
                Payload::Ballot(b) => publisher.send(
                    &topic,
                    Some(b.voter_id.as_bytes()),
                    ballot_json(&b).as_bytes(),
                ),
                Payload::Raw(bytes) => publisher.send(&topic, None, &bytes),
                Payload::Rejected(_) => Ok(()),
            };
            if let Err(e) = sent {
                failed = Some(e);
                return false;
            }
        }
        stats.sent.fetch_add(n, Relaxed);
        true
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    publisher.flush(Duration::from_secs(60))?;
    Ok(())
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
