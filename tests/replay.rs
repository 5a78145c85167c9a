//! Needs: PostgreSQL.
//!
//! `votestream replay` on SQLite and on PostgreSQL: a short night replayed
//! at 1×, 50× and max speed into stores of its own ends with results
//! byte-identical to the original's (every candidate, state, demographic
//! cell, minute window, late vote and rejection reason); replaying again
//! into the same target counts nothing twice; the original store is the
//! same, table by table, before and after; a replay until a moment equals
//! the original's results as of that moment, and one from the next moment
//! on holds the rest; a replay into the store it reads from is refused; a
//! PostgreSQL target the server lacks is created.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::{votestream, votestream_ok, Raw, TempDb, TestStore};

/// A night of about 2,600 ballots sent at 1,500 a second: under 2 s at 1×.
fn record_night(url: &str) {
    votestream_ok(&[
        "run",
        "--store",
        url,
        "--voters",
        "3000",
        "--seed",
        "11",
        "--rate",
        "1500",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
        "--no-desk",
    ]);
}

fn results(url: &str, extra: &[&str]) -> String {
    let mut args = vec!["results", "--store", url, "--json"];
    args.extend(extra);
    String::from_utf8(votestream_ok(&args).stdout).unwrap()
}

fn replay(from: &str, into: &str, extra: &[&str]) -> String {
    let mut args = vec!["replay", "--from", from, "--into", into];
    args.extend(extra);
    String::from_utf8(votestream_ok(&args).stdout).unwrap()
}

/// Every table of a store, each as a digest of all its rows.
fn checksums(raw: &Raw) -> BTreeMap<String, String> {
    match raw {
        Raw::Sqlite(path) => {
            let db = support::open_ro(path).unwrap();
            let tables: Vec<String> = db
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            tables
                .into_iter()
                .map(|t| {
                    let sql = format!("SELECT * FROM \"{t}\" ORDER BY 1, 2");
                    let mut stmt = db.prepare(&sql).unwrap();
                    let n = stmt.column_count();
                    let mut rows = stmt.query([]).unwrap();
                    let mut text = String::new();
                    while let Some(r) = rows.next().unwrap() {
                        for i in 0..n {
                            text.push_str(&format!("{:?}|", r.get_ref(i).unwrap()));
                        }
                        text.push('\n');
                    }
                    (
                        t,
                        format!("{} rows, {:x}", text.lines().count(), fnv(&text)),
                    )
                })
                .collect()
        }
        Raw::Postgres(url) => {
            let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
            let tables: Vec<String> = c
                .query(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            tables
                .into_iter()
                .map(|t| {
                    let sql = format!(
                        "SELECT COUNT(*)::text || ' rows, ' || COALESCE(md5(string_agg(x::text, '|' \
                         ORDER BY x::text)), '') FROM \"{t}\" x"
                    );
                    (t, c.query_one(&sql, &[]).unwrap().get(0))
                })
                .collect()
        }
    }
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

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
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

/// The whole check, on one backend; `target(i)` makes the i-th new store.
fn check(original: &str, raw: Raw, target: &mut dyn FnMut() -> String) {
    record_night(original);
    let before = checksums(&raw);
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
        targets.push(into);
    }
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

    let refused = votestream(&["replay", "--from", original, "--into", original]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a replay into its own source is refused"
    );
    assert_eq!(checksums(&raw), before, "the original store changed");
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
