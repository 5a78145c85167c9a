//! Needs: nothing.
//!
//! `/readyz` tells the truth: a processor that cannot record while ballots
//! wait turns it 503 (with the reason, and `/metrics` shows which stage),
//! and it turns 200 again once the stage moves. Bounded waits, no timing
//! assertions.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[test]
fn a_stuck_processor_turns_readyz_503_and_metrics_say_which_stage() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 50);
    let server = Server::start(&store, dir.path(), &[]);
    assert_eq!(server.get("/readyz").0, 200);

    // Another writer holds the database's write lock: the processor's
    // commits wait on it (SQLite's busy timeout), reads still work.
    let db = rusqlite::Connection::open(dir.path().join("v.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();

    let addr = server.addr.clone();
    let casts: Vec<_> = (0..5)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let body = json!({"voter_id": voter_id(i), "candidate_id": "c-savior"}).to_string();
                let auth = format!("Bearer {API_TOKEN}");
                request(
                    &addr,
                    "POST",
                    &format!("/api/v1/elections/{ELECTION}/ballots"),
                    &[("Authorization", auth.as_str())],
                    body.as_bytes(),
                )
                .status
            })
        })
        .collect();

    server.wait_until(|s| s.get("/readyz").0 == 503, "/readyz to say 503");
    let (_, why) = server.get("/readyz");
    assert!(why.contains("processor is stuck"), "{why}");
    let (_, text) = server.get("/metrics");
    assert_eq!(
        metric(&text, "votestream_stage_ready{stage=\"processor\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "votestream_stage_ready{stage=\"store\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "votestream_ready"), 0.0, "{text}");
    assert!(
        metric(
            &text,
            "votestream_stage_stalled_seconds{stage=\"processor\"}"
        ) > 0.0
    );

    // The lock goes: the ballots are recorded, and readiness comes back.
    db.execute_batch("ROLLBACK").unwrap();
    for c in casts {
        assert_eq!(c.join().unwrap(), 202);
    }
    server.wait_until(|s| s.get("/readyz").0 == 200, "/readyz to say 200 again");
    std::thread::sleep(Duration::from_millis(300));
    let (_, text) = server.get("/metrics");
    assert_eq!(
        metric(&text, "votestream_stage_ready{stage=\"processor\"}"),
        1.0,
        "{text}"
    );
}
