//! Needs: nothing.
//!
//! `votestream process --input -` fed through a pipe that stays open: a
//! ballot is recorded as soon as it arrives (not once 65,536 lines have
//! come), and SIGTERM records what was read before the process exits (a
//! pipe cannot be read again).

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use support::{command, store_with_voters, voter_id, wait, ChildGuard, ELECTION};

fn line(ballot: u64, voter: u64) -> String {
    let t = (chrono::Utc::now() - chrono::Duration::seconds(5))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    format!(
        "{}\n",
        serde_json::json!({
            "ballot_id": format!("pipe-{ballot}"),
            "election_id": ELECTION,
            "voter_id": voter_id(voter),
            "candidate_id": "c-savior",
            "voting_time": t,
        })
    )
}

fn process(store: &str) -> ChildGuard {
    ChildGuard::spawn(
        command()
            .args(["process", "--store", store, "--input", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
}

/// Ballots recorded so far (accepted or rejected), read beside the writer.
fn recorded(dir: &std::path::Path) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        dir.join("v.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("store opens");
    db.query_row(
        "SELECT (SELECT COUNT(*) FROM votes) + (SELECT COUNT(*) FROM rejected_ballots)",
        [],
        |r| r.get(0),
    )
    .expect("count")
}

fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait::until(Duration::from_secs(30), what, done);
}

fn wait_exit(child: &mut ChildGuard) -> std::process::ExitStatus {
    child.wait_within(Duration::from_secs(60), "process")
}

#[test]
fn a_ballot_piped_in_is_recorded_while_the_pipe_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 10);
    let mut child = process(&store);
    let mut stdin = child.child().stdin.take().expect("stdin");
    for i in 0..3 {
        stdin.write_all(line(i, i).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    wait_for("3 ballots recorded with the pipe still open", || {
        recorded(dir.path()) == 3
    });
    drop(stdin);
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_records_what_was_read_from_the_pipe_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 20_000);
    let mut child = process(&store);
    let mut stdin = child.child().stdin.take().expect("stdin");
    stdin.write_all(line(0, 0).as_bytes()).unwrap();
    wait_for("the first ballot recorded", || recorded(dir.path()) == 1);
    // A burst, and the signal right behind it: some of it read, maybe not
    // yet recorded, when the signal comes.
    let burst: String = (1..20_000).map(|i| line(i, i)).collect();
    let writer = std::thread::spawn(move || {
        // The process stops reading at the signal: the rest of the burst
        // may never be taken (a broken pipe then is expected).
        let _ = stdin.write_all(burst.as_bytes());
        stdin
    });
    std::thread::sleep(Duration::from_millis(30));
    // SAFETY: signals our own child, by its pid.
    unsafe { libc::kill(child.child().id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child);
    drop(writer.join());
    assert!(status.success(), "a stop is clean: {status}");
    let out = {
        use std::io::Read;
        let mut s = String::new();
        child
            .child()
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    // "processed N ballots: …": every ballot read was recorded.
    let consumed: i64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {out:?}"));
    assert!(consumed >= 1, "{out}");
    assert_eq!(recorded(dir.path()), consumed, "{out}");
}
