//! Needs: PostgreSQL.
//!
//! What the dashboard showed, kept: a short election night `run` on SQLite
//! and on PostgreSQL keeps the results it published, each at the ledger
//! position its tallies are exact to, and each equal to the results as of
//! that position; `results --shown-at` answers with the last one kept at or
//! before a time (and plainly when there is none); a replay of the night
//! reproduces every one of them (`votestream compare`), and `compare`
//! reports a figure changed in what was kept, or a ledger changed in the
//! replay. The same figures are kept once, whoever publishes them; a
//! read-only store keeps none. On SQLite, the API answers the same.

mod support;

use serde_json::Value;
use support::{votestream, votestream_ok, Raw, Server, TempDb, TestStore, ELECTION};
use votestream::model::{format_voting_time, Millis};
use votestream::results::At;
use votestream::shown::{Figures, Shown};

fn kept(url: &str) -> Vec<Shown> {
    let mut st = votestream::store::open_read_only(url).unwrap();
    st.shown_results(ELECTION, Millis::MAX, usize::MAX).unwrap()
}

/// `results --shown-at` as JSON.
fn shown_at(url: &str, at: Millis) -> Value {
    let at = format_voting_time(at).replace(' ', "T") + &format!(".{:03}Z", at % 1000);
    let out = votestream_ok(&["results", "--store", url, "--json", "--shown-at", &at]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `votestream compare`: how many published results it checked, or the
/// first difference.
fn compare(a: &str, b: &str) -> Result<i64, String> {
    let out = votestream(&["compare", a, b]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{text}");
        return Err(text);
    }
    let n = text
        .split(" published results reproduced")
        .next()
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    Ok(n)
}

fn check(original: &str, raw: Raw, target: &str) {
    support::run_short_night(original, "1");
    let shown = kept(original);
    assert!(
        shown.len() >= 3,
        "a served night keeps what it showed: {shown:?}"
    );
    let counted = |s: &Shown| s.figures.counted;
    assert!(
        shown.iter().any(|s| counted(s) > 0),
        "votes were shown: {shown:?}"
    );
    // Each at its ledger position (the embedded engine counts in seq
    // order), and each the original's results as of that position.
    let mut st = votestream::store::open_read_only(original).unwrap();
    for s in &shown {
        let seq = s.seq.unwrap_or_else(|| panic!("no position: {s:?}"));
        let then = Figures::of(&st.results_at(ELECTION, At::Seq(seq)).unwrap());
        assert_eq!(s.figures.tallied(), then.tallied(), "as of {seq}");
    }
    for w in shown.windows(2) {
        assert!(w[0].shown_at <= w[1].shown_at && counted(&w[0]) <= counted(&w[1]));
        assert_ne!(
            w[0].figures, w[1].figures,
            "a record is kept when something changed"
        );
    }

    // The last one kept at or before a time.
    let (first, second) = (&shown[0], &shown[1]);
    let answer = shown_at(original, second.shown_at);
    assert_eq!(answer["shown"]["shown_at"], second.shown_at);
    assert_eq!(answer["shown"]["seq"], second.seq.unwrap());
    let answer = shown_at(original, second.shown_at - 1);
    assert_eq!(answer["shown"]["shown_at"], first.shown_at);
    let last = shown.last().unwrap();
    let answer = shown_at(original, last.shown_at + 3_600_000);
    assert_eq!(answer["shown"]["figures"]["counted"], counted(last));
    let before = shown_at(original, first.shown_at - 1);
    assert_eq!(before["shown"], Value::Null, "{before}");
    let text = votestream_ok(&[
        "results",
        "--store",
        original,
        "--shown-at",
        "2000-01-01T00:00:00Z",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("nothing was shown"), "{text}");
    let refused = votestream(&["results", "--store", original, "--shown-at", "1234"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a ledger position is not a time"
    );

    // A replay shows the same, as of the same positions.
    votestream_ok(&[
        "replay",
        "--from",
        original,
        "--into",
        target,
        "--allowance-secs",
        "1",
        "--speed",
        "max",
    ]);
    let positioned = shown.iter().filter(|s| s.seq.is_some()).count() as i64;
    assert_eq!(compare(original, target), Ok(positioned));

    // A ledger changed in the replay: its results as of a kept position
    // differ (its final results tables are untouched, so only this check
    // can see it).
    let target_raw = match target.strip_prefix("sqlite://") {
        Some(p) => Raw::Sqlite(p.into()),
        None => Raw::Postgres(target.to_string()),
    };
    target_raw.execute("UPDATE votes SET candidate_id = candidate_id || '~' WHERE seq = 1");
    let d = compare(original, target).unwrap_err();
    assert!(d.contains("shown results published"), "{d}");
    target_raw.execute("UPDATE votes SET candidate_id = rtrim(candidate_id, '~') WHERE seq = 1");
    assert_eq!(compare(original, target), Ok(positioned));

    // A figure changed in what was kept.
    raw.execute(&format!(
        "UPDATE shown_results SET body = replace(body, '\"counted\":', '\"counted\":9')
         WHERE shown_at = {}",
        last.shown_at
    ));
    let d = compare(original, target).unwrap_err();
    assert!(
        d.contains("shown results published") && d.contains("counted"),
        "{d}"
    );
    let d = compare(target, original).unwrap_err();
    assert!(d.contains("(kept in the second)"), "{d}");
}

/// The same figures published by two servers are kept once; a read-only
/// store keeps none.
fn kept_once(url: &str) {
    votestream_ok(&["generate", "--store", url, "--voters", "20"]);
    let mut st = votestream::store::open(url).unwrap();
    let results = st
        .results(ELECTION, votestream::aggregate::BUILTIN)
        .unwrap();
    let mut s = Shown::of(&results, 1_000);
    assert!(st.record_shown(&s).unwrap());
    s.shown_at = 1_250;
    assert!(!st.record_shown(&s).unwrap(), "the same figures again");
    assert_eq!(
        st.shown_results(ELECTION, Millis::MAX, 10).unwrap().len(),
        1
    );
    assert!(st.shown_results(ELECTION, 999, 10).unwrap().is_empty());
    let mut ro = votestream::store::open_read_only(url).unwrap();
    assert!(matches!(
        ro.record_shown(&s),
        Err(votestream::store::StoreError::ReadOnly)
    ));
}

#[test]
fn a_night_on_sqlite_keeps_what_it_showed_and_a_replay_shows_the_same() {
    let s = TestStore::new();
    let target = format!("sqlite://{}", s.file("replay.db").display());
    check(&s.url, Raw::Sqlite(s.path.clone()), &target);

    // The API answers as `results --shown-at` does.
    let server = Server::start(&s.url, s.dir.path(), &[]);
    let shown = kept(&s.url);
    let second = &shown[1];
    let at = format_voting_time(second.shown_at).replace(' ', "T")
        + &format!(".{:03}Z", second.shown_at % 1000);
    let path = format!("/api/v1/elections/{ELECTION}/results/shown?at={at}");
    let api = server.json(&path);
    assert_eq!(api["shown"]["shown_at"], second.shown_at, "{api}");
    assert_eq!(api["shown"]["figures"]["counted"], second.figures.counted);
    for bad in ["1234", "yesterday"] {
        let (status, body) = server.get(&format!(
            "/api/v1/elections/{ELECTION}/results/shown?at={bad}"
        ));
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid_at"), "{body}");
    }
    let (status, _) = server.get("/api/v1/elections/nope/results/shown");
    assert_eq!(status, 404);
}

#[test]
fn a_night_on_postgres_keeps_what_it_showed_and_a_replay_shows_the_same() {
    let (db, target) = (TempDb::new(), TempDb::new());
    check(&db.url, Raw::Postgres(db.url.clone()), &target.url);
}

#[test]
fn the_same_figures_are_kept_once_on_either_store() {
    let s = TestStore::new();
    kept_once(&s.url);
    let db = TempDb::new();
    kept_once(&db.url);
}
