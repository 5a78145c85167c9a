//! Building a run: the store and its registry, the processor, the
//! aggregator on the chosen bus, the snapshots and the HTTP server. Each
//! stage gets a connection of its own because each runs on a thread of its
//! own and a store connection serves one caller at a time.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::supervise::{Aggregator, Processing};
use super::RunConfig;
use crate::aggregate::engine::Engine;
use crate::aggregate::stream::StreamEngine;
use crate::alerts::stage::AlertStage;
use crate::bus::kafka::intake::{BallotProducer, BallotWriter, EarlyCheck};
use crate::bus::memory;
use crate::bus::{BallotSink, BusKind, Inbound};
use crate::desk::stage::DeskStage;
use crate::generate::ensure_registry;
use crate::model::now_millis;
use crate::process::{Processor, Registry};
use crate::serve;
use crate::shutdown::Shutdown;
use crate::simulate::Simulation;
use crate::stats::Stats;
use crate::store::Store;

/// What a wired run hands on: what outlives the stages (the runtime, the
/// main store connection, where the run started from) and the stages.
pub(super) struct Wired {
    pub rt: tokio::runtime::Runtime,
    pub shutdown: Shutdown,
    pub store: Box<dyn Store>,
    /// Ballots the election had already received (replayed at full speed).
    pub already: usize,
    pub stages: Stages,
    /// The snapshot thread's end, once the server is gone.
    pub snapshots_ended: serve::snapshot::Ended,
}

/// The stages, built and not yet running.
pub(super) struct Stages {
    /// The simulator and where its ballots go.
    pub sim: Option<(Simulation, Box<dyn BallotSink>)>,
    pub processor: Arc<Processor>,
    pub processing: Processing,
    pub aggregator: Aggregator,
    /// Whether every ballot sent is this process's to record (the
    /// in-process bus), so the run can tell when it is drained by itself.
    pub in_process: bool,
    pub health: Arc<serve::Health>,
    pub desk: Option<DeskStage>,
    pub alerts: Option<AlertStage>,
    pub intake_stop: serve::IntakeStop,
    pub addr: SocketAddr,
}

/// What the bus decides of a run, decided once: the stages below only see
/// what they read from and write to.
struct Bus {
    processing: Processing,
    aggregator: Aggregator,
    intake: Box<dyn BallotSink>,
    simulated: Option<Box<dyn BallotSink>>,
    in_process: bool,
}

fn bus(cfg: &RunConfig, processor: &Arc<Processor>) -> anyhow::Result<Bus> {
    Ok(match &cfg.bus {
        BusKind::Memory => {
            let (ballot_tx, ballot_rx) = memory::ballots();
            let (vote_tx, vote_rx) = memory::votes();
            let engine = Engine::open(cfg.store_url.open()?, cfg.sim.allowance_ms)?;
            Bus {
                processing: Processing::Plain {
                    ballots: Box::new(ballot_rx),
                    votes: Box::new(vote_tx),
                },
                aggregator: Aggregator::InProcess(engine, Box::new(vote_rx)),
                intake: Box::new(ballot_tx.clone()),
                // Without a simulator only the intake holds the channel,
                // so closing the intake ends the processor.
                simulated: cfg
                    .simulate
                    .then(|| Box::new(ballot_tx) as Box<dyn BallotSink>),
                in_process: true,
            }
        }
        BusKind::Kafka(bus) => {
            bus.ensure_topics().context("creating the Kafka topics")?;
            let engine = StreamEngine::open(bus, cfg.store_url.open()?, cfg.sim.allowance_ms)?;
            let simulated = match cfg.simulate {
                true => Some(Box::new(BallotWriter::new(bus)?) as Box<dyn BallotSink>),
                false => None,
            };
            Bus {
                processing: Processing::Transactional(bus.clone()),
                aggregator: Aggregator::Kafka(Box::new(engine)),
                intake: Box::new(BallotProducer::new(bus, early_check(processor))?),
                simulated,
                in_process: false,
            }
        }
    })
}

pub(super) fn wire(cfg: &RunConfig, stats: &Arc<Stats>) -> anyhow::Result<Wired> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.http_workers.max(1))
        .enable_all()
        .build()?;
    let shutdown = Shutdown::default();
    shutdown.listen(rt.handle());

    let mut store = cfg.store_url.open().context("opening the store")?;
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
    if sim.as_ref().is_some_and(|s| !s.registrations().is_empty()) {
        let in_process = matches!(cfg.bus, crate::bus::BusKind::Memory);
        anyhow::ensure!(in_process, "{}", super::MIDNIGHT_REGISTRATION);
    }
    // After a restart, what was already received is replayed at full speed.
    let already = store
        .results(&cfg.election_id, crate::aggregate::BUILTIN)?
        .received as usize;
    let processor = Arc::new(Processor::new(Registry::load(&mut *store)?));
    let Bus {
        processing,
        aggregator,
        intake,
        simulated,
        in_process,
    } = bus(cfg, &processor)?;
    let desk = if cfg.desk {
        Some(super::desk::desk_stage(&super::desk::DeskOptions {
            store_url: &cfg.store_url,
            bus: &cfg.bus,
            election_id: &cfg.election_id,
            engine: super::desk::DESK_ENGINE,
            allowance_ms: cfg.sim.allowance_ms,
        })?)
    } else {
        None
    };
    let alerts = if cfg.alerts {
        Some(
            super::alerts::alert_stage(&super::alerts::AlertOptions {
                store_url: &cfg.store_url,
                bus: &cfg.bus,
                election_id: &cfg.election_id,
                engine: super::desk::DESK_ENGINE,
                webhook: cfg.alert_webhook.as_ref(),
                read_limit: crate::alerts::stage::READ_LIMIT,
            })?
            .with_registry(processor.registry()),
        )
    } else {
        None
    };
    let health = Arc::new(serve::Health::default());
    // On the in-process bus every simulated ballot is this processor's work.
    health.sent_is_local.store(in_process, Relaxed);
    let (intake, intake_stop) = serve::Intake::start(intake);
    let (snapshots, snapshots_ended) = {
        let _guard = rt.enter();
        serve::snapshot::start(
            cfg.store_url.open()?,
            serve::snapshot::Keepers {
                checkpoints: Some(cfg.store_url.open()?),
                shown: Some(cfg.store_url.open()?),
            },
            stats.clone(),
            health.clone(),
        )
    };
    let listener = rt.block_on(serve::limits::bind(cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let shared = serve::Shared::new(
        cfg.store_url.open()?,
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
    Ok(Wired {
        rt,
        shutdown,
        store,
        already,
        snapshots_ended,
        stages: Stages {
            sim: sim.zip(simulated),
            processor,
            processing,
            aggregator,
            in_process,
            health,
            desk,
            alerts,
            intake_stop,
            addr,
        },
    })
}

/// The Kafka intake's answer-at-once check: the processor's own validation,
/// against the registry it holds now.
fn early_check(processor: &Arc<Processor>) -> EarlyCheck {
    let processor = processor.clone();
    Arc::new(move |b| {
        processor
            .validate(Inbound::ballot(b), now_millis())
            .err()
            .map(|r| (r.reason, r.detail))
    })
}
