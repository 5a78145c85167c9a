//! Writers to one database file take turns, and the WAL is checkpointed
//! beside them rather than inside their commits.
//!
//! Turns. SQLite lets one connection
//! write at a time, and one waiting for the lock polls it with growing
//! sleeps (its busy handler, up to 100 ms apart). A writer that begins its
//! next transaction the moment it commits (the processor, its next batch
//! already validated) then keeps the lock while the aggregator sleeps
//! between polls, and the tallies fall seconds behind the votes. Within a
//! process, writers to one file queue here instead, first come first
//! served: a save waits for at most the transaction in progress. Writers in
//! other processes still meet at SQLite's lock.
//!
//! Checkpoints. SQLite's own (`wal_autocheckpoint`) runs inside the commit
//! that crosses the threshold, and copying 64 MB of pages back into the
//! database stalled that commit, and every writer queued behind it, for
//! 200–400 ms. Each file's gate has a thread that runs a passive checkpoint
//! every 100 ms instead; a passive checkpoint never waits for a writer, and
//! writers never wait for it. It stops with the last store of the file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use parking_lot::{ArcMutexGuard, FairMutex, RawFairMutex};

pub(super) type Gate = Arc<FairMutex<()>>;
/// A turn to write, held until the transaction ends.
pub(super) type Turn = ArcMutexGuard<RawFairMutex, ()>;

const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

static GATES: LazyLock<Mutex<HashMap<PathBuf, Weak<FairMutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// The gate of the database file at `path` (opened already, so it exists).
pub(super) fn of(path: &str) -> Gate {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    let mut gates = match GATES.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(gate) = gates.get(&key).and_then(Weak::upgrade) {
        return gate;
    }
    gates.retain(|_, g| g.strong_count() > 0);
    let gate = Arc::new(FairMutex::new(()));
    gates.insert(key, Arc::downgrade(&gate));
    checkpoint_beside(path, Arc::downgrade(&gate));
    gate
}

/// Checkpoints the file while any store of it (holding the gate) is open.
fn checkpoint_beside(path: &str, gate: Weak<FairMutex<()>>) {
    let conn = match rusqlite::Connection::open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path, error = %e, "no background checkpoints for this file");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while gate.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "passive checkpoint");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(path, error = %e, "no background checkpoints for this file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_one_gate_whatever_the_path_says() {
        let dir = std::env::temp_dir().join(format!("vs-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.db");
        std::fs::write(&file, b"").unwrap();
        let a = of(file.to_str().unwrap());
        let b = of(dir.join(".").join("a.db").to_str().unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        let _held = a.lock_arc();
        assert!(
            b.try_lock().is_none(),
            "the second path must wait for the first"
        );
        let other = dir.join("b.db");
        std::fs::write(&other, b"").unwrap();
        assert!(of(other.to_str().unwrap()).try_lock().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_wal_is_copied_back_while_writers_never_checkpoint() {
        let dir = std::env::temp_dir().join(format!("vs-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.db");
        let path = file.to_str().unwrap();
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (x BLOB);",
        )
        .unwrap();
        let _gate = of(path);
        let before = std::fs::metadata(&file).unwrap().len();
        for _ in 0..64 {
            conn.execute("INSERT INTO t VALUES (zeroblob(65536))", [])
                .unwrap();
        }
        // Only the gate's thread can have moved the 4 MB into the file.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() < before + 4 * 1024 * 1024 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint in 10 s"
            );
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
