//! SQLite stores: a fresh one per test, the store of a few generated
//! voters, and read-only looks into the file (it may be in WAL mode with a
//! live writer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::run::{describe, votestream, votestream_ok};

/// A fresh store in its own temporary directory (removed on drop).
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub url: String,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("votes.db");
        let url = format!("sqlite://{}", path.display());
        TestStore { dir, path, url }
    }

    /// A file next to the store.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The SQLite file, read-only.
    pub fn db(&self) -> Connection {
        open_ro(&self.path).expect("store opens read-only")
    }

    /// `votestream results --json` for the default election.
    pub fn results(&self) -> Value {
        let out = votestream_ok(&["results", "--store", &self.url, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "results --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Whether `votestream audit` passes (exit 0) or finds a difference (exit 1).
    pub fn audit_passes(&self) -> bool {
        let out = votestream(&["audit", "--store", &self.url]);
        match out.status.code() {
            Some(0) => true,
            Some(1) => {
                eprintln!("audit failed:\n{}", String::from_utf8_lossy(&out.stdout));
                false
            }
            _ => panic!("audit did not run: {}", describe(&out)),
        }
    }

    /// `votestream run` over `voters` voters at full speed until done.
    pub fn run(&self, voters: u64, seed: u64) -> Output {
        votestream_ok(&super::run::run_args(&self.url, voters, seed))
    }

    pub fn generate(&self, voters: u64) -> Output {
        votestream_ok(&[
            "generate",
            "--store",
            &self.url,
            "--voters",
            &voters.to_string(),
        ])
    }
}

/// Opens an SQLite file read-only (it may be in WAL mode with a live writer).
pub fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

pub fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `SELECT reason, COUNT(*) FROM rejected_ballots GROUP BY reason`, optionally for one election.
pub fn rejections_by_reason(db: &Connection, election: Option<&str>) -> BTreeMap<String, i64> {
    let collect = |stmt: &mut rusqlite::Statement<'_>, params: &[&dyn rusqlite::ToSql]| {
        stmt.query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<BTreeMap<String, i64>>>())
            .expect("rejections by reason")
    };
    match election {
        Some(e) => collect(
            &mut db
                .prepare("SELECT reason, COUNT(*) FROM rejected_ballots WHERE election_id = ?1 GROUP BY reason")
                .expect("query"),
            &[&e],
        ),
        None => collect(
            &mut db
                .prepare("SELECT reason, COUNT(*) FROM rejected_ballots GROUP BY reason")
                .expect("query"),
            &[],
        ),
    }
}

/// A digest of the votes table's content (who voted for whom with which
/// ballot), independent of insertion order and seq numbers.
pub fn votes_digest(db: &Connection) -> (i64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut stmt = db
        .prepare(
            "SELECT election_id, voter_id, candidate_id, ballot_id FROM votes
             ORDER BY election_id, voter_id",
        )
        .expect("votes query");
    let mut rows = stmt.query([]).expect("votes query runs");
    let mut n = 0;
    while let Some(r) = rows.next().expect("votes row") {
        for i in 0..4 {
            r.get_ref(i)
                .expect("column")
                .as_str()
                .expect("text")
                .hash(&mut h);
        }
        n += 1;
    }
    (n, h.finish())
}

/// Number of (election, voter) pairs with more than one vote: must be 0.
pub fn double_votes(db: &Connection) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM (SELECT 1 FROM votes GROUP BY election_id, voter_id HAVING COUNT(*) > 1)",
    )
}

/// A store with the default election and `voters` generated voters, as
/// `v.db` in `dir`; returns its URL.
pub fn store_with_voters(dir: &Path, voters: u64) -> String {
    let store = format!("sqlite://{}", dir.join("v.db").display());
    votestream_ok(&[
        "generate",
        "--store",
        &store,
        "--voters",
        &voters.to_string(),
    ]);
    store
}
