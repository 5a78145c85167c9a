//! SPEC §2.2 on the Kafka shape: SIGKILL of the processor and of the
//! aggregator, at the one moment that matters (store committed, Kafka not)
//! and at random moments over several trials; each time the tallies end
//! exact, `audit` passes and a read_committed reader of `votes_topic` sees
//! each accepted vote exactly once.

mod common;
mod kafka_support;
mod store_support;

use std::time::{Duration, Instant};

use kafka_support::{sent, KafkaTest};

/// Numbers from the clock, printed so a failing run can be told apart.
struct Lcg(u64);

impl Lcg {
    fn new() -> Lcg {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        eprintln!("kill moments seed: {seed}");
        Lcg(seed)
    }

    /// A number in `lo..hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

fn number_before(text: &str, word: &str) -> u64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].starts_with(word))
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no number before {word:?} in {text:?}"))
}

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
    let deadline = Instant::now() + Duration::from_secs(120);
    while doomed.is_running() {
        assert!(
            Instant::now() < deadline,
            "the hook never fired\n{}",
            t.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let recorded = t.scalar("SELECT COUNT(*) FROM votes");
    assert!(recorded > 0, "the store committed before the kill");
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let mut aggregate = t.spawn("aggregate", "aggregate", &["--follow"]);
    t.wait_drained(n, Duration::from_secs(180));
    process.stop();
    aggregate.stop();
    let out = t.output("process");
    assert!(
        number_before(&out, "outcomes") > 0,
        "the restarted processor published the recorded batch again: {out}"
    );
    t.assert_exact();
}

#[test]
fn sigkill_of_the_stages_at_random_moments_leaves_every_count_exact() {
    let t = KafkaTest::new(4);
    t.run_ok("generate", &["--voters", "60000"]);
    let mut rng = Lcg::new();
    let mut process = t.spawn("process-0", "process", &["--instance", "p1"]);
    let mut aggregate = t.spawn("aggregate-0", "aggregate", &["--follow"]);
    let sim = t.simulate_in_background("5000");
    // Six trials: the processor, the aggregator, or both, killed and
    // restarted while ballots keep coming.
    for trial in 1..=6 {
        std::thread::sleep(Duration::from_millis(rng.between(400, 2200)));
        let which = rng.between(0, 3);
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
    }
    let n = sent(&sim.join().expect("simulator"));
    t.wait_drained(n, Duration::from_secs(240));
    process.stop();
    aggregate.stop();
    t.assert_exact();
}
