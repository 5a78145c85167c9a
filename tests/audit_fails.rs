//! Needs: PostgreSQL.
//!
//! `audit` is the oracle of most pipeline tests, so it must be shown to fail:
//! after a clean run, each way stored results can go wrong is made by hand
//! (one tally +1, a state row deleted, a demographic cell changed, the
//! accepted counter +1, a vote row deleted, a second vote of one voter
//! forced in), on SQLite and on PostgreSQL. Each time `votestream audit`
//! must exit 1 and name the key that differs, and the helpers the other
//! tests end with must fail too; undoing the change makes it pass again, so
//! the failure came from that change alone.

mod support;

use support::{votestream, TempDb, TestStore, ELECTION};

const VOTERS: &str = "3000";

/// A store after a clean run, with raw SQL access to its database.
enum Db {
    Sqlite(TestStore),
    Pg(TempDb),
}

impl Db {
    fn clean_run(self) -> Db {
        let out = votestream(&[
            "run",
            "--store",
            self.url(),
            "--voters",
            VOTERS,
            "--seed",
            "17",
            "--rate",
            "max",
            "--until-done",
            "--listen",
            "127.0.0.1:0",
        ]);
        assert!(out.status.success(), "{}", support::describe(&out));
        let lines = self.audit_passes();
        assert!(lines.is_empty(), "the clean run's audit: {lines:?}");
        self
    }

    fn url(&self) -> &str {
        match self {
            Db::Sqlite(s) => &s.url,
            Db::Pg(d) => &d.url,
        }
    }

    fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(s) => rusqlite::Connection::open(&s.path)
                .and_then(|c| c.execute_batch(sql))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Db::Pg(d) => d
                .client()
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The first row of a query whose columns are all text.
    fn row(&self, sql: &str) -> Vec<String> {
        match self {
            Db::Sqlite(s) => {
                let c = rusqlite::Connection::open(&s.path).unwrap();
                let mut stmt = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = stmt.column_count();
                stmt.query_row([], |r| (0..n).map(|i| r.get::<_, String>(i)).collect())
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Db::Pg(d) => {
                let row = d
                    .client()
                    .query_one(sql, &[])
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                (0..row.len()).map(|i| row.get::<_, String>(i)).collect()
            }
        }
    }

    fn int(&self, sql: &str) -> i64 {
        self.row(sql)[0].parse().expect("an integer")
    }

    /// Runs `votestream audit`: the difference lines when it fails (exit 1),
    /// an empty list when it passes (exit 0).
    fn audit_passes(&self) -> Vec<String> {
        let out = votestream(&["audit", "--store", self.url()]);
        let text = support::stdout(&out);
        match out.status.code() {
            Some(0) => {
                assert!(text.starts_with("audit passed"), "{text}");
                Vec::new()
            }
            Some(1) => {
                let mut lines = text.lines();
                assert_eq!(
                    lines.next(),
                    Some(format!("audit FAILED for election {ELECTION}:").as_str())
                );
                let lines: Vec<String> = lines.map(|l| l.trim().to_string()).collect();
                assert!(!lines.is_empty(), "a failed audit names no difference");
                lines
            }
            _ => panic!("audit did not run: {}", support::describe(&out)),
        }
    }

    /// `corrupt`, audit (must fail; returns its lines), `undo`, audit (must pass).
    fn broken_then_mended(&self, corrupt: &str, undo: &str) -> Vec<String> {
        self.exec(corrupt);
        let lines = self.audit_passes();
        assert!(!lines.is_empty(), "audit passed after `{corrupt}`");
        if let Db::Sqlite(s) = self {
            assert!(
                !s.audit_passes(),
                "TestStore::audit_passes after `{corrupt}`"
            );
        }
        self.exec(undo);
        let after = self.audit_passes();
        assert!(
            after.is_empty(),
            "audit after undoing `{corrupt}`: {after:?}"
        );
        lines
    }
}

fn candidate_key(c: &str) -> String {
    format!("Candidate {{ election: \"{ELECTION}\", candidate: \"{c}\" }}")
}

fn state_key(s: &str, c: &str) -> String {
    format!("State {{ election: \"{ELECTION}\", state: \"{s}\", candidate: \"{c}\" }}")
}

const WHERE: &str = "engine = 'builtin' AND election_id = 'general-2026'";

fn tally_plus_one(db: &Db) {
    let r = db.row(&format!(
        "SELECT candidate_id, CAST(votes AS TEXT) FROM results_candidate WHERE {WHERE} ORDER BY votes DESC LIMIT 1"
    ));
    let (c, n): (&str, i64) = (&r[0], r[1].parse().unwrap());
    let set = |v: i64| {
        format!("UPDATE results_candidate SET votes = {v} WHERE {WHERE} AND candidate_id = '{c}'")
    };
    let lines = db.broken_then_mended(&set(n + 1), &set(n));
    assert_eq!(
        lines,
        [format!(
            "{}: recount {n}, engine {}",
            candidate_key(c),
            n + 1
        )]
    );
}

fn state_row_deleted(db: &Db) {
    let r = db.row(&format!(
        "SELECT state, candidate_id, CAST(votes AS TEXT) FROM results_state WHERE {WHERE} AND votes > 0 ORDER BY votes DESC LIMIT 1"
    ));
    let (s, c, n) = (&r[0], &r[1], &r[2]);
    let key = format!("{WHERE} AND state = '{s}' AND candidate_id = '{c}'");
    let lines = db.broken_then_mended(
        &format!(
            "CREATE TABLE saved_state AS SELECT * FROM results_state WHERE {key};
             DELETE FROM results_state WHERE {key};"
        ),
        "INSERT INTO results_state SELECT * FROM saved_state; DROP TABLE saved_state;",
    );
    assert_eq!(
        lines,
        [format!("{}: recount {n}, engine 0", state_key(s, c))]
    );
}

fn demographic_cell_changed(db: &Db) {
    let r = db.row(&format!(
        "SELECT age_band, gender, candidate_id, CAST(votes AS TEXT) FROM results_demographic WHERE {WHERE} AND votes > 1 ORDER BY votes DESC LIMIT 1"
    ));
    let (band, gender, c, n): (&str, &str, &str, i64) =
        (&r[0], &r[1], &r[2], r[3].parse().unwrap());
    let set = |v: i64| {
        format!(
            "UPDATE results_demographic SET votes = {v} WHERE {WHERE} AND age_band = '{band}' AND gender = '{gender}' AND candidate_id = '{c}'"
        )
    };
    let lines = db.broken_then_mended(&set(n - 1), &set(n));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert!(
        l.starts_with(&format!("Demographic {{ election: \"{ELECTION}\", "))
            && l.ends_with(&format!(
                "candidate: \"{c}\" }}: recount {n}, engine {}",
                n - 1
            )),
        "{l} (the cell {band} {gender} {c})"
    );
}

fn accepted_counter_plus_one(db: &Db) {
    let votes = db.int("SELECT CAST(COUNT(*) AS TEXT) FROM votes");
    let set = |v: i64| {
        format!("UPDATE ballot_counts SET n = {v} WHERE election_id = '{ELECTION}' AND outcome = 'accepted'")
    };
    let lines = db.broken_then_mended(&set(votes + 1), &set(votes));
    assert_eq!(
        lines,
        [format!(
            "votes table holds {votes} votes but the accepted counter says {}",
            votes + 1
        )]
    );
}

fn vote_row_deleted(db: &Db) {
    let max = db.int("SELECT CAST(MAX(seq) AS TEXT) FROM votes");
    let seq = max / 2;
    let r = db.row(&format!(
        "SELECT v.candidate_id, r.address_state FROM votes v JOIN voters r ON r.voter_no = v.voter_no WHERE v.seq = {seq}"
    ));
    let (c, s) = (&r[0], &r[1]);
    let n = db.int(&format!(
        "SELECT CAST(votes AS TEXT) FROM results_candidate WHERE {WHERE} AND candidate_id = '{c}'"
    ));
    let lines = db.broken_then_mended(
        &format!(
            "CREATE TABLE saved_vote AS SELECT * FROM votes WHERE seq = {seq};
             DELETE FROM votes WHERE seq = {seq};"
        ),
        "INSERT INTO votes SELECT * FROM saved_vote; DROP TABLE saved_vote;",
    );
    for want in [
        format!("votes log: seq {seq} is missing"),
        format!("{}: recount {}, engine {n}", candidate_key(c), n - 1),
        format!(
            "votes table holds {} votes but the accepted counter says {max}",
            max - 1
        ),
    ] {
        assert!(lines.contains(&want), "{want:?} not in {lines:?}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with(&state_key(s, c))),
        "the state {s} is not named: {lines:?}"
    );
}

/// Last: it takes the uniqueness constraint off the votes table.
fn second_vote_forced_in(db: &Db) {
    match db {
        // A table-level UNIQUE cannot be dropped in SQLite: copy the table without it.
        Db::Sqlite(_) => db.exec(
            "CREATE TABLE votes_loose AS SELECT * FROM votes; DROP TABLE votes;
             ALTER TABLE votes_loose RENAME TO votes;",
        ),
        Db::Pg(_) => {
            let name = db.row(
                "SELECT conname::text FROM pg_constraint WHERE conrelid = 'votes'::regclass AND contype = 'u'",
            );
            db.exec(&format!("ALTER TABLE votes DROP CONSTRAINT {}", name[0]));
        }
    }
    let max = db.int("SELECT CAST(MAX(seq) AS TEXT) FROM votes");
    let seq = max / 3;
    let r = db.row(&format!(
        "SELECT voter_id, candidate_id FROM votes WHERE seq = {seq}"
    ));
    let (voter, c) = (&r[0], &r[1]);
    let n = db.int(&format!(
        "SELECT CAST(votes AS TEXT) FROM results_candidate WHERE {WHERE} AND candidate_id = '{c}'"
    ));
    let dup = max + 1;
    let lines = db.broken_then_mended(
        &format!(
            "INSERT INTO votes (seq, election_id, voter_id, candidate_id, voting_time, vote, ballot_id,
                 cast_at, election_no, voter_no, src_partition, src_offset)
             SELECT {dup}, election_id, voter_id, candidate_id, voting_time, vote, 'forced-second',
                 cast_at, election_no, voter_no, src_partition, src_offset
             FROM votes WHERE seq = {seq}"
        ),
        &format!("DELETE FROM votes WHERE seq = {dup}"),
    );
    for want in [
        format!("voter {voter} has two votes: seq {seq} and seq {dup} (ballot forced-second)"),
        format!("{}: recount {}, engine {n}", candidate_key(c), n + 1),
    ] {
        assert!(lines.contains(&want), "{want:?} not in {lines:?}");
    }
}

fn every_corruption(db: &Db) {
    tally_plus_one(db);
    state_row_deleted(db);
    demographic_cell_changed(db);
    accepted_counter_plus_one(db);
    vote_row_deleted(db);
    second_vote_forced_in(db);
}

#[test]
fn sqlite_audit_fails_on_each_corruption_and_names_the_key() {
    let db = Db::Sqlite(TestStore::new()).clean_run();
    every_corruption(&db);
}

#[test]
fn postgres_audit_fails_on_each_corruption_and_names_the_key() {
    let db = Db::Pg(TempDb::new()).clean_run();
    every_corruption(&db);
    // The PostgreSQL tests' own end check fails on a forced second vote and on a gap.
    let Db::Pg(pg) = &db else { unreachable!() };
    let max = db.int("SELECT CAST(MAX(seq) AS TEXT) FROM votes");
    db.exec(&format!(
        "INSERT INTO votes (seq, election_id, voter_id, candidate_id, voting_time, vote, ballot_id,
             cast_at, election_no, voter_no)
         SELECT {}, election_id, voter_id, candidate_id, voting_time, vote, 'helper-second',
             cast_at, election_no, voter_no
         FROM votes WHERE seq = 1",
        max + 1
    ));
    let url = pg.url.clone();
    let dup = std::panic::catch_unwind(|| support::pg_votes_are_unique_and_gap_free(&url));
    assert!(
        dup.is_err(),
        "pg_votes_are_unique_and_gap_free passed a second vote"
    );
    db.exec(&format!(
        "DELETE FROM votes WHERE seq = {}; DELETE FROM votes WHERE seq = 2",
        max + 1
    ));
    let gap = std::panic::catch_unwind(|| support::pg_votes_are_unique_and_gap_free(&url));
    assert!(
        gap.is_err(),
        "pg_votes_are_unique_and_gap_free passed a gap in seq"
    );
}
