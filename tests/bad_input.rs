//! Needs: nothing.
//!
//! Bad input on the `ballots` topic: every kind of bad message gets its own
//! reason, is counted and kept, and costs no other ballot; hostile strings
//! are stored verbatim; reprocessing the same input changes nothing.

mod support;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use support::*;

fn voting_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn ballot(ballot_id: &str, voter_id: &str, candidate_id: &str, time: &str) -> String {
    json!({
        "ballot_id": ballot_id,
        "election_id": ELECTION,
        "voter_id": voter_id,
        "candidate_id": candidate_id,
        "voting_time": time,
    })
    .to_string()
}

/// Hostile text in a voter id (each ≤ 128 bytes, the id limit): must be
/// rejected as an unknown voter and kept exactly as sent.
const HOSTILE_VOTER_IDS: [&str; 5] = [
    "<script>alert('pwned')</script>",
    "'; DROP TABLE votes; --",
    "Robert\"); DELETE FROM voters WHERE (\"1\"=\"1",
    "🗳️👩🏽‍💻 voter \\ back\\slash \t tab",
    "\u{202E}evil\u{202C} \u{202E}gpj.exe",
];
/// A valid ballot whose id is hostile: accepted and stored verbatim.
const HOSTILE_BALLOT_ID: &str = "x'); DROP TABLE votes;-- <img src=x onerror=alert(1)> \u{202E}";

struct Input {
    lines: Vec<Vec<u8>>,
    /// (ballot_id, voter_id, candidate_id) of every ballot that must be accepted.
    valid: Vec<(String, String, String)>,
    /// reason → how many lines must be rejected with it.
    reasons: BTreeMap<&'static str, i64>,
    /// The `voting_time` of the valid ballots.
    time: String,
}

fn build_input(voters: &[String], opens_at_ms: i64) -> Input {
    let now = Utc::now() - Duration::seconds(10);
    let t = voting_time(now);
    let mut input = Input {
        lines: Vec::new(),
        valid: Vec::new(),
        reasons: BTreeMap::new(),
        time: t.clone(),
    };
    let valid = |input: &mut Input, id: &str, voter: &str, cand: &str, line: String| {
        input.lines.push(line.into_bytes());
        input
            .valid
            .push((id.to_string(), voter.to_string(), cand.to_string()));
    };
    let bad = |input: &mut Input, reason: &'static str, line: Vec<u8>| {
        input.lines.push(line);
        *input.reasons.entry(reason).or_default() += 1;
    };
    let [v0, v1, v2, v3, v4, v5, v6, v7, v8, ..] = voters else {
        panic!("need at least 9 voters");
    };

    valid(
        &mut input,
        "ok-0",
        v0,
        "c-management",
        ballot("ok-0", v0, "c-management", &t),
    );
    bad(
        &mut input,
        "malformed_json",
        br#"{"ballot_id": "bad-json", "voter_id": "#.to_vec(),
    );
    // RFC 3339 is accepted as well as the original's format.
    let rfc = now.to_rfc3339();
    valid(
        &mut input,
        "ok-1",
        v1,
        "c-savior",
        ballot("ok-1", v1, "c-savior", &rfc),
    );
    bad(
        &mut input,
        "wrong_type",
        json!({"ballot_id": "wrong-type", "election_id": ELECTION, "voter_id": 12345,
               "candidate_id": "c-savior", "voting_time": t})
        .to_string()
        .into_bytes(),
    );
    bad(
        &mut input,
        "missing_field",
        json!({"ballot_id": "missing-field", "election_id": ELECTION, "voter_id": v2,
               "voting_time": t})
        .to_string()
        .into_bytes(),
    );
    let mut not_utf8 = br#"{"ballot_id":"not-utf8","voter_id":""#.to_vec();
    not_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, b'"', b'}']);
    bad(&mut input, "invalid_utf8", not_utf8);
    valid(
        &mut input,
        "ok-2",
        v2,
        "c-tech-republic",
        ballot("ok-2", v2, "c-tech-republic", &t),
    );
    bad(
        &mut input,
        "too_large",
        json!({"ballot_id": "too-large", "election_id": ELECTION, "voter_id": v4,
               "candidate_id": "c-savior", "voting_time": t, "padding": "x".repeat(17 * 1024)})
        .to_string()
        .into_bytes(),
    );
    bad(
        &mut input,
        "invalid_field",
        ballot("empty-voter-id", "", "c-savior", &t).into_bytes(),
    );
    bad(
        &mut input,
        "invalid_field",
        ballot("bad-time", v4, "c-savior", "yesterday at noon").into_bytes(),
    );
    bad(
        &mut input,
        "unknown_election",
        json!({"ballot_id": "other-election", "election_id": "no-such-election",
               "voter_id": v4, "candidate_id": "c-savior", "voting_time": t})
        .to_string()
        .into_bytes(),
    );
    bad(
        &mut input,
        "unknown_voter",
        ballot("unregistered", "no-such-voter", "c-savior", &t).into_bytes(),
    );
    bad(
        &mut input,
        "unknown_candidate",
        ballot("no-candidate", v3, "c-nobody", &t).into_bytes(),
    );
    bad(
        &mut input,
        "already_voted",
        ballot("second-ballot", v0, "c-savior", &t).into_bytes(),
    );
    let future = voting_time(Utc::now() + Duration::hours(1));
    bad(
        &mut input,
        "cast_in_future",
        ballot("future", v4, "c-savior", &future).into_bytes(),
    );
    let before_open = DateTime::from_timestamp_millis(opens_at_ms - 3_600_000).expect("time");
    bad(
        &mut input,
        "cast_before_open",
        ballot("before-open", v5, "c-savior", &voting_time(before_open)).into_bytes(),
    );
    for (i, hostile) in HOSTILE_VOTER_IDS.iter().enumerate() {
        bad(
            &mut input,
            "unknown_voter",
            ballot(&format!("hostile-{i}"), hostile, "c-management", &t).into_bytes(),
        );
    }
    // PostgreSQL cannot store U+0000, so both stores refuse it up front.
    bad(
        &mut input,
        "invalid_field",
        ballot("nul-voter", "voter\u{0}id", "c-management", &t).into_bytes(),
    );
    // A rejected ballot does not use up the voter's vote.
    valid(
        &mut input,
        "ok-3",
        v3,
        "c-savior",
        ballot("ok-3", v3, "c-savior", &t),
    );
    valid(
        &mut input,
        HOSTILE_BALLOT_ID,
        v6,
        "c-management",
        ballot(HOSTILE_BALLOT_ID, v6, "c-management", &t),
    );
    // Cast exactly as the election opened (to the millisecond): in time.
    let at_open = DateTime::from_timestamp_millis(opens_at_ms).expect("time");
    valid(
        &mut input,
        "ok-at-open",
        v7,
        "c-tech-republic",
        ballot(
            "ok-at-open",
            v7,
            "c-tech-republic",
            &at_open.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    );
    // A Windows line ending.
    valid(
        &mut input,
        "ok-crlf",
        v8,
        "c-savior",
        ballot("ok-crlf", v8, "c-savior", &t) + "\r",
    );
    input
}

fn processed_line(n: usize, accepted: usize, rejected: i64, replays: usize) -> String {
    format!("processed {n} ballots: {accepted} accepted, {rejected} rejected, {replays} replays skipped")
}

#[test]
fn every_bad_ballot_is_rejected_with_its_reason_and_nothing_else_is_lost() {
    let store = TestStore::new();
    store.generate(1000);
    let db = store.db();
    let voters: Vec<String> = db
        .prepare("SELECT voter_id FROM voters ORDER BY voter_no LIMIT 20")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let candidates: Vec<String> = db
        .prepare("SELECT candidate_id FROM candidates WHERE election_id = ?1 ORDER BY candidate_id")
        .unwrap()
        .query_map([ELECTION], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(candidates, CANDIDATES);
    let opens_at: i64 = db
        .query_row(
            "SELECT opens_at FROM elections WHERE election_id = ?1",
            [ELECTION],
            |r| r.get(0),
        )
        .unwrap();
    drop(db);

    let input = build_input(&voters, opens_at);
    let path = store.file("ballots.jsonl");
    let mut bytes = Vec::new();
    for line in &input.lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(&path, bytes).unwrap();
    let n = input.lines.len();
    let rejected: i64 = input.reasons.values().sum();
    assert_eq!(n, input.valid.len() + rejected as usize);

    let process = || {
        votestream_ok(&[
            "process",
            "--store",
            &store.url,
            "--input",
            path.to_str().unwrap(),
        ])
    };
    let out = process();
    assert_eq!(
        stdout(&out).trim(),
        processed_line(n, input.valid.len(), rejected, 0)
    );

    let db = store.db();
    let expected: BTreeMap<String, i64> = input
        .reasons
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(rejections_by_reason(&db, None), expected);

    // Every valid ballot was accepted, as sent.
    let mut stmt = db
        .prepare("SELECT ballot_id, voter_id, candidate_id FROM votes ORDER BY ballot_id")
        .unwrap();
    let votes: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut valid = input.valid.clone();
    valid.sort();
    assert_eq!(votes, valid);
    let first_time: String = db
        .query_row(
            "SELECT voting_time FROM votes WHERE ballot_id = 'ok-0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        first_time, input.time,
        "voting_time is kept in the original's format"
    );

    // Hostile strings are kept verbatim, never interpreted.
    for (i, hostile) in HOSTILE_VOTER_IDS.iter().enumerate() {
        let (voter_id, reason): (String, String) = db
            .query_row(
                "SELECT voter_id, reason FROM rejected_ballots WHERE ballot_id = ?1",
                [format!("hostile-{i}")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(voter_id, *hostile);
        assert_eq!(reason, "unknown_voter");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM voters"), 1000);

    // Rejections say what was wrong.
    let detail = |ballot_id: &str| -> String {
        db.query_row(
            "SELECT detail FROM rejected_ballots WHERE ballot_id = ?1",
            [ballot_id],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("no rejection {ballot_id}: {e}"))
    };
    assert!(detail("empty-voter-id").contains("voter_id"));
    assert!(detail("bad-time").contains("voting_time"));
    assert!(detail("wrong-type").contains("invalid type"));
    assert!(detail("missing-field").contains("candidate_id"));
    assert!(detail("second-ballot").contains("already voted"));
    drop(stmt);
    drop(db);

    // The same input again: every line is a replay, nothing changes.
    let out = process();
    assert_eq!(stdout(&out).trim(), processed_line(n, 0, 0, n));
    let db = store.db();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM votes"),
        input.valid.len() as i64
    );
    assert_eq!(rejections_by_reason(&db, None), expected);
    drop(db);

    votestream_ok(&["aggregate", "--store", &store.url]);
    assert!(store.audit_passes(), "audit after processing bad input");
    let r = store.results();
    let accepted = input.valid.len() as i64;
    assert_eq!(int(&r, "accepted"), accepted);
    assert_eq!(int(&r, "counted"), accepted);
    assert_eq!(sum_of(&r, "candidates", "total_votes"), accepted);
    assert_eq!(
        int(&r, "received"),
        int(&r, "accepted") + int(&r, "rejected")
    );
    // Under the election: the rejections that name it.
    let mut per_election = expected.clone();
    for other in [
        "malformed_json",
        "invalid_utf8",
        "too_large",
        "unknown_election",
    ] {
        per_election.remove(other);
    }
    assert_eq!(by_reason(&r), per_election);
}
