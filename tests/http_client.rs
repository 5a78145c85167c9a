//! Needs: PostgreSQL.
//!
//! Who sent a ballot over HTTP is the server's to say: a ballot cast with
//! the API token is stored, in either store, with the client the server
//! named from the token and the connection, whatever the body claims;
//! the ballots it refuses, at the edge or in the processor, too.

mod support;

use serde_json::json;
use support::*;
use votestream::store::{self, Store};

fn ballot_with_forged_client(voter: u64) -> Vec<u8> {
    json!({"voter_id": voter_id(voter), "candidate_id": "c-savior", "client": "forged-kiosk"})
        .to_string()
        .into_bytes()
}

/// Casts an accepted ballot, one refused by the processor and one refused
/// at the edge, each claiming another client; checks what the store keeps.
fn the_server_names_the_client(store_url: &str, dir: &std::path::Path) {
    votestream_ok(&["generate", "--store", store_url, "--voters", "20"]);
    let server = Server::start(store_url, dir, &["--rate-limit", "0"]);
    let accepted = server.cast(&ballot_with_forged_client(0), None);
    assert_eq!(accepted.status, 202, "{}", accepted.body_text());
    let again = server.cast(&ballot_with_forged_client(0), None);
    assert_eq!(again.status, 409, "{}", again.body_text());
    let malformed = server.cast(br#"{"client": "forged-kiosk", "voter_id": "#, None);
    assert_eq!(malformed.status, 400, "{}", malformed.body_text());
    server.wait_until(
        |s| s.json(&format!("/api/v1/elections/{ELECTION}/results"))["rejected"] == 2,
        "both refusals recorded",
    );

    let mut st: Box<dyn Store> = store::open(store_url).unwrap();
    let votes = st.votes_after(0, 10).unwrap();
    assert_eq!(votes.len(), 1);
    let client = votes[0]
        .client
        .clone()
        .expect("an HTTP vote names its client");
    assert!(
        client.starts_with("http-") && client.ends_with("@127.0.0.1"),
        "{client}"
    );
    assert!(
        !client.contains(API_TOKEN),
        "the token itself is never stored"
    );
    let rejections = st.rejections_after(0, 10).unwrap();
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    for (_, r) in &rejections {
        assert_eq!(r.client.as_ref(), Some(&client), "{r:?}");
    }
}

#[test]
fn an_http_ballot_is_stored_with_the_servers_client_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    the_server_names_the_client(&url, dir.path());
}

#[test]
fn an_http_ballot_is_stored_with_the_servers_client_in_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = TempDb::new();
    the_server_names_the_client(&db.url, dir.path());
}
