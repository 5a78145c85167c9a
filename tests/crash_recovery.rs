//! Needs: nothing.
//!
//! Exact tallies: "every tally equals the count over the votes table ... even
//! when any process was killed with SIGKILL at any moment and restarted. No
//! vote is lost, none is counted twice."
//!
//! `run` over a 200,000-voter registry is killed with SIGKILL at three
//! moments (first votes written; a third of the way, give or take; two
//! thirds), each in its own store, then restarted with `--until-done`. The
//! exact moment comes from a printed seed (`VOTESTREAM_TEST_SEED` replays
//! it), and each test checks where the kill landed: how many votes and
//! rejections were committed, and the engine's saved position, which can
//! never be ahead of the votes log. The recovered store must hold exactly
//! what a clean run of the same seed holds.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::*;

const VOTERS: u64 = 200_000;
const SEED: u64 = 42;
/// Attempts per moment: an attempt misses when the run finishes writing
/// before the poll sees the threshold (it writes in big batches).
const ATTEMPTS: usize = 6;

/// What a clean run of the same seed leaves behind.
struct Reference {
    accepted: i64,
    totals: BTreeMap<String, i64>,
    reasons: BTreeMap<String, i64>,
    rejected_rows: i64,
    votes: (i64, u64),
}

fn reference() -> &'static Reference {
    static CLEAN: OnceLock<Reference> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let store = TestStore::new();
        store.generate(VOTERS);
        store.run(VOTERS, SEED);
        assert!(store.audit_passes(), "audit after the clean run");
        let r = store.results();
        let db = store.db();
        let reference = Reference {
            accepted: int(&r, "accepted"),
            totals: candidate_totals(&r),
            reasons: by_reason(&r),
            rejected_rows: count(&db, "SELECT COUNT(*) FROM rejected_ballots"),
            votes: votes_digest(&db),
        };
        assert_eq!(
            reference.accepted,
            (VOTERS as f64 * 0.8).round() as i64,
            "turnout 0.8"
        );
        assert_eq!(reference.votes.0, reference.accepted);
        reference
    })
}

/// Votes in the store right now, or None while it cannot be read yet.
fn votes_now(store: &TestStore) -> Option<i64> {
    let db = open_ro(&store.path).ok()?;
    db.query_row("SELECT COUNT(*) FROM votes", [], |r| r.get(0))
        .ok()
}

/// What was in the store when the run was killed.
struct Killed {
    votes: i64,
    rejected_rows: i64,
    /// The seq the engine's saved results were exact up to.
    engine_position: i64,
}

/// Starts `run` and SIGKILLs it once at least `threshold` votes (but not all
/// of them) are in the store. None when the moment was missed: the run wrote
/// its last votes (or exited) before the poll saw the threshold.
fn kill_at(store: &TestStore, threshold: i64, expected: i64) -> Option<Killed> {
    let mut cmd = command();
    cmd.args(run_args(&store.url, VOTERS, SEED))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard(Some(cmd.spawn().expect("votestream run starts")));
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < DEADLINE,
            "run wrote no {threshold} votes within {DEADLINE:?}"
        );
        if let Some(status) = child.child().try_wait().expect("polling the run") {
            child.0 = None;
            assert!(status.success(), "run failed on its own: {status}");
            return None; // finished before the poll saw the threshold
        }
        match votes_now(store) {
            Some(n) if n >= expected => {
                // Every vote is written: too late to kill it mid-write.
                let status = child.kill();
                eprintln!("moment {threshold} missed: all {n} votes in ({status})");
                return None;
            }
            Some(n) if n >= threshold => break,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let status = child.kill();
    // It died of the SIGKILL, not of its own accord.
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "run was not killed by SIGKILL: {status}"
    );
    let db = store.db();
    let killed = Killed {
        votes: count(&db, "SELECT COUNT(*) FROM votes"),
        rejected_rows: count(&db, "SELECT COUNT(*) FROM rejected_ballots"),
        engine_position: count(
            &db,
            "SELECT COALESCE(MAX(position), 0) FROM agg_progress WHERE engine = 'builtin'",
        ),
    };
    if killed.votes >= expected {
        // The last batch committed between the poll and the kill.
        eprintln!("moment {threshold} missed: all votes committed before the kill");
        return None;
    }
    assert!(killed.votes >= threshold, "votes cannot disappear");
    // seq is 1..=votes (no gaps), so the engine's position is a vote count.
    assert_eq!(
        count(&db, "SELECT COALESCE(MAX(seq), 0) FROM votes"),
        killed.votes
    );
    assert!(
        killed.engine_position <= killed.votes,
        "the engine saved position {} with only {} votes in the log",
        killed.engine_position,
        killed.votes
    );
    Some(killed)
}

/// Kills a run once a threshold of votes are in (a share of them between
/// `share_from` and `share_to` percent, from the seed), restarts it, and
/// checks the recovered store against the clean run.
fn killed_and_restarted(test: &str, share_from: u64, share_to: u64) {
    let reference = reference();
    let expected = reference.accepted;
    let mut moments = KillMoments::new(test);
    let per_mille = moments.between(share_from * 10, share_to * 10);
    let threshold = (expected * per_mille as i64 / 1000).max(1);

    let mut attempt = 0;
    let (store, killed) = loop {
        attempt += 1;
        assert!(
            attempt <= ATTEMPTS,
            "could not kill the run with {threshold}..{expected} votes written in {ATTEMPTS} attempts"
        );
        let store = TestStore::new();
        store.generate(VOTERS);
        if let Some(killed) = kill_at(&store, threshold, expected) {
            break (store, killed);
        }
    };
    eprintln!(
        "{test}: killed with {} of {expected} votes (threshold {threshold}) and {} rejections \
         written, the engine's results saved up to seq {} (attempt {attempt})",
        killed.votes, killed.rejected_rows, killed.engine_position
    );

    let restarted = store.run(VOTERS, SEED);
    let replays = run_summary(&restarted).replays;
    assert_eq!(
        replays as i64,
        killed.votes + killed.rejected_rows,
        "every ballot recorded before the kill is replayed once, and only those"
    );

    assert!(store.audit_passes(), "audit after kill and restart");
    let r = store.results();
    assert_eq!(int(&r, "accepted"), expected, "{r}");
    assert_eq!(int(&r, "counted"), expected, "{r}");
    assert_eq!(
        int(&r, "received"),
        int(&r, "accepted") + int(&r, "rejected")
    );
    assert_eq!(candidate_totals(&r), reference.totals, "candidate totals");
    assert_eq!(sum_of(&r, "states", "count"), expected);
    assert_eq!(
        by_reason(&r),
        reference.reasons,
        "no rejection lost or counted twice"
    );

    let db = store.db();
    assert_eq!(double_votes(&db), 0, "a voter voted twice");
    assert_eq!(
        votes_digest(&db),
        reference.votes,
        "the votes table differs from the clean run's"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM rejected_ballots"),
        reference.rejected_rows
    );
}

#[test]
fn killed_as_the_first_votes_are_written() {
    killed_and_restarted("first votes", 0, 2);
}

#[test]
fn killed_a_third_of_the_way() {
    killed_and_restarted("a third", 25, 45);
}

#[test]
fn killed_two_thirds_of_the_way() {
    killed_and_restarted("two thirds", 55, 75);
}
