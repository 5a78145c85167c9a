//! Needs: nothing.
//!
//! The embedded pipeline end to end (the guarantees in docs/ARCHITECTURE.md): `run` over a 100,000-voter
//! registry, then the results, the audit and the store must agree exactly;
//! a second run over the same store changes nothing; the same seed gives the
//! same election, another seed another one.

mod support;

use support::*;

const VOTERS: u64 = 100_000;
/// Turnout 0.8 of 100,000 registered voters, rounded: the simulator plans
/// exactly one valid ballot for each of these voters.
const EXPECTED_VOTES: i64 = 80_000;

/// Reasons the simulator produces for ballots that name the default election.
const PER_ELECTION_REASONS: [&str; 7] = [
    "already_voted",
    "unknown_voter",
    "unknown_candidate",
    "cast_in_future",
    "cast_before_open",
    "wrong_type",
    "missing_field",
];
/// Reasons for messages that carry no election id (or an unknown one): they
/// are kept and counted, but not under the default election.
const OTHER_REASONS: [&str; 4] = [
    "malformed_json",
    "invalid_utf8",
    "too_large",
    "unknown_election",
];

#[test]
fn a_full_run_is_exact_and_a_second_run_changes_nothing() {
    let store = TestStore::new();
    let first = store.run(VOTERS, 42);
    let RunSummary { sent, replays, .. } = run_summary(&first);
    assert_eq!(replays, 0, "a fresh store has nothing to replay");

    assert!(store.audit_passes(), "audit after a clean run");
    let r = store.results();
    assert_eq!(int(&r, "registered_voters"), VOTERS as i64, "{r}");
    assert_eq!(int(&r, "accepted"), EXPECTED_VOTES, "{r}");
    assert_eq!(
        int(&r, "counted"),
        EXPECTED_VOTES,
        "engine has drained: {r}"
    );
    assert_eq!(
        int(&r, "received"),
        int(&r, "accepted") + int(&r, "rejected"),
        "received = accepted + rejected"
    );
    assert_eq!(sum_of(&r, "candidates", "total_votes"), EXPECTED_VOTES);
    assert_eq!(sum_of(&r, "states", "count"), EXPECTED_VOTES);
    assert_eq!(sum_of(&r, "demographics", "votes"), EXPECTED_VOTES);
    let timeline = sum_of(&r, "timeline", "votes");
    assert_eq!(
        timeline + int(&r, "late_votes"),
        EXPECTED_VOTES,
        "per-minute windows plus late votes cover every vote"
    );
    assert!(
        int(&r, "late_votes") > 0,
        "the simulator sends ~1% late votes: {r}"
    );
    let totals = candidate_totals(&r);
    assert_eq!(
        totals.keys().map(String::as_str).collect::<Vec<_>>(),
        CANDIDATES
    );
    assert!(totals.values().all(|&n| n > 0), "every party gets votes");

    let reasons = by_reason(&r);
    for reason in PER_ELECTION_REASONS {
        assert!(
            reasons.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} rejections counted: {reasons:?}"
        );
    }
    assert_eq!(
        reasons.values().sum::<i64>(),
        int(&r, "rejected"),
        "rejected is the sum of its reasons"
    );

    // The counters agree with the rows kept in the store.
    let db = store.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM votes"), EXPECTED_VOTES);
    assert_eq!(double_votes(&db), 0, "one vote per voter per election");
    assert_eq!(
        rejections_by_reason(&db, Some(ELECTION)),
        reasons,
        "every counted rejection is kept with its reason"
    );
    let all_reasons = rejections_by_reason(&db, None);
    for reason in OTHER_REASONS {
        assert!(
            all_reasons.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} rejection kept: {all_reasons:?}"
        );
        assert!(
            !reasons.contains_key(reason),
            "{reason} counted under {ELECTION} though its ballots do not name it"
        );
    }
    // Nothing silently dropped: every ballot sent is a vote or a kept rejection.
    let rejected_rows = count(&db, "SELECT COUNT(*) FROM rejected_ballots");
    assert_eq!(
        sent as i64,
        EXPECTED_VOTES + rejected_rows,
        "ballots sent = votes + rejected ballots (all elections)"
    );
    drop(db);

    // The same run again over the same store: every ballot is a replay.
    let second = store.run(VOTERS, 42);
    let RunSummary {
        sent: sent_again,
        replays: replays_again,
        ..
    } = run_summary(&second);
    assert_eq!(sent_again, sent, "the same plan is sent again");
    assert_eq!(
        replays_again, sent,
        "every ballot is recognised as a replay"
    );
    assert!(store.audit_passes(), "audit after the second run");
    let r2 = store.results();
    assert_eq!(int(&r2, "accepted"), EXPECTED_VOTES);
    assert_eq!(int(&r2, "rejected"), int(&r, "rejected"));
    assert_eq!(r2, r, "the second run changed the results");
    let db = store.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM votes"), EXPECTED_VOTES);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM rejected_ballots"),
        rejected_rows
    );
}

#[test]
fn the_same_seed_gives_the_same_election_another_seed_another() {
    let a = TestStore::new();
    let b = TestStore::new();
    let c = TestStore::new();
    a.run(VOTERS, 42);
    b.run(VOTERS, 42);
    c.run(VOTERS, 7);

    let (ra, rb, rc) = (a.results(), b.results(), c.results());
    assert_eq!(candidate_totals(&ra), candidate_totals(&rb));
    assert_eq!(
        ra["states"], rb["states"],
        "same turnout and leads by state"
    );
    assert_eq!(ra["demographics"], rb["demographics"]);
    assert_eq!(by_reason(&ra), by_reason(&rb));
    assert_eq!(
        votes_digest(&a.db()),
        votes_digest(&b.db()),
        "same voters voted for the same candidates with the same ballot ids"
    );

    assert_eq!(int(&rc, "accepted"), EXPECTED_VOTES, "turnout is the same");
    assert_ne!(
        candidate_totals(&ra),
        candidate_totals(&rc),
        "another seed gives another election"
    );
    assert!(a.audit_passes() && b.audit_passes() && c.audit_passes());
}
