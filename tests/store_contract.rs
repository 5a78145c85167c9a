//! Needs: PostgreSQL.
//!
//! The store contract: the same scenarios against SQLite (a temp file) and a
//! real PostgreSQL (a fresh database per test; see tests/support/pg.rs). A
//! backend passes only if it behaves exactly like the other.

mod support;

use std::sync::Arc;

use support::{Raw, TempDb};
use votestream::aggregate::engine::{Engine, Feed};
use votestream::aggregate::{Tallies, TallyKey, BUILTIN};
use votestream::bus::Inbound;
use votestream::model::{
    AgeBand, Ballot, Candidate, Election, Gender, RejectReason, Rejection, Voter,
};
use votestream::process::{Processor, Registry};
use votestream::shutdown::Shutdown;
use votestream::stats::Stats;
use votestream::store::{self, Batch, Fate, Store, StoreError};

const OPENS: i64 = 1_780_000_000_000;

/// Where a scenario runs: a way to open the store (as often as it likes,
/// like separate processes would) and to look at its tables directly.
struct Backend {
    url: String,
    raw: Raw,
    _keep: Keep,
}

enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Db(#[allow(dead_code)] TempDb),
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contract.db");
        Backend {
            url: format!("sqlite://{}", path.display()),
            raw: Raw::Sqlite(path),
            _keep: Keep::Dir(dir),
        }
    }

    fn postgres() -> Backend {
        let db = TempDb::new();
        Backend {
            url: db.url.clone(),
            raw: Raw::Postgres(db.url.clone()),
            _keep: Keep::Db(db),
        }
    }

    fn open(&self) -> Box<dyn Store> {
        store::open(&self.url).unwrap()
    }
}

/// Each scenario becomes two tests, `<name>::sqlite` and `<name>::postgres`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::Backend::sqlite());
            }
            #[test]
            fn postgres() {
                super::$name(&super::Backend::postgres());
            }
        }
    )*};
}

contract!(
    record_decides_accepted_replay_and_already_voted,
    counters_add_up_and_replays_change_nothing,
    seq_follows_commit_order_under_concurrent_writers,
    votes_after_pages_the_log_with_enrichment,
    tallies_and_position_round_trip,
    results_and_recount_agree_after_aggregation,
    hostile_strings_come_back_verbatim,
    nul_is_refused_by_the_store_and_rejected_by_the_processor,
    registry_load_is_idempotent_and_ordered,
    opening_twice_keeps_the_schema_and_data,
    two_engines_of_one_name_take_turns,
    a_replay_of_the_same_bus_message_is_republished,
    tally_deltas_add_up_and_offsets_are_compare_and_set,
    a_ballot_id_names_one_ballot,
    a_batch_decides_ballot_ids_in_arrival_order,
    an_id_first_rejected_stays_rejected,
    ids_recorded_before_the_id_check_are_claimed_when_opened,
    a_sealed_state_takes_no_new_vote_and_its_count_is_final,
    desk_events_are_appended_once_in_order,
    a_desk_look_is_recorded_with_its_events_or_not_at_all,
    clients_are_kept_and_stores_made_before_them_gain_the_column,
    writers_see_each_others_votes,
);

fn election(id: &str, name: &str) -> (Election, Vec<Candidate>) {
    let e = Election {
        election_id: id.into(),
        name: name.into(),
        opens_at: OPENS,
        polls: None,
    };
    let cands = (0..3)
        .map(|i| Candidate {
            candidate_id: format!("c{i}"),
            election_id: id.into(),
            candidate_name: format!("Candidate {i}"),
            party_affiliation: format!("Party {i}"),
            biography: "bio".into(),
            campaign_platform: "platform".into(),
            photo_url: format!("/avatars/candidate/c{i}.svg"),
        })
        .collect();
    (e, cands)
}

/// Two elections and `n` generated voters; returns the voters.
fn setup(b: &Backend, n: u64) -> Vec<Voter> {
    let mut st = b.open();
    for id in ["e1", "e2"] {
        let (e, c) = election(id, &format!("Election {id}"));
        st.put_election(&e, &c).unwrap();
    }
    let voters: Vec<Voter> = votestream::generate::voters(11, n).collect();
    assert_eq!(st.put_voters(&voters).unwrap(), n);
    voters
}

fn ballot(id: &str, election: &str, voter: &Voter, candidate: usize, minute: i64) -> Inbound {
    Inbound::ballot(Ballot {
        ballot_id: id.into(),
        election_id: election.into(),
        voter_id: voter.voter_id.clone(),
        candidate_id: format!("c{candidate}"),
        cast_at: OPENS + minute * 60_000 + 1_234,
        client: None,
    })
}

fn processor(st: &mut dyn Store) -> Processor {
    Processor::new(Registry::load(st).unwrap())
}

/// Validates and records; the clock is far enough ahead for every test cast time.
fn record(st: &mut dyn Store, p: &Processor, ballots: Vec<Inbound>) -> votestream::store::Recorded {
    let now = OPENS + 1_000 * 60_000;
    st.record(p.validate_batch(ballots, now))
        .map_err(|(e, _)| e)
        .unwrap()
}

fn garbage(id: &str) -> Rejection {
    Rejection {
        ballot_id: id.into(),
        election_id: Some("e1".into()),
        voter_id: None,
        reason: RejectReason::MalformedJson,
        detail: "not JSON".into(),
        raw: "{nope".into(),
        received_at: OPENS,
        source: None,
        client: None,
    }
}

fn record_decides_accepted_replay_and_already_voted(b: &Backend) {
    let v = setup(b, 10);
    let mut st = b.open();
    let p = processor(&mut *st);
    let r = record(
        &mut *st,
        &p,
        vec![
            ballot("b0", "e1", &v[0], 0, 0),
            ballot("b1", "e1", &v[1], 1, 0),
            ballot("b1-again", "e1", &v[1], 2, 0), // same voter, other ballot: already_voted
            ballot("b2", "e1", &v[2], 2, 0),
            ballot("b2", "e1", &v[2], 2, 0), // the same ballot twice in a batch: a replay
            ballot("x0", "e2", &v[0], 0, 0), // another election: its own vote
        ],
    );
    let accepted: Vec<&str> = r.votes.iter().map(|v| v.ballot_id.as_str()).collect();
    let mut sorted = accepted.clone();
    sorted.sort();
    assert_eq!(sorted, ["b0", "b1", "b2", "x0"]);
    let seqs: Vec<i64> = r.votes.iter().map(|v| v.seq).collect();
    assert_eq!(
        seqs,
        [1, 2, 3, 4],
        "votes come back in seq order, from 1, without gaps"
    );
    assert_eq!(r.replays, 1);
    assert_eq!(r.rejections.len(), 1);
    assert_eq!(r.rejections[0].ballot_id, "b1-again");
    assert_eq!(r.rejections[0].reason, RejectReason::AlreadyVoted);
    assert!(
        r.rejections[0].detail.contains("b1"),
        "{}",
        r.rejections[0].detail
    );

    // Later batches, from another connection: replays are recognised, a new
    // ballot from a voter who voted is already_voted, and seq goes on.
    let mut st2 = b.open();
    let r = record(
        &mut *st2,
        &p,
        vec![
            ballot("b0", "e1", &v[0], 0, 0),
            ballot("b0-second", "e1", &v[0], 1, 0),
            ballot("b1-again", "e1", &v[1], 2, 0), // the already_voted one, replayed
            ballot("b3", "e1", &v[3], 0, 0),
        ],
    );
    assert_eq!(r.votes.len(), 1);
    assert_eq!((r.votes[0].ballot_id.as_str(), r.votes[0].seq), ("b3", 5));
    assert_eq!(r.replays, 2, "b0 and b1-again were seen before");
    assert_eq!(r.rejections.len(), 1);
    assert_eq!(r.rejections[0].ballot_id, "b0-second");
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM votes"), 5);
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM rejected_ballots"), 2);
}

/// Two writers (two processor instances) taking turns: each one's next batch
/// knows the votes the other recorded since its own last one.
fn writers_see_each_others_votes(b: &Backend) {
    let v = setup(b, 10);
    let (mut a, mut c) = (b.open(), b.open());
    let p = processor(&mut *a);
    let ids = |r: &votestream::store::Recorded| {
        let mut votes: Vec<String> = r.votes.iter().map(|v| v.ballot_id.clone()).collect();
        votes.sort();
        let mut refused: Vec<(String, RejectReason)> = r
            .rejections
            .iter()
            .map(|r| (r.ballot_id.clone(), r.reason))
            .collect();
        refused.sort_by(|x, y| x.0.cmp(&y.0));
        (votes, refused)
    };
    assert_eq!(
        ids(&record(&mut *a, &p, vec![ballot("a0", "e1", &v[0], 0, 0)])).0,
        ["a0"]
    );
    let r = record(
        &mut *c,
        &p,
        vec![
            ballot("c1", "e1", &v[1], 1, 0),
            ballot("c2", "e1", &v[2], 1, 0),
        ],
    );
    assert_eq!(ids(&r).0, ["c1", "c2"]);
    let r = record(
        &mut *a,
        &p,
        vec![
            ballot("a1", "e1", &v[1], 0, 0),
            ballot("a3", "e1", &v[3], 0, 0),
            ballot("a2", "e1", &v[2], 2, 0),
        ],
    );
    let already = RejectReason::AlreadyVoted;
    assert_eq!(
        ids(&r),
        (
            vec!["a3".to_string()],
            vec![("a1".to_string(), already), ("a2".to_string(), already)]
        )
    );
    let r = record(
        &mut *c,
        &p,
        vec![
            ballot("c0", "e1", &v[0], 1, 0),
            ballot("c3", "e1", &v[3], 1, 0),
            ballot("c4", "e1", &v[4], 1, 0),
        ],
    );
    assert_eq!(
        ids(&r),
        (
            vec!["c4".to_string()],
            vec![("c0".to_string(), already), ("c3".to_string(), already)]
        )
    );
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM votes"), 5);
    assert_eq!(
        b.raw
            .scalar("SELECT COUNT(*) FROM votes WHERE seq BETWEEN 1 AND 5"),
        5
    );
}

fn counters_add_up_and_replays_change_nothing(b: &Backend) {
    let v = setup(b, 20);
    let mut st = b.open();
    let p = processor(&mut *st);
    let mut ballots: Vec<Inbound> = (0..15)
        .map(|i| ballot(&format!("b{i}"), "e1", &v[i], i % 3, 0))
        .collect();
    ballots.push(ballot("dup", "e1", &v[0], 1, 0));
    ballots.push(ballot("ghost", "e1", &v[0], 7, 0)); // unknown candidate
    ballots.push(Inbound::raw(b"{broken".to_vec()));
    let mut batch = p.validate_batch(copy(&ballots), OPENS + 60_000_000);
    batch.rejections.push(garbage("g1"));
    let first = st.record(batch).map_err(|(e, _)| e).unwrap();
    assert_eq!(first.votes.len(), 15);
    assert_eq!(first.rejections.len(), 4);
    let check = |st: &mut dyn Store| {
        let r = st.results("e1", BUILTIN).unwrap();
        assert_eq!(r.accepted, 15);
        assert_eq!(r.rejected, 3, "the broken message names no election");
        assert_eq!(r.received, r.accepted + r.rejected);
        assert_eq!(r.rejected_by_reason.get("already_voted"), Some(&1));
        assert_eq!(r.rejected_by_reason.get("unknown_candidate"), Some(&1));
        assert_eq!(r.rejected_by_reason.get("malformed_json"), Some(&1));
        assert_eq!(r.registered_voters, 20);
    };
    check(&mut *st);
    // The whole input again (what a restarted simulator does): nothing new.
    let mut batch = p.validate_batch(ballots, OPENS + 60_000_000);
    batch.rejections.push(garbage("g1"));
    let again = st.record(batch).map_err(|(e, _)| e).unwrap();
    assert!(again.votes.is_empty() && again.rejections.is_empty());
    assert_eq!(again.replays, 19);
    check(&mut *st);
    let other = st.results("e2", BUILTIN).unwrap();
    assert_eq!((other.accepted, other.rejected), (0, 0));
}

fn seq_follows_commit_order_under_concurrent_writers(b: &Backend) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 12;
    const PER_BATCH: usize = 25;
    let v = Arc::new(setup(b, (WRITERS * BATCHES * PER_BATCH) as u64));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut reader = b.open();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (v, done) = (v.clone(), done.clone());
            s.spawn(move || {
                // Counted as done even when it panics, so the reader stops.
                struct Done(Arc<std::sync::atomic::AtomicUsize>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let _done = Done(done);
                let mut st = b.open();
                let p = processor(&mut *st);
                for k in 0..BATCHES {
                    let ballots = (0..PER_BATCH)
                        .map(|i| {
                            let n = (w * BATCHES + k) * PER_BATCH + i;
                            ballot(&format!("b{n}"), "e1", &v[n], n % 3, 0)
                        })
                        .collect();
                    let r = record(&mut *st, &p, ballots);
                    assert_eq!(r.votes.len(), PER_BATCH);
                }
            });
        }
        // A reader tailing the log as the engine does: it must see every seq,
        // in order, never one before a lower one is visible.
        let mut position = 0;
        let total = (WRITERS * BATCHES * PER_BATCH) as i64;
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
            let votes = reader.votes_after(position, 40).unwrap();
            for vote in &votes {
                assert_eq!(
                    vote.seq,
                    position + 1,
                    "the log skipped or reordered a vote"
                );
                position = vote.seq;
            }
            if votes.is_empty() {
                if finished {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        assert_eq!(position, total);
    });
}

fn votes_after_pages_the_log_with_enrichment(b: &Backend) {
    let v = setup(b, 30);
    let mut st = b.open();
    let p = processor(&mut *st);
    for chunk in 0..3 {
        let ballots = (0..10)
            .map(|i| {
                let n: usize = chunk * 10 + i;
                ballot(
                    &format!("b{n}"),
                    if n.is_multiple_of(2) { "e1" } else { "e2" },
                    &v[n],
                    n % 3,
                    n as i64,
                )
            })
            .collect();
        record(&mut *st, &p, ballots);
    }
    let all = st.votes_after(0, 1000).unwrap();
    assert_eq!(
        all.iter().map(|x| x.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    let page = st.votes_after(7, 5).unwrap();
    assert_eq!(
        page.iter().map(|x| x.seq).collect::<Vec<_>>(),
        [8, 9, 10, 11, 12]
    );
    assert!(st.votes_after(30, 10).unwrap().is_empty());
    for x in &all {
        let n: usize = x.ballot_id[1..].parse().unwrap();
        let voter = &v[n];
        assert_eq!(x.voter_id, voter.voter_id);
        assert_eq!(
            &*x.election_id,
            if n.is_multiple_of(2) { "e1" } else { "e2" }
        );
        assert_eq!(&*x.candidate_id, format!("c{}", n % 3));
        assert_eq!(&*x.state, voter.address_state);
        assert_eq!(x.age_band, AgeBand::of_age(voter.registered_age));
        assert_eq!(x.gender, voter.gender);
        assert_eq!(x.cast_at, OPENS + n as i64 * 60_000 + 1_234);
    }
}

fn keys() -> Vec<(TallyKey, i64)> {
    let e: Arc<str> = Arc::from("e1");
    let c: Arc<str> = Arc::from("c1");
    vec![
        (
            TallyKey::Candidate {
                election: e.clone(),
                candidate: c.clone(),
            },
            7,
        ),
        (
            TallyKey::State {
                election: e.clone(),
                state: Arc::from("Texas"),
                candidate: c.clone(),
            },
            5,
        ),
        (
            TallyKey::Demographic {
                election: e.clone(),
                age_band: AgeBand::A25_34,
                gender: Gender::Female,
                candidate: c.clone(),
            },
            3,
        ),
        (
            TallyKey::Minute {
                election: e.clone(),
                minute: OPENS,
                candidate: c.clone(),
            },
            6,
        ),
        (
            TallyKey::Late {
                election: e.clone(),
            },
            1,
        ),
        (TallyKey::MaxCastAt { election: e }, OPENS + 59_000),
    ]
}

fn tallies_and_position_round_trip(b: &Backend) {
    setup(b, 1);
    let mut st = b.open();
    let (t, pos) = st.load_tallies(BUILTIN).unwrap();
    assert_eq!((t.iter().count(), pos), (0, 0));
    st.save_tallies(BUILTIN, &keys(), 0, 42).unwrap();
    let (t, pos) = b.open().load_tallies(BUILTIN).unwrap();
    assert_eq!(pos, 42);
    for (k, v) in keys() {
        assert_eq!(t.get(&k), v, "{k:?}");
    }
    assert_eq!(t.iter().count(), keys().len());
    // An update of some keys leaves the others; another engine is separate.
    let (k0, _) = keys().remove(0);
    // A save from a stale position is refused and writes nothing.
    let stale = st.save_tallies(BUILTIN, &[(k0.clone(), 1000)], 0, 99);
    assert!(
        matches!(
            stale,
            Err(StoreError::EngineMoved {
                expected: 0,
                found: 42,
                ..
            })
        ),
        "{stale:?}"
    );
    st.save_tallies(BUILTIN, &[(k0.clone(), 9)], 42, 43)
        .unwrap();
    st.save_tallies("spark", &[(k0.clone(), 100)], 0, 5)
        .unwrap();
    let (t, pos) = st.load_tallies(BUILTIN).unwrap();
    assert_eq!((t.get(&k0), pos), (9, 43));
    assert_eq!(t.get(&keys()[1].0), 5);
    let (t, pos) = st.load_tallies("spark").unwrap();
    assert_eq!((t.get(&k0), pos, t.iter().count()), (100, 5, 1));
}

fn results_and_recount_agree_after_aggregation(b: &Backend) {
    let v = setup(b, 60);
    let mut st = b.open();
    let p = processor(&mut *st);
    // Minutes 0..5, then one vote cast at minute 0 after the watermark moved
    // to minute 5: late with a 60 s allowance.
    let mut ballots: Vec<Inbound> = (0..59)
        .map(|i| ballot(&format!("b{i}"), "e1", &v[i], i % 3, (i / 12) as i64))
        .collect();
    record(&mut *st, &p, std::mem::take(&mut ballots));
    let mut engine = Engine::open(b.open(), 60_000).unwrap();
    engine
        .run(
            Feed::Store { follow: false },
            &Stats::default(),
            &Shutdown::default(),
        )
        .unwrap();
    record(&mut *st, &p, vec![ballot("late", "e1", &v[59], 0, 0)]);
    let mut engine = Engine::open(b.open(), 60_000).unwrap();
    engine
        .run(
            Feed::Store { follow: false },
            &Stats::default(),
            &Shutdown::default(),
        )
        .unwrap();
    assert_eq!(engine.position(), 60);

    let r = st.results("e1", BUILTIN).unwrap();
    assert_eq!((r.accepted, r.counted, r.late_votes), (60, 60, 1));
    let per: Vec<i64> = r.candidates.iter().map(|c| c.total_votes).collect();
    assert_eq!(per, [21, 20, 19]);
    let mut by_state = std::collections::BTreeMap::new();
    for x in &v {
        *by_state.entry(x.address_state.clone()).or_insert(0i64) += 1;
    }
    let got: std::collections::BTreeMap<String, i64> = r
        .states
        .iter()
        .map(|s| (s.state.clone(), s.count))
        .collect();
    assert_eq!(got, by_state);
    let states: Vec<&str> = r.states.iter().map(|s| s.state.as_str()).collect();
    let mut sorted = states.clone();
    sorted.sort();
    assert_eq!(states, sorted, "states in byte order");
    assert_eq!(r.demographics.iter().map(|d| d.votes).sum::<i64>(), 60);
    assert_eq!(
        r.timeline.iter().map(|m| m.votes).sum::<i64>(),
        59,
        "the late vote is not in a window"
    );
    assert_eq!(
        r.timeline[0].minute,
        votestream::model::format_voting_time(OPENS - OPENS % 60_000)
    );

    let recount: Tallies = st.recount("e1").unwrap();
    let e: Arc<str> = Arc::from("e1");
    for (i, n) in per.iter().enumerate() {
        let k = TallyKey::Candidate {
            election: e.clone(),
            candidate: Arc::from(format!("c{i}").as_str()),
        };
        assert_eq!(recount.get(&k), *n);
    }
    let report = votestream::audit::audit(&mut *st, "e1", BUILTIN).unwrap();
    assert!(report.is_clean(), "{:?}", report.differences);
    assert_eq!(report.votes, 60);
    assert!(st.recount("e2").unwrap().iter().next().is_none());
    assert!(matches!(
        st.results("nope", BUILTIN),
        Err(StoreError::UnknownElection(_))
    ));
}

const HOSTILE: [&str; 10] = [
    "Robert'); DROP TABLE votes; --",
    "\"double\" and 'single' quotes",
    "back\\slash \\\\ and \\x00 \\N",
    "%s %d {} $1 ?1 :name",
    "新しい候補者 — émoji 🗳️👩🏽‍⚖️",
    "مرحبا بالعالم (RTL) \u{202E}reversed\u{202C}",
    "line\nbreak\ttab\r\n",
    "<script>alert(1)</script>",
    "",
    "\u{FEFF}bom and \u{200B}zero width",
];

fn hostile_strings_come_back_verbatim(b: &Backend) {
    let mut st = b.open();
    let (mut e, mut cands) = election("e'1\"\\", HOSTILE[0]);
    for (i, c) in cands.iter_mut().enumerate() {
        c.election_id = e.election_id.clone();
        c.candidate_name = HOSTILE[(i + 1) % HOSTILE.len()].into();
        c.party_affiliation = HOSTILE[(i + 2) % HOSTILE.len()].into();
        c.biography = HOSTILE[(i + 3) % HOSTILE.len()].into();
        c.campaign_platform = HOSTILE[(i + 4) % HOSTILE.len()].into();
        c.photo_url = HOSTILE[(i + 5) % HOSTILE.len()].into();
    }
    cands[1].candidate_id = HOSTILE[4].into();
    e.name = HOSTILE[5].into();
    st.put_election(&e, &cands).unwrap();
    let got = b.open().elections().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].election, e);
    let mut want = cands.clone();
    want.sort_by(|a, b| a.candidate_id.cmp(&b.candidate_id));
    assert_eq!(got[0].candidates, want);

    let voters: Vec<Voter> = (0..HOSTILE.len())
        .map(|i| {
            let h = |k: usize| HOSTILE[(i + k) % HOSTILE.len()].to_string();
            Voter {
                voter_id: format!("{}#{i}", h(0)),
                voter_name: h(1),
                date_of_birth: h(2),
                gender: Gender::Other,
                nationality: h(3),
                registration_number: h(4),
                address_street: h(5),
                address_city: h(6),
                address_state: h(7),
                address_country: h(8),
                address_postcode: h(9),
                email: h(10),
                phone_number: h(11),
                cell_number: h(12),
                picture: h(13),
                registered_age: 18 + i as u32,
            }
        })
        .collect();
    assert_eq!(st.put_voters(&voters).unwrap(), voters.len() as u64);
    for x in &voters {
        assert_eq!(st.voter(&x.voter_id).unwrap().as_ref(), Some(x));
    }
    assert_eq!(st.voter("nobody").unwrap(), None);

    // A hostile vote and hostile rejections, through the processor.
    let p = processor(&mut *st);
    let hostile_ballot = Inbound::ballot(Ballot {
        ballot_id: HOSTILE[1].into(),
        election_id: e.election_id.clone(),
        voter_id: voters[3].voter_id.clone(),
        candidate_id: HOSTILE[4].into(),
        cast_at: OPENS + 5_000,
        client: None,
    });
    let unknown = Inbound::ballot(Ballot {
        ballot_id: HOSTILE[6].into(),
        election_id: e.election_id.clone(),
        voter_id: HOSTILE[5].into(),
        candidate_id: "c0".into(),
        cast_at: OPENS + 5_000,
        client: None,
    });
    let raw = Inbound::raw(HOSTILE.join(" | ").into_bytes());
    let r = record(&mut *st, &p, vec![hostile_ballot, unknown, raw]);
    assert_eq!(r.votes.len(), 1);
    assert_eq!(r.votes[0].ballot_id, HOSTILE[1]);
    let logged = st.votes_after(0, 10).unwrap();
    assert_eq!(logged[0].ballot_id, HOSTILE[1]);
    assert_eq!(&*logged[0].candidate_id, HOSTILE[4]);
    assert_eq!(logged[0].voter_id, voters[3].voter_id);
    assert_eq!(&*logged[0].state, voters[3].address_state);
    let rows = b.raw.rejections();
    assert_eq!(rows.len(), 2);
    let by_id = |id: &str| rows.iter().find(|r| r.0 == id).cloned();
    let unknown_row = by_id(HOSTILE[6]).expect("the unknown voter's rejection");
    assert_eq!(unknown_row.1.as_deref(), Some(e.election_id.as_str()));
    assert_eq!(unknown_row.2.as_deref(), Some(HOSTILE[5]));
    assert_eq!(unknown_row.3, "unknown_voter");
    assert!(unknown_row.4.contains(&format!("{:?}", HOSTILE[5])));
    let raw_row = rows
        .iter()
        .find(|r| r.3 == "malformed_json")
        .expect("the raw message's rejection");
    assert_eq!(raw_row.5, HOSTILE.join(" | "), "raw kept verbatim");
    let res = st.results(&e.election_id, BUILTIN).unwrap();
    assert_eq!(res.election.name, HOSTILE[5]);
    assert_eq!(
        (res.accepted, res.rejected),
        (1, 1),
        "the raw message names no election"
    );
}

fn nul_is_refused_by_the_store_and_rejected_by_the_processor(b: &Backend) {
    let v = setup(b, 3);
    let mut st = b.open();
    let mut bad = v[0].clone();
    bad.voter_id = "new-voter".into();
    bad.address_city = "Nul\0City".into();
    let err = st.put_voters(&[v[1].clone(), bad]).unwrap_err();
    assert!(matches!(err, StoreError::NulInText { .. }), "{err}");
    assert!(err.to_string().contains("address_city"), "{err}");
    assert_eq!(
        b.raw.scalar("SELECT COUNT(*) FROM voters"),
        3,
        "nothing of the batch written"
    );
    let (mut e, c) = election("e3", "with \0 NUL");
    assert!(matches!(
        st.put_election(&e, &c),
        Err(StoreError::NulInText { .. })
    ));
    e.name = "fine".into();
    st.put_election(&e, &c).unwrap();

    let p = processor(&mut *st);
    let with_nul = |ballot_id: &str, voter_id: &str| {
        Inbound::ballot(Ballot {
            ballot_id: ballot_id.into(),
            election_id: "e1".into(),
            voter_id: voter_id.into(),
            candidate_id: "c0".into(),
            cast_at: OPENS,
            client: None,
        })
    };
    let ballots = vec![
        with_nul("b\0nul", &v[0].voter_id),
        with_nul("b-ok", &format!("{}\0", v[1].voter_id)),
        Inbound::raw(b"{\"ballot_id\":\"r\\u0000\",\"voter_id\":5}\0".to_vec()),
    ];
    let r = record(&mut *st, &p, copy(&ballots));
    assert!(r.votes.is_empty());
    assert_eq!(r.rejections.len(), 3);
    // Replayed: recognised (the ids derived for NUL ballots are stable).
    let again = record(&mut *st, &p, ballots);
    assert_eq!((again.rejections.len(), again.replays), (0, 3));
    let rows = b.raw.rejections();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        for text in [&row.0, &row.4, &row.5] {
            assert!(!text.contains('\0'));
        }
    }
    assert!(
        rows[0].0.starts_with("raw-") && rows[0].3 == "invalid_field",
        "{rows:?}"
    );
    assert!(
        rows[0].5.contains("b\\u0000nul"),
        "the ballot, NUL escaped as JSON: {}",
        rows[0].5
    );
    assert_eq!((rows[1].0.as_str(), rows[1].2.as_deref()), ("b-ok", None));
    assert!(
        rows[1].4.contains("voter_id contains U+0000"),
        "{}",
        rows[1].4
    );
    assert!(rows[2].5.ends_with('\u{FFFD}'), "{}", rows[2].5);
}

fn registry_load_is_idempotent_and_ordered(b: &Backend) {
    let v = setup(b, 50);
    let mut st = b.open();
    assert_eq!(st.put_voters(&v[10..20]).unwrap(), 0, "all known");
    let more: Vec<Voter> = votestream::generate::voters(11, 80).collect();
    // Overlapping chunk, with a duplicate inside it: only the 30 new count.
    let mut chunk = more[40..80].to_vec();
    chunk.push(more[60].clone());
    assert_eq!(st.put_voters(&chunk).unwrap(), 30);
    let mut seen = Vec::new();
    let mut nos = Vec::new();
    st.scan_voters(&mut |k| {
        seen.push(k.voter_id.to_string());
        nos.push(k.voter_no);
    })
    .unwrap();
    let want: Vec<String> = more.iter().map(|x| x.voter_id.clone()).collect();
    assert_eq!(seen, want, "registration order");
    assert!(nos.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(st.results("e1", BUILTIN).unwrap().registered_voters, 80);
    // A CSV import goes through the same path.
    let mut csv = Vec::new();
    let extra: Vec<Voter> = votestream::generate::voters(12, 5).collect();
    votestream::generate::write_csv(&extra, &mut csv).unwrap();
    let imported = votestream::generate::from_csv(&csv[..]).unwrap();
    assert_eq!(st.put_voters(&imported).unwrap(), 5);
    assert_eq!(
        st.voter(&extra[2].voter_id).unwrap().as_ref(),
        Some(&extra[2])
    );
}

fn opening_twice_keeps_the_schema_and_data(b: &Backend) {
    setup(b, 5);
    // Concurrent opens of an existing store, and again after writing.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| drop(b.open()));
        }
    });
    let mut st = b.open();
    assert_eq!(st.elections().unwrap().len(), 2);
    assert_eq!(st.results("e1", BUILTIN).unwrap().registered_voters, 5);
}

/// PostgreSQL only: a connection killed under the store is replaced on the
/// next call, and the caller's retry loses nothing.
#[test]
fn postgres_reconnects_after_its_connection_is_killed() {
    let b = Backend::postgres();
    let v = setup(&b, 10);
    let mut st = b.open();
    let p = processor(&mut *st);
    record(&mut *st, &p, vec![ballot("b0", "e1", &v[0], 0, 0)]);
    let Raw::Postgres(url) = &b.raw else {
        unreachable!()
    };
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(!killed.is_empty());
    let batch: Batch = p.validate_batch(vec![ballot("b1", "e1", &v[1], 0, 0)], OPENS + 60_000);
    let r = votestream::process::record_with_retry(&mut *st, batch, &Shutdown::default()).unwrap();
    assert_eq!(r.votes.len(), 1);
    assert_eq!(r.votes[0].seq, 2);
    assert_eq!(st.results("e1", BUILTIN).unwrap().accepted, 2);
}

/// A copy of test ballots (`Inbound` is not `Clone`: an acked one owns its reply).
fn copy(ballots: &[Inbound]) -> Vec<Inbound> {
    ballots
        .iter()
        .map(|b| {
            assert!(b.ack.is_none(), "the contract tests wait on no ballot");
            Inbound {
                body: b.body.clone(),
                ack: None,
                source: b.source,
            }
        })
        .collect()
}

/// Two built-in engines on one store (say `serve` and `aggregate --follow`):
/// the one that saved last wins; the other reloads its results instead of
/// writing an older position over them.
fn two_engines_of_one_name_take_turns(b: &Backend) {
    let v = setup(b, 30);
    let mut st = b.open();
    let p = processor(&mut *st);
    let batch = |from: usize, to: usize, candidate: usize| -> Vec<Inbound> {
        (from..to)
            .map(|i| ballot(&format!("b{i}"), "e1", &v[i], candidate, 0))
            .collect()
    };
    let run = |e: &mut Engine| {
        e.run(
            Feed::Store { follow: false },
            &Stats::default(),
            &Shutdown::default(),
        )
        .unwrap()
    };
    record(&mut *st, &p, batch(0, 10, 0));
    let mut a = Engine::open(b.open(), 60_000).unwrap();
    run(&mut a);
    record(&mut *st, &p, batch(10, 20, 1));
    let mut b2 = Engine::open(b.open(), 60_000).unwrap();
    run(&mut b2);
    record(&mut *st, &p, batch(20, 25, 2));
    // A last saved at 10; B has saved 20 since: A's save is refused, A
    // reloads B's results and counts 21..25 on top of them.
    run(&mut a);
    assert_eq!(a.position(), 25);
    run(&mut b2);
    assert_eq!(b2.position(), 25);
    let (t, pos) = st.load_tallies(BUILTIN).unwrap();
    assert_eq!(pos, 25);
    for (c, n) in [("c0", 10), ("c1", 10), ("c2", 5)] {
        let key = TallyKey::Candidate {
            election: Arc::from("e1"),
            candidate: Arc::from(c),
        };
        assert_eq!(t.get(&key), n, "{c}");
    }
    let report = votestream::audit::audit(&mut *st, "e1", BUILTIN).unwrap();
    assert!(report.is_clean(), "{:?}", report.differences);
}

/// Wraps ballots as read from bus positions (partition 0, offsets from `first`).
fn sourced(ballots: Vec<Inbound>, first: i64) -> Vec<Inbound> {
    ballots
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let source = votestream::model::Source {
                partition: 0,
                offset: first + i as i64,
            };
            b.read_at(source)
        })
        .collect()
}

fn a_replay_of_the_same_bus_message_is_republished(b: &Backend) {
    let v = setup(b, 10);
    let mut st = b.open();
    let p = processor(&mut *st);
    let batch = || {
        vec![
            ballot("b0", "e1", &v[0], 0, 0),
            ballot("b1", "e1", &v[1], 1, 0),
            ballot("b1-again", "e1", &v[1], 2, 0), // already_voted
            Inbound::raw(b"{not json".to_vec()),
        ]
    };
    let first = record(&mut *st, &p, sourced(batch(), 100));
    assert_eq!(first.votes.len(), 2);
    assert_eq!(first.rejections.len(), 2);
    assert!(first.republish_votes.is_empty() && first.republish_rejections.is_empty());

    // The same messages again (the bus's commit was lost): each outcome
    // comes back to be published again, votes with their stored seq.
    let again = record(&mut *b.open(), &p, sourced(batch(), 100));
    assert!(again.votes.is_empty() && again.rejections.is_empty());
    assert_eq!(again.replays, 4);
    let mut republished: Vec<(String, i64)> = again
        .republish_votes
        .iter()
        .map(|v| (v.ballot_id.clone(), v.seq))
        .collect();
    republished.sort();
    let mut recorded: Vec<(String, i64)> = first
        .votes
        .iter()
        .map(|v| (v.ballot_id.clone(), v.seq))
        .collect();
    recorded.sort();
    assert_eq!(republished, recorded);
    let mut rejected: Vec<RejectReason> = again
        .republish_rejections
        .iter()
        .map(|r| r.reason)
        .collect();
    rejected.sort_by_key(|r| r.as_str());
    assert_eq!(
        rejected,
        [RejectReason::AlreadyVoted, RejectReason::MalformedJson]
    );

    // The same ballots sent again as new messages: replays, nothing to publish.
    let dup = record(&mut *b.open(), &p, sourced(batch(), 200));
    assert_eq!(dup.replays, 4);
    assert!(dup.republish_votes.is_empty() && dup.republish_rejections.is_empty());
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM votes"), 2);
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM rejected_ballots"), 2);
    assert_eq!(
        b.raw.scalar(
            "SELECT COUNT(*) FROM votes WHERE src_partition = 0 AND src_offset IN (100, 101)"
        ),
        2
    );
}

fn tally_deltas_add_up_and_offsets_are_compare_and_set(b: &Backend) {
    use votestream::store::OffsetMove;
    setup(b, 1);
    let mut st = b.open();
    let mv = |partition, from, to| OffsetMove {
        partition,
        from,
        to,
    };
    st.add_tallies(
        BUILTIN,
        &keys(),
        "votes_topic",
        &[mv(0, None, 10), mv(1, None, 4)],
    )
    .unwrap();
    // A second first save of partition 0 is refused and writes nothing.
    let stale = b.open().add_tallies(
        BUILTIN,
        &keys(),
        "votes_topic",
        &[mv(1, Some(4), 6), mv(0, None, 12)],
    );
    assert!(
        matches!(stale, Err(StoreError::EngineMoved { .. })),
        "{stale:?}"
    );
    let stale = st.add_tallies(BUILTIN, &keys(), "votes_topic", &[mv(0, Some(9), 12)]);
    assert!(
        matches!(stale, Err(StoreError::EngineMoved { .. })),
        "{stale:?}"
    );
    // Deltas add up; the latest cast time is the largest, not a sum.
    let mut earlier = keys();
    let last = earlier.len() - 1;
    earlier[last].1 = OPENS;
    st.add_tallies(BUILTIN, &earlier, "votes_topic", &[mv(0, Some(10), 15)])
        .unwrap();
    let (t, _) = st.load_tallies(BUILTIN).unwrap();
    for (k, v) in keys() {
        let want = if matches!(k, TallyKey::MaxCastAt { .. }) {
            v
        } else {
            2 * v
        };
        assert_eq!(t.get(&k), want, "{k:?}");
    }
    let offsets = b.open().load_offsets(BUILTIN, "votes_topic").unwrap();
    assert_eq!(offsets.get(&0), Some(&15));
    assert_eq!(offsets.get(&1), Some(&4));
    assert!(b.open().load_offsets(BUILTIN, "other").unwrap().is_empty());
    assert!(b
        .open()
        .load_offsets("spark", "votes_topic")
        .unwrap()
        .is_empty());
}

fn rejected(reason: RejectReason, replay: bool) -> Fate {
    Fate::Rejected {
        reason,
        detail: String::new(),
        replay,
    }
}

/// Fates with the details blanked (they are checked apart).
fn fates(f: &[Fate]) -> Vec<Fate> {
    f.iter()
        .map(|f| match f {
            Fate::Rejected { reason, replay, .. } => rejected(*reason, *replay),
            other => other.clone(),
        })
        .collect()
}

const REUSED: RejectReason = RejectReason::BallotIdReused;

fn a_ballot_id_names_one_ballot(b: &Backend) {
    let v = setup(b, 10);
    let mut st = b.open();
    let p = processor(&mut *st);
    let r = record(&mut *st, &p, vec![ballot("x", "e1", &v[0], 0, 0)]);
    assert_eq!(r.votes.len(), 1);
    assert_eq!(r.vote_fates, [Fate::Accepted { replay: false }]);

    // From another connection, as another processor would: the same id for
    // another voter, candidate or election is refused and recorded, each
    // under its own id; the same ballot (a later cast time changes nothing)
    // is a replay.
    let mut st2 = b.open();
    let four = || {
        vec![
            ballot("x", "e1", &v[1], 0, 0),
            ballot("x", "e1", &v[0], 1, 0),
            ballot("x", "e2", &v[0], 0, 0),
            ballot("x", "e1", &v[0], 0, 5),
        ]
    };
    let r = record(&mut *st2, &p, four());
    assert!(r.votes.is_empty(), "{:?}", r.votes);
    assert_eq!(r.replays, 1);
    assert_eq!(
        fates(&r.vote_fates),
        [
            rejected(REUSED, false),
            rejected(REUSED, false),
            rejected(REUSED, false),
            Fate::Accepted { replay: true },
        ]
    );
    let ids: std::collections::HashSet<&str> =
        r.rejections.iter().map(|r| r.ballot_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "each reuse is recorded under its own id");
    assert!(ids.iter().all(|id| id.starts_with("x~reused-")), "{ids:?}");
    assert!(
        r.rejections[0].detail.contains("\"x\""),
        "{}",
        r.rejections[0].detail
    );
    assert_eq!(
        r.rejections[0].voter_id.as_deref(),
        Some(v[1].voter_id.as_str())
    );

    // All four again: replays, each with its first answer.
    let again = record(&mut *st, &p, four());
    assert!(again.votes.is_empty() && again.rejections.is_empty());
    assert_eq!(again.replays, 4);
    assert_eq!(
        fates(&again.vote_fates),
        [
            rejected(REUSED, true),
            rejected(REUSED, true),
            rejected(REUSED, true),
            Fate::Accepted { replay: true },
        ]
    );
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM votes"), 1);
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM rejected_ballots"), 3);
    let e1 = st.results("e1", BUILTIN).unwrap();
    assert_eq!((e1.accepted, e1.rejected), (1, 2));
    assert_eq!(e1.rejected_by_reason.get("ballot_id_reused"), Some(&2));
    let e2 = st.results("e2", BUILTIN).unwrap();
    assert_eq!((e2.accepted, e2.rejected), (0, 1));
}

fn a_batch_decides_ballot_ids_in_arrival_order(b: &Backend) {
    let v = setup(b, 10);
    let mut st = b.open();
    let p = processor(&mut *st);
    record(&mut *st, &p, vec![ballot("first", "e1", &v[0], 0, 0)]);
    // A voter who voted and a new voter share an id: the first to arrive
    // owns it; the other is refused. Each answer is its own.
    let r = record(
        &mut *st,
        &p,
        vec![
            ballot("q", "e1", &v[0], 1, 0),
            ballot("q", "e1", &v[5], 0, 0),
        ],
    );
    assert!(r.votes.is_empty());
    assert_eq!(
        fates(&r.vote_fates),
        [
            rejected(RejectReason::AlreadyVoted, false),
            rejected(REUSED, false)
        ]
    );
    // The other way round, and with the later voter first in key order.
    let r = record(
        &mut *st,
        &p,
        vec![
            ballot("r", "e1", &v[6], 0, 0),
            ballot("r", "e1", &v[0], 2, 0),
            ballot("s", "e1", &v[8], 0, 0),
            ballot("s", "e1", &v[7], 0, 0),
            ballot("s", "e1", &v[8], 0, 0),
        ],
    );
    let accepted: Vec<&str> = r.votes.iter().map(|v| v.voter_id.as_str()).collect();
    assert_eq!(accepted, [v[6].voter_id.as_str(), v[8].voter_id.as_str()]);
    assert_eq!(
        fates(&r.vote_fates),
        [
            Fate::Accepted { replay: false },
            rejected(REUSED, false),
            Fate::Accepted { replay: false },
            rejected(REUSED, false),
            Fate::Accepted { replay: true },
        ]
    );
    assert_eq!(r.replays, 1);
    // Two unknown voters with one id: both recorded, neither lost.
    let unknown = |id: &str, voter: &str| {
        Inbound::ballot(Ballot {
            ballot_id: id.into(),
            election_id: "e1".into(),
            voter_id: voter.into(),
            candidate_id: "c0".into(),
            cast_at: OPENS + 1_000,
            client: None,
        })
    };
    let r = record(
        &mut *st,
        &p,
        vec![unknown("z", "nobody-1"), unknown("z", "nobody-2")],
    );
    assert_eq!(
        fates(&r.rejection_fates),
        [
            rejected(RejectReason::UnknownVoter, false),
            rejected(REUSED, false)
        ]
    );
    let r = record(&mut *st, &p, vec![unknown("z", "nobody-3")]);
    assert_eq!(fates(&r.rejection_fates), [rejected(REUSED, false)]);
    let rows = b.raw.rejections();
    let voters: Vec<Option<&str>> = rows
        .iter()
        .filter(|r| r.0.starts_with('z'))
        .map(|r| r.2.as_deref())
        .collect();
    assert_eq!(
        voters,
        [Some("nobody-1"), Some("nobody-2"), Some("nobody-3")]
    );
    let e1 = st.results("e1", BUILTIN).unwrap();
    assert_eq!(e1.received, e1.accepted + e1.rejected);
    assert_eq!((e1.accepted, e1.rejected), (3, 7));
    assert_eq!(
        b.raw.scalar(&format!(
            "SELECT COUNT(*) FROM votes WHERE voter_id IN ('{}', '{}')",
            v[5].voter_id, v[7].voter_id
        )),
        0,
        "a refused ballot is not counted"
    );
}

fn an_id_first_rejected_stays_rejected(b: &Backend) {
    let v = setup(b, 10);
    let mut st = b.open();
    let p = processor(&mut *st);
    let r = record(&mut *st, &p, vec![ballot("w", "e1", &v[0], 7, 0)]);
    assert_eq!(
        fates(&r.rejection_fates),
        [rejected(RejectReason::UnknownCandidate, false)]
    );
    // Corrected under the same id: another ballot, refused.
    let r = record(&mut *st, &p, vec![ballot("w", "e1", &v[0], 0, 0)]);
    assert!(r.votes.is_empty());
    assert_eq!(fates(&r.vote_fates), [rejected(REUSED, false)]);
    // The first one again: its first answer.
    let r = record(&mut *st, &p, vec![ballot("w", "e1", &v[0], 7, 0)]);
    assert_eq!(
        fates(&r.rejection_fates),
        [rejected(RejectReason::UnknownCandidate, true)]
    );
    // A message that did not parse, then a valid ballot with its id.
    let broken = r#"{"ballot_id":"m","election_id":"e1","voter_id":5,"candidate_id":"c0","voting_time":"2026-06-01 00:00:00"}"#;
    let r = record(&mut *st, &p, vec![Inbound::raw(broken.into())]);
    assert_eq!(
        fates(&r.rejection_fates),
        [rejected(RejectReason::WrongType, false)]
    );
    let r = record(&mut *st, &p, vec![ballot("m", "e1", &v[1], 0, 0)]);
    assert!(r.votes.is_empty(), "{:?}", r.votes);
    assert_eq!(fates(&r.vote_fates), [rejected(REUSED, false)]);
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM votes"), 0);
    let r = record(&mut *st, &p, vec![Inbound::raw(broken.into())]);
    assert_eq!(r.replays, 1);
    assert_eq!(
        fates(&r.rejection_fates),
        [rejected(RejectReason::WrongType, true)]
    );
}

fn ids_recorded_before_the_id_check_are_claimed_when_opened(b: &Backend) {
    let v = setup(b, 10);
    {
        let mut st = b.open();
        let p = processor(&mut *st);
        record(
            &mut *st,
            &p,
            vec![
                ballot("x", "e1", &v[0], 0, 0),
                ballot("y", "e1", &v[1], 7, 0),
            ],
        );
    }
    // As a store made before the id check: no claims, an older version.
    b.raw.execute(match b.raw {
        support::Raw::Sqlite(_) => "DELETE FROM ballot_ids; PRAGMA user_version = 0;",
        support::Raw::Postgres(_) => {
            "DELETE FROM ballot_ids; DELETE FROM schema_version WHERE version = 3;"
        }
    });
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM ballot_ids"), 0);
    let mut st = b.open();
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM ballot_ids"), 2);
    let p = processor(&mut *st);
    let r = record(
        &mut *st,
        &p,
        vec![
            ballot("x", "e1", &v[2], 0, 0),
            ballot("y", "e1", &v[1], 0, 0),
            ballot("x", "e1", &v[0], 0, 0),
        ],
    );
    assert!(r.votes.is_empty(), "{:?}", r.votes);
    assert_eq!(
        fates(&r.vote_fates),
        [
            rejected(REUSED, false),
            rejected(REUSED, false),
            Fate::Accepted { replay: true },
        ]
    );
    // Opening again does not run it twice.
    drop(b.open());
    assert_eq!(b.raw.scalar("SELECT COUNT(*) FROM ballot_ids"), 4);
}

fn a_sealed_state_takes_no_new_vote_and_its_count_is_final(b: &Backend) {
    let v = setup(b, 60);
    // The schedule round-trips, and the processor reads it.
    let mut st = b.open();
    let (mut e, c) = election("e1", "Election e1");
    e.polls = Some(votestream::model::PollClose {
        first_close: OPENS + 10 * 3_600_000,
        step_ms: 1_800_000,
    });
    st.put_election(&e, &c).unwrap();
    let back = st.elections().unwrap();
    assert_eq!(
        back.iter()
            .find(|x| x.election.election_id == "e1")
            .unwrap()
            .election,
        e
    );
    let p = processor(&mut *st);
    // The most populous state of the sample: it has at least two voters.
    let mut by_state = std::collections::HashMap::<&str, usize>::new();
    for x in &v {
        *by_state.entry(&x.address_state).or_default() += 1;
    }
    let state = by_state
        .iter()
        .max_by_key(|(s, n)| (**n, std::cmp::Reverse(**s)))
        .map(|(s, _)| s.to_string())
        .unwrap();
    let (here, elsewhere): (Vec<&Voter>, Vec<&Voter>) =
        v.iter().partition(|x| x.address_state == state);
    assert!(
        here.len() >= 2 && !elsewhere.is_empty(),
        "the generator spreads 60 voters"
    );
    let r = record(
        &mut *st,
        &p,
        vec![
            ballot("s0", "e1", here[0], 0, 0),
            ballot("s1", "e1", elsewhere[0], 1, 0),
        ],
    );
    assert_eq!(r.votes.len(), 2);

    let seal = st.seal_state("e1", &state, OPENS + 42).unwrap();
    assert_eq!((seal.final_votes, seal.sealed_at), (1, OPENS + 42));
    let again = st.seal_state("e1", &state, OPENS + 99).unwrap();
    assert_eq!(again, seal, "sealing twice changes nothing");
    assert!(matches!(
        st.seal_state("nope", &state, OPENS),
        Err(StoreError::UnknownElection(_))
    ));

    // From another connection, as another processor would be.
    let mut st2 = b.open();
    let r = record(
        &mut *st2,
        &p,
        vec![
            ballot("s2", "e1", here[1], 2, 0),      // new, in the sealed state
            ballot("s0", "e1", here[0], 0, 0),      // a replay: still counted
            ballot("s3", "e1", elsewhere[1], 0, 0), // another state: accepted
            ballot("x0", "e2", here[1], 0, 0),      // another election: not sealed
        ],
    );
    let mut accepted: Vec<&str> = r.votes.iter().map(|v| v.ballot_id.as_str()).collect();
    accepted.sort();
    assert_eq!(accepted, ["s3", "x0"]);
    assert_eq!(r.replays, 1);
    assert_eq!(r.rejections.len(), 1);
    assert_eq!(r.rejections[0].ballot_id, "s2");
    assert_eq!(r.rejections[0].reason, RejectReason::PollsClosed);
    assert!(
        r.rejections[0].detail.contains(&state),
        "{}",
        r.rejections[0].detail
    );
    assert!(fates(&r.vote_fates).contains(&rejected(RejectReason::PollsClosed, false)));
    // The refusal is kept like any other: a replay of it is refused again.
    let r = record(&mut *st2, &p, vec![ballot("s2", "e1", here[1], 2, 0)]);
    assert!(r.votes.is_empty());
    assert_eq!(
        fates(&r.vote_fates),
        [rejected(RejectReason::PollsClosed, true)]
    );
    assert_eq!(
        b.raw
            .scalar("SELECT COUNT(*) FROM rejected_ballots WHERE reason = 'polls_closed'"),
        1
    );
    let log = st2.desk_log("e1").unwrap();
    assert_eq!(log.seals, [seal]);
    assert!(log.events.is_empty());
    assert!(st2.desk_log("e2").unwrap().seals.is_empty());
}

fn desk_events_are_appended_once_in_order(b: &Backend) {
    setup(b, 1);
    let mut st = b.open();
    let ev = |s: &str| vec![format!("{{\"n\":\"{s}\"}}")];
    st.append_desk("e1", 0, &ev("a")).unwrap();
    st.append_desk("e1", 1, &[ev("b")[0].clone(), ev("c")[0].clone()])
        .unwrap();
    // A second desk (or a restarted one) that did not see b and c.
    let mut other = b.open();
    match other.append_desk("e1", 1, &ev("late")) {
        Err(StoreError::EngineMoved {
            expected: 1,
            found: 3,
            ..
        }) => {}
        x => panic!("a stale append must be refused, got {x:?}"),
    }
    assert!(
        other.append_desk("e1", 4, &ev("gap")).is_err(),
        "no gaps either"
    );
    other.append_desk("e2", 0, &ev("z")).unwrap();
    let log = other.desk_log("e1").unwrap();
    let bodies: Vec<&str> = log.events.iter().map(String::as_str).collect();
    assert_eq!(bodies, [r#"{"n":"a"}"#, r#"{"n":"b"}"#, r#"{"n":"c"}"#]);
    assert_eq!(other.desk_log("e2").unwrap().events.len(), 1);
}

fn a_desk_look_is_recorded_with_its_events_or_not_at_all(b: &Backend) {
    setup(b, 1);
    let mut st = b.open();
    let look = |at, first_event, events| store::DeskLook {
        at,
        counted: at * 10,
        accepted: at * 11,
        seals: at % 2,
        first_event,
        events,
    };
    let ev = |s: &str| format!("{{\"n\":\"{s}\"}}");
    st.record_look("e1", &look(1, 0, 2), &[ev("a"), ev("b")])
        .unwrap();
    // A look that sealed and made no event.
    st.record_look("e1", &look(2, 2, 0), &[]).unwrap();
    let mut other = b.open();
    // Stale (another desk recorded first): neither the look nor its events.
    match other.record_look("e1", &look(3, 1, 1), &[ev("late")]) {
        Err(StoreError::EngineMoved {
            expected: 1,
            found: 2,
            ..
        }) => {}
        x => panic!("a stale look must be refused, got {x:?}"),
    }
    other.record_look("e1", &look(4, 2, 1), &[ev("c")]).unwrap();
    other.record_look("e2", &look(5, 0, 0), &[]).unwrap();
    assert_eq!(
        other.desk_looks("e1").unwrap(),
        [look(1, 0, 2), look(2, 2, 0), look(4, 2, 1)]
    );
    assert_eq!(other.desk_looks("e2").unwrap(), [look(5, 0, 0)]);
    assert!(other.desk_looks("e3").unwrap().is_empty());
    let bodies = other.desk_log("e1").unwrap().events;
    assert_eq!(bodies, [ev("a"), ev("b"), ev("c")]);
}

/// A ballot as `ballot` makes it, sent by `client`.
fn from_client(b: Inbound, client: &str) -> Inbound {
    match b.body {
        votestream::bus::Payload::Ballot(b) => Inbound::ballot(Ballot {
            client: Some(client.into()),
            ..b
        }),
        _ => unreachable!("`ballot` makes typed ballots"),
    }
}

fn clients_of_rejections(st: &mut dyn Store) -> Vec<(String, Option<String>)> {
    let rows = st.rejections_after(0, 100).unwrap();
    rows.into_iter()
        .map(|(_, r)| {
            (
                r.reason.as_str().to_string(),
                r.client.map(|c| c.to_string()),
            )
        })
        .collect()
}

fn clients_are_kept_and_stores_made_before_them_gain_the_column(b: &Backend) {
    let v = setup(b, 10);
    let mut st = b.open();
    let p = processor(&mut *st);
    let raw = br#"{"ballot_id":"g","election_id":"e1","voter_id":5,"client":"pipe-1"}"#;
    record(
        &mut *st,
        &p,
        vec![
            from_client(ballot("a", "e1", &v[0], 0, 0), "kiosk-OH-01"),
            from_client(ballot("b", "e1", &v[0], 1, 0), "kiosk-OH-02"),
            ballot("c", "e1", &v[1], 0, 0),
            Inbound::raw(raw.to_vec()),
        ],
    );
    let clients = |st: &mut dyn Store| -> Vec<Option<String>> {
        let votes = st.votes_after(0, 100).unwrap();
        votes
            .into_iter()
            .map(|x| x.client.map(|c| c.to_string()))
            .collect()
    };
    assert_eq!(clients(&mut *st), [Some("kiosk-OH-01".into()), None]);
    assert_eq!(
        clients_of_rejections(&mut *st),
        [
            ("wrong_type".to_string(), Some("pipe-1".to_string())),
            ("already_voted".to_string(), Some("kiosk-OH-02".to_string())),
        ]
    );
    drop(st);

    // As a store made before clients were kept: read-only, it still reads
    // (no client); opened to write, it gains the column.
    b.raw.execute(
        "ALTER TABLE votes DROP COLUMN client; ALTER TABLE rejected_ballots DROP COLUMN client;",
    );
    let mut ro = store::open_read_only(&b.url).unwrap();
    assert_eq!(clients(&mut *ro), [None, None]);
    assert_eq!(clients_of_rejections(&mut *ro).len(), 2);
    drop(ro);
    let mut st = b.open();
    record(
        &mut *st,
        &p,
        vec![from_client(ballot("d", "e1", &v[2], 0, 0), "kiosk-OH-03")],
    );
    assert_eq!(clients(&mut *st), [None, None, Some("kiosk-OH-03".into())]);
}
