//! A ballot answered 202 is durable: SIGKILL the server right after the
//! answer, restart it, and the ballot is counted exactly once.

mod support;

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

    let out = votestream(&["audit", "--store", &store]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("audit passed: 20 votes"), "{text}");
}
