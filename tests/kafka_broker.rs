//! SPEC §2.2: exact tallies when the broker restarts mid-run. The broker is
//! the one `scripts/kafka.sh` started (the test restarts it with the same
//! script); nothing else runs against it meanwhile (a test binary of its own).

mod common;
mod kafka_support;
mod store_support;

use std::process::Command;
use std::time::{Duration, Instant};

use kafka_support::{sent, KafkaTest};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");

fn script(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("scripts/kafka.sh runs");
    assert!(
        out.status.success(),
        "scripts/kafka.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_broker_restart_mid_run_loses_and_duplicates_nothing() {
    let t = KafkaTest::new(4);
    assert_eq!(
        script(&["status"]),
        t.bootstrap,
        "this test restarts the broker scripts/kafka.sh started; VOTESTREAM_TEST_KAFKA must name it"
    );
    t.run_ok("generate", &["--voters", "50000"]);
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let mut aggregate = t.spawn("aggregate", "aggregate", &["--follow"]);
    let sim = std::thread::spawn({
        let args = vec![
            "simulate".to_string(),
            "--store".into(),
            t.db.url.clone(),
            "--bus".into(),
            t.bus.clone(),
            "--rate".into(),
            "4000".into(),
        ];
        move || common::votestream_ok(&args)
    });
    t.wait_for("votes counted before the restart", Duration::from_secs(120), || {
        t.scalar("SELECT COALESCE(SUM(votes), 0)::int8 FROM results_candidate WHERE engine = 'builtin'")
            > 5_000
    });
    let down = Instant::now();
    script(&["restart", "1"]);
    eprintln!("broker restarted in {:?}", down.elapsed());
    let n = sent(&sim.join().expect("simulator"));
    t.wait_drained(n, Duration::from_secs(300));
    assert!(
        process.is_running() && aggregate.is_running(),
        "{}",
        t.logs()
    );
    process.stop();
    aggregate.stop();
    t.assert_exact();
}
