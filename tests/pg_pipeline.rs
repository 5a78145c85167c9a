//! Needs: PostgreSQL.
//!
//! The whole pipeline with PostgreSQL as the store: a clean run, and a run
//! killed with SIGKILL mid-way and restarted. Each test has its own database.

mod support;

use std::time::Duration;

use support::{
    pg_votes_are_unique_and_gap_free, spawn, stdout, votestream_ok_within, wait, TempDb,
};

const LIMIT: Duration = Duration::from_secs(300);

fn run_args<'a>(store: &'a str, rate: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--store",
        store,
        "--voters",
        "100000",
        "--rate",
        rate,
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ]
}

fn results(store: &str) -> serde_json::Value {
    let out = votestream_ok_within(&["results", "--store", store, "--json"], LIMIT);
    serde_json::from_slice(&out.stdout).expect("results JSON")
}

fn audit_passes(store: &str) {
    let out = stdout(&votestream_ok_within(&["audit", "--store", store], LIMIT));
    assert!(out.contains("audit passed"), "{out}");
}

/// Runs a clean pipeline into `db`; returns its accepted count.
fn clean_run(db: &TempDb) -> i64 {
    votestream_ok_within(&run_args(&db.url, "max"), LIMIT);
    audit_passes(&db.url);
    let r = results(&db.url);
    let accepted = r["accepted"].as_i64().expect("accepted");
    assert_eq!(r["counted"].as_i64(), Some(accepted));
    assert_eq!(
        r["received"].as_i64(),
        Some(accepted + r["rejected"].as_i64().expect("rejected"))
    );
    assert_eq!(pg_votes_are_unique_and_gap_free(&db.url), accepted);
    accepted
}

#[test]
fn run_until_done_then_audit_passes() {
    let db = TempDb::new();
    let accepted = clean_run(&db);
    assert_eq!(accepted, 80_000, "turnout 0.8 of 100,000 voters");
    let r = results(&db.url);
    assert_eq!(r["registered_voters"].as_i64(), Some(100_000));
    assert!(
        r["rejected_by_reason"]["already_voted"]
            .as_i64()
            .unwrap_or(0)
            > 0
    );
    // Running again over the same store changes nothing: every ballot is a replay.
    votestream_ok_within(&run_args(&db.url, "max"), LIMIT);
    let again = results(&db.url);
    assert_eq!(again["accepted"], r["accepted"]);
    assert_eq!(again["received"], r["received"]);
    audit_passes(&db.url);
}

#[test]
fn sigkill_mid_run_then_restart_loses_and_doubles_nothing() {
    let clean = TempDb::new();
    let expected = clean_run(&clean);

    let db = TempDb::new();
    let mut client = db.client();
    // Paced, so there is a "middle" to kill in.
    let mut child = spawn(&run_args(&db.url, "40000"));
    let pid = child.child().id();
    let mut seen = 0i64;
    wait::until(LIMIT, "votes to be recorded", || {
        seen = client
            .query_one("SELECT COUNT(*) FROM votes", &[])
            .map(|r| r.get(0))
            .unwrap_or(0);
        seen >= 20_000
    });
    // SAFETY: kill(2) on the pid of the child this test started and has not reaped.
    let killed = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(killed, 0, "SIGKILL the run");
    let out = child.output_within(LIMIT, "the killed run");
    assert!(!out.status.success(), "the run was killed, not finished");
    let at_kill: i64 = client
        .query_one("SELECT COUNT(*) FROM votes", &[])
        .unwrap()
        .get(0);
    assert!(
        at_kill < expected,
        "killed mid-run ({at_kill} of {expected} votes)"
    );

    votestream_ok_within(&run_args(&db.url, "max"), LIMIT);
    audit_passes(&db.url);
    let r = results(&db.url);
    assert_eq!(r["accepted"].as_i64(), Some(expected));
    assert_eq!(r["counted"].as_i64(), Some(expected));
    assert_eq!(pg_votes_are_unique_and_gap_free(&db.url), expected);
    // Not only as many: the very votes and rejections of the clean run.
    for (what, sql) in [
        (
            "votes",
            "SELECT election_id || '|' || voter_id || '|' || candidate_id || '|' || ballot_id
             FROM votes ORDER BY 1",
        ),
        (
            "rejections",
            "SELECT ballot_id || '|' || reason FROM rejected_ballots ORDER BY 1",
        ),
    ] {
        let rows = |db: &TempDb| -> Vec<String> {
            db.client()
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        let (killed, reference) = (rows(&db), rows(&clean));
        assert_eq!(killed.len(), reference.len(), "{what}");
        assert!(
            killed == reference,
            "the {what} after SIGKILL and restart differ from the clean run's"
        );
    }
}
