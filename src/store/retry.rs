//! Waiting out a store that is busy or briefly away. Every stage calls the
//! store, so this sits with it (below the stages) rather than in any one
//! of them.

use std::time::Duration;

use super::StoreError;
use crate::shutdown::Shutdown;

/// Runs a store call, retrying with backoff while its error is transient:
/// every stage's reads must ride out a database restart the same way its
/// writes do.
pub fn retry<T>(
    shutdown: &Shutdown,
    mut op: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut backoff = Backoff::default();
    loop {
        match op() {
            Ok(v) => return Ok(v),
            Err(e) => {
                if !backoff.wait(&e, shutdown) {
                    return Err(e);
                }
            }
        }
    }
}

/// Exponential backoff for store retries, bounded in attempts. Only a
/// transient error is waited for: any other would fail the same way again.
#[derive(Default)]
pub struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// Sleeps before the next attempt; false when it is time to give up
    /// (the error cannot clear by waiting, or has not in 30 attempts).
    pub fn wait(&mut self, error: &StoreError, shutdown: &Shutdown) -> bool {
        if !error.is_transient() {
            tracing::debug!(%error, class = ?error.class(), "store error not retried");
            return false;
        }
        if self.attempts >= 30 || shutdown.is_forced() {
            return false;
        }
        self.attempts += 1;
        let delay = Duration::from_millis(50 << self.attempts.min(7));
        tracing::warn!(%error, attempt = self.attempts, ?delay, "store operation failed; retrying");
        std::thread::sleep(delay);
        true
    }
}
