//! Needs: PostgreSQL, Kafka.
//!
//! The alerts stage on a night written into the store's ledger, on SQLite
//! and on PostgreSQL. The night: 60 ballots a second for 8 minutes across
//! the country, then a burst of votes in one state, a share swing in a
//! second and a spike of already-voted attempts in a third. Each anomaly
//! raises its alert with that state as scope, within 10 s of stream time,
//! and nothing is raised anywhere else. Then `votestream alerts`, killed
//! with SIGKILL again and again while it reads the same night in a second
//! store and restarted each time, records exactly the changes one stage
//! that was never interrupted records: none lost, none twice, each one
//! also POSTed to a webhook (which refuses the first try with a 503) once.
//! The API serves the recorded alerts, filtered by state, kind and status.
//! In the Kafka shape each recorded change is on the `alerts` topic once,
//! in order, across SIGKILLs. A replay of the night into a store of its own
//! records the same changes (`votestream compare` finds no difference).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::alert_night::{
    record_night, BURST, BURST_AT_S, DUPLICATES, DUPLICATES_AT_S, SWING, SWING_AT_S,
};
use support::{command, ChildGuard, KafkaTest, KillMoments, Server, TempDb, ELECTION};
use votestream::alerts::stage::{AlertChange, AlertStage, Change};
use votestream::alerts::{AlertConfig, AlertKind};
use votestream::model::Millis;
use votestream::process::Registry;
use votestream::store::{LedgerPosition, Store, StoreUrl};

fn stage(url: &str) -> AlertStage {
    let store = StoreUrl::parse(url).unwrap().open().unwrap();
    AlertStage::open(
        store,
        ELECTION,
        "builtin",
        AlertConfig::default(),
        Vec::new(),
    )
    .unwrap()
}

/// One stage, never interrupted, to the end of the ledger.
fn uninterrupted(url: &str) -> Vec<AlertChange> {
    let mut s = stage(url);
    let mut all = Vec::new();
    loop {
        let (changes, full) = s.step(votestream::model::now_millis()).unwrap();
        let quiet = changes.is_empty() && !full;
        all.extend(changes);
        if quiet {
            return all;
        }
    }
}

fn recorded(url: &str) -> Vec<String> {
    let mut store = StoreUrl::parse(url).unwrap().open().unwrap();
    store.alert_events(ELECTION, 0).unwrap()
}

fn night_alerts_are_right(changes: &[AlertChange], start: Millis) {
    let opened: Vec<&AlertChange> = changes
        .iter()
        .filter(|c| c.change == Change::Opened)
        .collect();
    for c in &opened {
        eprintln!(
            "  opened {:?} {:?} at {:+} s",
            c.alert.kind,
            c.alert.scope,
            (c.alert.first_seen - start) / 1000
        );
    }
    let found = |state: &str, at_s: u64, what: &dyn Fn(&AlertChange) -> bool| {
        let hit = opened
            .iter()
            .find(|c| c.alert.scope.state.as_deref() == Some(state) && what(c))
            .unwrap_or_else(|| panic!("no alert for the anomaly in {state}"));
        let delay = hit.alert.first_seen - (start + at_s as Millis * 1000);
        assert!(
            (0..=10_000).contains(&delay),
            "the alert for {state} came {delay} ms after the anomaly began (allowed 0..=10 s)"
        );
    };
    let rate =
        |c: &AlertChange| matches!(c.alert.kind, AlertKind::RateSpike | AlertKind::RateShift);
    found(BURST, BURST_AT_S, &|c| {
        rate(c) && c.alert.scope.metric.as_deref() == Some("accepted")
    });
    found(SWING, SWING_AT_S, &|c| {
        c.alert.kind == AlertKind::ShareSwing
    });
    found(DUPLICATES, DUPLICATES_AT_S, &|c| {
        rate(c) && c.alert.scope.metric.as_deref() == Some("rejected:already_voted")
    });
    for c in &opened {
        let state = c.alert.scope.state.as_deref().unwrap_or("");
        assert!(
            [BURST, SWING, DUPLICATES].contains(&state),
            "a false alarm outside the anomalies' states: {c:?}"
        );
    }
}

/// `votestream alerts` killed with SIGKILL `kills` times while it reads,
/// then left to finish (and its webhook POSTs with it); returns what it
/// recorded.
fn killed_and_restarted(
    url: &str,
    kills: usize,
    moments: &mut KillMoments,
    hook: &Hook,
    bus: &str,
) -> Vec<String> {
    let spawn = || {
        ChildGuard::spawn(
            command()
                // Small looks: a kill lands between many saves.
                .args([
                    "alerts",
                    "--store",
                    url,
                    "--election",
                    ELECTION,
                    "--read-batch",
                    "300",
                    "--alert-webhook",
                    &hook.url,
                    "--bus",
                    bus,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )
    };
    let mut store = StoreUrl::parse(url).unwrap().open().unwrap();
    // The end of both ledgers: the last votes read may come before the
    // last rejections in stream time, so the votes' end alone is not done.
    let end = LedgerPosition {
        votes: store
            .votes_after(0, usize::MAX)
            .unwrap()
            .last()
            .unwrap()
            .seq,
        rejections: store
            .rejections_after(0, 1_000_000)
            .unwrap()
            .last()
            .map_or(0, |r| r.0),
    };
    let mut stood = Vec::new();
    let position = |store: &mut Box<dyn Store>| {
        store
            .alert_resume(ELECTION)
            .unwrap()
            .map_or(LedgerPosition::default(), |r| r.at)
    };
    for i in 0..kills {
        let before = position(&mut store);
        if before == end {
            break;
        }
        let mut child = spawn();
        // Once it has saved a look of its own past its share of the night
        // (the kills spread over the ledger), at a moment among the next ones.
        let due = (end.votes * (i as i64 + 1) / (kills as i64 + 1)).max(before.votes + 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while position(&mut store).votes < due && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(moments.between(0, 60)));
        child.kill();
        stood.push(position(&mut store));
    }
    eprintln!("killed at ledger positions {stood:?} of {end:?}");
    let from = store.alert_events(ELECTION, 0).unwrap().len() as i64;
    assert!(
        stood.iter().any(|&p| p != end),
        "no kill came before the stage had read the whole ledger: {stood:?}"
    );
    // The last run's first POST is refused, and must be tried again.
    hook.refuse_next();
    let mut child = spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let at = store.alert_resume(ELECTION).unwrap().map(|r| r.at);
        if at == Some(end) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stage did not reach the ledger's end ({end:?}) in 120 s: at {at:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let record = recorded(url);
    let due: Vec<i64> = (from..record.len() as i64).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !due.iter().all(|n| hook.numbers().contains(n)) {
        assert!(
            Instant::now() < deadline,
            "the webhook did not get changes {due:?} within 30 s: it has {:?}",
            hook.numbers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill();
    if !due.is_empty() {
        assert!(
            hook.refused().is_some(),
            "the last run's first POST was not refused"
        );
    }
    record
}

fn scenario(first: &str, second: &str) {
    let start = record_night(&mut *StoreUrl::parse(first).unwrap().open().unwrap(), None);
    record_night(
        &mut *StoreUrl::parse(second).unwrap().open().unwrap(),
        Some(start),
    );
    let reference = uninterrupted(first);
    night_alerts_are_right(&reference, start);
    let reference: Vec<String> = reference
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    assert_eq!(
        recorded(first),
        reference,
        "what the stage recorded is what it returned"
    );
    api_serves_the_record(first, reference.len());
    let hook = Hook::start();
    let mut moments = KillMoments::new("alerts_stage");
    let survived = killed_and_restarted(second, 6, &mut moments, &hook, "memory");
    assert_eq!(
        survived, reference,
        "killed and restarted, the stage recorded other changes than one never interrupted"
    );
    // Each change POSTed once, as recorded, by the run that recorded it (a
    // kill between the record and the POST can lose one: the record is what
    // counts); the last run's, refused at first, all arrived (waited for above).
    let got = hook.received();
    let mut numbers = hook.numbers();
    let sent = numbers.len();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), sent, "a change was delivered twice");
    for v in &got {
        let no = v["event_no"].as_u64().unwrap() as usize;
        let mut body = v.clone();
        let obj = body.as_object_mut().unwrap();
        assert_eq!(obj.remove("election_id").unwrap(), ELECTION);
        obj.remove("event_no");
        let recorded: serde_json::Value = serde_json::from_str(&reference[no]).unwrap();
        assert_eq!(
            body, recorded,
            "change {no} as POSTed differs from the record"
        );
    }
}

/// The alerts API over the store the stage recorded into.
fn api_serves_the_record(url: &str, changes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(url, dir.path(), &["--no-desk", "--no-alerts"]);
    let path = format!("/api/v1/elections/{ELECTION}/alerts");
    let all = server.json(&path);
    let alerts = all["alerts"].as_array().unwrap();
    let opened = alerts.len();
    assert!(opened > 0 && opened <= changes, "{all}");
    assert_eq!(all["total"].as_u64(), Some(opened as u64));
    let ids: Vec<i64> = alerts.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let ca = server.json(&format!("{path}?state={}", BURST));
    let ca = ca["alerts"].as_array().unwrap();
    assert!(!ca.is_empty() && ca.iter().all(|a| a["scope"]["state"] == BURST));
    let open = server.json(&format!("{path}?status=open"));
    let open = open["alerts"].as_array().unwrap();
    assert!(open
        .iter()
        .all(|a| a["open"] == true && a["resolved"].is_null()));
    assert_eq!(open.len() as u64, all["open"].as_u64().unwrap());
    let swings = server.json(&format!("{path}?kind=share_swing"));
    assert!(swings["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["kind"] == "share_swing"));
    let (status, body) = server.get(&format!("{path}?kind=benford"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_kind"), "{body}");
    let (status, body) = server.get(&format!("{path}?status=maybe"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_status"), "{body}");
    // The SSE frame carries them too.
    let frame = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    assert!(frame.get("candidates").is_some());
}

/// A webhook receiver on a free port: answers 200 and keeps the body, or
/// 503 to one POST when told to.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    /// 1: refuse the next POST; 2: refused it.
    refusals: Arc<AtomicUsize>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let refusals = Arc::new(AtomicUsize::new(0));
        let (b, r) = (bodies.clone(), refusals.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (b, r) = (b.clone(), r.clone());
                std::thread::spawn(move || serve_hook(&mut conn, &b, &r));
            }
        });
        Hook {
            url,
            bodies,
            refusals,
        }
    }

    fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }

    fn refuse_next(&self) {
        self.refusals.store(1, Ordering::SeqCst);
    }

    fn refused(&self) -> Option<()> {
        (self.refusals.load(Ordering::SeqCst) == 2).then_some(())
    }

    fn numbers(&self) -> Vec<i64> {
        self.received()
            .iter()
            .map(|v| v["event_no"].as_i64().unwrap())
            .collect()
    }
}

/// Requests on one connection (keep-alive), until it closes.
fn serve_hook(
    conn: &mut TcpStream,
    bodies: &Mutex<Vec<serde_json::Value>>,
    refusals: &AtomicUsize,
) {
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < end + 4 + len {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf[end + 4..end + 4 + len].to_vec();
        buf.drain(..end + 4 + len);
        let refuse = refusals
            .compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        let answer: &[u8] = if refuse {
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
        } else {
            bodies
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        };
        if conn.write_all(answer).is_err() {
            return;
        }
    }
}

#[test]
fn alerts_on_sqlite_find_the_anomalies_and_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    scenario(&url("a.db"), &url("b.db"));
}

/// In a run the stage takes the voters' states from the processor's
/// registry instead of the store; and a stage reading a little at
/// a time cuts the ledger elsewhere. Neither changes what it records.
#[test]
fn given_states_and_small_reads_record_what_a_plain_stage_does() {
    let dir = tempfile::tempdir().unwrap();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    let (a, b) = (url("a.db"), url("b.db"));
    let start = record_night(&mut *StoreUrl::parse(&a).unwrap().open().unwrap(), None);
    record_night(
        &mut *StoreUrl::parse(&b).unwrap().open().unwrap(),
        Some(start),
    );
    let reference = uninterrupted(&a);
    assert!(!reference.is_empty());
    let mut store = StoreUrl::parse(&b).unwrap().open().unwrap();
    let registry = Arc::new(Registry::load(&mut *store).unwrap());
    let mut s = stage(&b).read_limit(97).with_registry(registry);
    let mut got = Vec::new();
    let mut looks = 0;
    loop {
        looks += 1;
        let (changes, full) = s.step(votestream::model::now_millis()).unwrap();
        let quiet = changes.is_empty() && !full;
        got.extend(changes);
        if quiet {
            break;
        }
    }
    assert!(looks > 100, "the reads were not small: {looks} looks");
    assert_eq!(got, reference);
}

#[test]
fn alerts_on_postgres_find_the_anomalies_and_survive_sigkill() {
    let (a, b) = (TempDb::new(), TempDb::new());
    scenario(&a.url, &b.url);
}

#[test]
fn the_alerts_topic_carries_each_change_once_across_sigkills() {
    let kt = KafkaTest::new(1);
    let start = record_night(
        &mut *StoreUrl::parse(&kt.db.url).unwrap().open().unwrap(),
        None,
    );
    let hook = Hook::start();
    let mut moments = KillMoments::new("alerts_topic");
    let recorded = killed_and_restarted(&kt.db.url, 3, &mut moments, &hook, &kt.bus);
    let changes: Vec<AlertChange> = recorded
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    night_alerts_are_right(&changes, start);
    let mut on_topic = Vec::new();
    support::wait::until(
        Duration::from_secs(30),
        "the alerts topic to catch up",
        || {
            on_topic = kt
                .read_topic("alerts")
                .into_iter()
                .map(|(key, payload)| {
                    assert_eq!(key.as_deref(), Some(ELECTION));
                    serde_json::from_slice::<serde_json::Value>(&payload).unwrap()
                })
                .collect();
            on_topic.len() >= recorded.len()
        },
    );
    assert_eq!(
        on_topic.len(),
        recorded.len(),
        "no change twice on the topic"
    );
    for (no, (m, body)) in on_topic.iter().zip(&recorded).enumerate() {
        let mut m = m.clone();
        let obj = m.as_object_mut().unwrap();
        assert_eq!(obj.remove("event_no").unwrap(), no as i64);
        assert_eq!(obj.remove("election_id").unwrap(), ELECTION);
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(m, body, "change {no} on the topic differs from the record");
    }
}

#[test]
fn a_replay_records_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    let (original, replayed) = (url("night.db"), url("replay.db"));
    record_night(
        &mut *StoreUrl::parse(&original).unwrap().open().unwrap(),
        None,
    );
    // The night was written straight into the ledger: count it, as a run would.
    support::votestream_ok(&["aggregate", "--store", &original]);
    let reference = uninterrupted(&original);
    assert!(!reference.is_empty());
    let out = support::votestream_ok(&["replay", "--from", &original, "--into", &replayed]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("{} alert changes", reference.len())),
        "{said}"
    );
    assert_eq!(recorded(&replayed), recorded(&original));
    let out = support::votestream(&["compare", &original, &replayed]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
