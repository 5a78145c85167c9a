//! Needs: nothing.
//!
//! A replay served while it runs: `votestream serve` on the replay's target
//! store, started while an election night is replayed at 1×, shows the
//! counts rising through the night, then the original's final totals, and
//! the race desk's events as the replay's desk records them, the
//! original's, in order.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{votestream_ok, Server, ELECTION};

const RESULTS: &str = "/api/v1/elections/general-2026/results";

fn results(url: &str) -> Value {
    let out = votestream_ok(&["results", "--store", url, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The parts of an event that say what was decided, where and when.
fn decision(e: &Value) -> Value {
    ["race", "kind", "candidate", "position", "at"]
        .iter()
        .map(|k| (k.to_string(), e[k].clone()))
        .collect()
}

#[test]
fn a_replay_is_served_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let original = format!("sqlite://{}", dir.path().join("night.db").display());
    votestream_ok(&[
        "run",
        "--store",
        &original,
        "--voters",
        "2000",
        "--seed",
        "5",
        "--night",
        "6s",
        "--allowance-secs",
        "1",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ]);
    let want = results(&original);
    let final_votes = want["accepted"].as_i64().unwrap();
    let recorded: Vec<Value> = votestream::store::open_read_only(&original)
        .unwrap()
        .desk_log(ELECTION)
        .unwrap()
        .events
        .iter()
        .map(|e| decision(&serde_json::from_str(e).unwrap()))
        .collect();
    assert!(!recorded.is_empty(), "the night's desk made no event");

    let target = format!("sqlite://{}", dir.path().join("replay.db").display());
    let replaying = support::spawn(&[
        "replay",
        "--from",
        &original,
        "--into",
        &target,
        "--speed",
        "1x",
        "--allowance-secs",
        "1",
    ]);
    // Serve once the registry is copied and the first votes are in.
    support::wait::until(Duration::from_secs(60), "the replay's first votes", || {
        votestream::store::open_read_only(&target)
            .and_then(|mut st| st.results(ELECTION, "builtin"))
            .is_ok_and(|r| r.accepted > 0)
    });
    let server = Server::start(&target, dir.path(), &["--no-desk"]);
    let mut seen = vec![0];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut replaying = replaying;
    while replaying.child().try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the replay still runs");
        let counted = server.json(RESULTS)["counted"].as_i64().unwrap();
        if seen.last() != Some(&counted) {
            seen.push(counted);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = replaying.output_within(Duration::from_secs(10), "the replay");
    assert!(out.status.success(), "{}", support::describe(&out));

    server.wait_until(
        |s| s.json(RESULTS)["counted"].as_i64() == Some(final_votes),
        "the final count",
    );
    let shown = server.json(RESULTS);
    for field in [
        "accepted",
        "rejected",
        "rejected_by_reason",
        "candidates",
        "states",
    ] {
        assert_eq!(shown[field], want[field], "{field}");
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "the count only rises: {seen:?}"
    );
    assert!(
        seen.iter().any(|&n| n > 0 && n < final_votes),
        "the count was shown rising before the end: {seen:?} of {final_votes}"
    );
    let events = |s: &Server| -> Vec<Value> {
        let shown = s.json("/api/v1/elections/general-2026/desk/events");
        shown
            .as_array()
            .map_or(Vec::new(), |a| a.iter().map(decision).collect())
    };
    server.wait_until(|s| events(s).len() >= recorded.len(), "every desk event");
    assert_eq!(
        events(&server),
        recorded,
        "the desk's events as the original's"
    );
}
