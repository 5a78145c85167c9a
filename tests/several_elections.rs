//! Several elections in one store: a voter votes once per election, and each
//! election's tallies are exact on their own.

use std::process::Command;

fn votestream(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_votestream"))
        .args(args)
        .output()
        .expect("votestream runs");
    assert!(
        out.status.success(),
        "votestream {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn results(store: &str, election: &str) -> serde_json::Value {
    let out = votestream(&[
        "results",
        "--store",
        store,
        "--election",
        election,
        "--json",
    ]);
    serde_json::from_slice(&out.stdout).expect("results JSON")
}

#[test]
fn a_voter_votes_once_in_each_election() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("v.db").display());
    for election in ["general-2026", "city-2026"] {
        votestream(&[
            "run",
            "--store",
            &store,
            "--election",
            election,
            "--voters",
            "3000",
            "--turnout",
            "1.0",
            "--rate",
            "max",
            "--until-done",
            "--listen",
            "127.0.0.1:0",
        ]);
    }
    for election in ["general-2026", "city-2026"] {
        let r = results(&store, election);
        // Every registered voter voted once in each election, and only once.
        assert_eq!(r["accepted"], 3000, "{election}: {r}");
        assert_eq!(r["counted"], 3000, "{election}");
        let received = r["received"].as_i64().unwrap();
        let rejected = r["rejected"].as_i64().unwrap();
        assert_eq!(received, 3000 + rejected, "{election}");
        assert!(
            r["rejected_by_reason"]["already_voted"].as_i64().unwrap() > 0,
            "{election}"
        );
        votestream(&["audit", "--store", &store, "--election", election]);
    }
    let db = rusqlite::Connection::open(dir.path().join("v.db")).unwrap();
    let per_voter: i64 = db
        .query_row(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM votes GROUP BY voter_id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        per_voter, 2,
        "each voter has exactly one vote in each of the two elections"
    );
}
