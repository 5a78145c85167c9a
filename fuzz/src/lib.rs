//! The fuzz targets' bodies: each takes the fuzzer's bytes, drives one edge
//! of votestream with them, and checks what must hold for ANY input (not
//! only that nothing panicked). A broken invariant panics, which AFL++
//! records as a crash. The binaries in `src/bin` wrap these in `afl::fuzz!`;
//! `replay` runs saved inputs through them without AFL.

pub mod http;
pub mod import;
pub mod kafka;
pub mod parse;

use votestream::model::Rejection;
use votestream::process::parse::{MAX_ID_BYTES, RAW_KEPT_BYTES};

/// What every rejection must be, whatever produced it: a reason with a
/// detail, an id the store takes, no text a store refuses, a capped copy of
/// what was sent.
pub fn check_rejection(r: &Rejection) {
    assert!(!r.detail.is_empty(), "rejection without detail: {r:?}");
    assert!(
        !r.ballot_id.is_empty() && r.ballot_id.len() <= 2 * MAX_ID_BYTES,
        "rejection ballot_id of {} bytes",
        r.ballot_id.len()
    );
    // Lossy UTF-8 turns each bad byte into a 3-byte U+FFFD.
    assert!(
        r.raw.len() <= 3 * RAW_KEPT_BYTES,
        "rejection keeps {} bytes of raw input",
        r.raw.len()
    );
    for (name, text) in [
        ("ballot_id", Some(r.ballot_id.as_str())),
        ("election_id", r.election_id.as_deref()),
        ("voter_id", r.voter_id.as_deref()),
        ("detail", Some(r.detail.as_str())),
        ("raw", Some(r.raw.as_str())),
    ] {
        if let Some(t) = text {
            assert!(!t.contains('\0'), "rejection {name} holds NUL: {t:?}");
        }
    }
}
