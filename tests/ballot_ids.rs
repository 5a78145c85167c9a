//! Needs: nothing.
//!
//! Every answer is true, and one ballot id names one ballot, over a real
//! `votestream serve` and `votestream process`: requests that share a
//! client-chosen ballot id each get their own answer; a reused id is refused
//! as `ballot_id_reused` and recorded; an Idempotency-Key is bound to its
//! request (another body: 422 `idempotency_key_reused`; a retry while the
//! first is in flight: 409), across a restart too.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;

use serde_json::json;
use support::*;

fn body(voter: &str, candidate: &str, ballot_id: Option<&str>) -> Vec<u8> {
    let mut b = json!({"voter_id": voter, "candidate_id": candidate});
    if let Some(id) = ballot_id {
        b["ballot_id"] = json!(id);
    }
    b.to_string().into_bytes()
}

fn db(store: &str) -> rusqlite::Connection {
    rusqlite::Connection::open(store.trim_start_matches("sqlite://")).unwrap()
}

fn votes_of(store: &str, voter: &str) -> i64 {
    db(store)
        .query_row(
            "SELECT COUNT(*) FROM votes WHERE voter_id = ?1",
            [voter],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn concurrent_requests_sharing_a_ballot_id_each_get_their_own_true_answer() {
    const PAIRS: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 2 * PAIRS);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    for i in 0..PAIRS {
        let r = server.cast(&body(&voter_id(i), "c-savior", None), None);
        assert_eq!(r.status, 202, "{}", r.body_text());
    }
    // Each pair: a voter who already voted and a new voter, one ballot id,
    // all released at once so that pairs share the processor's batches.
    let barrier = Barrier::new(2 * PAIRS as usize);
    let answers: Vec<(u64, Response)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2 * PAIRS)
            .map(|i| {
                let (server, barrier) = (&server, &barrier);
                s.spawn(move || {
                    let id = format!("shared-{}", i % PAIRS);
                    let b = body(&voter_id(i), "c-management", Some(&id));
                    barrier.wait();
                    (i, server.cast(&b, None))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut refused = 0;
    for (i, r) in &answers {
        let voter = voter_id(*i);
        if *i < PAIRS {
            assert_eq!(r.status, 409, "voter {i} had voted: {}", r.body_text());
            let error = r.json()["error"].as_str().unwrap().to_string();
            assert!(
                error == "already_voted" || error == "ballot_id_reused",
                "{error}"
            );
            assert_eq!(votes_of(&store, &voter), 1);
        } else {
            // The truth for a new voter: counted if and only if told 202.
            let counted = votes_of(&store, &voter);
            match r.status {
                202 => assert_eq!(counted, 1, "voter {i} answered 202 but not counted"),
                409 => {
                    assert_eq!(r.json()["error"], "ballot_id_reused", "{}", r.body_text());
                    assert_eq!(counted, 0, "voter {i} answered 409 but counted");
                }
                other => panic!("voter {i}: {other} {}", r.body_text()),
            }
        }
        refused += (r.status != 202) as i64;
    }
    // Every refusal was recorded, with its reason.
    server.wait_until(
        |s| s.json(&format!("/api/v1/elections/{ELECTION}/results"))["rejected"] == json!(refused),
        "every refusal recorded",
    );
}

#[test]
fn a_reused_ballot_id_is_refused_and_recorded_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let first = server.cast(&body("nobody-1", "c-savior", Some("u-1")), None);
    assert_eq!(first.status, 422, "{}", first.body_text());
    assert_eq!(first.json()["error"], "unknown_voter");
    // Another unknown voter with the same id: refused as a reuse, and
    // recorded beside the first (neither rejection lost).
    let second = server.cast(&body("nobody-2", "c-savior", Some("u-1")), None);
    assert_eq!(second.status, 409, "{}", second.body_text());
    assert_eq!(second.json()["error"], "ballot_id_reused");
    assert_eq!(second.json()["ballot_id"], "u-1");
    // A registered voter with the id: refused too, not counted.
    let third = server.cast(&body(&voter_id(3), "c-savior", Some("u-1")), None);
    assert_eq!(third.status, 409, "{}", third.body_text());
    assert_eq!(votes_of(&store, &voter_id(3)), 0);
    // The first request again: its first answer, marked as a replay.
    let again = server.cast(&body("nobody-1", "c-savior", Some("u-1")), None);
    assert_eq!(again.status, 422, "{}", again.body_text());
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    server.wait_until(
        |s| s.json(&format!("/api/v1/elections/{ELECTION}/results"))["rejected"] == 3,
        "the three refusals in the results",
    );
    let results = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    assert_eq!(results["rejected_by_reason"]["unknown_voter"], 1);
    assert_eq!(results["rejected_by_reason"]["ballot_id_reused"], 2);
    let rows: i64 = db(&store)
        .query_row(
            "SELECT COUNT(*) FROM rejected_ballots WHERE voter_id IN ('nobody-1', 'nobody-2')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 2);
    let (_, m) = server.get("/metrics");
    assert_eq!(
        metric(
            &m,
            "votestream_ballots_rejected_total{reason=\"ballot_id_reused\"}"
        ),
        2.0
    );
}

fn totals(server: &Server) -> serde_json::Value {
    server.json(&format!("/api/v1/elections/{ELECTION}/results/totals"))
}

fn votes_for(totals: &serde_json::Value, candidate: &str) -> i64 {
    totals["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["candidate_id"] == candidate)
        .and_then(|c| c["total_votes"].as_i64())
        .unwrap()
}

#[test]
fn an_idempotency_key_is_bound_to_its_request_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let mut server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let v4 = voter_id(4);
    let first = server.cast(&body(&v4, "c-savior", None), Some("k-1"));
    assert_eq!(first.status, 202, "{}", first.body_text());
    // The same key with another body: refused, never a replay of the first.
    for other in [
        body(&v4, "c-management", None),
        body(&voter_id(5), "c-savior", None),
    ] {
        let r = server.cast(&other, Some("k-1"));
        assert_eq!(r.status, 422, "{}", r.body_text());
        assert_eq!(r.json()["error"], "idempotency_key_reused");
        assert_eq!(r.header("idempotent-replayed"), None);
    }
    let replay = server.cast(&body(&v4, "c-savior", None), Some("k-1"));
    assert_eq!(replay.status, 202);
    assert_eq!(replay.json(), first.json());
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    // One key, one outcome: a first use refused stays refused, even with a
    // corrected body.
    let v6 = voter_id(6);
    let bad = server.cast(&body(&v6, "c-nobody", None), Some("k-2"));
    assert_eq!(bad.status, 422, "{}", bad.body_text());
    assert_eq!(bad.json()["error"], "unknown_candidate");
    let corrected = server.cast(&body(&v6, "c-savior", None), Some("k-2"));
    assert_eq!(corrected.status, 422, "{}", corrected.body_text());
    assert_eq!(corrected.json()["error"], "idempotency_key_reused");
    let bad_again = server.cast(&body(&v6, "c-nobody", None), Some("k-2"));
    assert_eq!(bad_again.json(), bad.json());
    assert_eq!(bad_again.header("idempotent-replayed"), Some("true"));

    server.wait_until(
        |s| s.json(&format!("/api/v1/elections/{ELECTION}/progress"))["counted"] == 1,
        "the one vote counted",
    );
    let t = totals(&server);
    assert_eq!(t["accepted"], 1, "{t}");
    assert_eq!(votes_for(&t, "c-savior"), 1);
    assert_eq!(votes_for(&t, "c-management"), 0);
    assert_eq!(votes_of(&store, &v6), 0);

    // The binding lives in the store: a restarted server keeps it.
    server.kill();
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let r = server.cast(&body(&v4, "c-management", None), Some("k-1"));
    assert_eq!(r.status, 422, "{}", r.body_text());
    assert_eq!(r.json()["error"], "idempotency_key_reused");
    let r = server.cast(&body(&v4, "c-savior", None), Some("k-1"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    assert_eq!(r.json(), first.json());
    let r = server.cast(&body(&v6, "c-savior", None), Some("k-2"));
    assert_eq!(r.json()["error"], "idempotency_key_reused");
    assert_eq!(votes_for(&totals(&server), "c-management"), 0);
}

/// Reads a whole response from a connection the server closes.
fn read_status(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

#[test]
fn a_retry_while_the_first_request_is_in_flight_gets_409() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let b = body(&voter_id(2), "c-savior", None);
    // The first request sends its headers and half its body, and waits.
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/v1/elections/{ELECTION}/ballots HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {API_TOKEN}\r\nIdempotency-Key: k-slow\r\nContent-Length: {}\r\n\r\n",
        b.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&b[..b.len() / 2]).unwrap();
    server.wait_until(
        |s| {
            metric(
                &s.get("/metrics").1,
                "votestream_http_idempotency_keys_in_flight",
            ) == 1.0
        },
        "the first request holding its key",
    );
    let retry = server.cast(&b, Some("k-slow"));
    assert_eq!(retry.status, 409, "{}", retry.body_text());
    assert_eq!(retry.json()["error"], "idempotency_key_in_flight");
    // Another key is not held up.
    let other = server.cast(&body(&voter_id(3), "c-savior", None), Some("k-other"));
    assert_eq!(other.status, 202, "{}", other.body_text());
    slow.write_all(&b[b.len() / 2..]).unwrap();
    let (status, text) = read_status(&mut slow);
    assert_eq!(status, 202, "{text}");
    let after = server.cast(&b, Some("k-slow"));
    assert_eq!(after.status, 202, "{}", after.body_text());
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
    assert_eq!(votes_of(&store, &voter_id(2)), 1);
}

#[test]
fn a_file_of_ballots_follows_the_same_id_rules() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let time = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let line = |id: &str, voter: serde_json::Value| {
        json!({"ballot_id": id, "election_id": ELECTION, "voter_id": voter,
               "candidate_id": "c-savior", "voting_time": time})
        .to_string()
    };
    let lines = [
        line("f-1", json!(voter_id(0))),
        line("f-1", json!(voter_id(1))), // another voter: refused
        line("f-2", json!(12345)),       // wrong type
        line("f-2", json!(voter_id(2))), // then valid under that id: refused
        line("f-1", json!(voter_id(0))), // the first again: a replay
    ];
    let path = dir.path().join("ballots.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let path = path.display().to_string();
    for _ in 0..2 {
        votestream_ok(&["process", "--store", &store, "--input", &path]);
        let c = db(&store);
        let votes: Vec<String> = c
            .prepare("SELECT voter_id FROM votes")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(votes, [voter_id(0)], "one ballot id, one vote");
        let reasons: Vec<String> = c
            .prepare("SELECT reason FROM rejected_ballots ORDER BY reason")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            reasons,
            ["ballot_id_reused", "ballot_id_reused", "wrong_type"]
        );
    }
}
