//! The race desk in a run (a thread beside the aggregator) or on its own
//! (`votestream desk`): the desk stage, and on Kafka the `race_calls` topic
//! it also publishes to.

use std::time::Duration;

use crate::aggregate::BUILTIN;
use crate::bus::kafka::calls::EventTopic;
use crate::bus::kafka::{KafkaBus, Topic};
use crate::bus::BusKind;
use crate::desk::stage::{CallSink, DeskStage};
use crate::desk::{DeskConfig, DeskEvent};
use crate::model::Millis;
use crate::shutdown::Shutdown;
use crate::store::StoreUrl;

/// How often the desk looks at the results.
pub const DESK_EVERY: Duration = Duration::from_millis(250);

/// Where a desk runs and what it reads.
pub struct DeskOptions<'a> {
    pub store_url: &'a StoreUrl,
    pub bus: &'a BusKind,
    pub election_id: &'a str,
    /// The engine whose persisted results it reads (`builtin` or `spark`).
    pub engine: &'a str,
    pub allowance_ms: Millis,
}

pub fn desk_stage(o: &DeskOptions<'_>) -> anyhow::Result<DeskStage> {
    let sink: Option<Box<dyn CallSink>> = match o.bus {
        BusKind::Memory => None,
        BusKind::Kafka(bus) => Some(Box::new(KafkaCalls::open(bus)?)),
    };
    Ok(DeskStage::open(
        o.store_url.open()?,
        o.election_id,
        o.engine,
        o.allowance_ms,
        DeskConfig::default(),
        sink,
    )?)
}

/// `votestream desk`: the desk alone, until Ctrl-C.
pub fn run_desk(o: &DeskOptions<'_>) -> anyhow::Result<()> {
    let stage = desk_stage(o)?;
    eprintln!(
        "race desk: election {} on the {} engine's results, every {} ms (Ctrl-C to stop)",
        o.election_id,
        o.engine,
        DESK_EVERY.as_millis()
    );
    until_ctrl_c("the desk", move |shutdown| stage.run(DESK_EVERY, shutdown))
}

/// Runs a stage on a thread of its own until Ctrl-C (or its own end).
pub(super) fn until_ctrl_c(
    what: &str,
    stage: impl FnOnce(&Shutdown) + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = Shutdown::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    shutdown.listen(rt.handle());
    // The signal listener lives on the runtime; the stage on its thread.
    rt.block_on(async {
        tokio::task::spawn_blocking(move || stage(&shutdown))
            .await
            .map_err(|e| anyhow::anyhow!("{what} panicked: {e}"))
    })
}

/// The default engine a run's desk reads.
pub const DESK_ENGINE: &str = BUILTIN;

struct KafkaCalls(EventTopic);

impl KafkaCalls {
    fn open(bus: &KafkaBus) -> anyhow::Result<KafkaCalls> {
        bus.ensure_topics()?;
        Ok(KafkaCalls(EventTopic::open(bus, Topic::RaceCalls)?))
    }
}

impl CallSink for KafkaCalls {
    fn publish(&mut self, election_id: &str, events: &[(i64, &DeskEvent)]) -> anyhow::Result<()> {
        self.0.publish(election_id, events)?;
        Ok(())
    }
}
