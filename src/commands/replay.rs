//! `replay`: a recorded night played again into a store of its own, and
//! `compare`: whether it ended as the original did.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use votestream::bus::kafka::KafkaBus;
use votestream::model::{parse_time, Millis};
use votestream::pipeline::allowance_ms;
use votestream::replay::{self, Comparison, ReplayConfig, ReplayFrom, Speed};
use votestream::store::StoreUrl;

#[derive(Args)]
pub struct ReplayArgs {
    /// The store the night was recorded in (opened read-only), or a Kafka
    /// bus (`kafka://HOST:PORT[?prefix=P]`) whose `ballots` topic is read.
    #[arg(long, env = "VOTESTREAM_REPLAY_FROM")]
    from: String,
    /// Play the night through Kafka: `kafka://HOST:PORT?prefix=P`, a topic
    /// prefix of the replay's own (its ballots, votes and rejections topics,
    /// its consumer groups), into the `--into` store. Without it, in process.
    #[arg(long, env = "VOTESTREAM_REPLAY_BUS")]
    bus: Option<String>,
    /// With `--from kafka://…`: the store to copy the registry from (opened
    /// read-only); without it, the target must hold the registry already.
    #[arg(long, env = "VOTESTREAM_REPLAY_REGISTRY")]
    registry: Option<String>,
    /// A store of the replay's own: a new SQLite file or PostgreSQL database
    /// (never the one replayed from). Replaying into it again changes nothing.
    #[arg(long, env = "VOTESTREAM_REPLAY_INTO")]
    into: String,
    /// `max`, or the original gaps between ballots divided by a factor: `1x`, `50x`.
    #[arg(long, env = "VOTESTREAM_REPLAY_SPEED", default_value = "max", value_parser = Speed::parse)]
    speed: Speed,
    /// Only ballots received from this time (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC).
    #[arg(long, env = "VOTESTREAM_REPLAY_FROM_TIME", value_parser = time)]
    from_time: Option<Millis>,
    /// Only ballots received until this time.
    #[arg(long, env = "VOTESTREAM_REPLAY_UNTIL", value_parser = time)]
    until: Option<Millis>,
    /// The lateness allowance of the original run (its minute windows are
    /// counted again with it).
    #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
    allowance_secs: u64,
}

fn time(s: &str) -> Result<Millis, String> {
    parse_time(s).ok_or_else(|| format!("{s:?} is not RFC 3339 nor YYYY-MM-DD HH:MM:SS"))
}

pub fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let cfg = ReplayConfig {
        from: if a.from.starts_with("kafka://") {
            ReplayFrom::Topic(KafkaBus::parse(&a.from).context("--from")?)
        } else {
            ReplayFrom::Store(StoreUrl::parse(&a.from).context("--from")?)
        },
        onto: a
            .bus
            .as_deref()
            .map(KafkaBus::parse)
            .transpose()
            .context("--bus")?,
        registry: a
            .registry
            .as_deref()
            .map(StoreUrl::parse)
            .transpose()
            .context("--registry")?,
        into: StoreUrl::parse(&a.into).context("--into")?,
        speed: a.speed,
        from_time: a.from_time,
        until: a.until,
        allowance_ms: allowance_ms(a.allowance_secs),
    };
    let (_rt, shutdown) = super::signals()?;
    let r = replay::run(&cfg, &shutdown)?;
    println!(
        "replayed {} ballots into {} in {:.1} s ({:.0} ballots/s): {} accepted, {} rejected, \
         {} already recorded there (skipped); {} voters copied; {} race desk events; \
         {} alert changes",
        r.ballots,
        cfg.into.as_str(),
        r.seconds,
        r.ballots as f64 / r.seconds.max(1e-9),
        r.accepted,
        r.rejected,
        r.replays,
        r.voters_copied,
        r.desk_events,
        r.alert_changes
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct CompareArgs {
    /// One store (opened read-only): the original night, say.
    first: String,
    /// The other store (opened read-only): its replay.
    second: String,
}

pub fn compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    let open = |url: &str| {
        votestream::store::open_read_only(url).with_context(|| format!("opening {url} read-only"))
    };
    let (mut first, mut second) = (open(&a.first)?, open(&a.second)?);
    match replay::compare(&mut *first, &mut *second)? {
        Comparison::Same {
            elections,
            accepted,
            desk_events,
            alert_changes,
            shown,
        } => {
            println!(
                "the same night: {elections} election(s), {accepted} votes, the same results, \
                 seals, {desk_events} race desk events and {alert_changes} alert changes in \
                 the same order; {shown} published results reproduced as of their ledger positions"
            );
            Ok(ExitCode::SUCCESS)
        }
        Comparison::Differ(d) => {
            println!("first difference: {d}");
            Ok(ExitCode::from(1))
        }
    }
}
