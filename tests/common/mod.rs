//! Helpers shared by the integration tests: run the `votestream` binary with a
//! deadline, read its results JSON, and look into its SQLite store read-only.
//!
//! Every child process is bounded by a generous deadline and killed (by its
//! own handle) if it overruns, so a hang fails a test instead of stalling it.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// Far more than any command here needs, even in a loaded CI machine.
pub const DEADLINE: Duration = Duration::from_secs(180);

pub const ELECTION: &str = "general-2026";
pub const CANDIDATES: [&str; 3] = ["c-management", "c-savior", "c-tech-republic"];

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
        votestream_ok(&run_args(&self.url, voters, seed))
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

/// Arguments of `votestream run ... --rate max --until-done` on a free port.
pub fn run_args(url: &str, voters: u64, seed: u64) -> Vec<String> {
    [
        "run",
        "--store",
        url,
        "--voters",
        &voters.to_string(),
        "--seed",
        &seed.to_string(),
        "--rate",
        "max",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_votestream"));
    // Every flag has an environment variable: none may leak in from the
    // caller's environment and change what a test runs.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VOTESTREAM_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A child process that is killed (SIGKILL, by its own handle) and reaped if
/// the test lets go of it while it still runs, e.g. on a failed assertion.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child still held")
    }

    /// SIGKILL and reap; returns the exit status.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.0.take().expect("child still held");
        // An error here means it already exited; wait() reports how.
        let _ = child.kill();
        child.wait().expect("reaping the child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the binary with `args`, bounded by [`DEADLINE`]; any exit status.
pub fn votestream<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let mut cmd = command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let mut guard = ChildGuard(Some(cmd.spawn().expect("votestream starts")));
    let child = guard.child();
    let mut out_pipe = child.stdout.take().expect("stdout piped");
    let mut err_pipe = child.stderr.take().expect("stderr piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = guard.child().try_wait().expect("polling the child") {
            guard.0 = None;
            break status;
        }
        if started.elapsed() > DEADLINE {
            let status = guard.kill();
            panic!("votestream {shown:?} still ran after {DEADLINE:?}; killed ({status})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// [`votestream`], asserting exit 0.
pub fn votestream_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let out = votestream(args);
    assert!(
        out.status.success(),
        "votestream {:?} failed: {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        describe(&out)
    );
    out
}

pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number right before `word` in `text`: `number_before("sent 5 ballots", " ballots")` is 5.
pub fn number_before(text: &str, word: &str) -> u64 {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} not in output:\n{text}"));
    let digits: String = text[..at]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {word:?} in:\n{text}"))
}

/// From a `run` summary: (ballots sent, replays skipped).
pub fn sent_and_replays(out: &Output) -> (u64, u64) {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no `sent ...` line in run summary:\n{text}"));
    (
        number_before(line, " ballots in"),
        number_before(line, " replays"),
    )
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

pub fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("results field {field:?} is not an integer: {v}"))
}

/// candidate_id → total_votes from a results JSON.
pub fn candidate_totals(r: &Value) -> BTreeMap<String, i64> {
    r["candidates"]
        .as_array()
        .expect("candidates array")
        .iter()
        .map(|c| {
            (
                c["candidate_id"]
                    .as_str()
                    .expect("candidate_id")
                    .to_string(),
                c["total_votes"].as_i64().expect("total_votes"),
            )
        })
        .collect()
}

/// reason → count from a results JSON.
pub fn by_reason(r: &Value) -> BTreeMap<String, i64> {
    r["rejected_by_reason"]
        .as_object()
        .expect("rejected_by_reason object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().expect("reason count")))
        .collect()
}

/// Sum of `field` over the objects of the array `r[array]`.
pub fn sum_of(r: &Value, array: &str, field: &str) -> i64 {
    r[array]
        .as_array()
        .unwrap_or_else(|| panic!("{array} is not an array"))
        .iter()
        .map(|x| x[field].as_i64().expect("integer"))
        .sum()
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
