//! Polling with a deadline: against hangs, never a timing assertion.

use std::time::{Duration, Instant};

/// How often [`until`] looks again.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `done` until it holds; fails the test after `limit`, naming `what`.
pub fn until(limit: Duration, what: &str, done: impl FnMut() -> bool) {
    until_every(limit, POLL, what, done, String::new);
}

/// Polls `done` every `every` until it holds; fails the test after
/// `limit`, naming `what` and adding what `context` says at that moment
/// (e.g. the logs of the processes waited for).
pub fn until_every(
    limit: Duration,
    every: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(every);
    }
}

/// Takes a `sample` every `every` until `done` holds for it or `limit`
/// has passed, and returns the last sample either way: the caller's
/// assertions on it then say what is wrong.
pub fn settle<T>(
    limit: Duration,
    every: Duration,
    mut sample: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let s = sample();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(every);
    }
}
