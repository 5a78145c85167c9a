//! The alerts stage over a replayed night. It is fed from the ledger alone,
//! and the replay keeps the ledger's order, so it decides the same alerts
//! at the same positions as the original's stage. After the night the
//! original's clock moved its stream time on (closing the last buckets and
//! resolving quiet alerts): the replay's stage is taken to the same stream
//! time, read from the original's saved state.

use crate::aggregate::BUILTIN;
use crate::alerts::stage::AlertStage;
use crate::alerts::{AlertConfig, Watch};
use crate::model::{now_millis, Millis};
use crate::store::{Store, StoreUrl};

/// Runs the stage over each election of the target; `source` (the
/// original store, when the whole night was replayed from one) gives where
/// its stage's stream time ended. Returns the changes recorded in all.
pub fn run(mut source: Option<Box<dyn Store>>, into: &StoreUrl) -> anyhow::Result<i64> {
    let ids: Vec<String> = into
        .open()?
        .elections()?
        .into_iter()
        .map(|e| e.election.election_id)
        .collect();
    let mut recorded = 0;
    for id in ids {
        let end: Option<Millis> = match source.as_mut() {
            Some(s) => match s.alert_resume(&id)? {
                Some(r) => Some(Watch::resume(AlertConfig::default(), &r.state)?.now()),
                None => None,
            },
            None => None,
        };
        let mut stage = AlertStage::open(
            into.open()?,
            &id,
            BUILTIN,
            AlertConfig::default(),
            Vec::new(),
        )?;
        // Every look but the last read a full batch, and each one moved on:
        // the clock never moves a replayed night.
        while stage.step(now_millis())?.1 {}
        if let Some(end) = end.filter(|&t| t > Millis::MIN) {
            stage.tick_to(end)?;
        }
        stage.flush()?;
        recorded += stage.recorded();
    }
    Ok(recorded)
}
