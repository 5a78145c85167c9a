//! Needs: Kafka, PostgreSQL.
//!
//! The HTTP API in the Kafka shape: a ballot is answered 202 once
//! the broker has it, then counted by the processor; what the server can
//! tell at once is refused at once and still recorded; a retry with the
//! same Idempotency-Key is not counted twice.

mod support;

use std::time::Duration;

use support::{voter_id, KafkaTest, Server};

#[test]
fn ballots_cast_over_http_go_through_kafka_and_are_counted_once() {
    let t = KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&t.db.url, dir.path(), &["--bus", &t.bus]);
    let ballot = |voter: &str, candidate: &str| {
        serde_json::json!({"voter_id": voter, "candidate_id": candidate}).to_string()
    };

    let first = server.cast(ballot(&voter_id(0), "c-savior").as_bytes(), Some("k-1"));
    assert_eq!(first.status, 202, "{}", first.body_text());
    assert_eq!(first.json()["status"], "queued");
    let again = server.cast(ballot(&voter_id(0), "c-savior").as_bytes(), Some("k-1"));
    assert_eq!(again.status, 202, "{}", again.body_text());
    assert_eq!(again.json()["ballot_id"], first.json()["ballot_id"]);

    let unknown = server.cast(ballot("nobody", "c-savior").as_bytes(), Some("k-2"));
    assert_eq!(unknown.status, 422, "{}", unknown.body_text());
    assert_eq!(unknown.json()["reason"], "unknown_voter");
    let second = server.cast(ballot(&voter_id(0), "c-management").as_bytes(), Some("k-3"));
    assert_eq!(
        second.status,
        202,
        "decided later by a processor: {}",
        second.body_text()
    );
    let other = server.cast(ballot(&voter_id(1), "c-management").as_bytes(), None);
    assert_eq!(other.status, 202, "{}", other.body_text());

    t.wait_for("the ballots counted", Duration::from_secs(90), || {
        let r = server.json("/api/v1/elections/general-2026/results");
        r["counted"] == 2 && r["rejected"] == 2
    });
    let r = server.json("/api/v1/elections/general-2026/results");
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(r["rejected_by_reason"]["unknown_voter"], 1, "{r}");
    assert_eq!(r["rejected_by_reason"]["already_voted"], 1, "{r}");
    // Who sent each ballot travelled with it in the `ballots` message.
    let from_http = "client LIKE 'http-%@127.0.0.1'";
    assert_eq!(
        t.scalar(&format!("SELECT COUNT(*) FROM votes WHERE {from_http}")),
        2
    );
    assert_eq!(
        t.scalar(&format!(
            "SELECT COUNT(*) FROM rejected_ballots WHERE {from_http}"
        )),
        2
    );
    // Stopped cleanly (SIGTERM), so no transaction is left open.
    // SAFETY: signals our own child, by its pid.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().expect("serve exits");
    assert!(status.success(), "serve exited with {status}");
    server.kill();
    t.assert_exact();
}

#[test]
fn a_reused_ballot_id_is_refused_when_the_processor_decides() {
    let t = KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&t.db.url, dir.path(), &["--bus", &t.bus]);
    let body = |voter: &str, candidate: &str, id: Option<&str>| {
        let mut b = serde_json::json!({"voter_id": voter, "candidate_id": candidate});
        if let Some(id) = id {
            b["ballot_id"] = serde_json::json!(id);
        }
        b.to_string()
    };
    // Queued at once: whether each counts is the processor's to decide.
    let casts = [
        (body(&voter_id(0), "c-savior", Some("kf-1")), None),
        (body(&voter_id(1), "c-savior", Some("kf-1")), None),
        (body(&voter_id(2), "c-savior", None), Some("k-9")),
        (body(&voter_id(2), "c-management", None), Some("k-9")),
    ];
    for (b, key) in &casts {
        let r = server.cast(b.as_bytes(), *key);
        assert_eq!(r.status, 202, "{}", r.body_text());
        assert_eq!(r.json()["status"], "queued");
    }
    t.wait_for("the ballots decided", Duration::from_secs(90), || {
        let r = server.json("/api/v1/elections/general-2026/results");
        r["counted"] == 2 && r["rejected"] == 2
    });
    let r = server.json("/api/v1/elections/general-2026/results");
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(r["rejected_by_reason"]["ballot_id_reused"], 2, "{r}");
    // The second body under the key was refused, not counted.
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM votes WHERE candidate_id = 'c-management'"),
        0
    );
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM rejected_ballots WHERE ballot_id LIKE 'kf-1~reused-%'"),
        1
    );
    // SAFETY: signals our own child, by its pid.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().expect("serve exits");
    assert!(status.success(), "serve exited with {status}");
    server.kill();
    t.assert_exact();
}
