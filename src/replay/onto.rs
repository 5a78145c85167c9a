//! A replay in the distributed shape: the recording goes onto the `ballots`
//! topic of a prefix of the replay's own, and the Kafka processor and the
//! Kafka-fed engine, in that prefix's consumer groups, record and count it
//! into the target store, exactly as `votestream run --bus kafka://…` does.
//! Nothing of the live night's topics or groups is read or written.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::recording::Paced;
use crate::aggregate::stream::StreamEngine;
use crate::bus::kafka::ballots::{KafkaBallots, VotePublisher};
use crate::bus::kafka::intake::BallotWriter;
use crate::bus::kafka::KafkaBus;
use crate::bus::{BallotSink, BallotSource};
use crate::model::Millis;
use crate::process::{self, Processor};
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::store::{Store, StoreUrl};

/// The replay's processors' transactional id (fences an earlier replay's).
const INSTANCE: &str = "replay";

/// Plays `ballots` onto the prefix and runs its stages until everything
/// sent is recorded and counted (or Ctrl-C).
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    bus: &KafkaBus,
    ballots: &mut Paced,
    processor: &Processor,
    target: &mut dyn Store,
    into: &StoreUrl,
    allowance_ms: Millis,
    stats: &Stats,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    bus.ensure_topics()?;
    let sink = BallotWriter::new(bus)?;
    // The stages' own stop: once everything fed is counted.
    let stop = Shutdown::default();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let processing = s.spawn(|| -> anyhow::Result<()> {
            let ballots = KafkaBallots::open(bus)?;
            let mut publisher = VotePublisher::open(bus, INSTANCE)?;
            let mut profiles = into.open()?;
            process::kafka::run(
                processor,
                target,
                &mut *profiles,
                &ballots,
                &mut publisher,
                stats,
                &stop,
                None,
            )
        });
        let counting = s.spawn(|| -> anyhow::Result<()> {
            StreamEngine::open(bus, into.open()?, allowance_ms)?.run(stats, &stop, None)?;
            Ok(())
        });
        let fed = feed(ballots, &sink, stats, shutdown);
        while fed.is_ok()
            && !shutdown.is_requested()
            && !processing.is_finished()
            && !counting.is_finished()
            && !drained(stats)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.request();
        let processed = processing
            .join()
            .map_err(|_| anyhow::anyhow!("the processor panicked"))?;
        let counted = counting
            .join()
            .map_err(|_| anyhow::anyhow!("the aggregator panicked"))?;
        fed?;
        processed?;
        counted
    })
}

/// Sends the recording at its pace; every ballot sent is counted in
/// `stats.sent`, so the run knows when all of it is decided.
fn feed(
    ballots: &mut Paced,
    sink: &BallotWriter,
    stats: &Stats,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    while !shutdown.is_requested() {
        let Some(batch) = ballots.next_batch(10_000, Duration::from_millis(100))? else {
            break;
        };
        stats.sent.fetch_add(batch.len() as u64, Relaxed);
        sink.send(batch)?;
    }
    sink.flush()?;
    Ok(())
}

/// Everything sent is decided, and every vote accepted is counted.
fn drained(stats: &Stats) -> bool {
    stats.consumed.load(Relaxed) >= stats.sent.load(Relaxed)
        && stats.counted.load(Relaxed) >= stats.accepted.load(Relaxed)
}
