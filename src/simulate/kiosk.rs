//! Where the simulator's ballots come from: polling-place kiosks, a fixed
//! number in every state. Each voter votes at one kiosk of their state,
//! picked from the seed and the voter, so the same seed sends the same
//! ballots from the same kiosks.
//!
//! Enough kiosks per state that none stands out on a clean night: even
//! when one state is the last still voting, each of its kiosks sends about
//! 1/24 of the country's ballots, far under the share that source
//! concentration alarms at (docs/ALERTS.md).

use std::sync::Arc;

use super::splitmix;
use crate::states::STATES;

/// Kiosks in each state.
pub const KIOSKS_PER_STATE: u32 = 24;

/// Every kiosk's name, made once: a ballot takes a shared handle.
pub(super) struct Kiosks {
    names: Vec<Arc<str>>,
    seed: u64,
}

impl Kiosks {
    pub(super) fn new(seed: u64) -> Kiosks {
        // The last slot: voters in a state the table does not know.
        let codes = STATES.iter().map(|s| s.code).chain(["XX"]);
        let names = codes
            .flat_map(|code| (1..=KIOSKS_PER_STATE).map(move |n| kiosk_name(code, n)))
            .collect();
        Kiosks { names, seed }
    }

    /// The kiosk voter `voter` (an index into the electorate) of state
    /// `state` (an index into `STATES`) votes at.
    pub(super) fn of(&self, voter: u32, state: u8) -> Arc<str> {
        let k =
            splitmix(self.seed ^ 0x6b10_5c00_0000 ^ u64::from(voter)) % u64::from(KIOSKS_PER_STATE);
        let slot = usize::from(state).min(STATES.len()) * KIOSKS_PER_STATE as usize + k as usize;
        self.names[slot].clone()
    }
}

/// `kiosk-<USPS code>-<01..24>`, e.g. `kiosk-TX-07`.
pub fn kiosk_name(code: &str, n: u32) -> Arc<str> {
    Arc::from(format!("kiosk-{code}-{n:02}"))
}
