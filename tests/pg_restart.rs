//! Needs: Kafka, PostgreSQL.
//!
//! Connection loss: PostgreSQL restarted while `run` is writing, on the
//! in-process bus and on Kafka. The stages retry with backoff and reconnect;
//! the run completes, nothing is lost or counted twice. Its own test binary,
//! so the restart cannot disturb another test (cargo runs test binaries one
//! after another); its two tests take turns.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::{
    pg_votes_are_unique_and_gap_free, script, spawn, status_within, stdout, votestream_ok_within,
    wait, ChildGuard, KafkaTest, TempDb, SCRIPT_DEADLINE,
};

const LIMIT: Duration = Duration::from_secs(300);

/// One restart at a time: each test must see its own.
static TURN: Mutex<()> = Mutex::new(());

/// When the server the tests use last started.
fn postmaster_started(db: &TempDb) -> Option<String> {
    postgres::Client::connect(&db.url, postgres::NoTls)
        .and_then(|mut c| c.query_one("SELECT pg_postmaster_start_time()::text", &[]))
        .map(|r| r.get(0))
        .ok()
}

/// Restarts the server the tests use (the project's own, via scripts/pg.sh)
/// and checks that it really was that server that restarted. An external
/// server (DATABASE_URL) cannot be restarted by a test: it fails, rather
/// than test something weaker (a killed backend is not a restart).
fn lose_connections(db: &TempDb) {
    assert!(
        std::env::var("DATABASE_URL").is_err(),
        "DATABASE_URL names an external PostgreSQL, which this test must not restart: \
         run it against the server scripts/pg.sh starts (unset DATABASE_URL and export \
         VOTESTREAM_TEST_PG_URL=$(bash scripts/pg.sh url); PGPORT picks its port)"
    );
    let before = postmaster_started(db).expect("the server is up before the restart");
    let status = status_within(script("pg.sh").arg("restart"), SCRIPT_DEADLINE);
    assert!(status.success(), "scripts/pg.sh restart failed");
    let mut after = None;
    wait::until(LIMIT, "the server to take connections again", || {
        after = postmaster_started(db);
        after.is_some()
    });
    assert_ne!(
        after.as_deref(),
        Some(before.as_str()),
        "scripts/pg.sh restarted a server, but not the one at VOTESTREAM_TEST_PG_URL \
         (scripts/pg.sh restarts the one on PGPORT)"
    );
}

/// Restarts the server under a running `run` and waits for it: it must
/// finish on its own, successfully, having felt the restart.
fn restart_during(child: ChildGuard, db: &TempDb) {
    lose_connections(db);
    let out = child.output_within(LIMIT, "the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the run survives the restart:\n{stderr}"
    );
    assert!(
        stderr.contains("retrying"),
        "the restart was felt and retried:\n{stderr}"
    );
}

#[test]
fn postgres_restart_mid_run_loses_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let db = TempDb::new();
    let mut client = db.client();
    let args = [
        "run",
        "--store",
        &db.url,
        "--voters",
        "100000",
        "--rate",
        "25000",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ];
    let child = spawn(&args);
    wait::until(LIMIT, "votes to be recorded", || {
        client
            .query_one("SELECT COUNT(*) FROM votes", &[])
            .map(|r| r.get::<_, i64>(0) >= 15_000)
            .unwrap_or(false)
    });
    restart_during(child, &db);
    let audit = stdout(&votestream_ok_within(&["audit", "--store", &db.url], LIMIT));
    assert!(audit.contains("audit passed"), "{audit}");
    let json = votestream_ok_within(&["results", "--store", &db.url, "--json"], LIMIT);
    let r: serde_json::Value = serde_json::from_slice(&json.stdout).expect("results JSON");
    assert_eq!(
        r["accepted"].as_i64(),
        Some(80_000),
        "every voter who voted, once"
    );
    assert_eq!(r["counted"].as_i64(), Some(80_000));
    assert_eq!(
        r["received"].as_i64(),
        Some(80_000 + r["rejected"].as_i64().expect("rejected"))
    );
    assert_eq!(pg_votes_are_unique_and_gap_free(&db.url), 80_000);
}

/// The Kafka shape: the processor's store commits and profile reads, and the
/// stream aggregator's offset reads and saves, all ride out the restart;
/// `run --until-done` still sees the stream drain and stops by itself.
#[test]
fn postgres_restart_mid_run_on_kafka_loses_and_duplicates_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let t = KafkaTest::new(4);
    let args = [
        "run",
        "--store",
        &t.db.url,
        "--bus",
        &t.bus,
        "--instance",
        "pg-restart",
        "--voters",
        "50000",
        "--rate",
        "10000",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ];
    let child = spawn(&args);
    let mut client = t.db.client();
    // Until `run` has created the schema, the query fails: not yet.
    wait::until(LIMIT, "votes counted before the restart", || {
        client
            .query_one(
                "SELECT COALESCE(SUM(votes), 0)::int8 FROM results_candidate WHERE engine = 'builtin'",
                &[],
            )
            .map(|r| r.get::<_, i64>(0) >= 8_000)
            .unwrap_or(false)
    });
    restart_during(child, &t.db);
    let votes = t.scalar("SELECT COUNT(*) FROM votes");
    assert_eq!(votes, 40_000, "every voter who voted, once");
    assert_eq!(t.counted(), votes, "every vote counted once");
    t.assert_exact();
}
