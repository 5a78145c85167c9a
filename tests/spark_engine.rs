//! Needs: Spark, Kafka, PostgreSQL.
//!
//! The Apache Spark engine beside the built-in one, for real: Kafka
//! and PostgreSQL (scripts/kafka.sh, scripts/pg.sh), Spark from PyPI's
//! pyspark with the Kafka connector's jars (`bash scripts/spark.sh fetch`),
//! started as `votestream aggregate --engine spark` on the same bus URL
//! (topic prefix) and store as the rest of the pipeline.
//!
//! Once the stream has drained, the Spark engine's results (engine 'spark')
//! equal the built-in engine's (engine 'builtin'):
//! - per candidate, per state, per age band × gender: exactly;
//! - per-minute windows: both engines count every vote either in its minute
//!   window or as late (windows + late = the candidate totals), neither
//!   window holds a vote a recount does not put there (`audit` of each
//!   engine), and the largest cast time is the same. The split between a
//!   window and "late" can differ for votes older than the allowance: the
//!   built-in engine judges each vote against the largest cast time before
//!   it in its own reading order, Spark a whole micro-batch against the
//!   largest one committed before the batch (spark/README.md). So where the
//!   simulation has no late votes (`--late-share 0`, a stream shorter than
//!   the allowance), the windows are asserted equal exactly, and no vote is
//!   late in either engine.
//!
//! Never skips: without Spark fetched, the tests fail and say
//! `bash scripts/spark.sh fetch`.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{sent, KafkaTest};

/// One Spark job at a time: each is a JVM with `local[2]`, on 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

const ELECTION: &str = "general-2026";
/// Bounds every wait for a drained stream (a Spark start takes 10–30 s).
const DRAIN: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where scripts/spark.sh keeps the venv and the connector's jars; fails
/// loudly (never skips) when they are not there.
fn require_spark() -> PathBuf {
    let home = std::env::var_os("VOTESTREAM_SPARK_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/spark"));
    let jars = std::fs::read_dir(home.join("jars"))
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("spark-sql-kafka")
            })
        })
        .unwrap_or(false);
    assert!(
        home.join(".complete").is_file() && home.join("venv/bin/python").is_file() && jars,
        "Spark is not fetched into {}: run `bash scripts/spark.sh fetch` (pyspark from PyPI, the \
         Kafka connector from Maven Central); `bash scripts/test.sh` does it",
        home.display()
    );
    home
}

/// `votestream aggregate --engine spark` as a child in a process group of
/// its own (votestream, the Python driver, the JVM), so a SIGKILL takes the
/// whole job, and only the one this test started.
struct SparkEngine {
    child: Option<Child>,
    log: PathBuf,
}

impl SparkEngine {
    fn start(t: &KafkaTest, dir: &Path, checkpoint: &Path) -> SparkEngine {
        let log = dir.join("spark.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("spark log");
        let mut cmd = support::command();
        cmd.args(["aggregate", "--engine", "spark", "--bus", &t.bus])
            .args(["--store", &t.db.url, "--checkpoint"])
            .arg(checkpoint)
            .current_dir(repo())
            .env("VOTESTREAM_SPARK_SCRIPT", repo().join("scripts/spark.sh"))
            .env("VOTESTREAM_SPARK_PIDFILE", dir.join("spark.pid"))
            // Micro-batches of at most 1,000 votes: a kill lands mid-stream.
            .env("VOTESTREAM_SPARK_MAX_OFFSETS", "1000")
            .env("VOTESTREAM_SPARK_HOME", require_spark())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .process_group(0);
        SparkEngine {
            child: Some(
                cmd.spawn()
                    .expect("votestream aggregate --engine spark starts"),
            ),
            log,
        }
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL to the whole process group; waits until every member is gone.
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as i32;
        // SAFETY: signals the process group this test created (pgid = its leader's pid).
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(30);
        // SAFETY: signal 0 only checks whether the group still has members.
        while unsafe { libc::killpg(pgid, 0) } == 0 {
            assert!(
                Instant::now() < deadline,
                "process group {pgid} outlived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to votestream, which passes it on: the job stops its query
    /// and everything exits 0.
    fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        // SAFETY: signals our own child, by its pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("the Spark engine did not stop within 90 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let tail = self.tail();
        self.kill(); // nothing left, normally; never leave a JVM behind
        assert!(
            status.success(),
            "the Spark engine exited with {status}:\n{tail}"
        );
    }
}

impl Drop for SparkEngine {
    fn drop(&mut self) {
        self.kill();
    }
}

type Rows = Vec<Vec<String>>;

/// One results table of one engine, as sorted rows of text.
fn table(t: &KafkaTest, sql: &str, engine: &str) -> Rows {
    let mut rows: Rows =
        t.db.client()
            .query(sql, &[&engine])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<_, String>(i)
                            .or_else(|_| r.try_get::<_, i64>(i).map(|n| n.to_string()))
                            .or_else(|_| {
                                r.try_get::<_, Option<i64>>(i)
                                    .map(|n| n.map_or("NULL".into(), |n| n.to_string()))
                            })
                            .unwrap_or_else(|e| panic!("{sql}: column {i}: {e}"))
                    })
                    .collect()
            })
            .collect();
    rows.sort();
    rows
}

const CANDIDATE: &str =
    "SELECT election_id, candidate_id, votes FROM results_candidate WHERE engine = $1";
const STATE: &str =
    "SELECT election_id, state, candidate_id, votes FROM results_state WHERE engine = $1";
const DEMOGRAPHIC: &str = "SELECT election_id, age_band, gender, candidate_id, votes \
     FROM results_demographic WHERE engine = $1";
const MINUTE: &str =
    "SELECT election_id, minute, candidate_id, votes FROM results_minute WHERE engine = $1";
const MAX_CAST: &str = "SELECT election_id, max_cast_at FROM results_election WHERE engine = $1";

fn counted(t: &KafkaTest, engine: &str) -> i64 {
    t.scalar(&format!(
        "SELECT COALESCE(SUM(votes), 0)::int8 FROM results_candidate WHERE engine = '{engine}'"
    ))
}

/// Waits until the Spark engine has counted every vote, and stays there.
fn wait_spark_drained(t: &KafkaTest, spark: &mut SparkEngine) {
    let votes = t.scalar("SELECT COUNT(*) FROM votes");
    let deadline = Instant::now() + DRAIN;
    loop {
        let n = counted(t, "spark");
        if n == votes {
            break;
        }
        assert!(n < votes, "Spark counted {n} votes of {votes}: too many");
        assert!(
            spark.alive(),
            "the Spark engine died after counting {n} of {votes} votes:\n{}",
            spark.tail()
        );
        assert!(
            Instant::now() < deadline,
            "the Spark engine counted {n} of {votes} votes after {DRAIN:?}:\n{}",
            spark.tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(counted(t, "spark"), votes, "Spark counted more afterwards");
}

/// Audits one engine's tallies against a recount of the votes table.
fn audit(t: &KafkaTest, engine: &str) {
    let mut st = votestream::store::open(&t.db.url).expect("the store opens");
    let report = votestream::audit::audit(&mut *st, ELECTION, engine).expect("audit runs");
    assert!(
        report.is_clean(),
        "audit of engine {engine}: {:?}",
        report.differences
    );
}

/// The equalities of the module comment; `exact_windows` where the
/// simulation had no late votes.
fn assert_engines_agree(t: &KafkaTest, exact_windows: bool) {
    let votes = t.scalar("SELECT COUNT(*) FROM votes");
    for (what, sql) in [
        ("per candidate", CANDIDATE),
        ("per state", STATE),
        ("per age band and gender", DEMOGRAPHIC),
        ("largest cast time", MAX_CAST),
    ] {
        let (builtin, spark) = (table(t, sql, "builtin"), table(t, sql, "spark"));
        assert!(!builtin.is_empty(), "no builtin results {what}");
        assert_eq!(
            spark, builtin,
            "Spark differs from the built-in engine {what}"
        );
    }
    let mut late = BTreeMap::new();
    for engine in ["builtin", "spark"] {
        let windows = t.scalar(&format!(
            "SELECT COALESCE(SUM(votes), 0)::int8 FROM results_minute WHERE engine = '{engine}'"
        ));
        let n = t.scalar(&format!(
            "SELECT COALESCE(SUM(late_votes), 0)::int8 FROM results_election WHERE engine = '{engine}'"
        ));
        assert_eq!(
            windows + n,
            votes,
            "{engine}: {windows} votes in minute windows + {n} late != {votes} votes"
        );
        late.insert(engine, n);
        // Windows never hold a vote a recount does not put there; late = missing.
        audit(t, engine);
    }
    if exact_windows {
        assert_eq!(
            table(t, MINUTE, "spark"),
            table(t, MINUTE, "builtin"),
            "per-minute windows differ on a stream without late votes"
        );
        assert_eq!(late.values().sum::<i64>(), 0, "late votes: {late:?}");
    }
    // `votestream audit` (the built-in engine, as the CLI runs it).
    t.assert_exact();
    // Both engines publish the same keys to the compacted topics; drained,
    // the latest value of each key is the total either engine has.
    let latest = |name: &str, field: &str| -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for (k, v) in t.read_topic(name) {
            let j: serde_json::Value = serde_json::from_slice(&v).expect("JSON");
            m.insert(k.expect("a key"), j[field].as_i64().expect(field));
        }
        m
    };
    let want: BTreeMap<String, i64> = table(t, CANDIDATE, "spark")
        .into_iter()
        .map(|r| (format!("{}:{}", r[0], r[1]), r[2].parse().unwrap()))
        .collect();
    // The built-in engine publishes at most a few times a second: retry a little.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = latest("aggregated_votes_per_candidate", "total_votes");
        let states = latest("aggregated_turnout_by_location", "count");
        let ok = got == want
            && states.keys().all(|k| k.starts_with("general-2026:"))
            && states.values().sum::<i64>() == votes;
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "aggregate topics: {got:?} (want {want:?}), states sum to {} (want {votes}): {:?}",
            states.values().sum::<i64>(),
            states.keys().take(3).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn scratch(t: &KafkaTest) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).expect("tmp dir");
    tempfile::Builder::new()
        .prefix(&format!("spark-{}", t.prefix))
        .tempdir_in(base)
        .expect("scratch dir")
}

#[test]
fn spark_engine_equals_builtin_after_the_stream_drains() {
    require_spark();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let t = KafkaTest::new(4);
    let dir = scratch(&t);
    t.run_ok("generate", &["--voters", "20000"]);
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let mut builtin = t.spawn("aggregate", "aggregate", &["--follow"]);
    let mut spark = SparkEngine::start(&t, dir.path(), &dir.path().join("checkpoint"));
    // The default simulation: 1% late votes, 1% duplicates, 1% invalid.
    let n = sent(&t.run_ok("simulate", &["--rate", "4000"]));
    t.wait_drained(n, DRAIN);
    wait_spark_drained(&t, &mut spark);
    assert!(t.scalar("SELECT COUNT(*) FROM votes") == 16_000);
    assert_engines_agree(&t, false);
    desk_calls_on_spark_results(&t);
    spark.stop();
    process.stop();
    builtin.stop();
    eprintln!("drained and compared in {:?}", started.elapsed());
}

/// The race desk reading the Spark engine's results: the states whose
/// leader is already beyond reach of every voter not yet counted are
/// called, each for its leader in both engines' final counts.
fn desk_calls_on_spark_results(t: &KafkaTest) {
    let mut desk = t.spawn("desk", "desk", &["--engine", "spark"]);
    let called = "SELECT COUNT(*) FROM desk_events WHERE body LIKE '%\"kind\":\"called\"%'";
    t.wait_for("the desk's first calls", Duration::from_secs(60), || {
        t.scalar(called) >= 3
    });
    desk.stop();
    let leaders = |engine: &str| -> BTreeMap<String, String> {
        let mut by_state: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for r in table(t, STATE, engine) {
            let votes: i64 = r[3].parse().unwrap();
            by_state
                .entry(r[1].clone())
                .or_default()
                .push((votes, r[2].clone()));
        }
        by_state
            .into_iter()
            .map(|(state, mut v)| {
                v.sort();
                (state, v.last().unwrap().1.clone())
            })
            .collect()
    };
    let (spark, builtin) = (leaders("spark"), leaders("builtin"));
    let bodies: Vec<String> =
        t.db.client()
            .query("SELECT body FROM desk_events ORDER BY event_no", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let mut calls = 0;
    for body in bodies {
        let e: serde_json::Value = serde_json::from_str(&body).unwrap();
        if e["kind"] != "called" || e["race"]["kind"] != "state" {
            continue;
        }
        calls += 1;
        let state = e["race"]["state"].as_str().unwrap();
        assert_eq!(e["candidate"], spark[state].as_str(), "{e}");
        assert_eq!(e["candidate"], builtin[state].as_str(), "{e}");
        assert!(e["margin"].as_i64() > e["outstanding"].as_i64(), "{e}");
    }
    assert!(calls >= 3, "{calls} state calls");
}

#[test]
fn spark_engine_sigkilled_mid_stream_resumes_exactly_from_its_checkpoint() {
    require_spark();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let t = KafkaTest::new(4);
    let dir = scratch(&t);
    let checkpoint = dir.path().join("checkpoint");
    t.run_ok("generate", &["--voters", "20000"]);
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let mut builtin = t.spawn("aggregate", "aggregate", &["--follow"]);
    let mut spark = SparkEngine::start(&t, dir.path(), &checkpoint);
    // No late votes: the per-minute windows must then be equal too.
    let sim = std::thread::spawn({
        let args: Vec<String> = [
            "simulate",
            "--store",
            &t.db.url,
            "--bus",
            &t.bus,
            "--rate",
            "2000",
            "--late-share",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        move || support::votestream_ok(&args)
    });
    // Kill the whole job in the middle of the stream (batches of ≤ 1,000).
    t.wait_for("Spark's first 3,000 votes", DRAIN, || {
        assert!(spark.alive(), "the Spark engine died:\n{}", spark.tail());
        counted(&t, "spark") >= 3000
    });
    spark.kill();
    let at_kill = counted(&t, "spark");
    let n = sent(&sim.join().expect("simulator"));
    t.wait_drained(n, DRAIN);
    let votes = t.scalar("SELECT COUNT(*) FROM votes");
    assert!(
        at_kill < votes,
        "Spark had counted all {votes} votes before the kill"
    );
    // More votes while it is down (another seed, full turnout: every voter
    // who has not voted yet does now), then a restart on the same checkpoint.
    let more = sent(&t.run_ok(
        "simulate",
        &[
            "--rate",
            "max",
            "--late-share",
            "0",
            "--seed",
            "7",
            "--turnout",
            "1.0",
        ],
    ));
    t.wait_drained(n + more, DRAIN);
    assert!(votes < 20_000, "the first phase left voters to vote later");
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM votes"),
        20_000,
        "the phase while Spark is down adds the remaining voters' votes"
    );
    assert_eq!(
        counted(&t, "spark"),
        at_kill,
        "nothing is counted by Spark while it is down"
    );
    let mut spark = SparkEngine::start(&t, dir.path(), &checkpoint);
    wait_spark_drained(&t, &mut spark);
    assert_engines_agree(&t, true);
    spark.stop();
    process.stop();
    builtin.stop();
    eprintln!(
        "killed at {at_kill} votes; drained and compared in {:?}",
        started.elapsed()
    );
}
