//! Child processes: the `votestream` binary under test, and the repository's
//! scripts. Every child is started with a deadline: if it outlives it, it is
//! killed (SIGKILL to its PID, never to a child already reaped) and the test
//! fails with what the child wrote on stderr, the only clue to a hang.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Far more than any command here needs, even in a loaded CI machine.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// For the repository's scripts, which may fetch and start servers.
pub const SCRIPT_DEADLINE: Duration = Duration::from_secs(600);

/// The binary under test. `VOTESTREAM_TEST_BIN` runs the tests against
/// another build (e.g. the code before a fix, to see a test fail).
pub fn bin() -> String {
    std::env::var("VOTESTREAM_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_votestream").into())
}

/// `program` with no `VOTESTREAM_*` variable of the caller's environment:
/// every flag has one, and none may leak in and change what a test runs.
pub fn scrubbed(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VOTESTREAM_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The binary under test, with a scrubbed environment (see [`scrubbed`]).
pub fn command() -> Command {
    scrubbed(bin())
}

/// `bash scripts/<name>` of this repository.
pub fn script(name: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR")));
    cmd
}

/// Runs a script command to completion (bounded by [`SCRIPT_DEADLINE`]),
/// asserting exit 0; returns its stdout, trimmed.
pub fn script_ok(cmd: &mut Command) -> String {
    let out = output_within(cmd, SCRIPT_DEADLINE);
    assert!(out.status.success(), "{cmd:?} failed: {}", describe(&out));
    stdout(&out).trim().to_string()
}

/// A child process that is killed (SIGKILL, by its PID) and reaped if the
/// test lets go of it while it still runs, e.g. on a failed assertion.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
        ChildGuard(Some(child))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child still held")
    }

    /// SIGKILL and reap; returns the exit status.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.0.take().expect("child still held");
        // An error here means it already exited; wait() reports how.
        let _ = child.kill();
        child.wait().expect("reaping the child")
    }

    /// Waits for the child to exit; SIGKILLs it and fails the test, naming
    /// `what`, if it still runs after `limit`. The child stays held (its
    /// pipes can still be read).
    pub fn wait_within(&mut self, limit: Duration, what: &str) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child().try_wait().expect("polling the child") {
                return status;
            }
            if started.elapsed() > limit {
                let status = self.kill();
                panic!("{what} still ran after {limit:?}; killed ({status})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the child to exit while draining its piped stdout and
    /// stderr (so a chatty child never blocks on a full pipe); SIGKILLs it
    /// and fails the test with its stderr if it still runs after `limit`.
    pub fn output_within(mut self, limit: Duration, what: &str) -> Output {
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let child = self.child();
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child().try_wait().expect("polling the child") {
                self.0 = None;
                break status;
            }
            if started.elapsed() > limit {
                let status = self.kill();
                // A grandchild may still hold the pipe: wait a little, not forever.
                let held = Instant::now() + Duration::from_secs(5);
                while !err.is_finished() && Instant::now() < held {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let stderr = match err.is_finished() {
                    true => err.join().unwrap_or_default(),
                    false => b"(still held open by another process)".to_vec(),
                };
                panic!(
                    "{what} still ran after {limit:?}; killed ({status}); its stderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` (stdin empty, stdout and stderr captured) bounded by `limit`;
/// any exit status.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    ChildGuard::spawn(cmd).output_within(limit, &what)
}

/// Runs `cmd` with the test's own stdout and stderr, bounded by `limit`.
pub fn status_within(cmd: &mut Command, limit: Duration) -> ExitStatus {
    let what = format!("{cmd:?}");
    ChildGuard::spawn(cmd).wait_within(limit, &what)
}

fn shown<S: AsRef<OsStr>>(args: &[S]) -> Vec<String> {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// Runs the binary with `args`, bounded by `limit`; any exit status.
pub fn votestream_within<S: AsRef<OsStr>>(args: &[S], limit: Duration) -> Output {
    let mut cmd = command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&mut cmd).output_within(limit, &format!("votestream {:?}", shown(args)))
}

/// Runs the binary with `args`, bounded by [`DEADLINE`]; any exit status.
pub fn votestream<S: AsRef<OsStr>>(args: &[S]) -> Output {
    votestream_within(args, DEADLINE)
}

/// [`votestream_within`], asserting exit 0.
pub fn votestream_ok_within<S: AsRef<OsStr>>(args: &[S], limit: Duration) -> Output {
    let out = votestream_within(args, limit);
    assert!(
        out.status.success(),
        "votestream {:?} failed: {}",
        shown(args),
        describe(&out)
    );
    out
}

/// [`votestream`], asserting exit 0.
pub fn votestream_ok<S: AsRef<OsStr>>(args: &[S]) -> Output {
    votestream_ok_within(args, DEADLINE)
}

/// The binary started with `args` (stdin empty, stdout and stderr piped),
/// for a test that acts while it runs; read it with
/// [`ChildGuard::output_within`].
pub fn spawn<S: AsRef<OsStr>>(args: &[S]) -> ChildGuard {
    let mut cmd = command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&mut cmd)
}

/// Arguments of `votestream run ... --rate max --until-done` on a free port.
pub fn run_args(url: &str, voters: u64, seed: u64) -> Vec<String> {
    [
        "run",
        "--store",
        url,
        "--voters",
        &voters.to_string(),
        "--seed",
        &seed.to_string(),
        "--rate",
        "max",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
