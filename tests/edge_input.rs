//! Needs: nothing.
//!
//! The edge's rules over HTTP, against a real `votestream serve`: a JSON
//! array is not a ballot, a huge election id in the path is neither echoed
//! nor stored whole, and admin text no store can keep is a 400 that says
//! which field, not a 500.

mod support;

use support::{request, store_with_voters, voter_id, Server, ADMIN_TOKEN, API_TOKEN, ELECTION};

fn post(server: &Server, path: &str, token: &str, body: &[u8]) -> support::Response {
    let auth = format!("Bearer {token}");
    request(
        &server.addr,
        "POST",
        path,
        &[("Authorization", auth.as_str())],
        body,
    )
}

fn ballots(election: &str) -> String {
    format!("/api/v1/elections/{election}/ballots")
}

#[test]
fn a_json_array_body_is_refused_not_read_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 5);
    let server = Server::start(&store, dir.path(), &[]);
    let body = format!("[\"{}\", \"c-savior\"]", voter_id(0));
    let r = post(&server, &ballots(ELECTION), API_TOKEN, body.as_bytes());
    assert_eq!(r.status, 422, "{}", r.body_text());
    assert_eq!(r.json()["reason"], "wrong_type");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("not an array"),
        "{}",
        r.body_text()
    );
    // Still recorded and counted, as every bad ballot is.
    server.wait_until(
        |s| s.json(&format!("/api/v1/elections/{ELECTION}/results"))["rejected"] == 1,
        "the refused ballot counted",
    );
    let r = post(
        &server,
        "/api/v1/admin/elections",
        ADMIN_TOKEN,
        br#"["e2", "Second"]"#,
    );
    assert_eq!(r.status, 400, "{}", r.body_text());
}

#[test]
fn a_huge_election_id_in_the_path_is_neither_echoed_nor_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 5);
    let server = Server::start(&store, dir.path(), &[]);
    let huge = "e".repeat(60_000);
    let body = format!(
        r#"{{"voter_id":"{}","candidate_id":"c-savior"}}"#,
        voter_id(0)
    );
    let r = post(&server, &ballots(&huge), API_TOKEN, body.as_bytes());
    assert_eq!(r.status, 422, "{}", r.body_text());
    assert_eq!(r.json()["reason"], "invalid_field");
    assert!(r.body.len() < 1024, "answer of {} bytes", r.body.len());
    let (status, answer) = server.get(&format!("/api/v1/elections/{huge}/results"));
    assert_eq!(status, 404);
    assert!(answer.len() < 1024, "404 of {} bytes", answer.len());
    // Malformed body, same path: the raw body kept, not the path.
    let r = post(&server, &ballots(&huge), API_TOKEN, b"{");
    assert_eq!(
        r.status,
        422,
        "the path is checked first: {}",
        r.body_text()
    );
    server.wait_until(
        |s| {
            let m = s.get("/metrics").1;
            support::metric(
                &m,
                "votestream_ballots_rejected_total{reason=\"invalid_field\"}",
            ) == 2.0
        },
        "both recorded",
    );
    let db = rusqlite::Connection::open_with_flags(
        dir.path().join("v.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let widest: i64 = db
        .query_row(
            "SELECT MAX(LENGTH(ballot_id) + COALESCE(LENGTH(election_id), 0) + LENGTH(detail) + LENGTH(raw))
             FROM rejected_ballots",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        widest <= 4096 + 1024 + 2 * 128,
        "a rejection of {widest} characters"
    );
}

#[test]
fn admin_text_no_store_can_keep_is_a_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 5);
    let server = Server::start(&store, dir.path(), &[]);
    let cases = [
        (
            r#"{"election_id":"e2","name":"Nul\u0000Name"}"#.to_string(),
            "name contains U+0000",
        ),
        (
            r#"{"election_id":"e\u00002"}"#.to_string(),
            "election_id contains U+0000",
        ),
        (
            format!(r#"{{"election_id":"{}"}}"#, "x".repeat(129)),
            "election_id is 129 bytes",
        ),
        (
            r#"{"election_id":"e2","candidates":[{"candidate_name":"A","party_affiliation":"P\u0000"}]}"#
                .to_string(),
            "candidates[0].party_affiliation contains U+0000",
        ),
        (
            // Its candidates' derived ids (`<election>-c1`) would be too long
            // for any ballot to name.
            format!(
                r#"{{"election_id":"{}","candidates":[{{"candidate_name":"A","party_affiliation":"P"}}]}}"#,
                "x".repeat(126)
            ),
            "candidates[0].candidate_id is 129 bytes",
        ),
    ];
    for (body, says) in cases {
        let r = post(
            &server,
            "/api/v1/admin/elections",
            ADMIN_TOKEN,
            body.as_bytes(),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.body_text());
        assert!(r.body_text().contains(says), "{body}: {}", r.body_text());
    }
    // The server is fine, and a clean request still works.
    let r = post(
        &server,
        "/api/v1/admin/elections",
        ADMIN_TOKEN,
        br#"{"election_id":"e2","name":"Second"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
}
