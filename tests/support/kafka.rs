//! The Kafka shape: a real broker (started by `scripts/kafka.sh`, named by
//! VOTESTREAM_TEST_KAFKA), a fresh PostgreSQL database and a topic prefix of
//! its own per test, the stages as child processes, and a read_committed
//! reader of whole topics.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::pg::TempDb;
use super::run::{command, describe, votestream, votestream_ok, ChildGuard};
use super::wait;

/// The broker the tests use. Never skips: without one the test fails and
/// says how to get one.
pub fn bootstrap() -> String {
    std::env::var("VOTESTREAM_TEST_KAFKA").unwrap_or_else(|_| {
        panic!(
            "no Kafka for the tests: run `bash scripts/kafka.sh start` and export \
             VOTESTREAM_TEST_KAFKA=$(bash scripts/kafka.sh url); `bash scripts/test.sh` does both"
        )
    })
}

/// One test's world: its database, its topics, its stages' logs.
pub struct KafkaTest {
    pub db: TempDb,
    pub prefix: String,
    pub bus: String,
    pub bootstrap: String,
    logs: PathBuf,
}

/// A stage running as a child process; SIGKILLed if the test lets go of it.
pub struct Stage {
    pub name: String,
    guard: ChildGuard,
}

impl Stage {
    pub fn pid(&mut self) -> u32 {
        self.guard.child().id()
    }

    /// SIGKILL, no warning.
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    pub fn is_running(&mut self) -> bool {
        self.guard.0.is_some() && self.guard.child().try_wait().ok().flatten().is_none()
    }

    /// How it ended, once it has (None while it runs).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.guard.child().try_wait().ok().flatten()
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn stop(&mut self) {
        if self.guard.0.is_none() {
            return;
        }
        let pid = self.pid() as i32;
        // SAFETY: signals our own child, by its pid (not yet reaped).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let what = format!("{} (SIGTERM)", self.name);
        let status = self.guard.wait_within(Duration::from_secs(60), &what);
        self.guard.0 = None;
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

impl KafkaTest {
    pub fn new(partitions: u32) -> KafkaTest {
        KafkaTest::with_bootstrap(partitions, bootstrap())
    }

    /// A test against another cluster than the shared one.
    pub fn with_bootstrap(partitions: u32, bootstrap: String) -> KafkaTest {
        let prefix = format!("t{}.", super::unique_name('-'));
        let bus = format!("kafka://{bootstrap}?partitions={partitions}&prefix={prefix}");
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kafka-{prefix}"));
        std::fs::create_dir_all(&logs).expect("log directory");
        KafkaTest {
            db: TempDb::new(),
            prefix,
            bus,
            bootstrap,
            logs,
        }
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn args(&self, sub: &str, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            sub.to_string(),
            "--store".into(),
            self.db.url.clone(),
            "--bus".into(),
            self.bus.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Runs a subcommand to completion; asserts it succeeds.
    pub fn run_ok(&self, sub: &str, extra: &[&str]) -> Output {
        votestream_ok(&self.args(sub, extra))
    }

    /// `simulate --rate RATE` in a thread; join it for the output.
    pub fn simulate_in_background(&self, rate: &str) -> std::thread::JoinHandle<Output> {
        let args = self.args("simulate", &["--rate", rate]);
        std::thread::spawn(move || votestream_ok(&args))
    }

    /// Votes the built-in engine has counted.
    pub fn counted(&self) -> i64 {
        self.scalar(
            "SELECT COALESCE(SUM(votes), 0)::int8 FROM results_candidate WHERE engine = 'builtin'",
        )
    }

    /// Starts a long-running stage; its stderr goes to a log file.
    pub fn spawn(&self, name: &str, sub: &str, extra: &[&str]) -> Stage {
        self.spawn_env(name, sub, extra, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment variables; stdout goes
    /// to `name.out` (see [`output`](Self::output)).
    pub fn spawn_env(&self, name: &str, sub: &str, extra: &[&str], env: &[(&str, &str)]) -> Stage {
        let out =
            std::fs::File::create(self.logs.join(format!("{name}.out"))).expect("stage output");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))
            .expect("stage log");
        let mut cmd = command();
        cmd.args(self.args(sub, extra))
            .env("VOTESTREAM_LOG", "warn,votestream=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log);
        Stage {
            name: name.to_string(),
            guard: ChildGuard(Some(cmd.spawn().expect("stage starts"))),
        }
    }

    /// What a stage printed on stdout (complete once it exited).
    pub fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{name}.out"))).unwrap_or_default()
    }

    /// The members of a stage's consumer group (`processor`, `aggregator`)
    /// as the group coordinator has them now: the partitions each holds.
    pub fn group_members(&self, stage: &str) -> Vec<Vec<i32>> {
        let group = format!("{}votestream-{stage}", self.prefix);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("a consumer");
        let list = consumer
            .fetch_group_list(Some(&group), Duration::from_secs(10))
            .expect("the group list");
        list.groups()
            .iter()
            .flat_map(|g| g.members())
            .map(|m| assigned_partitions(m.assignment().unwrap_or(&[])))
            .collect()
    }

    /// Where the stages' logs are (`<name>.log`, `<name>.out`).
    pub fn logs_dir(&self) -> &std::path::Path {
        &self.logs
    }

    /// The last lines of every stage's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(dir) = std::fs::read_dir(&self.logs) {
            for e in dir.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                out += &format!("--- {}:\n{tail}\n", e.path().display());
            }
        }
        out
    }

    pub fn scalar(&self, sql: &str) -> i64 {
        self.db
            .client()
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// Waits until `done`, at most `limit`; panics with the stages' logs.
    pub fn wait_for(&self, what: &str, limit: Duration, done: impl FnMut() -> bool) {
        wait::until_every(limit, Duration::from_millis(200), what, done, || {
            self.logs()
        });
    }

    /// Waits until `sent` ballots are recorded (each as a vote or a
    /// rejection) and every vote is counted.
    pub fn wait_drained(&self, sent: i64, limit: Duration) {
        self.wait_for(&format!("{sent} ballots recorded"), limit, || {
            self.scalar(
                "SELECT (SELECT COUNT(*) FROM votes) + (SELECT COUNT(*) FROM rejected_ballots)",
            ) >= sent
        });
        self.wait_for("every vote counted", limit, || {
            self.counted() == self.scalar("SELECT COUNT(*) FROM votes")
        });
    }

    /// Every message of a topic as a read_committed consumer sees it.
    pub fn read_topic(&self, name: &str) -> Vec<(Option<String>, Vec<u8>)> {
        let topic = self.topic(name);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("{}reader", self.prefix))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a reader");
        let meta = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("topic metadata");
        let partitions: Vec<i32> = meta.topics()[0]
            .partitions()
            .iter()
            .map(|p| p.id())
            .collect();
        assert!(!partitions.is_empty(), "topic {topic} has no partitions");
        let mut tpl = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for &p in &partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
            let (_, high) = consumer
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .expect("watermarks");
            ends.insert(p, high);
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let position = consumer.position().expect("position");
            let done = partitions.iter().all(|&p| {
                let end = ends[&p];
                end == 0
                    || matches!(position.find_partition(&topic, p).map(|e| e.offset()),
                        Some(Offset::Offset(o)) if o >= end)
            });
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "reading {topic} did not reach its end"
            );
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.expect("a message");
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                out.push((key, m.payload().unwrap_or_default().to_vec()));
            }
        }
        out
    }

    /// The exactly-once checks every scenario ends with: `audit` passes,
    /// `votes_topic` holds each accepted vote once and nothing else, and
    /// `rejected_ballots` holds each recorded rejection once.
    pub fn assert_exact(&self) {
        let audit = votestream(&["audit".to_string(), "--store".into(), self.db.url.clone()]);
        assert!(audit.status.success(), "audit failed: {}", describe(&audit));

        let mut stored: Vec<String> = self
            .db
            .client()
            .query("SELECT ballot_id FROM votes", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        stored.sort();
        let mut published: Vec<String> = self
            .read_topic("votes_topic")
            .iter()
            .map(|(_, v)| {
                let j: serde_json::Value = serde_json::from_slice(v).expect("votes_topic JSON");
                j["ballot_id"].as_str().expect("ballot_id").to_string()
            })
            .collect();
        published.sort();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &published {
            *counts.entry(id).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
        assert!(
            twice.is_empty(),
            "votes published more than once: {twice:?}"
        );
        assert_eq!(
            published.len(),
            stored.len(),
            "votes_topic holds {} votes, the store {}",
            published.len(),
            stored.len()
        );
        assert!(
            published == stored,
            "votes_topic and the votes table differ"
        );

        let rejected = self.read_topic("rejected_ballots");
        let mut ids: Vec<String> = rejected
            .iter()
            .map(|(_, v)| {
                let j: serde_json::Value =
                    serde_json::from_slice(v).expect("rejected_ballots JSON");
                j["ballot_id"].as_str().expect("ballot_id").to_string()
            })
            .collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "a rejection was published twice");
        assert_eq!(
            n as i64,
            self.scalar("SELECT COUNT(*) FROM rejected_ballots")
        );
    }
}

/// The partitions of a consumer protocol assignment (version: i16, then per
/// topic a string and an array of i32 partitions; anything after is ignored).
fn assigned_partitions(b: &[u8]) -> Vec<i32> {
    let i16_at = |at: usize| b.get(at..at + 2).map(|x| i16::from_be_bytes([x[0], x[1]]));
    let i32_at = |at: usize| {
        b.get(at..at + 4)
            .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    };
    let mut out = Vec::new();
    let mut at = 2;
    let Some(topics) = i32_at(at) else {
        return out;
    };
    at += 4;
    for _ in 0..topics.max(0) {
        let Some(len) = i16_at(at) else { break };
        at += 2 + len.max(0) as usize;
        let Some(n) = i32_at(at) else { break };
        at += 4;
        for _ in 0..n.max(0) {
            match i32_at(at) {
                Some(p) => out.push(p),
                None => break,
            }
            at += 4;
        }
    }
    out
}
