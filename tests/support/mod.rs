//! The integration tests' one toolkit. Each test file declares `mod support;`
//! and takes what it needs; the first line of each file says which real
//! services it needs (`//! Needs: …`).
//!
//! - [`run`]: the binary under test (`VOTESTREAM_TEST_BIN` picks another
//!   build) and the repository's scripts as child processes, each with a
//!   deadline;
//! - [`wait`]: polling with a deadline;
//! - [`sqlite`]: SQLite stores, read-only looks into them;
//! - [`browser`]: headless Chromium over WebDriver, for the dashboard;
//! - [`http`]: a `votestream serve` on a free port and a raw HTTP client;
//! - [`pg`]: a fresh PostgreSQL database per test (VOTESTREAM_TEST_PG_URL);
//! - [`kafka`]: a topic prefix per test on a real broker
//!   (VOTESTREAM_TEST_KAFKA), the stages as child processes;
//! - [`night`]: an election night over HTTP (a poll schedule, ballots);
//! - [`alert_night`]: a night with anomalies written into a store's ledger;
//! - [`results`]: numbers from summaries and results JSON.
//!
//! A test that needs a service it cannot reach fails and says how to start
//! it; none skips.

#![allow(dead_code)] // each test binary uses its own subset

pub mod alert_night;
pub mod browser;
pub mod http;
pub mod kafka;
pub mod night;
pub mod pg;
pub mod results;
pub mod run;
pub mod sqlite;
pub mod wait;

// Everything at `support::`, too (each test binary uses its own subset).
#[allow(unused_imports)]
pub use {http::*, kafka::*, night::*, pg::*, results::*, run::*, sqlite::*};

use std::sync::atomic::{AtomicU64, Ordering};

pub const ELECTION: &str = "general-2026";
pub const CANDIDATES: [&str; 3] = ["c-management", "c-savior", "c-tech-republic"];
pub const API_TOKEN: &str = "test-api-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A name no other test (in this process or another) has: the process id, a
/// counter and the clock's nanoseconds, joined by `sep`.
pub fn unique_name(sep: char) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}{sep}{}{sep}{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The id of generated voter `i` (seed 42, as `generate` makes them).
pub fn voter_id(i: u64) -> String {
    votestream::generate::voter(42, i).voter_id
}

/// Pseudo-random numbers for kill moments, from a seed that is printed and
/// can be replayed: `VOTESTREAM_TEST_SEED=<seed>` makes a run pick the same
/// moments again (otherwise the seed comes from the clock).
pub struct KillMoments(u64);

impl KillMoments {
    pub fn new(test: &str) -> KillMoments {
        let seed = match std::env::var("VOTESTREAM_TEST_SEED") {
            Ok(s) => s
                .parse()
                .unwrap_or_else(|_| panic!("VOTESTREAM_TEST_SEED={s:?} is not a number")),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7),
        };
        eprintln!("{test}: kill moments from seed {seed} (replay: VOTESTREAM_TEST_SEED={seed})");
        KillMoments(seed)
    }

    /// A number in `lo..hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}
