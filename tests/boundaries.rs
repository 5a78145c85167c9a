//! Needs: nothing.
//!
//! Every limit at its exact value and 1 ms (or 1 byte) either side: the
//! lateness allowance, the opening time, the future tolerance, the message
//! and body size. The Spark job's fold and its Python reference are held to
//! the same lateness cases in spark/tests/test_boundaries.py.

mod support;

use std::sync::Arc;

use serde_json::json;
use votestream::aggregate::{Tallies, TallyKey, MINUTE_MS};
use votestream::bus::Inbound;
use votestream::model::{AgeBand, Ballot, Candidate, Election, Gender, Millis, RejectReason, Vote};
use votestream::process::parse::{parse_ballot, MAX_MESSAGE_BYTES};
use votestream::process::{Processor, Registry, FUTURE_TOLERANCE_MS};

const ALLOWANCE: Millis = 60_000;
/// The minute window under test: [WINDOW, WINDOW + 1 min).
const WINDOW: Millis = 29_666_000 * MINUTE_MS;

fn vote(seq: i64, cast_at: Millis) -> Vote {
    Vote {
        seq,
        ballot_id: format!("b{seq}"),
        election_id: Arc::from("e"),
        voter_id: format!("v{seq}"),
        election_no: 1,
        voter_no: seq,
        candidate_id: Arc::from("a"),
        state: Arc::from("Ohio"),
        age_band: AgeBand::A25_34,
        gender: Gender::Female,
        cast_at,
        source: None,
        client: None,
    }
}

/// A vote of the window, then one that moves the watermark (the latest cast
/// time) to `watermark`, then another vote of the window: (votes the window
/// holds, votes counted late, total).
fn after_watermark(watermark: Millis) -> (i64, i64, i64) {
    let mut t = Tallies::default();
    t.apply(&vote(1, WINDOW), ALLOWANCE);
    t.apply(&vote(2, watermark), ALLOWANCE);
    t.apply(&vote(3, WINDOW + 59_999), ALLOWANCE);
    let e: Arc<str> = Arc::from("e");
    let window = TallyKey::Minute {
        election: e.clone(),
        minute: WINDOW,
        candidate: Arc::from("a"),
    };
    let late = TallyKey::Late {
        election: e.clone(),
    };
    let total = TallyKey::Candidate {
        election: e,
        candidate: Arc::from("a"),
    };
    (t.get(&window), t.get(&late), t.get(&total))
}

#[test]
fn a_window_closes_exactly_when_the_watermark_passes_its_end_plus_the_allowance() {
    // The cases the Spark job's fold and its Python reference are held to as well.
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("data/lateness_boundaries.json"))
            .expect("tests/data/lateness_boundaries.json");
    assert_eq!(cases["allowance_ms"], ALLOWANCE);
    assert_eq!(cases["window"], WINDOW);
    let closes = WINDOW + MINUTE_MS + ALLOWANCE;
    let mut watermarks = Vec::new();
    for case in cases["cases"].as_array().expect("cases") {
        let watermark = case["watermark"].as_i64().expect("watermark");
        let want = if case["in_window"].as_bool().expect("in_window") {
            (2, 0, 3)
        } else {
            (1, 1, 3)
        };
        assert_eq!(after_watermark(watermark), want, "{}", case["what"]);
        watermarks.push(watermark);
    }
    assert_eq!(watermarks, [closes - 1, closes, closes + 1]);
}

#[test]
fn the_watermark_only_moves_forward() {
    let closes = WINDOW + MINUTE_MS + ALLOWANCE;
    let mut t = Tallies::default();
    t.apply(&vote(1, closes), ALLOWANCE);
    // An older vote must not pull the watermark back and reopen the window.
    t.apply(&vote(2, WINDOW), ALLOWANCE);
    t.apply(&vote(3, WINDOW + 1), ALLOWANCE);
    let max = TallyKey::MaxCastAt {
        election: Arc::from("e"),
    };
    assert_eq!(t.get(&max), closes);
    assert_eq!(
        t.get(&TallyKey::Late {
            election: Arc::from("e")
        }),
        2
    );
}

const OPENS: Millis = 1_780_000_000_000;

fn processor() -> (tempfile::TempDir, Processor, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let mut st = votestream::store::open(&url).unwrap();
    let election = Election {
        election_id: "e".into(),
        name: "E".into(),
        opens_at: OPENS,
        polls: None,
    };
    let candidate = Candidate {
        candidate_id: "a".into(),
        election_id: "e".into(),
        candidate_name: "A".into(),
        party_affiliation: "P".into(),
        biography: String::new(),
        campaign_platform: String::new(),
        photo_url: String::new(),
    };
    st.put_election(&election, &[candidate]).unwrap();
    let voters: Vec<_> = votestream::generate::voters(5, 1).collect();
    st.put_voters(&voters).unwrap();
    let p = Processor::new(Registry::load(&mut *st).unwrap());
    (dir, p, voters[0].voter_id.clone())
}

/// The processor's verdict on a ballot cast at `cast_at`, judged at `now`.
fn verdict(p: &Processor, voter: &str, cast_at: Millis, now: Millis) -> Result<(), RejectReason> {
    let b = Ballot {
        ballot_id: "b".into(),
        election_id: "e".into(),
        voter_id: voter.into(),
        candidate_id: "a".into(),
        cast_at,
        client: None,
    };
    p.validate(Inbound::ballot(b), now)
        .map(|_| ())
        .map_err(|r| r.reason)
}

#[test]
fn the_opening_time_is_the_first_valid_millisecond() {
    let (_dir, p, voter) = processor();
    let now = OPENS + 3_600_000;
    assert_eq!(
        verdict(&p, &voter, OPENS - 1, now),
        Err(RejectReason::CastBeforeOpen)
    );
    assert_eq!(verdict(&p, &voter, OPENS, now), Ok(()));
    assert_eq!(verdict(&p, &voter, OPENS + 1, now), Ok(()));
}

#[test]
fn the_future_tolerance_is_the_last_valid_millisecond() {
    let (_dir, p, voter) = processor();
    let now = OPENS + 3_600_000;
    assert_eq!(FUTURE_TOLERANCE_MS, 5_000);
    assert_eq!(
        verdict(&p, &voter, now + FUTURE_TOLERANCE_MS - 1, now),
        Ok(())
    );
    assert_eq!(verdict(&p, &voter, now + FUTURE_TOLERANCE_MS, now), Ok(()));
    assert_eq!(
        verdict(&p, &voter, now + FUTURE_TOLERANCE_MS + 1, now),
        Err(RejectReason::CastInFuture)
    );
}

/// A valid `ballots` message padded with spaces to exactly `len` bytes.
fn message_of(len: usize) -> Vec<u8> {
    let mut m = json!({
        "ballot_id": "b", "election_id": "e", "voter_id": "v", "candidate_id": "a",
        "voting_time": "2026-05-28T20:30:00Z",
    })
    .to_string()
    .into_bytes();
    assert!(m.len() <= len);
    m.resize(len, b' ');
    m
}

#[test]
fn a_message_of_exactly_the_limit_is_read_one_byte_more_is_too_large() {
    let now = OPENS + 3_600_000;
    for len in [MAX_MESSAGE_BYTES - 1, MAX_MESSAGE_BYTES] {
        let b = parse_ballot(&message_of(len), now)
            .unwrap_or_else(|r| panic!("{len} bytes: {:?} {}", r.reason, r.detail));
        assert_eq!(b.voter_id, "v");
    }
    let r = parse_ballot(&message_of(MAX_MESSAGE_BYTES + 1), now).unwrap_err();
    assert_eq!(r.reason, RejectReason::TooLarge);
}

#[test]
fn a_body_of_exactly_max_body_is_taken_one_byte_more_is_413() {
    use support::*;
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let max = 700usize;
    let server = Server::start(&store, dir.path(), &["--max-body", &max.to_string()]);
    let body = |voter: u64, len: usize| {
        let mut b = json!({"voter_id": voter_id(voter), "candidate_id": "c-savior"})
            .to_string()
            .into_bytes();
        b.resize(len, b' ');
        b
    };
    for (voter, len) in [(0, max - 1), (1, max)] {
        let r = server.cast(&body(voter, len), None);
        assert_eq!(r.status, 202, "{len} bytes: {}", r.body_text());
    }
    let r = server.cast(&body(2, max + 1), None);
    assert_eq!(r.status, 413, "{}", r.body_text());
    assert_eq!(r.json()["error"], "too_large", "{}", r.body_text());
    let progress = format!("/api/v1/elections/{ELECTION}/progress");
    // The snapshot may show the votes before the rejection's commit: wait for both.
    server.wait_until(
        |s| {
            let p = s.json(&progress);
            p["counted"] == 2 && p["rejected"] == 1
        },
        "two votes counted and one rejection",
    );
    let totals = server.json(&format!("/api/v1/elections/{ELECTION}/results/totals"));
    assert_eq!(totals["accepted"], 2);
    assert_eq!(totals["rejected"], 1);
}
