//! Needs: nothing.
//!
//! A ballot answered 202 is durable: SIGKILL the server right after the
//! answer, or while many requests wait for their commit, restart it, and the
//! ballot is counted exactly once.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[test]
fn a_202_ballot_survives_sigkill_and_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 200);
    let mut server = Server::start(&store, dir.path(), &[]);
    let ids: Vec<String> = (0..20)
        .map(|i| {
            let body =
                json!({"voter_id": voter_id(i), "candidate_id": "c-tech-republic"}).to_string();
            let r = server.cast(body.as_bytes(), Some(&format!("k{i}")));
            assert_eq!(r.status, 202, "{}", r.body_text());
            r.json()["ballot_id"].as_str().unwrap().to_string()
        })
        .collect();
    // No drain, no graceful stop: the process dies right after the answer.
    server.kill();

    let server = Server::start(&store, dir.path(), &[]);
    let progress = format!("/api/v1/elections/{ELECTION}/progress");
    server.wait_until(
        |s| s.json(&progress)["counted"] == 20,
        "20 votes counted after restart",
    );
    let totals = server.json(&format!("/api/v1/elections/{ELECTION}/results/totals"));
    assert_eq!(totals["accepted"], 20);
    assert_eq!(totals["received"], 20);
    // Retrying after the crash is safe: same answer, no second count.
    let body = json!({"voter_id": voter_id(0), "candidate_id": "c-tech-republic"}).to_string();
    let r = server.cast(body.as_bytes(), Some("k0"));
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["ballot_id"], ids[0].as_str());
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    drop(server);

    let out = votestream_ok(&["audit", "--store", &store]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("audit passed: 20 votes"), "{text}");
}

/// How one request ended.
enum Ending {
    Answered(u16, serde_json::Value),
    /// Written, but the connection died before an answer: in flight at the kill.
    InFlight,
    /// The server was already gone.
    Refused,
}

/// One ballot over a fresh connection, without panicking when the server dies.
fn cast_once(addr: &str, voter: u64) -> Ending {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return Ending::Refused;
    };
    let body = json!({"voter_id": voter_id(voter), "candidate_id": "c-savior"}).to_string();
    let req = format!(
        "POST /api/v1/elections/{ELECTION}/ballots HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {API_TOKEN}\r\nIdempotency-Key: k{voter}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return Ending::InFlight;
    }
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() || raw.is_empty() {
        return Ending::InFlight;
    }
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Ending::InFlight;
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    match serde_json::from_str(body) {
        Ok(v) => Ending::Answered(status, v),
        Err(_) => Ending::InFlight, // cut off mid-body
    }
}

/// SIGKILL while many requests wait for their commit: every ballot answered
/// 202 is counted after a restart, and a retry of each unanswered one (same
/// Idempotency-Key) either finds it committed (replayed) or counts it now,
/// once. The kill moment (after how many answers) comes from a printed,
/// replayable seed, and the test checks that requests were in flight.
#[test]
fn sigkill_with_requests_in_flight_loses_no_answered_ballot() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::Mutex;
    const CLIENTS: u64 = 16;
    const VOTERS: u64 = 6000;
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), VOTERS);
    let mut server = Server::start(&store, dir.path(), &[]);
    let kill_after = support::KillMoments::new("in flight").between(300, 2000);
    let addr = server.addr.clone();
    let answered = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let endings: Mutex<Vec<(u64, Ending)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (addr, answered, stop, endings) = (&addr, &answered, &stop, &endings);
            s.spawn(move || {
                for voter in (c..VOTERS).step_by(CLIENTS as usize) {
                    if stop.load(SeqCst) {
                        break;
                    }
                    let e = cast_once(addr, voter);
                    let done = !matches!(e, Ending::Answered(..));
                    if !done {
                        answered.fetch_add(1, SeqCst);
                    }
                    endings.lock().unwrap().push((voter, e));
                    if done {
                        break; // the server is gone
                    }
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while answered.load(SeqCst) < kill_after {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} answers in 120 s",
                answered.load(SeqCst)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        server.kill();
        stop.store(true, SeqCst);
    });
    let endings = endings.into_inner().unwrap();
    let mut accepted = Vec::new();
    let mut unanswered = Vec::new();
    for (voter, e) in &endings {
        match e {
            Ending::Answered(202, body) => {
                assert_eq!(body["status"], "accepted", "{body}");
                accepted.push(body["ballot_id"].as_str().unwrap().to_string());
            }
            Ending::Answered(status, body) => panic!("voter {voter}: {status} {body}"),
            Ending::InFlight => unanswered.push(*voter),
            Ending::Refused => {}
        }
    }
    eprintln!(
        "killed after {} answers (moment {kill_after}) with {} requests in flight",
        accepted.len(),
        unanswered.len()
    );
    assert!(accepted.len() as u64 >= kill_after);
    assert!(
        !unanswered.is_empty(),
        "the kill landed with no request in flight"
    );

    // What the store holds after the kill, before anything else runs.
    let db_path = dir.path().join("v.db");
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let stored: std::collections::HashSet<String> = db
        .prepare("SELECT ballot_id FROM votes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for id in &accepted {
        assert!(
            stored.contains(id),
            "ballot {id} was answered 202 but is not stored"
        );
    }
    let committed_unanswered = stored.len() - accepted.len();

    let server = Server::start(&store, dir.path(), &[]);
    let mut replayed = 0;
    for voter in &unanswered {
        let body = json!({"voter_id": voter_id(*voter), "candidate_id": "c-savior"}).to_string();
        let r = server.cast(body.as_bytes(), Some(&format!("k{voter}")));
        assert_eq!(r.status, 202, "{}", r.body_text());
        replayed += usize::from(r.header("idempotent-replayed") == Some("true"));
    }
    assert_eq!(
        replayed, committed_unanswered,
        "the retries find exactly the ballots committed but not answered"
    );
    let total = (accepted.len() + unanswered.len()) as i64;
    let progress = format!("/api/v1/elections/{ELECTION}/progress");
    server.wait_until(
        |s| s.json(&progress)["counted"] == total,
        "every ballot counted after the restart",
    );
    let totals = server.json(&format!("/api/v1/elections/{ELECTION}/results/totals"));
    assert_eq!(totals["accepted"], total);
    assert_eq!(totals["received"], total);
    drop(server);
    let out = votestream_ok(&["audit", "--store", &store]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("audit passed: {total} votes")),
        "{text}"
    );
}
