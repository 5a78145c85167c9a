//! `run` (simulator included) and `serve` (ballots over HTTP only): the
//! whole pipeline in one process, on the in-process bus or on Kafka.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use votestream::bus::BusKind;
use votestream::pipeline::webhook::WebhookUrl;
use votestream::pipeline::{self, allowance_ms, RunConfig};
use votestream::simulate::{Rate, SimConfig};
use votestream::store::StoreUrl;

use crate::{Common, HttpArgs, SimArgs};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    sim: SimArgs,
    /// Registry size (voters generated if the store has fewer).
    #[arg(long, env = "VOTESTREAM_VOTERS", default_value_t = 100_000)]
    voters: u64,
    /// Exit once every simulated ballot is processed and counted.
    #[arg(long, env = "VOTESTREAM_UNTIL_DONE")]
    until_done: bool,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    desk: DeskFlag,
    #[command(flatten)]
    alerts: AlertFlags,
}

/// Whether this process runs the alerts stage, and where it routes alerts.
#[derive(Args)]
pub struct AlertFlags {
    /// Do not run the alerts stage here (run `votestream alerts` apart, or none).
    #[arg(long, env = "VOTESTREAM_NO_ALERTS")]
    no_alerts: bool,
    /// Also POST each alert opened or resolved, as JSON, to this http:// URL
    /// (retried on no answer, 5xx and 429; 5 s timeout per try).
    #[arg(long, env = "VOTESTREAM_ALERT_WEBHOOK", value_parser = WebhookUrl::parse)]
    alert_webhook: Option<WebhookUrl>,
}

/// Whether this process runs the race desk.
#[derive(Args)]
pub struct DeskFlag {
    /// Do not run the race desk here (run `votestream desk` apart, or none:
    /// then no state is sealed and nothing is recorded as called).
    #[arg(long, env = "VOTESTREAM_NO_DESK")]
    no_desk: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    desk: DeskFlag,
    #[command(flatten)]
    alerts: AlertFlags,
    #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
    allowance_secs: u64,
}

pub fn run(a: RunArgs, progress: bool) -> anyhow::Result<ExitCode> {
    let bus = BusKind::parse(&a.common.bus)?;
    let http = a.http.options();
    // After the HTTP options: they print the generated tokens first.
    let store_url = StoreUrl::parse(&a.common.store).context("opening the store")?;
    let sim = a.sim.config();
    if let Some(night) = &sim.night {
        // Here, not in the pipeline: its processor loads the elections as it
        // starts, so the schedule must be in the store before. The election
        // may not exist yet, hence the registry first (the pipeline's own
        // call then finds it in place).
        let mut st = store_url.open().context("opening the store")?;
        pipeline::ensure_registry(&mut *st, &a.common.election, sim.seed, a.voters, progress)?;
        super::announce_night(&mut *st, &a.common.election, night)?;
    }
    let summary = pipeline::run(RunConfig {
        bus,
        instance: a.http.instance.clone(),
        election_id: a.common.election,
        voters: a.voters,
        sim,
        rate: a.sim.rate,
        until_done: a.until_done,
        simulate: true,
        http,
        store_url,
        http_workers: a.http.http_workers,
        addr_file: a.http.addr_file.clone(),
        progress,
        desk: !a.desk.no_desk,
        alerts: !a.alerts.no_alerts,
        alert_webhook: a.alerts.alert_webhook,
    })?;
    print!("{}", summary.render());
    Ok(ExitCode::SUCCESS)
}

pub fn serve(a: ServeArgs, progress: bool) -> anyhow::Result<ExitCode> {
    let sim = SimConfig {
        allowance_ms: allowance_ms(a.allowance_secs),
        ..SimConfig::default()
    };
    let summary = pipeline::run(RunConfig {
        bus: BusKind::parse(&a.common.bus)?,
        instance: a.http.instance.clone(),
        election_id: a.common.election,
        voters: 0,
        sim,
        rate: Rate::Max,
        until_done: false,
        simulate: false,
        http: a.http.options(),
        // After the HTTP options: they print the generated tokens first.
        store_url: StoreUrl::parse(&a.common.store).context("opening the store")?,
        http_workers: a.http.http_workers,
        addr_file: a.http.addr_file.clone(),
        progress,
        desk: !a.desk.no_desk,
        alerts: !a.alerts.no_alerts,
        alert_webhook: a.alerts.alert_webhook,
    })?;
    print!("{}", summary.results.render_text());
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct DeskArgs {
    #[command(flatten)]
    common: Common,
    /// The engine whose persisted results the desk reads.
    #[arg(long, env = "VOTESTREAM_ENGINE", default_value = "builtin", value_parser = ["builtin", "spark"])]
    engine: String,
    /// A state is sealed this long after its polls close (the lateness
    /// allowance: a ballot cast before the close may still be arriving).
    #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
    allowance_secs: u64,
}

/// `desk`: the race desk as a process of its own.
pub fn desk(a: DeskArgs) -> anyhow::Result<ExitCode> {
    pipeline::desk::run_desk(&pipeline::desk::DeskOptions {
        store_url: &StoreUrl::parse(&a.common.store).context("opening the store")?,
        bus: &BusKind::parse(&a.common.bus)?,
        election_id: &a.common.election,
        engine: &a.engine,
        allowance_ms: allowance_ms(a.allowance_secs),
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    common: Common,
    /// The engine whose persisted tallies are watched for going backwards.
    #[arg(long, env = "VOTESTREAM_ENGINE", default_value = "builtin", value_parser = ["builtin", "spark"])]
    engine: String,
    /// Also POST each alert opened or resolved, as JSON, to this http:// URL.
    #[arg(long, env = "VOTESTREAM_ALERT_WEBHOOK", value_parser = WebhookUrl::parse)]
    alert_webhook: Option<WebhookUrl>,
    /// Votes (and rejections) read from the ledger per look; each look's
    /// alerts and position are saved in one transaction.
    #[arg(long, env = "VOTESTREAM_ALERTS_READ_BATCH", default_value_t = votestream::alerts::stage::READ_LIMIT)]
    read_batch: usize,
}

/// `alerts`: the alerts stage as a process of its own.
pub fn alerts(a: AlertsArgs) -> anyhow::Result<ExitCode> {
    pipeline::alerts::run_alerts(&pipeline::alerts::AlertOptions {
        store_url: &StoreUrl::parse(&a.common.store).context("opening the store")?,
        bus: &BusKind::parse(&a.common.bus)?,
        election_id: &a.common.election,
        engine: &a.engine,
        webhook: a.alert_webhook.as_ref(),
        read_limit: a.read_batch,
    })?;
    Ok(ExitCode::SUCCESS)
}
