//! `aggregate`: bring an engine's results up to date. The built-in engine
//! follows the votes table (in-process bus) or Kafka's votes_topic; with
//! `--engine spark`, the Spark job runs in the foreground instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use votestream::aggregate::engine::{Engine, Feed};
use votestream::aggregate::stream::StreamEngine;
use votestream::bus::kafka::KafkaBus;
use votestream::bus::BusKind;
use votestream::pipeline::allowance_ms;
use votestream::shutdown::Shutdown;
use votestream::stats::Stats;
use votestream::store::{StoreKind, StoreUrl};

use super::signals;
use crate::Common;

#[derive(Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    common: Common,
    /// Keep following new votes until Ctrl-C.
    #[arg(long, env = "VOTESTREAM_FOLLOW")]
    follow: bool,
    /// With Kafka and without --follow: stop once no vote came for this many seconds.
    #[arg(long, env = "VOTESTREAM_UNTIL_IDLE", default_value_t = 3.0, value_parser = super::range::non_negative, allow_negative_numbers = true)]
    until_idle: f64,
    #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
    allowance_secs: u64,
    /// `builtin`, or `spark`: run the Apache Spark engine (scripts/spark.sh run, see spark/README.md)
    /// in the foreground against the same --bus (Kafka) and --store (PostgreSQL).
    #[arg(long, env = "VOTESTREAM_ENGINE", default_value = "builtin", value_parser = ["builtin", "spark"])]
    engine: String,
    /// With --engine spark: the Spark checkpoint directory (keep it to resume; default
    /// target/spark/checkpoint beside the script).
    #[arg(long, env = "VOTESTREAM_SPARK_CHECKPOINT")]
    checkpoint: Option<PathBuf>,
    /// With Kafka: also serve Prometheus metrics at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9101), so every instance can be scraped.
    #[arg(long, env = "VOTESTREAM_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
}

pub fn aggregate(a: AggregateArgs) -> anyhow::Result<ExitCode> {
    if a.engine == "spark" {
        return spark(&a);
    }
    let bus = BusKind::parse(&a.common.bus)?;
    let url = a.common.store_url()?;
    match bus {
        BusKind::Kafka(bus) => from_kafka(&a, &bus, &url)?,
        BusKind::Memory => from_store(&a, &url)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn from_kafka(a: &AggregateArgs, bus: &KafkaBus, url: &StoreUrl) -> anyhow::Result<()> {
    let (rt, shutdown) = signals()?;
    super::expose_metrics(&rt, a.metrics_listen)?;
    bus.ensure_topics()?;
    let mut engine = StreamEngine::open(bus, url.open()?, allowance_ms(a.allowance_secs))?;
    let stats = Stats::default();
    let idle = (!a.follow).then(|| Duration::from_secs_f64(a.until_idle));
    engine.run(&stats, &shutdown, idle)?;
    println!(
        "aggregated votes_topic up to seq {} ({} unreadable messages skipped)",
        stats
            .aggregated_seq
            .load(std::sync::atomic::Ordering::Relaxed),
        engine.bad_messages
    );
    Ok(())
}

fn from_store(a: &AggregateArgs, url: &StoreUrl) -> anyhow::Result<()> {
    super::no_metrics_listen(a.metrics_listen)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shutdown = Shutdown::default();
    let _guard = rt.enter();
    shutdown.listen(rt.handle());
    let mut engine = Engine::open(url.open()?, allowance_ms(a.allowance_secs))?;
    let before = engine.position();
    let stats = Stats::default();
    let follow = a.follow;
    std::thread::scope(|s| {
        s.spawn(|| engine.run(Feed::Store { follow }, &stats, &shutdown))
            .join()
    })
    .map_err(|_| anyhow::anyhow!("aggregator panicked"))??;
    println!("aggregated votes {}..={}", before + 1, engine.position());
    Ok(())
}

/// `aggregate --engine spark`: runs the Spark engine's launcher,
/// `bash scripts/spark.sh run --bus … --store … --allowance-ms … [--checkpoint …]`,
/// as a child in the foreground and returns its exit status. The script is
/// found relative to the current directory (the repository's root, as in the
/// Docker image and CI), or wherever VOTESTREAM_SPARK_SCRIPT says. SIGTERM
/// and Ctrl-C are passed on to the job, which stops its query and exits.
fn spark(a: &AggregateArgs) -> anyhow::Result<ExitCode> {
    let common = &a.common;
    if !matches!(BusKind::parse(&common.bus)?, BusKind::Kafka(_)) {
        anyhow::bail!("--engine spark reads Kafka's votes_topic: give --bus kafka://HOST:PORT");
    }
    let postgres = common.store_url().map(|u| *u.kind() == StoreKind::Postgres);
    if !matches!(postgres, Ok(true)) {
        anyhow::bail!("--engine spark writes PostgreSQL: give --store postgres://…");
    }
    let script = std::env::var_os("VOTESTREAM_SPARK_SCRIPT")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("scripts/spark.sh"));
    if !script.is_file() {
        anyhow::bail!(
            "--engine spark needs {} (run from the repository's root, or set VOTESTREAM_SPARK_SCRIPT)",
            script.display()
        );
    }
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script)
        .args(["run", "--bus", &common.bus, "--store", &common.store])
        .args(["--allowance-ms", &(a.allowance_secs * 1000).to_string()]);
    if let Some(dir) = &a.checkpoint {
        cmd.arg("--checkpoint").arg(dir);
    }
    let (_rt, shutdown) = signals()?;
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting bash {}", script.display()))?;
    let mut passed_on = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if shutdown.is_requested() && !passed_on {
            // SAFETY: signals our own child, by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            passed_on = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
        None => {
            eprintln!("error: the Spark engine ended by {status}");
            ExitCode::from(1)
        }
    })
}
