//! The race desk in a replay. The original desk seals states and calls
//! races by the wall clock, which a replay cannot share; instead it
//! recorded each look that changed something (its clock, the votes counted
//! in the results it was shown, the votes recorded by then), and the
//! replay's desk takes the same looks again in the target, each as soon as
//! the target's ledger holds as many votes. Shown the same results at the
//! same clock, the desk makes the same seals and the same events in the same
//! order, at any speed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Acquire};
use std::time::Duration;

use crate::aggregate::BUILTIN;
use crate::desk::stage::DeskStage;
use crate::desk::DeskConfig;
use crate::model::Millis;
use crate::shutdown::Shutdown;
use crate::store::{DeskLook, Store, StoreError, StoreUrl};

/// How often the target's ledger is asked whether a look is due.
const POLL: Duration = Duration::from_millis(20);

/// The source's looks the target has not taken yet (a second replay into
/// the same target takes none), up to `until`, in the order they were
/// taken, each with its election.
pub(super) fn looks(
    source: &mut dyn Store,
    target: &mut dyn Store,
    until: Option<Millis>,
) -> Result<Vec<(String, DeskLook)>, StoreError> {
    let mut all = Vec::new();
    for e in source.elections()? {
        let id = e.election.election_id;
        let taken = target.desk_looks(&id)?.last().map(|l| l.at);
        for look in source.desk_looks(&id)? {
            if taken.is_none_or(|t| look.at > t) && until.is_none_or(|u| look.at <= u) {
                all.push((id.clone(), look));
            }
        }
    }
    all.sort_by_key(|(_, l)| l.at);
    Ok(all)
}

/// Takes the looks again in the target as its ledger reaches each; stops
/// early, leaving the rest, when the replay ended before the target holds
/// what a look was shown (a replay `--until` a moment). `ended` is set once
/// the processor has recorded everything. Returns the events recorded.
pub(super) fn run(
    looks: Vec<(String, DeskLook)>,
    target: &StoreUrl,
    allowance_ms: Millis,
    ended: &AtomicBool,
    shutdown: &Shutdown,
) -> anyhow::Result<u64> {
    let mut ledger = target.open()?;
    let mut desks: HashMap<String, DeskStage> = HashMap::new();
    let mut events = 0;
    for (election, look) in looks {
        loop {
            // Read before the count: everything is recorded once it is set.
            let over = ended.load(Acquire) || shutdown.is_requested();
            if ledger.results(&election, BUILTIN)?.accepted >= look.accepted {
                break;
            }
            if over {
                tracing::info!(
                    election,
                    at = look.at,
                    "replay: the recording ends before the desk's next look; its desk stops here"
                );
                return Ok(events);
            }
            std::thread::sleep(POLL);
        }
        let desk = match desks.entry(election) {
            std::collections::hash_map::Entry::Occupied(d) => d.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stage = DeskStage::open(
                    target.open()?,
                    v.key(),
                    BUILTIN,
                    allowance_ms,
                    DeskConfig::default(),
                    None,
                )?;
                v.insert(stage)
            }
        };
        events += desk.look_again(&look)?.len() as u64;
    }
    Ok(events)
}
