//! Needs: nothing.
//!
//! Several elections in one store: a voter votes once per election, and each
//! election's tallies are exact on their own.

mod support;

use support::votestream_ok;

fn results(store: &str, election: &str) -> serde_json::Value {
    let out = votestream_ok(&[
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
        votestream_ok(&[
            "run",
            "--store",
            &store,
            "--election",
            election,
            "--voters",
            "3000",
            "--seed",
            "42",
            "--turnout",
            "1.0",
            "--rate",
            "max",
            "--until-done",
            "--listen",
            "127.0.0.1:0",
        ]);
    }
    // What the simulator planned for each election (the same plan: it
    // depends on the seed and the registry, not on the election).
    let plan = |election: &str| {
        let mut st = votestream::store::open(&store).unwrap();
        let cfg = votestream::simulate::SimConfig {
            seed: 42,
            turnout: 1.0,
            ..votestream::simulate::SimConfig::default()
        };
        votestream::simulate::Simulation::load(&mut *st, election, &cfg)
            .unwrap()
            .counts()
    };
    let mut by_reason = Vec::new();
    let mut planned_rejections = 0;
    for election in ["general-2026", "city-2026"] {
        let r = results(&store, election);
        let planned = plan(election);
        assert_eq!(planned.votes, 3000);
        assert!(planned.duplicates > 0 && planned.invalid > 0, "{planned:?}");
        planned_rejections += planned.duplicates + planned.invalid;
        // Each duplicate ballot of the plan is one `already_voted`, no more.
        assert_eq!(
            r["rejected_by_reason"]["already_voted"].as_u64(),
            Some(planned.duplicates),
            "{election}: {r}"
        );
        by_reason.push(r["rejected_by_reason"].clone());
        // Every registered voter voted once in each election, and only once.
        assert_eq!(r["accepted"], 3000, "{election}: {r}");
        assert_eq!(r["counted"], 3000, "{election}");
        let received = r["received"].as_i64().unwrap();
        let rejected = r["rejected"].as_i64().unwrap();
        assert_eq!(received, 3000 + rejected, "{election}");
        votestream_ok(&["audit", "--store", &store, "--election", election]);
    }
    assert_eq!(
        by_reason[0], by_reason[1],
        "the same plan gets the same rejections in both elections"
    );
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
    for election in ["general-2026", "city-2026"] {
        let (votes, voters): (i64, i64) = db
            .query_row(
                "SELECT COUNT(*), COUNT(DISTINCT voter_id) FROM votes WHERE election_id = ?1",
                [election],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((votes, voters), (3000, 3000), "{election}");
    }
    // Every planned bad ballot and duplicate is recorded once, in whichever
    // election it named (an unknown one, or none when unreadable).
    let rows: i64 = db
        .query_row("SELECT COUNT(*) FROM rejected_ballots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as u64, planned_rejections);
}
