//! Needs: PostgreSQL.
//!
//! `votestream replay` on SQLite and on PostgreSQL: a short election night
//! (polls closing in waves, the race desk sealing states and calling races)
//! replayed at 1×, 50× and max speed into stores of its own ends with
//! results byte-identical to the original's (every candidate, state,
//! demographic cell, minute window, late vote and rejection reason) and the
//! same seals and race-desk events in the same order (`votestream compare`,
//! which is shown to catch a changed event and a changed count); replaying
//! again into the same target changes nothing; the original store is the
//! same, table by table, before and after; a replay until a moment equals
//! the original's results as of that moment, and one from the next moment
//! on holds the rest; a replay into the store it reads from is refused; a
//! PostgreSQL target the server lacks is created.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::{votestream, votestream_ok, Raw, TempDb, TestStore};

/// The lateness allowance of the night, and of its replays: one second, so
/// the desk seals the first waves' states before the night ends.
const ALLOWANCE: &str = "1";

/// The night: the race desk seals the first waves' states before it ends.
fn record_night(url: &str) {
    support::run_short_night(url, ALLOWANCE);
}

fn results(url: &str, extra: &[&str]) -> String {
    let mut args = vec!["results", "--store", url, "--json"];
    args.extend(extra);
    String::from_utf8(votestream_ok(&args).stdout).unwrap()
}

fn replay(from: &str, into: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "replay",
        "--from",
        from,
        "--into",
        into,
        "--allowance-secs",
        ALLOWANCE,
    ];
    args.extend(extra);
    String::from_utf8(votestream_ok(&args).stdout).unwrap()
}

/// Who sent each recorded ballot (vote or rejection), by ballot id.
fn clients(url: &str) -> BTreeMap<String, Option<String>> {
    let mut st = votestream::store::open_read_only(url).unwrap();
    let votes = st.votes_after(0, usize::MAX / 2).unwrap();
    let rejections = st.rejections_after(0, usize::MAX / 2).unwrap();
    let votes = votes.into_iter().map(|v| (v.ballot_id, v.client));
    let rejections = rejections.into_iter().map(|(_, r)| (r.ballot_id, r.client));
    votes
        .chain(rejections)
        .map(|(id, c)| (id, c.map(|c| c.to_string())))
        .collect()
}

/// The parts of two results that a replay until a moment must share with
/// the original as of that moment (lateness is the engine's, not the ledger's).
fn counts(r: &str) -> Value {
    let v: Value = serde_json::from_str(r).unwrap();
    let keep = [
        "accepted",
        "rejected",
        "rejected_by_reason",
        "candidates",
        "states",
        "demographics",
    ];
    keep.iter().map(|k| (k.to_string(), v[k].clone())).collect()
}

/// `votestream compare`: the two nights end alike, desk events included.
fn same_night(a: &str, b: &str) {
    let out = votestream(&["compare", a, b]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{a} vs {b}: {text}");
    let events: i64 = text
        .split(" race desk events")
        .next()
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(events > 0, "a night with a desk records events: {text}");
}

/// `votestream compare` finds a difference and names where it is.
fn differs(a: &str, b: &str, place: &str) {
    let out = votestream(&["compare", a, b]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(place),
        "expected a difference at {place}: {text}"
    );
}

fn raw_of(url: &str) -> Raw {
    match url.strip_prefix("sqlite://") {
        Some(path) => Raw::Sqlite(path.into()),
        None => Raw::Postgres(url.to_string()),
    }
}

/// The whole check, on one backend; `target(i)` makes the i-th new store.
fn check(original: &str, raw: Raw, target: &mut dyn FnMut() -> String) {
    record_night(original);
    let before = raw.checksums();
    let want = results(original, &[]);
    let v: Value = serde_json::from_str(&want).unwrap();
    assert!(v["rejected"].as_i64().unwrap() > 0 && v["late_votes"].as_i64().unwrap() >= 0);

    let mut targets = Vec::new();
    for speed in ["1x", "50x", "max"] {
        let into = target();
        let out = replay(original, &into, &["--speed", speed]);
        assert!(out.contains("0 already recorded there"), "{out}");
        assert_eq!(
            results(&into, &[]),
            want,
            "results after a replay at {speed}"
        );
        same_night(original, &into);
        targets.push(into);
    }
    same_night(&targets[0], &targets[1]);
    let sent_by = clients(original);
    assert!(
        sent_by.values().filter(|c| c.is_some()).count() * 10 > sent_by.len() * 9,
        "the simulator names the kiosk of nearly every ballot"
    );
    assert_eq!(
        clients(&targets[0]),
        sent_by,
        "a replay keeps who sent each ballot"
    );
    // Again into the same target: every ballot is already there.
    let again = replay(original, &targets[2], &[]);
    assert!(again.contains(" 0 accepted, 0 rejected"), "{again}");
    assert_eq!(
        results(&targets[2], &[]),
        want,
        "results after replaying twice"
    );
    same_night(original, &targets[2]);
    let audit = votestream(&["audit", "--store", &targets[2]]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );

    // Until a moment: the original as of that moment.
    let middle = v["accepted"].as_i64().unwrap() / 2;
    let at: Value =
        serde_json::from_str(&results(original, &["--at-seq", &middle.to_string()])).unwrap();
    let until = votestream::model::format_voting_time(at["as_of"]["time"].as_i64().unwrap());
    let until = until.replace(' ', "T") + ".999Z";
    let into = target();
    replay(original, &into, &["--until", &until]);
    assert_eq!(
        counts(&results(&into, &[])),
        counts(&results(original, &["--at", &until]))
    );

    // From the next millisecond on: the rest of the night, so the two
    // windows add up to the whole of it.
    let second = at["as_of"]["time"].as_i64().unwrap().div_euclid(1000) + 1;
    let from = votestream::model::format_voting_time(second * 1000).replace(' ', "T") + ".000Z";
    let rest = target();
    replay(original, &rest, &["--from-time", &from]);
    let (a, b): (Value, Value) = (
        serde_json::from_str(&results(&into, &[])).unwrap(),
        serde_json::from_str(&results(&rest, &[])).unwrap(),
    );
    for field in ["accepted", "rejected"] {
        assert_eq!(
            a[field].as_i64().unwrap() + b[field].as_i64().unwrap(),
            v[field].as_i64().unwrap(),
            "{field}"
        );
    }
    for (i, c) in v["candidates"].as_array().unwrap().iter().enumerate() {
        let n = |r: &Value| r["candidates"][i]["total_votes"].as_i64().unwrap();
        assert_eq!(n(&a) + n(&b), n(&v), "{}", c["candidate_id"]);
    }

    // The desk did seal and call during the night, and a changed event or
    // count is a difference `compare` finds and names.
    let log = votestream::store::open_read_only(original)
        .unwrap()
        .desk_log(support::ELECTION)
        .unwrap();
    assert!(!log.seals.is_empty(), "no state was sealed: {log:?}");
    assert!(
        log.events.iter().any(|e| e.contains(r#""kind":"called""#)),
        "no race was called: {log:?}"
    );
    raw_of(&targets[0]).execute(
        r#"UPDATE desk_events SET body = replace(body, '"kind":"called"', '"kind":"projected"')
           WHERE event_no = (SELECT MIN(event_no) FROM desk_events WHERE body LIKE '%"called"%')"#,
    );
    differs(original, &targets[0], "desk events[");
    raw_of(&targets[1]).execute(
        "UPDATE results_state SET votes = votes + 1
         WHERE state = (SELECT MIN(state) FROM results_state)",
    );
    differs(original, &targets[1], "results.states[0: ");

    let refused = votestream(&["replay", "--from", original, "--into", original]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a replay into its own source is refused"
    );
    assert_eq!(raw.checksums(), before, "the original store changed");
}

#[test]
fn replays_on_sqlite_end_as_the_night_did_and_leave_it_untouched() {
    let s = TestStore::new();
    let dir = s.dir.path().to_path_buf();
    let mut n = 0;
    let mut target = || {
        n += 1;
        format!("sqlite://{}", dir.join(format!("replay-{n}.db")).display())
    };
    check(&s.url, Raw::Sqlite(s.path.clone()), &mut target);
}

#[test]
fn replays_on_postgres_end_as_the_night_did_and_leave_it_untouched() {
    let db = TempDb::new();
    let mut dbs = Vec::new();
    let mut target = || {
        dbs.push(TempDb::new());
        dbs.last().unwrap().url.clone()
    };
    check(&db.url, Raw::Postgres(db.url.clone()), &mut target);

    // A database the server does not have yet is created.
    let name = format!("test_{}", support::unique_name('_'));
    let into = support::with_database(&support::pg_server_url(), &name);
    let out = replay(&db.url, &into, &[]);
    let same = results(&into, &[]) == results(&db.url, &[]);
    let mut admin = postgres::Client::connect(&support::pg_server_url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    assert!(out.contains(" 0 already recorded there") && same, "{out}");
}

/// Rejections go into a replay as the decisions they were, not parsed
/// again: a message over 16 KiB is kept to its first 4 KiB, which parsed
/// again is truncated JSON (`malformed_json`, under another ballot id);
/// bytes that were not UTF-8 are kept lossily decoded, which parsed again
/// are UTF-8 (and a ballot missing its fields).
#[test]
fn a_replay_keeps_each_rejection_as_it_was_recorded() {
    let s = TestStore::new();
    votestream_ok(&["generate", "--store", &s.url, "--voters", "20"]);
    let voting_time = votestream::model::format_voting_time(votestream::model::now_millis());
    let ballot = |id: &str, voter: u64, pad: usize| {
        format!(
            r#"{{"ballot_id":"{id}","election_id":"{}","voter_id":"{}","candidate_id":"c-savior","voting_time":"{voting_time}","pad":"{}"}}"#,
            support::ELECTION,
            support::voter_id(voter),
            "x".repeat(pad)
        )
    };
    let mut input = Vec::new();
    for line in [ballot("fits", 1, 0), ballot("too-big", 2, 20_000)] {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(b"{\"ballot_id\":\"\xff\xfe\"}\n");
    let path = s.file("ballots.jsonl");
    std::fs::write(&path, input).unwrap();
    votestream_ok(&[
        "process",
        "--store",
        &s.url,
        "--input",
        path.to_str().unwrap(),
    ]);
    let into = format!("sqlite://{}", s.file("replay.db").display());
    replay(&s.url, &into, &[]);

    // Each as (ballot id, reason, detail, time received), and the bytes kept.
    let rejections = |url: &str| {
        let mut st = votestream::store::open_read_only(url).unwrap();
        let all = st.rejections_after(0, 100).unwrap();
        all.into_iter()
            .map(|(_, r)| {
                let reason = r.reason.as_str().to_string();
                ((r.ballot_id, reason, r.detail, r.received_at), r.raw)
            })
            .unzip::<_, _, Vec<_>, Vec<_>>()
    };
    let (recorded, raw) = rejections(&s.url);
    let reasons: Vec<&str> = recorded.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(reasons, ["too_large", "invalid_utf8"], "{recorded:?}");
    let (replayed, replayed_raw) = rejections(&into);
    assert_eq!(replayed, recorded);
    assert!(replayed_raw == raw, "the bytes kept differ after a replay");
    let accepted = |url: &str| {
        votestream::store::open_read_only(url)
            .unwrap()
            .votes_after(0, 10)
            .unwrap()
            .len()
    };
    assert_eq!((accepted(&s.url), accepted(&into)), (1, 1));
}
