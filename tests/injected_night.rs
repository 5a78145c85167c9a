//! Needs: nothing.
//!
//! `run --night … --inject …` on the embedded shape: a turnout push
//! registers voters mid-night and the processor counts their votes, so a
//! small state ends with more votes than it had registered voters; a
//! burst's ballots all come from the one kiosk named; ballots cast after
//! a state's close are refused as such; the shapes that cannot see voters
//! registered mid-run refuse a turnout push.

mod support;

use support::{run_args, stderr, votestream, votestream_ok};

fn count(store: &str, sql: &str) -> i64 {
    let path = store.trim_start_matches("sqlite://");
    let db = support::open_ro(std::path::Path::new(path)).unwrap();
    support::count(&db, sql)
}

#[test]
fn a_turnout_push_outvotes_the_registration_and_a_burst_comes_from_one_kiosk() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("n.db").display());
    // --rate is ignored in a night: each ballot goes at its planned time.
    let mut args = run_args(&store, 5000, 42);
    args.extend(
        [
            "--night",
            "8s",
            "--inject",
            "turnout@2s:WY",
            "--inject",
            "burst@1s:kiosk-TX-07",
            "--inject",
            "after-close@5s:GA",
            "--no-desk",
        ]
        .map(String::from),
    );
    votestream_ok(&args);
    let registered = count(
        &store,
        "SELECT COUNT(*) FROM voters WHERE address_state = 'Wyoming' \
         AND voter_id NOT LIKE 'latereg-%'",
    );
    let votes = count(
        &store,
        "SELECT COUNT(*) FROM votes v JOIN voters r ON r.voter_no = v.voter_no \
         WHERE r.address_state = 'Wyoming'",
    );
    assert!(
        registered > 0 && votes > registered,
        "{votes} votes, {registered} registered"
    );
    let late_elsewhere = count(
        &store,
        "SELECT COUNT(*) FROM votes v JOIN voters r ON r.voter_no = v.voter_no \
         WHERE v.voter_id LIKE 'latereg-%' AND r.address_state <> 'Wyoming'",
    );
    assert_eq!(
        late_elsewhere, 0,
        "the voters registered mid-night live in Wyoming"
    );
    let forged = count(
        &store,
        "SELECT COUNT(*) FROM rejected_ballots WHERE reason = 'unknown_voter'",
    );
    let from_kiosk = count(
        &store,
        "SELECT COUNT(*) FROM rejected_ballots WHERE reason = 'unknown_voter' \
         AND client = 'kiosk-TX-07'",
    );
    assert!(
        from_kiosk > 100 && from_kiosk * 10 > forged * 9,
        "{from_kiosk} of {forged}"
    );
    // Georgia's polls closed with the first wave, at 40% of the night.
    let after_close = count(
        &store,
        "SELECT COUNT(*) FROM rejected_ballots b JOIN voters r ON r.voter_id = b.voter_id \
         WHERE b.reason = 'polls_closed' AND r.address_state = 'Georgia'",
    );
    assert!(
        after_close >= 10,
        "{after_close} refused after Georgia's close"
    );
}

#[test]
fn a_turnout_push_is_refused_where_no_processor_would_see_the_new_voters() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    votestream_ok(&["generate", "--store", &store, "--voters", "500"]);
    let out = votestream(&[
        "simulate",
        "--store",
        &store,
        "--night",
        "5s",
        "--inject",
        "turnout@1s",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run --bus memory"),
        "{}",
        stderr(&out)
    );
    // Refused before any broker is asked: none listens at this port.
    let mut args = run_args(&store, 500, 42);
    args.extend(
        [
            "--night",
            "5s",
            "--inject",
            "turnout@1s",
            "--bus",
            "kafka://127.0.0.1:9",
        ]
        .map(String::from),
    );
    let out = votestream(&args);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run --bus memory"),
        "{}",
        stderr(&out)
    );
    let out = votestream(&["simulate", "--store", &store, "--inject", "swing@1s"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs --night"), "{}", stderr(&out));
}
