//! Needs: Kafka, PostgreSQL.
//!
//! A hostile ballot costs nothing but itself. Ballots whose text a store
//! cannot keep (NUL in a field, in a malformed body, in the path's election
//! id) are rejected with a reason and recorded; every other ballot sent
//! meanwhile is answered and counted. Against a real `votestream serve`, in
//! the embedded shape (SQLite) and the Kafka shape (Kafka + PostgreSQL).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::{metric, store_with_voters, voter_id, wait, KafkaTest, Server, API_TOKEN, ELECTION};

/// Far longer than a healthy server needs for one ballot, far shorter than
/// the ~160 s a poisoned batch used to be retried for.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// POSTs `body` to `path` with the API token; the status, or why none came.
fn post(addr: &str, path: &str, body: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(ANSWER_WITHIN)).ok();
    s.set_write_timeout(Some(ANSWER_WITHIN)).ok();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("no answer within {ANSWER_WITHIN:?}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

fn ballots_path(election: &str) -> String {
    format!("/api/v1/elections/{election}/ballots")
}

fn good(voter: u64) -> Vec<u8> {
    serde_json::json!({"voter_id": voter_id(voter), "candidate_id": "c-savior"})
        .to_string()
        .into_bytes()
}

/// The poisons, by kind: (path, body). Each one is new (its own voter or
/// bytes), so none is a replay of another.
fn poison(n: u64) -> (String, Vec<u8>) {
    let path = ballots_path(ELECTION);
    match n % 4 {
        // A NUL byte in a body that is not JSON.
        0 => (path, format!("{{\"voter_id\": \"p{n}\0").into_bytes()),
        // A NUL in a field of a body refused for another reason.
        1 => (
            path,
            format!(
                r#"{{"voter_id":"p{n}\u0000","candidate_id":"c-savior","voting_time":"soon"}}"#
            )
            .into_bytes(),
        ),
        // A NUL in the path's election id, with a malformed body.
        2 => (ballots_path(&format!("e%00{n}")), b"{".to_vec()),
        // A NUL in the path's election id, with a well-formed body.
        _ => (ballots_path(&format!("e%00{n}")), good(1_000_000 + n)),
    }
}

#[test]
fn a_nul_anywhere_in_a_ballot_is_rejected_and_the_next_ballot_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 50);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    for n in 0..4 {
        let (path, body) = poison(n);
        let (status, answer) = post(&server.addr, &path, &body).expect("poison answered");
        assert!(
            (400..500).contains(&status),
            "poison {n} answered {status}: {answer}"
        );
        // The very next ballot is not held up by the one before.
        let (status, answer) = post(&server.addr, &ballots_path(ELECTION), &good(n))
            .unwrap_or_else(|e| panic!("good ballot after poison {n}: {e}"));
        assert_eq!(status, 202, "good ballot after poison {n}: {answer}");
    }
    server.wait_until(
        |s| {
            let r = s.json(&format!("/api/v1/elections/{ELECTION}/results"));
            r["accepted"] == 4 && r["received"] == 4 + 2
        },
        "the good ballots counted, and the poisons that name the election",
    );
    let metrics = server.get("/metrics").1;
    assert_eq!(
        metric(
            &metrics,
            "votestream_ballots_rejected_total{reason=\"invalid_field\"}"
        ) + metric(
            &metrics,
            "votestream_ballots_rejected_total{reason=\"malformed_json\"}"
        ),
        4.0,
        "{metrics}"
    );
}

/// One poisoned ballot a second for 60 s beside 1,000 good ballots a second,
/// against `server`: every good ballot is answered 202 and counted, and
/// every poison is recorded with the reason its answer gave.
fn poison_under_load(server: &Server) {
    const SECONDS: u64 = 60;
    const PER_SECOND: u64 = 1000;
    const SENDERS: u64 = 8;
    let addr = server.addr.as_str();
    let started = Instant::now();
    let answered = AtomicU64::new(0);
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for t in 0..SENDERS {
            let (answered, failures) = (&answered, &failures);
            s.spawn(move || {
                // Each sender paces its share of every second.
                let share = PER_SECOND / SENDERS;
                for i in 0..SECONDS * share {
                    let due = started + Duration::from_secs_f64(i as f64 / share as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let voter = t + i * SENDERS;
                    match post(addr, &ballots_path(ELECTION), &good(voter)) {
                        Ok((202, _)) => {
                            answered.fetch_add(1, Relaxed);
                        }
                        Ok((status, body)) => failures
                            .lock()
                            .unwrap()
                            .push(format!("voter {voter}: {status} {body}")),
                        Err(e) => failures.lock().unwrap().push(format!("voter {voter}: {e}")),
                    }
                }
            });
        }
        s.spawn(|| {
            for n in 0..SECONDS {
                let due = started + Duration::from_secs(n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let (path, body) = poison(n);
                match post(addr, &path, &body) {
                    Ok((status, _)) if (400..500).contains(&status) => {}
                    other => failures
                        .lock()
                        .unwrap()
                        .push(format!("poison {n}: {other:?}")),
                }
            }
        });
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failures.len(),
        SECONDS * PER_SECOND + SECONDS,
        &failures[..failures.len().min(5)]
    );
    let sent = answered.load(Relaxed) as i64;
    assert_eq!(sent, (SECONDS * PER_SECOND) as i64);
    let results = format!("/api/v1/elections/{ELECTION}/results");
    let accepted = || server.json(&results)["accepted"].as_i64().unwrap_or(-1);
    wait::until_every(
        Duration::from_secs(120),
        Duration::from_millis(250),
        "every ballot answered 202 to be counted",
        || accepted() >= sent,
        || format!("{} of {sent} answered 202 were counted", accepted()),
    );
    let r = server.json(&results);
    assert_eq!(r["accepted"], 60_000, "{r}");
    // Every poison was recorded as a rejection, with the reason it was
    // answered with (on Kafka, refused ballots are still put on `ballots`).
    let by = |metrics: &str, why: &str| {
        metric(
            metrics,
            &format!("votestream_ballots_rejected_total{{reason=\"{why}\"}}"),
        )
    };
    let recorded = |m: &String| by(m, "invalid_field") + by(m, "malformed_json");
    let metrics = wait::settle(
        Duration::from_secs(60),
        Duration::from_millis(250),
        || server.get("/metrics").1,
        |m| recorded(m) >= 60.0,
    );
    let (invalid, malformed) = (
        by(&metrics, "invalid_field"),
        by(&metrics, "malformed_json"),
    );
    assert!(
        invalid + malformed >= 60.0,
        "only {invalid} + {malformed} of 60 poisons recorded:\n{metrics}"
    );
    assert_eq!((invalid, malformed), (45.0, 15.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "votestream_http_ballots_total{status=\"202\"}"),
        60_000.0
    );
}

#[test]
fn poison_beside_a_thousand_ballots_a_second_costs_nothing_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 60_100);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    poison_under_load(&server);
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn poison_beside_a_thousand_ballots_a_second_costs_nothing_on_kafka() {
    let t = KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "60100"]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.db.url,
        dir.path(),
        &["--bus", &t.bus, "--rate-limit", "0"],
    );
    poison_under_load(&server);
    t.assert_exact();
}
