//! The alerts stage in a run (a thread beside the desk) or on its own
//! (`votestream alerts`), with where its changes go besides the store: the
//! `alerts` topic in the Kafka shape, and a webhook when one is given.

use std::time::Duration;

use crate::alerts::stage::{AlertChange, AlertSink, AlertStage};
use crate::alerts::AlertConfig;
use crate::bus::kafka::calls::EventTopic;
use crate::bus::kafka::{KafkaBus, Topic};
use crate::bus::BusKind;
use crate::store::StoreUrl;

use super::webhook::{Webhook, WebhookUrl};

/// How often the stage looks at the ledger (at once again after a full read).
pub const ALERTS_EVERY: Duration = Duration::from_millis(250);

pub struct AlertOptions<'a> {
    pub store_url: &'a StoreUrl,
    pub bus: &'a BusKind,
    pub election_id: &'a str,
    /// The engine whose persisted tallies are watched.
    pub engine: &'a str,
    pub webhook: Option<&'a WebhookUrl>,
    /// Votes (and rejections) read per look.
    pub read_limit: usize,
}

pub fn alert_stage(o: &AlertOptions<'_>) -> anyhow::Result<AlertStage> {
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
    if let BusKind::Kafka(bus) = o.bus {
        sinks.push(Box::new(KafkaAlerts::open(bus)?));
    }
    let mut stage = AlertStage::open(
        o.store_url.open()?,
        o.election_id,
        o.engine,
        AlertConfig::default(),
        sinks,
    )?
    .read_limit(o.read_limit);
    if let Some(url) = o.webhook {
        // Only what is recorded from now on: a restart resends nothing.
        let from = stage.recorded();
        stage.add_sink(Box::new(Webhook::start(url.clone(), from)?));
    }
    Ok(stage)
}

/// `votestream alerts`: the stage alone, until Ctrl-C.
pub fn run_alerts(o: &AlertOptions<'_>) -> anyhow::Result<()> {
    let stage = alert_stage(o)?;
    eprintln!(
        "alerts: election {}, from the votes ledger, every {} ms (Ctrl-C to stop)",
        o.election_id,
        ALERTS_EVERY.as_millis()
    );
    super::desk::until_ctrl_c("the alerts stage", move |shutdown| {
        stage.run(ALERTS_EVERY, shutdown)
    })
}

/// Lowers this thread's CPU priority (nice 10): under full load the count
/// comes first and the stage falls behind; it reads what it missed as soon
/// as a core is free. (On Linux a thread has a nice value of its own.)
pub fn yield_to_the_count() {
    // SAFETY: plain system calls on this thread's id; a failure leaves the
    // priority as it was, which is only slower for the count.
    let done = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10)
    };
    if done != 0 {
        tracing::debug!("alerts: the thread's priority stays as it was");
    }
}

struct KafkaAlerts(EventTopic);

impl KafkaAlerts {
    fn open(bus: &KafkaBus) -> anyhow::Result<KafkaAlerts> {
        bus.ensure_topics()?;
        Ok(KafkaAlerts(EventTopic::open(bus, Topic::Alerts)?))
    }
}

impl AlertSink for KafkaAlerts {
    fn publish(
        &mut self,
        election_id: &str,
        changes: &[(i64, &AlertChange)],
    ) -> anyhow::Result<()> {
        self.0.publish(election_id, changes)?;
        Ok(())
    }
}
