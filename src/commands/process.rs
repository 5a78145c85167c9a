//! `process`: validate and record ballots, from JSON lines (a file or stdin)
//! or, on Kafka, from the `ballots` topic with exactly-once publishing.

use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use clap::Args;
use votestream::bus::kafka::ballots::{KafkaBallots, VotePublisher};
use votestream::bus::kafka::KafkaBus;
use votestream::bus::{BallotSource, BusKind, LinesSource};
use votestream::process::{self, Processor, Registry};
use votestream::stats::Stats;
use votestream::store::StoreUrl;

use super::{open_file, signals};
use crate::Common;

#[derive(Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "VOTESTREAM_INPUT", default_value = "-")]
    input: String,
    /// With Kafka: this instance's name, stable across its restarts (it
    /// names its Kafka transactions; every running instance needs its own).
    #[arg(long, env = "VOTESTREAM_INSTANCE", default_value = "0")]
    instance: String,
    /// With Kafka: stop once no ballot came for this many seconds (default: run until Ctrl-C).
    #[arg(long, env = "VOTESTREAM_UNTIL_IDLE", value_parser = super::range::non_negative, allow_negative_numbers = true)]
    until_idle: Option<f64>,
    /// With Kafka: also serve Prometheus metrics at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9101), so every instance can be scraped.
    #[arg(long, env = "VOTESTREAM_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
}

pub fn process(a: ProcessArgs) -> anyhow::Result<ExitCode> {
    let bus = BusKind::parse(&a.common.bus)?;
    let url = a.common.store_url()?;
    match bus {
        BusKind::Kafka(bus) => from_kafka(&a, &bus, &url)?,
        BusKind::Memory => from_lines(&a, &url)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn from_kafka(a: &ProcessArgs, bus: &KafkaBus, url: &StoreUrl) -> anyhow::Result<()> {
    let (rt, shutdown) = signals()?;
    super::expose_metrics(&rt, a.metrics_listen)?;
    let mut st = url.open()?;
    let processor = Processor::new(Registry::load(&mut *st)?);
    bus.ensure_topics()?;
    let ballots = KafkaBallots::open(bus)?;
    let mut publisher = VotePublisher::open(bus, &a.instance)?;
    let mut profiles = url.open()?;
    let stats = Stats::default();
    process::kafka::run(
        &processor,
        &mut *st,
        &mut *profiles,
        &ballots,
        &mut publisher,
        &stats,
        &shutdown,
        a.until_idle.map(Duration::from_secs_f64),
    )?;
    print_processed(&stats, true);
    Ok(())
}

/// The same processor as every other path (same validation, same store
/// rules for ballot ids). Ctrl-C or SIGTERM records what was already read
/// (a pipe cannot be read again), then exits.
fn from_lines(a: &ProcessArgs, url: &StoreUrl) -> anyhow::Result<()> {
    super::no_metrics_listen(a.metrics_listen)?;
    let (_rt, shutdown) = signals()?;
    let mut st = url.open()?;
    let processor = Processor::new(Registry::load(&mut *st)?);
    let mut source: Box<dyn BallotSource> = if a.input == "-" {
        Box::new(LinesSource::new(std::io::stdin()))
    } else {
        Box::new(LinesSource::new(open_file(std::path::Path::new(&a.input))?))
    };
    let stats = Stats::default();
    process::run(&processor, &mut *st, &mut *source, None, &stats, &shutdown)?;
    print_processed(&stats, false);
    Ok(())
}

/// The processor's summary; on Kafka also how many recorded outcomes were
/// published again (after a crash between the store's and Kafka's commits).
fn print_processed(stats: &Stats, kafka: bool) {
    let again = if kafka {
        format!(
            ", {} outcomes published again",
            stats.republished.load(Relaxed)
        )
    } else {
        String::new()
    };
    println!(
        "processed {} ballots: {} accepted, {} rejected, {} replays skipped{again}",
        stats.consumed.load(Relaxed),
        stats.accepted.load(Relaxed),
        stats.rejected.load(Relaxed),
        stats.replays.load(Relaxed),
    );
}
