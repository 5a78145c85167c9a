//! Needs: nothing.
//!
//! `run --night`: the schedule is in the store before the pipeline's
//! processor loads the election, the ballots are paced over the night, and
//! the only ballots refused as `polls_closed` are the ones the simulator
//! cast after their state's close.

mod support;

use std::time::{Duration, Instant};

use support::votestream_ok;
use votestream::simulate::{Night, SimConfig, Simulation};

#[test]
fn a_night_refuses_only_the_ballots_cast_after_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("n.db").display());
    let began = Instant::now();
    votestream_ok(&[
        "run",
        "--store",
        &store,
        "--voters",
        "2000",
        "--seed",
        "42",
        "--invalid-share",
        "0.2",
        "--night",
        "6s",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ]);
    // Paced by the night (California's wave closes at 4.6 s), not sent at once.
    assert!(
        began.elapsed() >= Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );

    let out = votestream_ok(&["results", "--store", &store, "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut st = votestream::store::open(&store).unwrap();
    let election = st
        .elections()
        .unwrap()
        .into_iter()
        .find(|e| e.election.election_id == support::ELECTION)
        .unwrap()
        .election;
    assert!(election.polls.is_some(), "the night's schedule was written");
    let cfg = SimConfig {
        seed: 42,
        invalid_share: 0.2,
        night: Some(Night {
            duration_ms: 6_000,
            skew: 0.5,
            skew_candidate: 0,
            turnout_spread: 0.15,
        }),
        ..SimConfig::default()
    };
    let planned = Simulation::load(&mut *st, support::ELECTION, &cfg)
        .unwrap()
        .counts();
    assert!(planned.after_close > 0, "{planned:?}");
    assert_eq!(
        r["rejected_by_reason"]["polls_closed"].as_u64(),
        Some(planned.after_close),
        "{r}"
    );
    // No vote planned before its close was refused, however the sender kept up.
    assert_eq!(r["accepted"].as_u64(), Some(planned.votes), "{r}");
    assert_eq!(r["counted"].as_u64(), Some(planned.votes), "{r}");
}
