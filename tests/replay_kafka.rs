//! Needs: Kafka, PostgreSQL.
//!
//! `votestream replay --from kafka://…`: a night run on Kafka and
//! PostgreSQL, replayed from its `ballots` topic itself into stores of its
//! own, at max speed and at 1×, ends with the original's results (every
//! candidate, state, demographic cell and rejection reason: `votestream
//! compare`); again into the same target counts nothing; a replay until a
//! moment between two parts of the night takes the first part, and one from
//! the next millisecond on (a seek by timestamp) the rest; the live night's tables and topics are the
//! same before and after.

mod support;

use std::time::Duration;

use support::{votestream_ok, KafkaTest, Raw, TempDb};

/// `replay` from the test's topic (its registry from its store).
fn replay(t: &KafkaTest, into: &str, extra: &[&str]) -> String {
    let out = votestream_ok(&replay_args(&t.bus, t, into, extra));
    String::from_utf8(out.stdout).unwrap()
}

fn replay_args<'a>(
    from: &'a str,
    t: &'a KafkaTest,
    into: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "replay",
        "--from",
        from,
        "--registry",
        &t.db.url,
        "--into",
        into,
    ];
    args.extend(extra);
    args
}

/// The number of ballots a replay's summary says it replayed.
fn replayed(summary: &str) -> i64 {
    summary
        .strip_prefix("replayed ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"))
}

fn same_night(a: &str, b: &str) {
    let out = support::votestream(&["compare", a, b]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{a} vs {b}: {text}");
}

#[test]
fn a_night_replayed_from_its_ballots_topic_ends_as_it_did() {
    let t = KafkaTest::new(3);
    // The night in two parts, with a known moment between them.
    let part = |seed: &str| {
        t.run_ok(
            "run",
            &[
                "--voters",
                "3000",
                "--seed",
                seed,
                "--rate",
                "1500",
                "--until-done",
                "--no-desk",
                "--listen",
                "127.0.0.1:0",
            ],
        )
    };
    part("11");
    let first_part = t.read_topic("ballots").len() as i64;
    std::thread::sleep(Duration::from_millis(50));
    let between = votestream::model::now_millis();
    std::thread::sleep(Duration::from_millis(50));
    part("12");
    let raw = Raw::Postgres(t.db.url.clone());
    let tables = raw.checksums();
    // Every message, in an order that does not depend on how the
    // partitions' fetches interleave.
    let messages = |name: &str| {
        let mut all = t.read_topic(name);
        all.sort();
        all
    };
    let topics: Vec<_> = ["ballots", "votes_topic", "rejected_ballots"]
        .iter()
        .map(|n| messages(n))
        .collect();
    let total =
        t.scalar("SELECT COUNT(*) FROM votes") + t.scalar("SELECT COUNT(*) FROM rejected_ballots");
    assert!(total > 2000, "{total}");

    let fast = TempDb::new();
    let out = replay(&t, &fast.url, &["--speed", "max"]);
    assert!(out.contains(" 0 already recorded there"), "{out}");
    same_night(&t.db.url, &fast.url);
    let again = replay(&t, &fast.url, &[]);
    assert!(again.contains(" 0 accepted, 0 rejected"), "{again}");
    same_night(&t.db.url, &fast.url);

    let dir = tempfile::tempdir().unwrap();
    let slow = format!("sqlite://{}", dir.path().join("slow.db").display());
    replay(&t, &slow, &["--speed", "1x"]);
    same_night(&t.db.url, &slow);

    // Until the moment between the parts, and from the next millisecond:
    // a seek by timestamp on every partition.
    let moment = |ms: i64| {
        let second = votestream::model::format_voting_time(ms - ms.rem_euclid(1000));
        format!("{}.{:03}Z", second.replace(' ', "T"), ms.rem_euclid(1000))
    };
    let (first_half, second_half) = (TempDb::new(), TempDb::new());
    let until = replayed(&replay(&t, &first_half.url, &["--until", &moment(between)]));
    let from = replayed(&replay(
        &t,
        &second_half.url,
        &["--from-time", &moment(between + 1)],
    ));
    assert_eq!(until, first_part, "until the moment: the first part");
    assert_eq!(until + from, replayed(&again), "from the moment: the rest");

    // Through a topic prefix of the replay's own, with its own consumer
    // groups: from the topic, and from the store.
    for (from, name) in [
        (t.bus.as_str(), "rehearsal1."),
        (t.db.url.as_str(), "rehearsal2."),
    ] {
        let onto = format!(
            "kafka://{}?partitions=3&prefix={}{name}",
            t.bootstrap, t.prefix
        );
        let into = TempDb::new();
        let args = replay_args(from, &t, &into.url, &["--bus", &onto, "--speed", "max"]);
        let out = String::from_utf8(votestream_ok(&args).stdout).unwrap();
        assert!(out.contains(" 0 already recorded there"), "{out}");
        same_night(&t.db.url, &into.url);
        let votes = t.read_topic(&format!("{name}votes_topic")).len() as i64;
        assert_eq!(
            votes,
            t.scalar("SELECT COUNT(*) FROM votes"),
            "{name}votes_topic"
        );
    }
    let refused = support::votestream(&replay_args(&t.bus, &t, &fast.url, &["--bus", &t.bus]));
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a replay onto the live topics is refused"
    );

    assert_eq!(raw.checksums(), tables, "the live store changed");
    for (n, before) in ["ballots", "votes_topic", "rejected_ballots"]
        .iter()
        .zip(&topics)
    {
        let after = messages(n);
        assert!(
            &after == before,
            "topic {n} changed: {} messages, {} before",
            after.len(),
            before.len()
        );
    }
}
