//! Needs: nothing.
//!
//! The HTTP API over a real `votestream serve`: every class of bad input
//! gets its status and error body and is counted; Idempotency-Key
//! replays; admin and read endpoints; the OpenAPI document.

mod support;

use serde_json::json;
use support::*;

fn ballot(voter: u64, candidate: &str) -> Vec<u8> {
    json!({"voter_id": voter_id(voter), "candidate_id": candidate})
        .to_string()
        .into_bytes()
}

#[test]
fn each_class_of_bad_input_has_its_status_body_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 50);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);

    let first = server.cast(&ballot(0, "c-savior"), None);
    assert_eq!(first.status, 202, "{}", first.body_text());
    assert_eq!(first.json()["status"], "accepted");

    let voter = voter_id(1);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "malformed_json"),
        (vec![b'{', 0xff, 0xfe, b'}'], 400, "invalid_utf8"),
        (json!({"voter_id": 7, "candidate_id": "c-savior"}).to_string().into_bytes(), 422, "wrong_type"),
        (json!({"candidate_id": "c-savior"}).to_string().into_bytes(), 422, "missing_field"),
        (json!({"voter_id": voter, "candidate_id": "c-savior", "voting_time": "yesterday"}).to_string().into_bytes(), 422, "invalid_field"),
        (json!({"voter_id": "nobody", "candidate_id": "c-savior"}).to_string().into_bytes(), 422, "unknown_voter"),
        (json!({"voter_id": voter, "candidate_id": "<script>alert(1)</script>"}).to_string().into_bytes(), 422, "unknown_candidate"),
        (ballot(0, "c-management"), 409, "already_voted"),
        (json!({"voter_id": voter, "candidate_id": "c-savior", "voting_time": "2100-01-01 00:00:00"}).to_string().into_bytes(), 422, "cast_in_future"),
        (json!({"voter_id": voter, "candidate_id": "c-savior", "voting_time": "2000-01-01T00:00:00Z"}).to_string().into_bytes(), 422, "cast_before_open"),
        (vec![b' '; 17 * 1024], 413, "too_large"),
    ];
    for (body, status, reason) in &cases {
        let r = server.cast(body, None);
        assert_eq!(r.status, *status, "{reason}: {}", r.body_text());
        let b = r.json();
        assert_eq!(b["status"], "rejected", "{reason}");
        assert_eq!(b["error"], *reason);
        assert!(b["ballot_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(b["message"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // Unknown election: 404, recorded under the election it named.
    let r = request(
        &server.addr,
        "POST",
        "/api/v1/elections/no-such-election/ballots",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        &ballot(2, "c-savior"),
    );
    assert_eq!(r.status, 404, "{}", r.body_text());
    assert_eq!(r.json()["error"], "unknown_election");

    // Tokens: none → 401, wrong → 403; neither becomes a ballot.
    let path = format!("/api/v1/elections/{ELECTION}/ballots");
    let r = request(&server.addr, "POST", &path, &[], &ballot(3, "c-savior"));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "missing_token");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = request(
        &server.addr,
        "POST",
        &path,
        &[("Authorization", "Bearer nope")],
        &ballot(3, "c-savior"),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "wrong_token");

    // Every rejection was recorded and counted in the results...
    server.wait_until(
        |s| s.json(&format!("/api/v1/elections/{ELECTION}/results"))["rejected"] == cases.len(),
        "rejections in the results",
    );
    let results = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    assert_eq!(results["accepted"], 1);
    for (_, _, reason) in &cases {
        assert_eq!(results["rejected_by_reason"][*reason], 1, "{reason}");
    }
    // ... and in /metrics.
    let (_, m) = server.get("/metrics");
    for (_, _, reason) in &cases {
        let line = format!("votestream_ballots_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &line), 1.0, "{line}");
    }
    assert_eq!(
        metric(
            &m,
            "votestream_ballots_rejected_total{reason=\"unknown_election\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "votestream_http_refused_total{code=\"missing_token\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "votestream_http_refused_total{code=\"wrong_token\"}"),
        1.0
    );
    assert_eq!(metric(&m, "votestream_ballots_accepted_total"), 1.0);
    for name in [
        "votestream_processor_batch_commit_seconds_bucket",
        "votestream_aggregator_save_seconds_bucket",
        "votestream_lag_votes",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
}

#[test]
fn over_the_rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(
        &store,
        dir.path(),
        &["--rate-limit", "0.01", "--rate-burst", "2"],
    );
    assert_eq!(server.cast(&ballot(0, "c-savior"), None).status, 202);
    assert_eq!(server.cast(&ballot(1, "c-savior"), None).status, 202);
    let r = server.cast(&ballot(2, "c-savior"), None);
    assert_eq!(r.status, 429, "{}", r.body_text());
    assert_eq!(r.json()["error"], "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let (_, m) = server.get("/metrics");
    assert_eq!(
        metric(&m, "votestream_http_refused_total{code=\"rate_limited\"}"),
        1.0
    );
    // Reads are not limited.
    assert_eq!(
        server
            .get(&format!("/api/v1/elections/{ELECTION}/progress"))
            .0,
        200
    );
}

#[test]
fn an_idempotency_key_replay_gets_the_same_answer_and_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(&store, dir.path(), &[]);
    let a = server.cast(&ballot(4, "c-savior"), Some("key-1"));
    let b = server.cast(&ballot(4, "c-savior"), Some("key-1"));
    assert_eq!((a.status, b.status), (202, 202));
    assert_eq!(a.json(), b.json());
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    // A rejected ballot replays as the same rejection.
    let c = server.cast(&ballot(4, "c-management"), Some("key-2"));
    let d = server.cast(&ballot(4, "c-management"), Some("key-2"));
    assert_eq!((c.status, d.status), (409, 409));
    assert_eq!(c.json(), d.json());
    // The snapshot may show the vote before the rejection's commit: wait for both.
    server.wait_until(
        |s| {
            let p = s.json(&format!("/api/v1/elections/{ELECTION}/progress"));
            p["counted"] == 1 && p["rejected"] == 1
        },
        "the vote counted and the rejection recorded",
    );
    let r = server.json(&format!("/api/v1/elections/{ELECTION}/results/totals"));
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["rejected"], 1);
    let savior = r["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["candidate_id"] == "c-savior")
        .unwrap()
        .clone();
    assert_eq!(savior["total_votes"], 1);
    let (_, m) = server.get("/metrics");
    assert_eq!(metric(&m, "votestream_ballots_replayed_total"), 2.0);
}

#[test]
fn admin_creates_an_election_that_takes_ballots_at_once_and_names_stay_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let server = Server::start(&store, dir.path(), &[]);
    let hostile = "<img src=x onerror=alert(1)> \"Bobby'); DROP TABLE votes;--";
    let body = json!({
        "election_id": "city-2027",
        "name": "City 2027",
        "opens_at": "2020-01-01 00:00:00",
        "candidates": [
            {"candidate_id": "c-a", "candidate_name": hostile, "party_affiliation": "Management Party"},
            {"candidate_id": "c-b", "candidate_name": "Ada", "party_affiliation": "Savior Party"}
        ]
    })
    .to_string();
    let path = "/api/v1/admin/elections";
    assert_eq!(
        request(&server.addr, "POST", path, &[], body.as_bytes()).status,
        401
    );
    let api = format!("Bearer {API_TOKEN}");
    assert_eq!(
        request(
            &server.addr,
            "POST",
            path,
            &[("Authorization", &api)],
            body.as_bytes()
        )
        .status,
        403
    );
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = request(
        &server.addr,
        "POST",
        path,
        &[("Authorization", &admin)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.body_text());

    let r = request(
        &server.addr,
        "POST",
        "/api/v1/elections/city-2027/ballots",
        &[("Authorization", &api)],
        json!({"voter_id": voter_id(0), "candidate_id": "c-a"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.body_text());
    server.wait_until(
        |s| s.get("/api/v1/elections/city-2027/candidates").0 == 200,
        "the new election in the snapshot",
    );
    let cands = server.json("/api/v1/elections/city-2027/candidates");
    assert_eq!(cands[0]["candidate_name"], hostile);

    let r = request(
        &server.addr,
        "POST",
        "/api/v1/admin/voters",
        &[("Authorization", &admin)],
        br#"{"count": 5}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["registered_voters"], 15);
    // The new voters can vote straight away.
    let r = server.cast(&ballot(12, "c-savior"), None);
    assert_eq!(r.status, 202, "{}", r.body_text());
}

#[test]
fn read_endpoints_paginate_and_describe_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("r.db");
    let store = format!("sqlite://{}", store.display());
    votestream_ok(&[
        "run",
        "--store",
        &store,
        "--voters",
        "3000",
        "--rate",
        "max",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ]);
    let server = Server::start(&store, dir.path(), &[]);
    let all = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    let n = all["states"].as_array().unwrap().len();
    assert!(n > 10, "{n} states");
    let per = 7;
    let first = server.json(&format!(
        "/api/v1/elections/{ELECTION}/results/states?per_page={per}&sort=-count"
    ));
    let pages = first["pages"].as_u64().unwrap() as usize;
    assert_eq!(pages, n.div_ceil(per));
    let mut seen = Vec::new();
    for p in 1..=pages {
        let page = server.json(&format!(
            "/api/v1/elections/{ELECTION}/results/states?per_page={per}&sort=-count&page={p}"
        ));
        for item in page["items"].as_array().unwrap() {
            seen.push((
                item["count"].as_i64().unwrap(),
                item["state"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert_eq!(seen.len(), n);
    assert!(
        seen.windows(2).all(|w| w[0].0 >= w[1].0),
        "sorted by count, descending"
    );
    let (status, body) = server.get(&format!(
        "/api/v1/elections/{ELECTION}/results/states?sort=bogus"
    ));
    assert_eq!(status, 400, "{body}");
    answers_equal_the_tables(&server, &dir.path().join("r.db"));
    assert_eq!(server.get("/api/v1/elections/nope/results").0, 404);
    assert_eq!(server.get("/healthz").0, 200);

    // The OpenAPI document lists every route the router has.
    let doc = server.json("/api/v1/openapi.json");
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let paths = doc["paths"].as_object().unwrap();
    let router = include_str!("../src/serve/mod.rs");
    let mut routes = 0;
    for rest in router.split(".route(").skip(1) {
        let route = rest.split(',').next().unwrap().trim();
        let route = route
            .trim_start_matches('&')
            .trim_start_matches("format!(")
            .trim_end_matches(')')
            .trim_matches('"')
            .replace("{election}", "/api/v1/elections/{id}");
        if route.starts_with("/api") || route.starts_with("/metrics") || route.ends_with("z") {
            routes += 1;
            assert!(paths.contains_key(&route), "{route} is not in openapi.json");
        }
    }
    assert!(routes >= 16, "found {routes} routes");
}

/// Totals, demographics and the timeline as the API serves them equal what
/// the store holds: totals and demographics a recount of the votes table,
/// the timeline the results table of minute windows (late votes are in no
/// window: the windows and `late_votes` add up to the votes).
fn answers_equal_the_tables(server: &Server, db: &std::path::Path) {
    use std::collections::BTreeMap;
    use votestream::model::{AgeBand, Gender};
    let db = rusqlite::Connection::open(db).unwrap();
    let rows = |sql: &str| -> Vec<(String, i64)> {
        let mut stmt = db.prepare(sql).unwrap();
        stmt.query_map([ELECTION], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let count = |sql: &str| -> i64 { db.query_row(sql, [ELECTION], |r| r.get(0)).unwrap() };
    let api = |p: &str| server.json(&format!("/api/v1/elections/{ELECTION}/results/{p}"));

    let totals = api("totals");
    let votes = count("SELECT COUNT(*) FROM votes WHERE election_id = ?1");
    let rejected = count("SELECT COUNT(*) FROM rejected_ballots WHERE election_id = ?1");
    assert!(votes > 0);
    assert_eq!(totals["accepted"], votes);
    assert_eq!(totals["counted"], votes);
    assert_eq!(totals["rejected"], rejected);
    assert_eq!(totals["received"], votes + rejected);
    let by_candidate: BTreeMap<String, i64> = rows(
        "SELECT candidate_id, COUNT(*) FROM votes WHERE election_id = ?1 GROUP BY candidate_id",
    )
    .into_iter()
    .collect();
    let served: BTreeMap<String, i64> = totals["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["candidate_id"].as_str().unwrap().to_string(),
                c["total_votes"].as_i64().unwrap(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(served, by_candidate, "totals");
    let reasons: BTreeMap<String, i64> = rows(
        "SELECT reason, COUNT(*) FROM rejected_ballots WHERE election_id = ?1 GROUP BY reason",
    )
    .into_iter()
    .collect();
    let served: BTreeMap<String, i64> =
        serde_json::from_value(totals["rejected_by_reason"].clone()).unwrap();
    assert_eq!(served, reasons, "rejections by reason");

    // Demographics: a recount over the registry's ages and genders.
    let mut want: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut stmt = db
        .prepare(
            "SELECT r.registered_age, r.gender, v.candidate_id FROM votes v
             JOIN voters r ON r.voter_no = v.voter_no WHERE v.election_id = ?1",
        )
        .unwrap();
    let mut it = stmt.query([ELECTION]).unwrap();
    while let Some(r) = it.next().unwrap() {
        let age: i64 = r.get(0).unwrap();
        let gender: String = r.get(1).unwrap();
        let key = (
            AgeBand::of_age(age.clamp(0, 200) as u32)
                .as_str()
                .to_string(),
            Gender::parse(&gender).as_str().to_string(),
            r.get(2).unwrap(),
        );
        *want.entry(key).or_default() += 1;
    }
    let served: BTreeMap<(String, String, String), i64> = api("demographics")
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |f: &str| d[f].as_str().unwrap().to_string();
            (
                (s("age_band"), s("gender"), s("candidate_id")),
                d["votes"].as_i64().unwrap(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(served, want, "demographics");

    // The timeline: each minute window as the results table has it.
    let late = count(
        "SELECT late_votes FROM results_election WHERE engine = 'builtin' AND election_id = ?1",
    );
    let mut windows: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut stmt = db
        .prepare(
            "SELECT minute, candidate_id, votes FROM results_minute
             WHERE engine = 'builtin' AND election_id = ?1 AND votes > 0",
        )
        .unwrap();
    let mut it = stmt.query([ELECTION]).unwrap();
    while let Some(r) = it.next().unwrap() {
        let minute: i64 = r.get(0).unwrap();
        windows.insert(
            (
                votestream::model::format_voting_time(minute),
                r.get(1).unwrap(),
            ),
            r.get(2).unwrap(),
        );
    }
    let served: BTreeMap<(String, String), i64> = api("timeline")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |f: &str| m[f].as_str().unwrap().to_string();
            (
                (s("minute"), s("candidate_id")),
                m["votes"].as_i64().unwrap(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(served, windows, "timeline");
    assert_eq!(
        served.values().sum::<i64>() + late,
        votes,
        "windows + late = votes"
    );
}
