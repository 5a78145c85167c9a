//! Needs: Kafka, PostgreSQL.
//!
//! A hostile client against a real `votestream serve`, in both shapes
//! (embedded SQLite; Kafka bus + PostgreSQL): broken framing, bad encodings,
//! bad tokens, strange paths, the same ballot in parallel. Raw bytes over
//! TCP, where a client library would refuse to send them. Every answer is
//! noted in a ledger, and the run ends with a reconciliation: every ballot
//! answered is in the store exactly once with the outcome it was answered
//! (per election), every refusal is counted, `/metrics` agrees, `audit`
//! passes and the server still takes ballots.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use support::{voter_id, Server, ADMIN_TOKEN, API_TOKEN, ELECTION};

/// One parsed answer.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect();
        write!(f, "{} {body}", self.status)
    }
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `bytes` as they are; `half_close` then ends our side (for
/// requests that are incomplete on purpose). Reads every answer until the
/// server closes, or nothing came for a while.
fn raw(addr: &str, bytes: &[u8], half_close: bool) -> Vec<Answer> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    parse_answers(&out)
}

fn parse_answers(mut out: &[u8]) -> Vec<Answer> {
    let mut all = Vec::new();
    while let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&out[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        assert!(
            status_line.starts_with("HTTP/1.1 "),
            "not an HTTP answer: {status_line:?}"
        );
        let status: u16 = status_line[9..12].parse().expect("status code");
        let header = |name: &str| {
            head.split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        let _ = lines;
        let mut rest = &out[end + 4..];
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            while let Some(le) = rest.windows(2).position(|w| w == b"\r\n") {
                let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..le]).trim(), 16)
                    .expect("chunk size");
                rest = &rest[le + 2..];
                body.extend_from_slice(&rest[..size.min(rest.len())]);
                rest = &rest[(size + 2).min(rest.len())..];
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
            let len = len.min(rest.len());
            let body = rest[..len].to_vec();
            rest = &rest[len..];
            body
        };
        all.push(Answer { status, body });
        out = rest;
    }
    all
}

/// A request as bytes; `Connection: close` unless `keep` (pipelining).
fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], keep: bool) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: hostile\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if !keep {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn cast_path(election: &str) -> String {
    format!("/api/v1/elections/{election}/ballots")
}

const AUTH: (&str, &str) = ("Authorization", "Bearer test-api-token");

fn ballot(voter: &str, candidate: &str, id: Option<&str>) -> Vec<u8> {
    let mut b = serde_json::json!({"voter_id": voter, "candidate_id": candidate});
    if let Some(id) = id {
        b["ballot_id"] = id.into();
    }
    b.to_string().into_bytes()
}

/// What the hostile client was told.
#[derive(Default)]
struct Ledger {
    /// Per election (as the server decoded it from the path): each ballot
    /// id answered, with its outcome (`accepted`, `queued` or a reason).
    ballots: BTreeMap<String, BTreeMap<String, String>>,
    /// Ballot answers by HTTP status (what `/metrics` counts).
    by_status: BTreeMap<u16, u64>,
    /// Refused before becoming a ballot, with the API's error code.
    refused: BTreeMap<String, u64>,
    /// Refused by the HTTP layer itself (framing): no JSON, no ballot.
    framing: u64,
    /// Requests sent, and connections that got no answer at all.
    sent: u64,
    unanswered: u64,
    queued_shape: bool,
}

impl Ledger {
    /// Notes one answer to a request for `election`.
    fn note(&mut self, election: &str, a: &Answer) {
        let j = a.json();
        assert!(
            !(500..600).contains(&a.status) || a.status == 505,
            "server error {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        match (j["ballot_id"].as_str(), j["status"].as_str()) {
            (Some(id), Some(status)) => {
                let outcome = match status {
                    "accepted" => "accepted".to_string(),
                    "queued" => "queued".to_string(),
                    "rejected" => j["error"].as_str().expect("a reason").to_string(),
                    other => panic!("unknown ballot status {other}"),
                };
                let prior = self
                    .ballots
                    .entry(election.to_string())
                    .or_default()
                    .insert(id.to_string(), outcome.clone());
                // A replay is answered as the first time.
                if let Some(p) = prior {
                    assert_eq!(p, outcome, "ballot {id} answered two ways");
                }
                *self.by_status.entry(a.status).or_default() += 1;
            }
            _ => match j["error"].as_str() {
                Some(code) => *self.refused.entry(code.to_string()).or_default() += 1,
                None => self.framing += 1,
            },
        }
    }

    /// Sends one connection's bytes and notes its answers, all for `election`.
    fn send(&mut self, s: &Server, election: &str, bytes: &[u8], half_close: bool) -> Vec<Answer> {
        self.sent += 1;
        let answers = raw(&s.addr, bytes, half_close);
        if answers.is_empty() {
            self.unanswered += 1;
        }
        for a in &answers {
            self.note(election, a);
        }
        answers
    }

    fn accepted_status(&self) -> &'static str {
        if self.queued_shape {
            "queued"
        } else {
            "accepted"
        }
    }
}

/// The whole corpus against one server; voters `first..` are fresh.
/// `raw_rejections`: also the bodies that are not a ballot at all, which
/// the Kafka shape does not yet store as it answers them (see
/// `kafka_a_body_that_is_no_ballot_is_stored_as_answered`).
fn corpus(s: &Server, l: &mut Ledger, first: u64, raw_rejections: bool) {
    let mut next = first;
    let mut fresh = || {
        next += 1;
        voter_id(next)
    };
    let cast = cast_path(ELECTION);
    let ok = l.accepted_status().to_string();

    // --- framing
    // Pipelined: five ballots in one write, answered in order, each with its own id.
    let mut bytes = Vec::new();
    let ids: Vec<String> = (0..5).map(|i| format!("hostile-pipe-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        bytes.extend(req(
            "POST",
            &cast,
            &[AUTH],
            &ballot(&fresh(), "c-savior", Some(id)),
            i < 4,
        ));
    }
    let answers = l.send(s, ELECTION, &bytes, false);
    assert_eq!(answers.len(), 5, "pipelined answers");
    for (a, id) in answers.iter().zip(&ids) {
        assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(
            a.json()["ballot_id"],
            id.as_str(),
            "answers bound to requests, in order"
        );
        assert_eq!(a.json()["status"], ok.as_str());
    }
    // Bad chunk size: refused by the HTTP layer, nothing recorded.
    let bad_chunk = format!(
        "POST {cast} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {API_TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    );
    for a in l.send(s, ELECTION, bad_chunk.as_bytes(), true) {
        assert!(
            a.status == 400 || a.json()["error"] == "unreadable_body",
            "{a:?}"
        );
    }
    // A valid chunked ballot is a ballot like any other.
    let body = ballot(&fresh(), "c-management", Some("hostile-chunked"));
    let chunked = format!(
        "POST {cast} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {API_TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        body.len(),
        String::from_utf8_lossy(&body)
    );
    let a = l.send(s, ELECTION, chunked.as_bytes(), false);
    assert_eq!(a[0].status, 202, "{:?}", a[0]);
    // Content-Length longer than the body, then our side closes: no ballot.
    let mut short = req(
        "POST",
        &cast,
        &[AUTH],
        &ballot(&fresh(), "c-savior", Some("hostile-short")),
        false,
    );
    let at = short.len() - 10;
    short.truncate(at);
    for a in l.send(s, ELECTION, &short, true) {
        assert!(
            a.json()["ballot_id"].is_null(),
            "a cut body became a ballot: {a:?}"
        );
    }
    // Two different Content-Lengths, and Content-Length with chunked.
    let two_lengths = format!(
        "POST {cast} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {API_TOKEN}\r\nContent-Length: 2\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{{}}"
    );
    for a in l.send(s, ELECTION, two_lengths.as_bytes(), false) {
        assert_eq!(a.status, 400, "{a:?}");
    }
    // HTTP/0.9-ish and other garbage: refused by the HTTP layer or not answered.
    for garbage in [
        &b"GET /\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"POST /api/v1/elections/general-2026/ballots HTTP/9.9\r\nHost: h\r\n\r\n",
        b"\r\n\r\n\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nBad Header Without Colon\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\n\r\n",
    ] {
        for a in l.send(s, ELECTION, garbage, true) {
            assert!([400, 505].contains(&a.status), "{garbage:?}: {a:?}");
        }
    }
    // A 100 KB header is within the HTTP layer's limit: the body is judged.
    let huge = "x".repeat(100_000);
    let body = ballot(&fresh(), "c-savior", Some("hostile-huge-header"));
    let a = l.send(
        s,
        ELECTION,
        &req("POST", &cast, &[AUTH, ("X-Huge", &huge)], &body, false),
        false,
    );
    assert_eq!(a.len(), 1);
    assert!([400, 431, 202].contains(&a[0].status), "{a:?}");

    // --- encodings: each a ballot, answered with its reason and recorded
    let v = fresh();
    // The bool: the body is a ballot (JSON object with the fields), not raw bytes.
    let cases: Vec<(Vec<u8>, u16, bool)> = vec![
        (
            b"{\"voter_id\":\"\xff\xfe\",\"candidate_id\":\"c-savior\"}".to_vec(),
            400,
            false,
        ),
        // Overlong encoding of '/'.
        (
            b"{\"voter_id\":\"\xc0\xaf\",\"candidate_id\":\"c-savior\"}".to_vec(),
            400,
            false,
        ),
        // A lone surrogate in an escape is not a string serde accepts.
        (
            br#"{"voter_id":"\ud800","candidate_id":"c-savior"}"#.to_vec(),
            400,
            false,
        ),
        // U+0000 in a field of well-formed JSON.
        (
            format!(r#"{{"voter_id":"{v}\u0000","candidate_id":"c-savior"}}"#).into_bytes(),
            422,
            true,
        ),
        // A BOM before the JSON.
        (
            [&b"\xef\xbb\xbf"[..], &ballot(&v, "c-savior", None)].concat(),
            400,
            false,
        ),
        // Nested far beyond the parser's recursion limit.
        (
            format!("{{\"x\":{}", "[".repeat(5000)).into_bytes(),
            400,
            false,
        ),
        (
            br#"{"voter_id":"a","voter_id":"b","candidate_id":"c-savior"}"#.to_vec(),
            422,
            false,
        ),
        (
            br#"{"voter_id":"a","candidate_id":1e999}"#.to_vec(),
            400,
            false,
        ),
        (b"".to_vec(), 400, false),
    ];
    for (body, status, is_ballot) in cases {
        if !raw_rejections && !is_ballot {
            continue;
        }
        let a = l.send(
            s,
            ELECTION,
            &req("POST", &cast, &[AUTH], &body, false),
            false,
        );
        let shown: String = String::from_utf8_lossy(&body).chars().take(80).collect();
        assert_eq!(a.len(), 1, "{shown}");
        assert_eq!(
            a[0].status,
            status,
            "{shown}: {}",
            String::from_utf8_lossy(&a[0].body)
        );
        assert_eq!(a[0].json()["status"], "rejected", "{:?}", a[0]);
    }

    // --- tokens: refused before becoming a ballot
    let good = ballot(&fresh(), "c-savior", None);
    let huge_token = format!("Bearer {}", "t".repeat(60_000));
    for (headers, status) in [
        (vec![], 401),
        (vec![("Authorization", "Bearer wrong")], 403),
        (vec![("Authorization", "Basic dGVzdDp0ZXN0")], 401),
        (vec![("Authorization", "Bearer")], 401),
        (
            vec![("Authorization", "Bearer test-api-token-and-more")],
            403,
        ),
        (vec![("Authorization", "Bearer test-admin-token")], 403),
        (vec![("Authorization", "Bearer \u{00e9}")], 401),
        // Refused as too large by the HTTP layer, or read and found wrong.
        (vec![("Authorization", huge_token.as_str())], 403),
    ] {
        let a = l.send(
            s,
            ELECTION,
            &req("POST", &cast, &headers, &good, false),
            false,
        );
        assert_eq!(a.len(), 1, "{headers:?}");
        assert!(
            a[0].status == status
                || (headers.iter().any(|(_, v)| v.len() > 8192)
                    && [400, 431].contains(&a[0].status)),
            "{headers:?}: {a:?}"
        );
        assert!(a[0].json()["ballot_id"].is_null(), "{a:?}");
    }
    // The admin endpoint does not take the API token.
    let a = l.send(
        s,
        ELECTION,
        &req(
            "POST",
            "/api/v1/admin/elections",
            &[AUTH],
            br#"{"election_id":"x"}"#,
            false,
        ),
        false,
    );
    assert_eq!(a[0].status, 403, "{a:?}");

    // --- paths
    let encoded = "%67eneral-2026"; // general-2026
    for (path, decoded, want) in [
        (cast_path(encoded), ELECTION.to_string(), Some(202)),
        (cast_path(".."), "..".to_string(), Some(404)),
        (cast_path("%2e%2e"), "..".to_string(), Some(404)),
        (cast_path("a%2Fb"), "a/b".to_string(), Some(404)),
        // Not a valid escape: kept as it is.
        (cast_path("%zz"), "%zz".to_string(), Some(404)),
        (cast_path("%ff%fe"), String::new(), None),
        (
            "/api/v1/elections/general-2026/ballots/../ballots".to_string(),
            String::new(),
            Some(404),
        ),
    ] {
        let body = ballot(&fresh(), "c-savior", None);
        let a = l.send(
            s,
            &decoded,
            &req("POST", &path, &[AUTH], &body, false),
            false,
        );
        assert_eq!(a.len(), 1, "{path}");
        if let Some(want) = want {
            assert_eq!(a[0].status, want, "{path}: {:?}", a[0]);
        }
        assert!(a[0].status < 500, "{path}: {:?}", a[0]);
        if a[0].status == 202 {
            assert_eq!(a[0].json()["status"], ok.as_str());
        }
    }

    // --- concurrency: the same ballot many times at once is one ballot
    let v = fresh();
    let body = ballot(&v, "c-tech-republic", None);
    let keyed = req(
        "POST",
        &cast,
        &[AUTH, ("Idempotency-Key", "hostile-par")],
        &body,
        false,
    );
    let same_id = req(
        "POST",
        &cast,
        &[AUTH],
        &ballot(&fresh(), "c-savior", Some("hostile-same")),
        false,
    );
    let other_ids: Vec<Vec<u8>> = {
        let w = fresh();
        (0..8)
            .map(|i| {
                req(
                    "POST",
                    &cast,
                    &[AUTH],
                    &ballot(&w, "c-savior", Some(&format!("hostile-w-{i}"))),
                    false,
                )
            })
            .collect()
    };
    let mut jobs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..8 {
        jobs.push(keyed.clone());
        jobs.push(same_id.clone());
    }
    jobs.extend(other_ids);
    let addr = s.addr.clone();
    let all: Vec<Vec<Answer>> = std::thread::scope(|sc| {
        let hs: Vec<_> = jobs
            .iter()
            .map(|j| sc.spawn(|| raw(&addr, j, false)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ok_for_w = 0;
    for (job, answers) in jobs.iter().zip(&all) {
        l.sent += 1;
        assert_eq!(answers.len(), 1, "{}", String::from_utf8_lossy(job));
        let a = &answers[0];
        // An in-flight retry of a key may be told 409 (try again), never a second vote.
        if a.status == 409 && a.json()["ballot_id"].is_null() {
            l.note(ELECTION, a);
            continue;
        }
        l.note(ELECTION, a);
        if String::from_utf8_lossy(job).contains("hostile-w-") && a.status == 202 {
            ok_for_w += 1;
        }
    }
    // In the Kafka shape all are queued and the processor decides (checked
    // in `reconcile`).
    if !l.queued_shape {
        assert_eq!(
            ok_for_w, 1,
            "one voter, eight ballot ids at once: exactly one is accepted"
        );
    }
}

/// Every answered ballot is in the store once, as answered; nothing else is.
fn reconcile(s: &Server, l: &Ledger, stored: &BTreeMap<String, (String, String)>) {
    let mut answered = 0;
    let mut wrong = Vec::new();
    for (election, ids) in &l.ballots {
        for (id, outcome) in ids {
            answered += 1;
            match stored.get(id) {
                None => wrong.push(format!(
                    "{id} ({election:?}, {outcome}) answered, not stored"
                )),
                Some((e, _)) if e != election => {
                    wrong.push(format!("{id} answered for {election:?}, stored for {e:?}"))
                }
                Some((_, o)) if outcome != "queued" && o != outcome => wrong.push(format!(
                    "{id} ({election:?}) answered {outcome}, stored {o}"
                )),
                Some(_) => {}
            }
        }
    }
    for (id, v) in stored {
        if !l.ballots.values().any(|m| m.contains_key(id)) {
            wrong.push(format!("{id} {v:?} stored, never answered"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the answers and the store disagree:\n{}",
        wrong.join("\n")
    );
    assert_eq!(stored.len(), answered);
    // Per election: accepted + rejected-with-reason = what was answered.
    for (election, ids) in &l.ballots {
        let rows: Vec<_> = stored.values().filter(|(e, _)| e == election).collect();
        assert_eq!(rows.len(), ids.len(), "election {election:?}");
    }
    // Every request is accounted for: a ballot, a refusal, framing, or no answer.
    let refused: u64 = l.refused.values().sum();
    let ballot_answers: u64 = l.by_status.values().sum();
    assert!(
        ballot_answers + refused + l.framing + l.unanswered >= l.sent,
        "sent {} requests; {ballot_answers} ballot answers, {refused} refused, {} framing, {} unanswered",
        l.sent,
        l.framing,
        l.unanswered
    );
    eprintln!(
        "hostile: {} connections; {ballot_answers} ballot answers {:?} over {} elections; refused {:?}; {} framing refusals; {} unanswered",
        l.sent,
        l.by_status,
        l.ballots.len(),
        l.refused,
        l.framing,
        l.unanswered
    );
    // /metrics counts the same answers, refusals and outcomes. (On Kafka the
    // processor counts a batch once its transaction is published, just
    // after the store commit: a short wait.)
    let accepted = stored.values().filter(|(_, o)| o == "accepted").count() as u64;
    let rejected = stored.len() as u64 - accepted;
    let sum = |metrics: &str, prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (status, metrics) = s.get("/metrics");
        assert_eq!(status, 200);
        let counted = (
            sum(&metrics, "votestream_ballots_accepted_total"),
            sum(&metrics, "votestream_ballots_rejected_total"),
        );
        if counted == (accepted, rejected) || Instant::now() > deadline {
            assert_eq!(counted, (accepted, rejected), "/metrics accepted, rejected");
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (code, n) in &l.by_status {
        let name = format!("votestream_http_ballots_total{{status=\"{code}\"}}");
        assert_eq!(support::metric(&metrics, &name) as u64, *n, "{name}");
    }
    for (code, n) in &l.refused {
        let name = format!("votestream_http_refused_total{{code=\"{code}\"}}");
        assert_eq!(support::metric(&metrics, &name) as u64, *n, "{name}");
    }
    // Still serving, still taking ballots.
    assert_eq!(s.get("/healthz").0, 200);
    assert_eq!(s.get("/readyz").0, 200);
}

/// ballot_id → (election, outcome) for every stored ballot.
fn stored_sqlite(path: &std::path::Path) -> BTreeMap<String, (String, String)> {
    let db = support::open_ro(path).expect("open store");
    let mut out = BTreeMap::new();
    for sql in [
        "SELECT ballot_id, election_id, 'accepted' FROM votes",
        "SELECT ballot_id, COALESCE(election_id, ''), reason FROM rejected_ballots",
    ] {
        let mut st = db.prepare(sql).unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap();
        for r in rows {
            let (id, v) = r.unwrap();
            assert!(
                out.insert(id.clone(), v).is_none(),
                "ballot {id} stored twice"
            );
        }
    }
    out
}

/// The corpus sends one voter's ballot under eight ids at once: whatever
/// the interleaving, exactly one of them is a vote.
fn one_vote_among_the_eight_ids(stored: &BTreeMap<String, (String, String)>) {
    let w_accepted = stored
        .iter()
        .filter(|(id, (_, o))| id.starts_with("hostile-w-") && o == "accepted")
        .count();
    assert_eq!(
        w_accepted, 1,
        "one voter, eight ballot ids at once: exactly one vote"
    );
}

fn stored_pg(db: &support::TempDb) -> BTreeMap<String, (String, String)> {
    let mut c = db.client();
    let mut out = BTreeMap::new();
    for sql in [
        "SELECT ballot_id, election_id, 'accepted'::text FROM votes",
        "SELECT ballot_id, COALESCE(election_id, ''), reason FROM rejected_ballots",
    ] {
        for r in c.query(sql, &[]).unwrap() {
            let id: String = r.get(0);
            assert!(
                out.insert(id.clone(), (r.get(1), r.get(2))).is_none(),
                "ballot {id} stored twice"
            );
        }
    }
    out
}

/// The corpus against `server`, then one good ballot (it still takes
/// ballots after all that); then the reconciliation with what `stored`
/// reads, once it holds every ballot answered or `settle` has passed (zero
/// where every answer comes after the commit, so the store must hold it
/// already), and `audit` of `store` once `counted_all` has waited for the
/// engine to count every accepted vote (an audit of a live store must not
/// race the aggregator).
fn corpus_reconciled(
    server: &Server,
    store: &str,
    mut l: Ledger,
    raw_rejections: bool,
    settle: Duration,
    stored: impl Fn() -> BTreeMap<String, (String, String)>,
    counted_all: impl FnOnce(i64),
) {
    corpus(server, &mut l, 0, raw_rejections);
    let last = server.cast(
        &ballot(&voter_id(150), "c-savior", Some("hostile-last")),
        None,
    );
    assert_eq!(last.status, 202, "{}", last.body_text());
    l.note(
        ELECTION,
        &Answer {
            status: last.status,
            body: last.body.clone(),
        },
    );
    l.sent += 1;
    let want: usize = l.ballots.values().map(|m| m.len()).sum();
    let stored = support::wait::settle(settle, Duration::from_millis(200), stored, |s| {
        s.len() >= want
    });
    reconcile(server, &l, &stored);
    one_vote_among_the_eight_ids(&stored);
    counted_all(stored.values().filter(|(_, o)| o == "accepted").count() as i64);
    let audit = support::votestream(&["audit", "--store", store]);
    assert!(audit.status.success(), "{}", support::describe(&audit));
}

#[test]
fn hostile_corpus_embedded_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store_with_voters(dir.path(), 200);
    // No rate limit: the corpus is one client sending fast.
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    corpus_reconciled(
        &server,
        &store,
        Ledger::default(),
        true,
        Duration::ZERO,
        || stored_sqlite(&dir.path().join("v.db")),
        |accepted| wait_counted(&server, accepted),
    );
}

#[test]
fn hostile_corpus_kafka_postgres() {
    let t = support::KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "200"]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.db.url,
        dir.path(),
        &["--bus", &t.bus, "--rate-limit", "0"],
    );
    let l = Ledger {
        queued_shape: true,
        ..Ledger::default()
    };
    // Queued ballots are decided by the processor: they are stored later.
    corpus_reconciled(
        &server,
        &t.db.url,
        l,
        false,
        Duration::from_secs(120),
        || stored_pg(&t.db),
        |accepted| {
            t.wait_for(
                "the engine to count every vote",
                Duration::from_secs(120),
                || t.counted() == accepted,
            )
        },
    );
    let _ = ADMIN_TOKEN;
}

// Cases that each failed on an earlier build (a poisoned ballot, an
// oversized or odd election id, a half-closed client, a body that is no
// ballot on Kafka): each asserts the behaviour its fix brought.

/// One embedded server; a poisoned request is answered with a reason and
/// recorded, then a good ballot is still answered 202 at once.
/// Waits until the engine has counted every vote the store accepted (at
/// least `accepted` of them): an audit of a live store compares the engine's
/// saved tallies with a recount, so it must not race the aggregator.
fn wait_counted(s: &Server, accepted: i64) {
    s.wait_until(
        |s| {
            let p = s.json(&format!("/api/v1/elections/{ELECTION}/progress"));
            let a = p["accepted"].as_i64().unwrap_or(-1);
            a >= accepted && p["counted"].as_i64() == Some(a)
        },
        "the engine to count every accepted vote",
    );
}

fn poison_then_good(poison: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store_with_voters(dir.path(), 20);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let a = raw(&server.addr, poison, false);
    assert_eq!(a.len(), 1, "the poisoned request is answered");
    assert!(a[0].status < 500, "{a:?}");
    let poison_id = a[0].json()["ballot_id"]
        .as_str()
        .expect("a ballot answer")
        .to_string();
    let good = req(
        "POST",
        &cast_path(ELECTION),
        &[AUTH],
        &ballot(&voter_id(3), "c-savior", Some("after-poison")),
        false,
    );
    let a = raw(&server.addr, &good, false);
    assert_eq!(a.len(), 1, "the good ballot after the poison is answered");
    assert_eq!(a[0].status, 202, "{a:?}");
    let stored = stored_sqlite(&dir.path().join("v.db"));
    assert!(
        stored.contains_key(&poison_id),
        "the poison is recorded: {stored:?}"
    );
    assert_eq!(stored["after-poison"].1, "accepted");
    wait_counted(&server, 1);
    assert!(support::votestream(&["audit", "--store", &store])
        .status
        .success());
}

#[test]
fn nul_in_a_malformed_body_costs_nothing_but_itself() {
    let body = b"{\"voter_id\":\"a\0b\", oops";
    poison_then_good(&req("POST", &cast_path(ELECTION), &[AUTH], body, false));
}

#[test]
fn nul_in_the_election_id_costs_nothing_but_itself() {
    let body = ballot(&voter_id(1), "c-savior", None);
    poison_then_good(&req("POST", &cast_path("ab%00cd"), &[AUTH], &body, false));
}

#[test]
fn a_json_array_body_is_not_a_ballot() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store_with_voters(dir.path(), 20);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let body = format!(r#"["{}","c-savior"]"#, voter_id(2));
    let a = raw(
        &server.addr,
        &req(
            "POST",
            &cast_path(ELECTION),
            &[AUTH],
            body.as_bytes(),
            false,
        ),
        false,
    );
    assert_eq!(a[0].status, 422, "{a:?}");
    assert_eq!(a[0].json()["error"], "wrong_type", "{a:?}");
}

#[test]
fn a_huge_election_id_is_neither_echoed_nor_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store_with_voters(dir.path(), 20);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let id = "e".repeat(60_000);
    let body = ballot(&voter_id(2), "c-savior", None);
    let a = raw(
        &server.addr,
        &req("POST", &cast_path(&id), &[AUTH], &body, false),
        false,
    );
    assert_eq!(a.len(), 1);
    assert!(a[0].status < 500, "{a:?}");
    assert!(
        a[0].body.len() < 8192,
        "the answer echoes {} bytes",
        a[0].body.len()
    );
    let stored: i64 = support::open_ro(&dir.path().join("v.db"))
        .unwrap()
        .query_row(
            "SELECT COALESCE(MAX(LENGTH(COALESCE(election_id, '')) + LENGTH(raw) + LENGTH(detail)), 0) FROM rejected_ballots",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        stored <= 8192,
        "a rejection stores {stored} bytes of a 60 KB id"
    );
}

#[test]
fn kafka_an_odd_election_id_is_stored_as_answered() {
    let t = support::KafkaTest::new(1);
    t.run_ok("generate", &["--voters", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.db.url,
        dir.path(),
        &["--bus", &t.bus, "--rate-limit", "0"],
    );
    let mut l = Ledger {
        queued_shape: true,
        ..Ledger::default()
    };
    // A 300-byte id, one with a NUL, and an empty one (`//` in the path).
    let long = "e".repeat(300);
    for (election, path) in [
        (long.as_str(), cast_path(&long)),
        ("e\0x", "/api/v1/elections/e%00x/ballots".to_string()),
        ("", "/api/v1/elections//ballots".to_string()),
    ] {
        let body = ballot(&voter_id(2), "c-savior", Some("odd-election"));
        let a = l.send(
            &server,
            election,
            &req("POST", &path, &[AUTH], &body, false),
            false,
        );
        assert_eq!(a.len(), 1);
        let j = a[0].json();
        // Either refused before it is a ballot (nothing to store), or
        // answered with an id that the processor stores with that reason.
        let Some(id) = j["ballot_id"].as_str() else {
            assert!(j["error"].is_string(), "{path}: {a:?}");
            continue;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let (stored_election, outcome) = loop {
            if let Some(row) = stored_pg(&t.db).get(id) {
                break row.clone();
            }
            assert!(Instant::now() < deadline, "{path}: {id} never stored");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(j["error"].as_str(), Some(outcome.as_str()), "{path}: {a:?}");
        assert!(
            stored_election.len() <= 128 && !stored_election.contains('\0'),
            "{path}: stored under election {stored_election:?}"
        );
    }
}

#[test]
fn a_stalled_request_is_closed_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store_with_voters(dir.path(), 20);
    let server = Server::start(&store, dir.path(), &[]);
    for partial in [
        &b"POST /api/v1/elections/general-2026/ballots HTTP/1.1\r\nHost: h\r\n"[..],
        b"POST /api/v1/elections/general-2026/ballots HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer test-api-token\r\nContent-Length: 100\r\n\r\n{\"vo",
    ] {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(partial).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        assert!(r.is_ok(), "the server held a stalled request for 90 s");
        eprintln!("closed after {:?}", started.elapsed());
    }
}

#[test]
fn a_half_closed_client_still_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store_with_voters(dir.path(), 20);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    // Another writer holds SQLite's write lock, so the answer is still owed
    // when the server reads the client's FIN: without half-close support it
    // closed the connection there, whether or not the ballot then counted.
    let db = dir.path().join("v.db");
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = ballot(&voter_id(4), "c-savior", Some("half-closed"));
    let bytes = req("POST", &cast_path(ELECTION), &[AUTH], &body, false);
    let addr = server.addr.clone();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&bytes).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        parse_answers(&out)
    });
    std::thread::sleep(Duration::from_millis(1500));
    lock.execute_batch("COMMIT").unwrap();
    let a = client.join().unwrap();
    assert_eq!(a.len(), 1, "no answer for a complete request");
    assert_eq!(a[0].status, 202, "{a:?}");
    assert!(stored_sqlite(&db).contains_key("half-closed"));
}

#[test]
fn kafka_a_body_that_is_no_ballot_is_stored_as_answered() {
    let t = support::KafkaTest::new(1);
    t.run_ok("generate", &["--voters", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.db.url,
        dir.path(),
        &["--bus", &t.bus, "--rate-limit", "0"],
    );
    let mut l = Ledger {
        queued_shape: true,
        ..Ledger::default()
    };
    for body in [&b"{not json"[..], b"{}", b"\xff\xfe"] {
        let a = l.send(
            &server,
            ELECTION,
            &req("POST", &cast_path(ELECTION), &[AUTH], body, false),
            false,
        );
        assert_eq!(a.len(), 1);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = stored_pg(&t.db);
        if stored.len() >= 3 || Instant::now() > deadline {
            break stored;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    reconcile(&server, &l, &stored);
}
