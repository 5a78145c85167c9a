//! Needs: Kafka, PostgreSQL.
//!
//! The distributed shape against a real Kafka broker and PostgreSQL:
//! end to end with 100,000 voters; two instances of each stage
//! with one of each killed; bad messages on `ballots`; and a consumer
//! written for the original's topics.

mod support;

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use support::{free_port, metric, request, sent, KafkaTest};

fn scrape(addr: &str) -> String {
    let r = request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{addr}/metrics");
    r.body_text()
}

#[test]
fn end_to_end_100k_voters_exactly_once() {
    let t = KafkaTest::new(4);
    t.run_ok("generate", &["--voters", "100000"]);
    let local = |port: u16| format!("127.0.0.1:{port}");
    let (p_metrics, a_metrics) = (local(free_port()), local(free_port()));
    let mut process = t.spawn(
        "process",
        "process",
        &["--instance", "p1", "--metrics-listen", &p_metrics],
    );
    let mut aggregate = t.spawn(
        "aggregate",
        "aggregate",
        &["--follow", "--metrics-listen", &a_metrics],
    );
    let out = t.run_ok("simulate", &["--rate", "max"]);
    let n = sent(&out);
    assert!(n > 80_000, "{n} ballots");
    t.wait_drained(n, Duration::from_secs(240));
    // Each instance can be scraped on its own: what it did, as it did it.
    let text = scrape(&p_metrics);
    assert_eq!(
        metric(&text, "votestream_ballots_accepted_total"),
        80_000.0,
        "{text}"
    );
    let text = scrape(&a_metrics);
    assert!(
        metric(&text, "votestream_aggregator_save_seconds_count") > 0.0,
        "{text}"
    );
    process.stop();
    aggregate.stop();
    t.assert_exact();
    assert_eq!(t.scalar("SELECT COUNT(*) FROM votes"), 80_000);
    // received = accepted + rejected, per election.
    let received =
        t.scalar("SELECT SUM(n)::int8 FROM ballot_counts WHERE election_id = 'general-2026'");
    let accepted = t.scalar(
        "SELECT n FROM ballot_counts WHERE election_id = 'general-2026' AND outcome = 'accepted'",
    );
    assert_eq!(accepted, 80_000);
    assert!(received > accepted);
    // The aggregate topics hold the latest totals per key.
    let mut latest = std::collections::HashMap::new();
    for (k, v) in t.read_topic("aggregated_votes_per_candidate") {
        let j: serde_json::Value = serde_json::from_slice(&v).unwrap();
        latest.insert(
            k.expect("a key"),
            j["total_votes"].as_i64().expect("total_votes"),
        );
    }
    assert_eq!(latest.len(), 3, "{latest:?}");
    assert_eq!(latest.values().sum::<i64>(), 80_000);
    let states: i64 = {
        let mut by_key = std::collections::HashMap::new();
        for (k, v) in t.read_topic("aggregated_turnout_by_location") {
            let j: serde_json::Value = serde_json::from_slice(&v).unwrap();
            by_key.insert(k.expect("a key"), j["count"].as_i64().expect("count"));
        }
        by_key.values().sum()
    };
    assert_eq!(states, 80_000);
}

#[test]
fn two_instances_of_each_stage_one_of_each_killed() {
    let t = KafkaTest::new(6);
    t.run_ok("generate", &["--voters", "60000"]);
    let mut p1 = t.spawn("process-1", "process", &["--instance", "p1"]);
    let mut p2 = t.spawn("process-2", "process", &["--instance", "p2"]);
    let mut a1 = t.spawn("aggregate-1", "aggregate", &["--follow"]);
    let mut a2 = t.spawn("aggregate-2", "aggregate", &["--follow"]);
    let sim = t.simulate_in_background("8000");
    // Both instances at work before one of each dies: each holds partitions
    // of its group, and votes keep being recorded and counted meanwhile.
    let both_hold_partitions = |stage: &str| {
        let members = t.group_members(stage);
        members.len() == 2 && members.iter().all(|p| !p.is_empty())
    };
    t.wait_for(
        "two members holding partitions in each group",
        Duration::from_secs(120),
        || both_hold_partitions("processor") && both_hold_partitions("aggregator"),
    );
    let (recorded, counted) = (t.scalar("SELECT COUNT(*) FROM votes"), t.counted());
    t.wait_for(
        "votes recorded and counted by the groups",
        Duration::from_secs(120),
        || {
            t.scalar("SELECT COUNT(*) FROM votes") > recorded + 5_000
                && t.counted() > counted.max(10_000)
        },
    );
    for stage in ["processor", "aggregator"] {
        let members = t.group_members(stage);
        assert!(
            members.len() == 2 && members.iter().all(|p| !p.is_empty()),
            "{stage} group before the kills: {members:?}"
        );
    }
    p2.kill();
    a2.kill();
    let n = sent(&sim.join().expect("simulator"));
    t.wait_drained(n, Duration::from_secs(240));
    assert!(p1.is_running() && a1.is_running(), "{}", t.logs());
    p1.stop();
    a1.stop();
    t.assert_exact();
}

fn producer(t: &KafkaTest) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &t.bootstrap)
        .create()
        .expect("a producer")
}

#[test]
fn bad_messages_on_ballots_are_rejected_with_a_reason_and_the_rest_counted() {
    let t = KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "100"]);
    let voter: String =
        t.db.client()
            .query_one("SELECT voter_id FROM voters ORDER BY voter_no LIMIT 1", &[])
            .unwrap()
            .get(0);
    let other: String =
        t.db.client()
            .query_one(
                "SELECT voter_id FROM voters ORDER BY voter_no OFFSET 1 LIMIT 1",
                &[],
            )
            .unwrap()
            .get(0);
    let now = chrono::Utc::now().to_rfc3339();
    let ballot = |id: &str, voter: &str, candidate: &str, election: &str| {
        serde_json::json!({"ballot_id": id, "election_id": election, "voter_id": voter,
            "candidate_id": candidate, "voting_time": now})
        .to_string()
        .into_bytes()
    };
    let messages: Vec<(&str, Vec<u8>)> = vec![
        ("malformed_json", b"{this is not json".to_vec()),
        (
            "wrong_type",
            br#"{"ballot_id": 7, "voter_id": [], "candidate_id": {}, "election_id": 1}"#.to_vec(),
        ),
        ("missing_field", br#"{"ballot_id": "m1"}"#.to_vec()),
        ("invalid_utf8", vec![b'{', 0xff, 0xfe, b'}']),
        ("malformed_json", Vec::new()),
        (
            "unknown_voter",
            ballot("u1", "nobody", "c-savior", "general-2026"),
        ),
        (
            "unknown_candidate",
            ballot("u2", &voter, "c-nobody", "general-2026"),
        ),
        (
            "unknown_election",
            ballot("u3", &voter, "c-savior", "no-such-election"),
        ),
        ("accepted", ballot("g1", &voter, "c-savior", "general-2026")),
        (
            "already_voted",
            ballot("g2", &voter, "c-tech-republic", "general-2026"),
        ),
        (
            "accepted",
            ballot("g3", &other, "c-management", "general-2026"),
        ),
    ];
    let p = producer(&t);
    let topic = t.topic("ballots");
    // The topics exist once a stage has started.
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    t.wait_for("the ballots topic", Duration::from_secs(60), || {
        p.client()
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .map(|m| m.topics()[0].error().is_none() && !m.topics()[0].partitions().is_empty())
            .unwrap_or(false)
    });
    for (i, (_, payload)) in messages.iter().enumerate() {
        // One partition for all, so "already_voted" comes after its first vote.
        p.send(
            BaseRecord::<str, [u8]>::to(&topic)
                .partition(0)
                .key("k")
                .payload(payload),
        )
        .unwrap_or_else(|(e, _)| panic!("message {i}: {e}"));
    }
    p.flush(Duration::from_secs(30)).unwrap();
    t.wait_for("every message recorded", Duration::from_secs(60), || {
        t.scalar("SELECT (SELECT COUNT(*) FROM votes) + (SELECT COUNT(*) FROM rejected_ballots)")
            == messages.len() as i64
    });
    process.stop();
    let rejected = t.read_topic("rejected_ballots");
    let mut reasons: Vec<String> = rejected
        .iter()
        .map(|(_, v)| {
            let j: serde_json::Value = serde_json::from_slice(v).unwrap();
            assert!(!j["detail"].as_str().unwrap_or("").is_empty(), "{j}");
            j["reason"].as_str().unwrap().to_string()
        })
        .collect();
    reasons.sort();
    let mut want: Vec<String> = messages
        .iter()
        .map(|(r, _)| r.to_string())
        .filter(|r| r != "accepted")
        .collect();
    want.sort();
    assert_eq!(reasons, want);
    let votes = t.read_topic("votes_topic");
    assert_eq!(votes.len(), 2);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM votes"), 2);
}

/// A consumer written for the original reads `voters_topic` and
/// `votes_topic` by the original's field names and types.
#[test]
fn the_originals_consumers_read_voters_and_votes_topics() {
    let t = KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "300"]);
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let n = sent(&t.run_ok("simulate", &["--rate", "max"]));
    t.wait_for("ballots recorded", Duration::from_secs(120), || {
        t.scalar("SELECT (SELECT COUNT(*) FROM votes) + (SELECT COUNT(*) FROM rejected_ballots)")
            >= n
    });
    process.stop();
    let text = |j: &serde_json::Value, f: &str| {
        assert!(j[f].is_string(), "{f} should be a string in {j}");
    };
    let voters = t.read_topic("voters_topic");
    assert_eq!(voters.len(), 300);
    for (key, v) in &voters {
        let j: serde_json::Value = serde_json::from_slice(v).unwrap();
        for f in [
            "voter_id",
            "voter_name",
            "date_of_birth",
            "gender",
            "nationality",
            "registration_number",
            "email",
            "phone_number",
            "cell_number",
            "picture",
        ] {
            text(&j, f);
        }
        for f in ["street", "city", "state", "country", "postcode"] {
            text(&j["address"], f);
        }
        assert!(j["registered_age"].is_u64(), "{j}");
        assert_eq!(key.as_deref(), j["voter_id"].as_str(), "keyed by voter_id");
        chrono::NaiveDate::parse_from_str(j["date_of_birth"].as_str().unwrap(), "%Y-%m-%d")
            .expect("ISO 8601 date of birth");
    }
    let votes = t.read_topic("votes_topic");
    assert_eq!(votes.len() as i64, t.scalar("SELECT COUNT(*) FROM votes"));
    for (key, v) in &votes {
        let j: serde_json::Value = serde_json::from_slice(v).unwrap();
        for f in [
            "voter_id",
            "voter_name",
            "candidate_id",
            "candidate_name",
            "party_affiliation",
            "biography",
            "campaign_platform",
            "photo_url",
            "voting_time",
        ] {
            text(&j, f);
        }
        text(&j["address"], "state");
        assert_eq!(j["vote"], 1);
        assert!(j["registered_age"].is_u64());
        chrono::NaiveDateTime::parse_from_str(
            j["voting_time"].as_str().unwrap(),
            "%Y-%m-%d %H:%M:%S",
        )
        .expect("voting_time as the original wrote it");
        assert_eq!(key.as_deref(), j["voter_id"].as_str(), "keyed by voter_id");
    }
    let candidates = t.read_topic("candidates_topic");
    assert_eq!(candidates.len(), 3);
    for (_, v) in &candidates {
        let j: serde_json::Value = serde_json::from_slice(v).unwrap();
        for f in [
            "candidate_id",
            "candidate_name",
            "party_affiliation",
            "biography",
            "campaign_platform",
            "photo_url",
        ] {
            text(&j, f);
        }
    }
}
