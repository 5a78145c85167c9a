//! Needs: PostgreSQL.
//!
//! Results as of a moment: for random ledger positions (and times) of a
//! night, on SQLite and on PostgreSQL, `Store::results_at` and `votestream
//! results --at-seq` equal a recount of the votes ledger up to that
//! position, done here from the votes table alone; through the tally
//! checkpoints the first queries leave behind, and without them.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{votestream_ok, KillMoments, Server, TempDb, TestStore, ELECTION};
use votestream::model::{format_voting_time, AgeBand};
use votestream::results::At;
use votestream::store::{self, CHECKPOINT_EVERY};

/// One vote as the ledger holds it, in seq order.
struct Row {
    seq: i64,
    candidate: String,
    state: String,
    age: i64,
    gender: String,
    cast_at: i64,
}

/// The read model's tallies of the first `n` ledger entries, recounted.
fn recount(rows: &[Row], n: i64) -> Value {
    let mut cands = BTreeMap::new();
    let mut states: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    let mut demo = BTreeMap::new();
    let mut minutes = BTreeMap::new();
    for r in rows.iter().take_while(|r| r.seq <= n) {
        *cands.entry(r.candidate.as_str()).or_insert(0) += 1;
        *states
            .entry(&r.state)
            .or_default()
            .entry(&r.candidate)
            .or_insert(0) += 1;
        let band = AgeBand::of_age(r.age as u32).as_str();
        *demo
            .entry((band, r.gender.as_str(), r.candidate.as_str()))
            .or_insert(0) += 1;
        let minute = r.cast_at.div_euclid(60_000) * 60_000;
        *minutes.entry((minute, r.candidate.as_str())).or_insert(0) += 1;
    }
    json!({
        "accepted": cands.values().sum::<i64>(),
        "candidates": cands,
        "states": states.iter().map(|(s, by)| json!({
            "state": s, "count": by.values().sum::<i64>(), "by_candidate": by,
        })).collect::<Vec<_>>(),
        "demographics": demo.iter().map(|((a, g, c), n)| json!({
            "age_band": a, "gender": g, "candidate_id": c, "votes": n,
        })).collect::<Vec<_>>(),
        "timeline": minutes.iter().map(|((m, c), n)| json!({
            "minute": format_voting_time(*m), "candidate_id": c, "votes": n,
        })).collect::<Vec<_>>(),
    })
}

/// The same fields of a results JSON, and where it says it stands.
fn tallies_of(r: &Value) -> (Value, i64) {
    let cands: BTreeMap<String, i64> = r["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["total_votes"].as_i64() != Some(0))
        .map(|c| {
            (
                c["candidate_id"].as_str().unwrap().to_string(),
                c["total_votes"].as_i64().unwrap(),
            )
        })
        .collect();
    let view = json!({
        "accepted": r["accepted"], "candidates": cands, "states": r["states"],
        "demographics": r["demographics"], "timeline": r["timeline"],
    });
    (view, r["as_of"]["seq"].as_i64().expect("as_of.seq"))
}

fn ledger_sqlite(s: &TestStore) -> Vec<Row> {
    let db = s.db();
    let mut stmt = db
        .prepare(
            "SELECT v.seq, v.candidate_id, r.address_state, r.registered_age, r.gender, v.cast_at
             FROM votes v JOIN voters r ON r.voter_no = v.voter_no ORDER BY v.seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            seq: r.get(0)?,
            candidate: r.get(1)?,
            state: r.get(2)?,
            age: r.get(3)?,
            gender: r.get(4)?,
            cast_at: r.get(5)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn ledger_pg(db: &TempDb) -> Vec<Row> {
    db.client()
        .query(
            "SELECT v.seq, v.candidate_id, r.address_state, r.registered_age, r.gender, v.cast_at
             FROM votes v JOIN voters r ON r.voter_no = v.voter_no ORDER BY v.seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| Row {
            seq: r.get(0),
            candidate: r.get(1),
            state: r.get(2),
            age: i64::from(r.get::<_, i32>(3)),
            gender: r.get(4),
            cast_at: r.get(5),
        })
        .collect()
}

/// The whole check on one store: ≥ 100 random positions through the
/// library (which keeps checkpoints), 100 more through the read-only CLI,
/// and random times.
fn check_store(url: &str, rows: &[Row], test: &str) {
    let end = rows.last().expect("the night recorded votes").seq;
    assert!(
        end > 3 * CHECKPOINT_EVERY,
        "a night long enough to cross checkpoints"
    );
    let mut rng = KillMoments::new(test);
    let mut st = store::open(url).unwrap();
    let mut positions: Vec<i64> = (0..120)
        .map(|_| rng.between(0, end as u64 + 1) as i64)
        .collect();
    // Exactly on, and either side of, a checkpoint; both ends; past the end.
    positions.extend([
        0,
        1,
        CHECKPOINT_EVERY - 1,
        CHECKPOINT_EVERY,
        CHECKPOINT_EVERY + 1,
        end,
    ]);
    for &n in &positions {
        let r = serde_json::to_value(st.results_at(ELECTION, At::Seq(n)).unwrap()).unwrap();
        let (got, at) = tallies_of(&r);
        assert_eq!(at, n, "as_of.seq");
        assert_eq!(
            got,
            recount(rows, n),
            "results as of seq {n} against a recount"
        );
    }
    let past = serde_json::to_value(st.results_at(ELECTION, At::Seq(end + 1000)).unwrap()).unwrap();
    assert_eq!(
        tallies_of(&past),
        (recount(rows, end), end),
        "a position past the end is the end"
    );
    for _ in 0..100 {
        let n = rng.between(0, end as u64 + 1) as i64;
        let out = votestream_ok(&[
            "results",
            "--store",
            url,
            "--json",
            "--at-seq",
            &n.to_string(),
        ]);
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            tallies_of(&r),
            (recount(rows, n), n),
            "results --at-seq {n}"
        );
    }
    // A time: the ledger up to, not including, the first vote cast after it.
    let (first, last) = (
        rows[0].cast_at,
        rows.iter().map(|r| r.cast_at).max().unwrap(),
    );
    for _ in 0..20 {
        let t = rng.between(first as u64 - 1000, last as u64 + 1000) as i64;
        let n = rows
            .iter()
            .find(|r| r.cast_at > t)
            .map_or(end, |r| r.seq - 1);
        let r = serde_json::to_value(st.results_at(ELECTION, At::Time(t)).unwrap()).unwrap();
        assert_eq!(
            tallies_of(&r),
            (recount(rows, n), n),
            "results as of time {t}"
        );
    }
}

/// About 36,000 votes by default; `VOTESTREAM_TEST_TIME_TRAVEL_VOTERS=1250000`
/// makes the 1M-vote night of docs/BENCHMARKS.md.
fn voters() -> u64 {
    std::env::var("VOTESTREAM_TEST_TIME_TRAVEL_VOTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(45_000)
}

#[test]
fn results_as_of_a_position_equal_a_recount_on_sqlite() {
    let s = TestStore::new();
    s.run(voters(), 7);
    let rows = ledger_sqlite(&s);
    check_store(&s.url, &rows, "time_travel sqlite");
    let kept: i64 = s
        .db()
        .query_row("SELECT COUNT(*) FROM tally_checkpoints", [], |r| r.get(0))
        .unwrap();
    assert!(kept >= 3, "the queries kept their checkpoints ({kept})");
}

#[test]
fn results_as_of_a_position_equal_a_recount_on_postgres() {
    let db = TempDb::new();
    votestream_ok(&support::run::run_args(&db.url, voters(), 7));
    let rows = ledger_pg(&db);
    check_store(&db.url, &rows, "time_travel postgres");
    let kept =
        support::Raw::Postgres(db.url.clone()).scalar("SELECT COUNT(*) FROM tally_checkpoints");
    assert!(kept >= 3, "the queries kept their checkpoints ({kept})");
}

#[test]
fn the_server_keeps_checkpoints_and_answers_results_as_of_a_moment() {
    let s = TestStore::new();
    s.run(8_000, 3);
    let rows = ledger_sqlite(&s);
    assert!(rows.len() as i64 > CHECKPOINT_EVERY);
    let server = Server::start(&s.url, s.dir.path(), &["--no-desk"]);
    // Before anyone asks: the server keeps the checkpoints itself.
    let kept = || {
        s.db()
            .query_row("SELECT COUNT(*) FROM tally_checkpoints", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    support::wait::until(
        Duration::from_secs(30),
        "a checkpoint kept by the server",
        || kept() >= 1,
    );
    let path = format!("/api/v1/elections/{ELECTION}/results");
    let r = server.json(&format!("{path}?at=1000"));
    assert_eq!(tallies_of(&r), (recount(&rows, 1000), 1000));
    // The last millisecond of the second a vote was cast in.
    let t = rows[1500].cast_at.div_euclid(1000) * 1000 + 999;
    let n = rows
        .iter()
        .find(|r| r.cast_at > t)
        .map_or(rows.len() as i64, |r| r.seq - 1);
    let iso = format_voting_time(t).replace(' ', "T") + ".999Z";
    let r = server.json(&format!("{path}?at={iso}"));
    assert_eq!(tallies_of(&r), (recount(&rows, n), n), "as of {iso}");
    for bad in ["yesterday", "-5", "12abc", "2026-13-01T00:00:00Z"] {
        let (status, body) = server.get(&format!("{path}?at={bad}"));
        assert_eq!(status, 400, "at={bad}: {body}");
        assert!(body.contains("invalid_at"), "{body}");
    }
    // Without `at`: the live results, with no `as_of`.
    let live = server.json(&path);
    assert!(live.get("as_of").is_none());
}
