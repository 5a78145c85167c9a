//! Needs: Kafka, PostgreSQL.
//!
//! Exact tallies on the Kafka shape: SIGKILL of the processor and of the
//! aggregator, at the one moment that matters (store committed, Kafka not)
//! and at random moments over several trials (from a printed seed that
//! `VOTESTREAM_TEST_SEED` replays); a processor whose every commit is taken
//! for a stuck one (`VOTESTREAM_KAFKA_WEDGED_AFTER_MS`). Each test checks
//! where its kill landed; each time the tallies end exact, `audit` passes
//! and a read_committed reader of `votes_topic` sees each accepted vote
//! exactly once.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use support::{number_before, sent, KafkaTest, KillMoments};

#[test]
fn a_processor_killed_between_the_store_and_kafka_publishes_the_batch_on_restart() {
    let t = KafkaTest::new(3);
    t.run_ok("generate", &["--voters", "30000"]);
    let n = sent(&t.run_ok("simulate", &["--rate", "max"]));
    let mut doomed = t.spawn_env(
        "process-doomed",
        "process",
        &["--instance", "p1"],
        &[("VOTESTREAM_CRASH_AFTER_RECORD", "1")],
    );
    t.wait_for("the hook to fire", Duration::from_secs(120), || {
        !doomed.is_running()
    });
    let status = doomed
        .exit_status()
        .expect("the doomed processor has exited");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "it died of the hook: {status}"
    );
    // Where the kill landed: the store holds the first batch, and Kafka
    // holds none of it (its transaction never committed).
    let recorded = t.scalar("SELECT COUNT(*) FROM votes");
    assert!(recorded > 0, "the store committed before the kill");
    assert_eq!(
        t.read_topic("votes_topic").len(),
        0,
        "votes_topic holds votes of a batch whose Kafka commit never happened"
    );
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let mut aggregate = t.spawn("aggregate", "aggregate", &["--follow"]);
    t.wait_drained(n, Duration::from_secs(180));
    process.stop();
    aggregate.stop();
    let out = t.output("process");
    assert!(
        number_before(&out, " outcomes") > 0,
        "the restarted processor published the recorded batch again: {out}"
    );
    t.assert_exact();
}

#[test]
fn sigkill_of_the_stages_at_random_moments_leaves_every_count_exact() {
    let t = KafkaTest::new(4);
    t.run_ok("generate", &["--voters", "60000"]);
    let mut rng = KillMoments::new("six kills");
    let mut process = t.spawn("process-0", "process", &["--instance", "p1"]);
    let mut aggregate = t.spawn("aggregate-0", "aggregate", &["--follow"]);
    // Slow enough that ballots keep coming through the six trials.
    let sim = t.simulate_in_background("800");
    let recorded = || t.scalar("SELECT COUNT(*) FROM votes");
    // Six trials: the processor, the aggregator, or both, killed and
    // restarted while ballots keep coming. Each kill lands after the stage
    // it kills did work since its (re)start: recorded or counted votes grew
    // (unless the stream has ended and there is none left to do).
    let (mut recorded_at_start, mut counted_at_start) = (0, 0);
    for trial in 1..=6 {
        std::thread::sleep(Duration::from_millis(rng.between(400, 2200)));
        let which = rng.between(0, 3);
        t.wait_for(
            &format!("trial {trial}: work by the stage to be killed"),
            Duration::from_secs(120),
            || {
                let ended =
                    sim.is_finished() && t.scalar("SELECT COUNT(*) FROM votes") == t.counted();
                ended
                    || ((which == 1 || recorded() > recorded_at_start)
                        && (which == 0 || t.counted() > counted_at_start))
            },
        );
        eprintln!(
            "trial {trial}: killing {} with {} votes recorded and {} counted{}",
            ["the processor", "the aggregator", "both"][which as usize],
            recorded(),
            t.counted(),
            if sim.is_finished() {
                " (the stream has ended)"
            } else {
                ""
            }
        );
        if which != 1 {
            process.kill();
            process = t.spawn(
                &format!("process-{trial}"),
                "process",
                &["--instance", "p1"],
            );
        }
        if which != 0 {
            aggregate.kill();
            aggregate = t.spawn(&format!("aggregate-{trial}"), "aggregate", &["--follow"]);
        }
        (recorded_at_start, counted_at_start) = (recorded(), t.counted());
    }
    let n = sent(&sim.join().expect("simulator"));
    t.wait_drained(n, Duration::from_secs(240));
    process.stop();
    aggregate.stop();
    t.assert_exact();
}

/// The guard against a Kafka commit that never returns, taken on every
/// batch: with `VOTESTREAM_KAFKA_WEDGED_AFTER_MS=1` no commit answers in
/// time, so each time the producer is given up, a new one fences it (its
/// transaction commits or aborts as a whole) and the batches are read again
/// from the committed offsets. Nothing may be lost or published twice.
#[test]
fn a_processor_that_takes_every_commit_for_stuck_still_counts_exactly() {
    let t = KafkaTest::new(2);
    t.run_ok("generate", &["--voters", "4000"]);
    let n = sent(&t.run_ok("simulate", &["--rate", "max"]));
    let mut process = t.spawn_env(
        "process",
        "process",
        &["--instance", "p1"],
        &[("VOTESTREAM_KAFKA_WEDGED_AFTER_MS", "1")],
    );
    let mut aggregate = t.spawn("aggregate", "aggregate", &["--follow"]);
    t.wait_drained(n, Duration::from_secs(240));
    // Wait for the last batch's transaction too: the topic catches up with the store.
    let stored = t.scalar("SELECT COUNT(*) FROM votes") as usize;
    t.wait_for(
        "votes_topic to hold every vote",
        Duration::from_secs(120),
        || t.read_topic("votes_topic").len() >= stored,
    );
    process.stop();
    aggregate.stop();
    let log = std::fs::read_to_string(t.logs_dir().join("process.log")).unwrap_or_default();
    let replaced = log.matches("replacing the stuck Kafka producer").count();
    assert!(replaced > 0, "the hook never fired:\n{log}");
    eprintln!("the stuck-commit guard replaced the producer {replaced} times");
    t.assert_exact();
}
