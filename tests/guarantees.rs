//! Needs: nothing.
//!
//! The guarantees of docs/ARCHITECTURE.md ("Invariants and how they are
//! kept"), each on fixed input through the library, with no service and no
//! timing: the engine fed votes it already counted, a batch with a gap and a
//! bus that closes with votes still unread; one vote per voter; replays;
//! received = accepted + rejected; the engine's compare-and-set save; a
//! failed write retried with its batch intact; an answer only after the
//! commit. `scripts/mutants.sh` breaks each of these in the code and checks
//! that a test here (or in `tests/boundaries.rs`, `tests/audit_fails.rs`)
//! fails.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use votestream::aggregate::engine::{Engine, Feed};
use votestream::aggregate::{TallyKey, BUILTIN};
use votestream::bus::{BallotSource, BusError, Inbound};
use votestream::model::{Ballot, Candidate, Election, Millis, Vote};
use votestream::process::ack::{Ack, Decision, Outcome};
use votestream::process::{Processor, Registry};
use votestream::shutdown::Shutdown;
use votestream::stats::Stats;
use votestream::store::{self, Store, StoreError};

const OPENS: Millis = 1_780_000_000_000;
const ELECTION: &str = "e";

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    url: String,
    voters: Vec<String>,
}

impl Fixture {
    fn new(voters: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let url = format!("sqlite://{}", path.display());
        let mut st = store::open(&url).unwrap();
        let election = Election {
            election_id: ELECTION.into(),
            name: "Election".into(),
            opens_at: OPENS,
            polls: None,
        };
        let candidates: Vec<Candidate> = ["a", "b"]
            .iter()
            .map(|c| Candidate {
                candidate_id: c.to_string(),
                election_id: ELECTION.into(),
                candidate_name: format!("Candidate {c}"),
                party_affiliation: "Party".into(),
                biography: String::new(),
                campaign_platform: String::new(),
                photo_url: String::new(),
            })
            .collect();
        st.put_election(&election, &candidates).unwrap();
        let generated: Vec<_> = votestream::generate::voters(3, voters).collect();
        st.put_voters(&generated).unwrap();
        Fixture {
            voters: generated.into_iter().map(|v| v.voter_id).collect(),
            _dir: dir,
            path,
            url,
        }
    }

    fn store(&self) -> Box<dyn Store> {
        store::open(&self.url).unwrap()
    }

    fn processor(&self) -> Processor {
        Processor::new(Registry::load(&mut *self.store()).unwrap())
    }

    fn ballot(&self, id: &str, voter: usize, candidate: &str) -> Ballot {
        Ballot {
            ballot_id: id.into(),
            election_id: ELECTION.into(),
            voter_id: self.voters[voter].clone(),
            candidate_id: candidate.into(),
            cast_at: OPENS + voter as Millis,
            client: None,
        }
    }

    /// Records one vote per voter in `voters` (ballot `b<i>`, candidate a) and
    /// returns them as the processor would put them on the bus.
    fn record_votes(&self, voters: std::ops::Range<usize>) -> Vec<Vote> {
        let p = self.processor();
        let batch = voters
            .map(|i| Inbound::ballot(self.ballot(&format!("b{i}"), i, "a")))
            .collect();
        let r = self
            .store()
            .record(p.validate_batch(batch, OPENS + 60_000))
            .map_err(|(e, _)| e)
            .unwrap();
        assert!(r.rejections.is_empty(), "{:?}", r.rejections);
        r.votes
    }

    /// The persisted tally of candidate a, and the engine's saved position.
    fn counted(&self) -> (i64, i64) {
        let (t, position) = self.store().load_tallies(BUILTIN).unwrap();
        let key = TallyKey::Candidate {
            election: Arc::from(ELECTION),
            candidate: Arc::from("a"),
        };
        (t.get(&key), position)
    }

    /// Another writer holding SQLite's write lock until the connection
    /// commits: the store's writes wait (a transient condition).
    fn hold_write_lock(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        c
    }

    fn int(&self, sql: &str) -> i64 {
        rusqlite::Connection::open(&self.path)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Runs the engine over the in-process bus in a thread. `feed` gets the
/// sender once the engine's start-up catch-up is done (position
/// `caught_up`), so whatever it records from then on the engine can only
/// learn from the bus, a gap fill or the final catch-up.
fn engine_with_bus(
    f: &Fixture,
    caught_up: i64,
    feed: impl FnOnce(crossbeam_channel::Sender<Vec<Vote>>),
) {
    let mut engine = Engine::open(f.store(), 60_000).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let stats = Stats::default();
    stats.aggregated_seq.store(-1, SeqCst);
    std::thread::scope(|s| {
        let running = s.spawn(|| engine.run(Feed::Bus(Box::new(rx)), &stats, &Shutdown::default()));
        while stats.aggregated_seq.load(SeqCst) != caught_up {
            assert!(!running.is_finished(), "the engine stopped early");
            std::thread::sleep(Duration::from_millis(2));
        }
        feed(tx); // dropping the sender closes the bus
        running.join().unwrap().unwrap();
    });
}

#[test]
fn votes_already_counted_are_not_counted_again() {
    let f = Fixture::new(10);
    let votes = f.record_votes(0..6);
    engine_with_bus(&f, 6, |tx| {
        // The start-up catch-up counted all six; the bus brings 3..=6 late.
        tx.send(votes[2..].to_vec()).unwrap();
        tx.send(votes[5..].to_vec()).unwrap();
    });
    assert_eq!(f.counted(), (6, 6));
}

#[test]
fn a_batch_with_a_gap_is_filled_from_the_store_in_order() {
    let f = Fixture::new(12);
    f.record_votes(0..3);
    engine_with_bus(&f, 3, |tx| {
        let votes = f.record_votes(3..9); // seq 4..=9
                                          // The bus lost seq 5..=7.
        tx.send(vec![votes[0].clone(), votes[4].clone(), votes[5].clone()])
            .unwrap();
    });
    assert_eq!(f.counted(), (9, 9));
    let report = votestream::audit::audit(&mut *f.store(), ELECTION, BUILTIN).unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
}

#[test]
fn a_bus_that_closes_with_votes_unread_loses_none() {
    let f = Fixture::new(12);
    f.record_votes(0..2);
    engine_with_bus(&f, 2, |tx| {
        let votes = f.record_votes(2..10); // seq 3..=10
                                           // The bus closes having brought only the first three of them.
        tx.send(votes[..3].to_vec()).unwrap();
    });
    assert_eq!(f.counted(), (10, 10));
}

#[test]
fn a_save_from_a_stale_position_is_refused() {
    let f = Fixture::new(4);
    let mut st = f.store();
    st.save_tallies(BUILTIN, &[], 0, 5).unwrap();
    // A second engine that loaded position 0 must not overwrite position 5.
    match st.save_tallies(BUILTIN, &[], 0, 3) {
        Err(StoreError::EngineMoved {
            expected, found, ..
        }) => assert_eq!((expected, found), (0, 5)),
        other => panic!("a save from a stale position: {other:?}"),
    }
    assert_eq!(st.load_tallies(BUILTIN).unwrap().1, 5);
    st.save_tallies(BUILTIN, &[], 5, 7).unwrap();
    assert_eq!(st.load_tallies(BUILTIN).unwrap().1, 7);
}

#[test]
fn one_vote_per_voter_replays_change_nothing_and_counters_add_up() {
    let f = Fixture::new(4);
    let p = f.processor();
    let mut st = f.store();
    let now = OPENS + 60_000;
    let input = || {
        vec![
            Inbound::ballot(f.ballot("first", 0, "a")),
            Inbound::ballot(f.ballot("second", 0, "b")), // same voter, another ballot
            Inbound::ballot(f.ballot("other", 1, "b")),
            Inbound::raw(b"{not json".to_vec()),
        ]
    };
    let r = st
        .record(p.validate_batch(input(), now))
        .map_err(|(e, _)| e)
        .unwrap();
    let ids: Vec<&str> = r.votes.iter().map(|v| v.ballot_id.as_str()).collect();
    assert_eq!(ids, ["first", "other"]);
    let mut reasons: Vec<(&str, &str)> = r
        .rejections
        .iter()
        .map(|x| (x.ballot_id.as_str(), x.reason.as_str()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[1], ("second", "already_voted"));
    assert_eq!(reasons[0].1, "malformed_json");
    assert_eq!(r.replays, 0);

    let counters = |st: &mut Box<dyn Store>| {
        let res = st.results(ELECTION, BUILTIN).unwrap();
        (res.received, res.accepted, res.rejected)
    };
    // The unreadable message names no election: it is counted apart.
    assert_eq!(counters(&mut st), (3, 2, 1));
    // The same four ballots again (a simulator restarted from the start):
    // every one is recognised, nothing is counted or stored twice.
    let again = st
        .record(p.validate_batch(input(), now + 1))
        .map_err(|(e, _)| e)
        .unwrap();
    assert!(again.votes.is_empty(), "{:?}", again.votes);
    assert!(again.rejections.is_empty(), "{:?}", again.rejections);
    assert_eq!(again.replays, 4);
    let replayed_votes = again
        .vote_fates
        .iter()
        .filter(|f| matches!(f, votestream::store::Fate::Accepted { replay: true }))
        .count();
    assert_eq!(replayed_votes, 2);
    assert_eq!(counters(&mut st), (3, 2, 1));
    assert_eq!(f.int("SELECT COUNT(*) FROM votes"), 2);
    assert_eq!(f.int("SELECT COUNT(*) FROM rejected_ballots"), 2);
}

#[test]
fn a_blocked_write_waits_with_its_batch_whole() {
    let f = Fixture::new(6);
    let p = f.processor();
    let mut st = f.store();
    let batch = p.validate_batch(
        (0..5)
            .map(|i| Inbound::ballot(f.ballot(&format!("b{i}"), i, "a")))
            .collect(),
        OPENS + 60_000,
    );
    // Another writer holds the lock: the write must wait (not give up,
    // not write part of the batch), then write the whole batch.
    let lock = f.hold_write_lock();
    let recorded = std::thread::scope(|s| {
        let writing = s.spawn(|| {
            votestream::process::record_with_retry(&mut *st, batch, &Shutdown::default())
        });
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            !writing.is_finished(),
            "the write gave up (or succeeded without its table)"
        );
        assert_eq!(
            f.int("SELECT COUNT(*) FROM votes"),
            0,
            "half a batch was written"
        );
        lock.execute_batch("COMMIT").unwrap();
        writing.join().unwrap()
    })
    .expect("the retried write succeeds");
    assert_eq!(recorded.votes.len(), 5);
    assert_eq!(f.int("SELECT COUNT(*) FROM votes"), 5);
    assert_eq!(
        f.int("SELECT n FROM ballot_counts WHERE outcome = 'accepted'"),
        5
    );
}

/// Hands out one batch, tells the test it was asked for the next one (so the
/// first was validated and handed to the writer), then waits to be released.
struct OneBatch {
    batch: Option<Vec<Inbound>>,
    asked_again: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

impl BallotSource for OneBatch {
    fn next_batch(
        &mut self,
        _max: usize,
        _wait: Duration,
    ) -> Result<Option<Vec<Inbound>>, BusError> {
        if let Some(b) = self.batch.take() {
            return Ok(Some(b));
        }
        let _ = self.asked_again.send(());
        let _ = self.release.recv();
        Ok(None)
    }
}

#[test]
fn an_answer_comes_only_after_the_commit() {
    let f = Fixture::new(4);
    let p = f.processor();
    let mut st = f.store();
    let (answer_tx, mut answer) = tokio::sync::oneshot::channel::<Decision>();
    let ballot = Inbound::ballot(Ballot {
        cast_at: votestream::model::now_millis(),
        ..f.ballot("acked", 0, "b")
    });
    let (asked_tx, asked) = std::sync::mpsc::channel();
    let (release_tx, release) = std::sync::mpsc::channel();
    let mut source = OneBatch {
        batch: Some(vec![ballot.with_ack(Ack(answer_tx))]),
        asked_again: asked_tx,
        release,
    };
    // No commit can happen while another writer holds the lock.
    let lock = f.hold_write_lock();
    let stats = Stats::default();
    let shutdown = Shutdown::default();
    // Only observed inside the scope, asserted after it: a failed assertion
    // in there would leave the processor waiting for a lock and a release
    // that never come.
    let (early, votes_then) = std::thread::scope(|s| {
        let running = s
            .spawn(|| votestream::process::run(&p, &mut *st, &mut source, None, &stats, &shutdown));
        let asked_ok = asked.recv().is_ok();
        // The ballot is validated and with the writer, which cannot commit.
        let early = answer.try_recv();
        let votes_then = f.int("SELECT COUNT(*) FROM votes");
        lock.execute_batch("COMMIT").unwrap();
        drop(release_tx);
        let ran = running.join();
        assert!(asked_ok, "the source was asked for a second batch");
        ran.unwrap().unwrap();
        (early, votes_then)
    });
    assert_eq!(votes_then, 0);
    let decision = match early {
        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
            answer.try_recv().expect("answered once committed")
        }
        Ok(d) => panic!("answered before the commit: {d:?}"),
        Err(e) => panic!("never answered: {e}"),
    };
    assert_eq!(decision.outcome, Outcome::Accepted { replay: false });
    assert_eq!(
        f.int("SELECT COUNT(*) FROM votes WHERE ballot_id = 'acked'"),
        1
    );
}
