//! Needs: Kafka, PostgreSQL.
//!
//! Exact tallies when the broker restarts mid-run: the single
//! broker `scripts/kafka.sh` started (a full outage; nothing else runs
//! against it meanwhile: a test binary of its own), and one broker of a
//! three-broker cluster (replication 3, min ISR 2) the same script starts
//! beside it for this test.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{script_ok, sent, KafkaTest};

fn kafka_sh(args: &[&str]) -> String {
    kafka_sh_env(args, &[])
}

fn kafka_sh_env(args: &[&str], env: &[(&str, String)]) -> String {
    script_ok(
        support::script("kafka.sh")
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v.as_str()))),
    )
}

#[test]
fn a_broker_restart_mid_run_loses_and_duplicates_nothing() {
    let t = KafkaTest::new(4);
    assert_eq!(
        kafka_sh(&["status"]),
        t.bootstrap,
        "this test restarts the broker scripts/kafka.sh started; VOTESTREAM_TEST_KAFKA must name it"
    );
    t.run_ok("generate", &["--voters", "50000"]);
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let mut aggregate = t.spawn("aggregate", "aggregate", &["--follow"]);
    let sim = t.simulate_in_background("4000");
    t.wait_for(
        "votes counted before the restart",
        Duration::from_secs(120),
        || t.counted() > 5_000,
    );
    let down = Instant::now();
    kafka_sh(&["restart", "1"]);
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

/// The second cluster's settings for scripts/kafka.sh; stopped on drop.
struct Cluster(Vec<(&'static str, String)>);

impl Cluster {
    fn start() -> (Cluster, String) {
        let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
        let env = vec![
            (
                "VOTESTREAM_KAFKA_HOME",
                target.join("kafka3").display().to_string(),
            ),
            (
                "VOTESTREAM_KAFKA_LIBS",
                target.join("kafka/libs").display().to_string(),
            ),
            ("KAFKA_BASE_PORT", "29092".to_string()),
        ];
        let bootstrap = kafka_sh_env(&["start", "3"], &env);
        (Cluster(env), bootstrap)
    }

    fn restart(&self, node: &str) {
        kafka_sh_env(&["restart", node], &self.0);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = support::script("kafka.sh")
            .arg("stop")
            .envs(self.0.iter().map(|(k, v)| (k, v.as_str())))
            .status();
    }
}

#[test]
fn a_broker_of_three_restarting_mid_run_costs_nothing() {
    // The shared broker's jars, fetched by scripts/kafka.sh start.
    assert!(!kafka_sh(&["url"]).is_empty());
    let (cluster, bootstrap) = Cluster::start();
    assert_eq!(bootstrap.split(',').count(), 3, "{bootstrap}");
    let t = KafkaTest::with_bootstrap(4, bootstrap);
    t.run_ok("generate", &["--voters", "30000"]);
    let mut process = t.spawn("process", "process", &["--instance", "p1"]);
    let mut aggregate = t.spawn("aggregate", "aggregate", &["--follow"]);
    let sim = t.simulate_in_background("3000");
    t.wait_for(
        "votes counted before the restart",
        Duration::from_secs(180),
        || t.counted() > 3_000,
    );
    cluster.restart("2");
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
    drop(cluster);
}
