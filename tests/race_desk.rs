//! Needs: Kafka, PostgreSQL.
//!
//! The race desk end to end, over HTTP: an election whose polls close in
//! waves a few seconds from now, ballots cast through the API, and the
//! desk sealing each state after its close (plus a one-second allowance)
//! and calling it. Every call must name the state's true winner (the most
//! votes in the final count), be recorded once, and survive the desk being
//! SIGKILLed and restarted; a ballot arriving after a seal is refused as
//! `polls_closed`, as is one cast after its state's close.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use votestream::model::{now_millis, PollClose};

const VOTERS: u64 = 400;
/// First wave this far ahead: time enough to cast every ballot before it.
const FIRST_CLOSE_MS: i64 = 12_000;
const STEP_MS: i64 = 250;

fn desk(server: &Server) -> Value {
    server.json(&format!("/api/v1/elections/{ELECTION}/desk"))
}

/// Whether a state's final count is an exact tie (or empty): it can never
/// be called, and must stay "too close".
fn tied(s: &Value) -> bool {
    let mut counted: Vec<i64> = s["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["counted"].as_i64().unwrap())
        .collect();
    counted.sort_unstable_by(|a, b| b.cmp(a));
    s["outstanding"] == 0 && counted.len() > 1 && counted[0] == counted[1]
}

/// Every race decided: called, or a final tie left too close.
fn all_called(d: &Value) -> bool {
    let settled = d["national"]["status"]["status"] == "called"
        && d["states"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"]["status"] == "called" || tied(s));
    if !settled {
        let open: Vec<String> = d["states"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"]["status"] != "called")
            .map(|s| {
                format!(
                    "{} {} out {}",
                    s["code"], s["status"]["status"], s["outstanding"]
                )
            })
            .collect();
        eprintln!(
            "not yet: national {} / {}",
            d["national"]["status"],
            open.join(", ")
        );
    }
    settled
}

/// The true winner of each state: the most votes in the engine's final
/// count (which `audit` checks against the votes table).
fn winners(server: &Server) -> BTreeMap<String, String> {
    let r = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    let mut out = BTreeMap::new();
    for s in r["states"].as_array().unwrap() {
        let by: Vec<(String, i64)> = s["by_candidate"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(c, n)| (c.clone(), n.as_i64().unwrap()))
            .collect();
        let best = by.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let top: Vec<&String> = by
            .iter()
            .filter(|(_, n)| *n == best)
            .map(|(c, _)| c)
            .collect();
        if top.len() == 1 && best > 0 {
            out.insert(s["state"].as_str().unwrap().to_string(), top[0].clone());
        }
    }
    out
}

/// Every call names the true winner, each race is called once, and nothing
/// follows a call in its race.
fn check_record(d: &Value, truth: &BTreeMap<String, String>) {
    let events = d["events"].as_array().unwrap();
    let mut called: HashSet<String> = HashSet::new();
    for (no, e) in events.iter().enumerate() {
        assert_eq!(e["event_no"], no as i64, "events are numbered densely: {e}");
        let race = match e["race"]["kind"].as_str().unwrap() {
            "national" => "national".to_string(),
            _ => e["race"]["state"].as_str().unwrap().to_string(),
        };
        assert!(
            !called.contains(&race),
            "an event after {race} was called (a duplicate or a reversal): {e}"
        );
        if e["kind"] == "called" {
            called.insert(race.clone());
            if let Some(winner) = truth.get(&race) {
                assert_eq!(&e["candidate"], winner.as_str(), "a wrong call: {e}");
            }
            assert!(
                e["margin"].as_i64().unwrap() > e["outstanding"].as_i64().unwrap(),
                "a call is certain only when the margin exceeds what is outstanding: {e}"
            );
        }
    }
    let states: HashSet<String> = d["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_string())
        .collect();
    for st in d["states"].as_array().unwrap() {
        let name = st["state"].as_str().unwrap();
        if tied(st) {
            assert_ne!(
                st["status"]["status"], "called",
                "a final tie is never called: {st}"
            );
            assert!(!called.contains(name), "a final tie was called: {st}");
        } else {
            assert!(called.contains(name), "{name} was never called");
        }
    }
    assert!(states.len() > 40, "the registry spans most states");
    assert!(called.contains("national"));
    for s in d["states"].as_array().unwrap() {
        let name = s["state"].as_str().unwrap();
        if let Some(w) = truth.get(name) {
            assert_eq!(&s["status"]["candidate"], w.as_str(), "{name}: {s}");
        }
        assert_eq!(s["outstanding"], 0, "{name} is sealed and counted: {s}");
        if s["counted"].as_i64().unwrap() > 0 {
            let eevp = s["eevp"].as_f64().unwrap();
            assert!((eevp - 1.0).abs() < 1e-9, "all of {name} reported: {s}");
        }
    }
}

/// A ballot cast before its state's close but arriving after the seal, and
/// one cast after the close: both refused, neither counted.
fn late_ballots_are_refused(server: &Server, polls: PollClose) {
    let voter = votestream::generate::voter(42, 9); // i % 10 == 9: never voted
    let before_close = chrono::DateTime::from_timestamp_millis(polls.first_close - 1_000)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    for (body, what) in [
        (
            json!({"voter_id": voter.voter_id, "candidate_id": CANDIDATES[0], "voting_time": before_close}),
            "is sealed",
        ),
        (
            json!({"voter_id": voter.voter_id, "candidate_id": CANDIDATES[0]}),
            "after the polls closed",
        ),
    ] {
        let r = server.cast(body.to_string().as_bytes(), None);
        assert_eq!(r.status, 422, "{}", r.body_text());
        let j = r.json();
        assert_eq!(j["reason"], "polls_closed", "{j}");
        assert!(j["message"].as_str().unwrap().contains(what), "{j}");
    }
}

/// `votestream desk`, its log appended to `desk.log` in `dir`.
fn spawn_desk(store: &str, bus: &str, dir: &std::path::Path) -> Desk {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("desk.log"))
        .unwrap();
    command()
        .args([
            "desk",
            "--store",
            store,
            "--bus",
            bus,
            "--allowance-secs",
            "1",
        ])
        .env("VOTESTREAM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Desk)
        .expect("votestream desk starts")
}

/// A `votestream desk` child, SIGKILLed and reaped when dropped, so a
/// failing test leaves no process behind.
struct Desk(Child);

impl Desk {
    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL, never to a child already reaped
        let _ = self.0.wait();
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// The desk inside `serve`: states go from not called to called as their
/// polls close, every call is right, the record survives a restart.
#[test]
fn the_desk_calls_every_state_right_once_its_polls_close() {
    let store = TestStore::new();
    let polls = night(&store.url, VOTERS, FIRST_CLOSE_MS, STEP_MS);
    let mut server = Server::start(&store.url, store.dir.path(), &["--allowance-secs", "1"]);
    let accepted = cast_night(&server, VOTERS);
    assert!(accepted > 200, "{accepted} accepted");
    let early = desk(&server);
    let not_called = early["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"]["status"] != "called")
        .count();
    assert!(
        not_called > 10 && now_millis() < polls.first_close,
        "before any poll closes most states are not called ({not_called} are not)"
    );
    assert_ne!(early["national"]["status"]["status"], "called");
    wait::until(Duration::from_secs(60), "every race called", || {
        all_called(&desk(&server))
    });
    let truth = winners(&server);
    let d = desk(&server);
    check_record(&d, &truth);
    late_ballots_are_refused(&server, polls);
    let metrics = server.get("/metrics").1;
    let calls = metric(
        &metrics,
        "votestream_desk_events_total{kind=\"called\",race=\"state\"}",
    );
    let state_calls = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "called" && e["race"]["kind"] == "state")
        .count();
    assert!(state_calls > 40);
    assert_eq!(calls as usize, state_calls, "{metrics}");
    let called_now = metric(&metrics, "votestream_desk_races{status=\"called\"}");
    assert_eq!(called_now as usize, state_calls, "{metrics}");

    // A restart reads the record back: nothing new, nothing lost.
    server.kill();
    let server = Server::start(&store.url, store.dir.path(), &["--allowance-secs", "1"]);
    let again = desk(&server);
    assert_eq!(again["events"], d["events"]);
    assert!(all_called(&again));
    assert!(store.audit_passes());
}

/// The desk as a process of its own, SIGKILLed after its first calls and
/// restarted: no call lost, duplicated or reversed; on SQLite and PostgreSQL.
fn desk_survives_sigkill(url: &str, bus: &str, dir: &std::path::Path) -> Value {
    let polls = night(url, VOTERS, FIRST_CLOSE_MS, STEP_MS);
    let server = Server::start(url, dir, &["--no-desk"]);
    let mut desk_proc = spawn_desk(url, bus, dir);
    let log = dir.join("desk.log");
    let _show = OnPanic(Box::new(move || {
        eprintln!(
            "desk log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    }));
    cast_night(&server, VOTERS);
    wait::until(
        Duration::from_secs(60),
        "a first call after a close",
        || {
            let d = desk(&server);
            d["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "called")
                && now_millis() > polls.first_close
        },
    );
    desk_proc.kill(); // SIGKILL, mid-night
    let at_kill = desk(&server)["events"].as_array().unwrap().len();
    let mut desk_proc = spawn_desk(url, bus, dir);
    wait::until(Duration::from_secs(60), "every race called", || {
        all_called(&desk(&server))
    });
    let d = desk(&server);
    assert!(
        d["events"].as_array().unwrap().len() > at_kill,
        "the restarted desk went on"
    );
    check_record(&d, &winners(&server));
    let per_race: HashMap<String, usize> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "called")
        .fold(HashMap::new(), |mut m, e| {
            *m.entry(e["race"].to_string()).or_default() += 1;
            m
        });
    assert!(per_race.values().all(|&n| n == 1), "{per_race:?}");
    desk_proc.kill();
    d
}

#[test]
fn a_sigkilled_desk_resumes_without_loss_or_duplicate_on_sqlite() {
    let store = TestStore::new();
    desk_survives_sigkill(&store.url, "memory", store.dir.path());
}

#[test]
fn a_sigkilled_desk_resumes_without_loss_or_duplicate_on_postgres() {
    let db = TempDb::new();
    let dir = tempfile::tempdir().unwrap();
    desk_survives_sigkill(&db.url, "memory", dir.path());
}

/// In the Kafka shape every recorded event is on `race_calls` once, in
/// order, with its number, across the SIGKILL and restart.
#[test]
fn race_calls_carries_each_event_once_in_the_kafka_shape() {
    let kt = KafkaTest::new(1);
    let dir = tempfile::tempdir().unwrap();
    let d = desk_survives_sigkill(&kt.db.url, &kt.bus, dir.path());
    let recorded = d["events"].as_array().unwrap();
    // The restarted desk publishes what it records before the test looks.
    let mut on_topic = Vec::new();
    wait::until(Duration::from_secs(30), "race_calls to catch up", || {
        on_topic = kt
            .read_topic("race_calls")
            .into_iter()
            .map(|(key, payload)| {
                assert_eq!(key.as_deref(), Some(ELECTION));
                serde_json::from_slice::<Value>(&payload).unwrap()
            })
            .collect();
        on_topic.len() >= recorded.len()
    });
    assert_eq!(
        on_topic.len(),
        recorded.len(),
        "no event twice on the topic"
    );
    for (m, e) in on_topic.iter().zip(recorded) {
        assert_eq!(m["event_no"], e["event_no"]);
        assert_eq!(m["election_id"], ELECTION);
        for field in ["race", "kind", "candidate", "position", "margin"] {
            assert_eq!(m[field], e[field], "{m} vs {e}");
        }
    }
}

/// Runs its closure if the test panics (to show a child's log).
struct OnPanic(Box<dyn Fn()>);

impl Drop for OnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            (self.0)();
        }
    }
}
