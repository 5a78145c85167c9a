//! Needs: Kafka, PostgreSQL.
//!
//! A migrating user's consumers, unchanged: a Kafka client with its default
//! settings and no compression library (kafka-python from PyPI, no extras,
//! in a venv `scripts/kafka-python.sh` makes) reads every topic with one of
//! the original's names, and every value is JSON. And the run summary
//! accounts for every ballot sent.

mod support;

use std::process::Command;

use support::KafkaTest;

fn kafka_python() -> String {
    support::script_ok(&mut support::script("kafka-python.sh"))
}

#[test]
fn a_default_client_without_lz4_reads_every_topic_the_original_reads() {
    let t = KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "300"]);
    let out = t.run_ok(
        "run",
        &[
            "--voters",
            "300",
            "--rate",
            "max",
            "--until-done",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let summary = support::run_summary(&out);

    let topics = [
        "votes_topic",
        "voters_topic",
        "candidates_topic",
        "rejected_ballots",
        "aggregated_votes_per_candidate",
        "aggregated_turnout_by_location",
    ];
    let python = kafka_python();
    let out = support::output_within(
        Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/default_consumer.py"
            ))
            .arg(&t.bootstrap)
            .args(topics.iter().map(|n| t.topic(n))),
        support::DEADLINE,
    );
    assert!(
        out.status.success(),
        "a default kafka-python consumer could not read the topics:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |name: &str| counts[t.topic(name)].as_i64().unwrap();
    let votes = t.scalar("SELECT COUNT(*) FROM votes");
    assert!(votes > 0);
    assert_eq!(count("votes_topic"), votes, "{counts}");
    assert_eq!(count("voters_topic"), 300, "{counts}");
    assert_eq!(count("candidates_topic"), 3, "{counts}");
    assert_eq!(
        count("rejected_ballots"),
        t.scalar("SELECT COUNT(*) FROM rejected_ballots"),
        "{counts}"
    );
    assert!(count("aggregated_votes_per_candidate") > 0, "{counts}");
    assert!(count("aggregated_turnout_by_location") > 0, "{counts}");

    // sent = received by the election + no usable election + replays.
    let s = &summary;
    assert_eq!(s.sent, s.received + s.orphans + s.replays, "{}", s.line);
}
