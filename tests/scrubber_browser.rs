//! Needs: Chromium.
//!
//! The dashboard's timeline scrubber in headless Chromium: dragged back
//! through a recorded night, the page shows the counts as of that moment
//! (those the API gives for the position it names, fewer than now); "Live"
//! brings back the live counts.

mod support;

use support::browser::{digits, Driver};
use support::*;

/// The position the scrubber's label names: "as of vote N of M · time".
fn shown_position(label: &str) -> Option<i64> {
    let rest = label.strip_prefix("as of vote ")?;
    Some(digits(rest.split(" of ").next()?))
}

#[test]
fn dragging_the_scrubber_back_shows_earlier_counts_and_live_returns_to_now() {
    let s = TestStore::new();
    s.run(4_000, 5);
    let server = Server::start(&s.url, s.dir.path(), &["--no-desk"]);
    let path = format!("/api/v1/elections/{ELECTION}/results");
    let live = server.json(&path);
    let (accepted, rejected) = (int(&live, "accepted"), int(&live, "rejected"));
    assert!(
        accepted > 1000,
        "a night to go back through: {accepted} votes"
    );

    let d = Driver::start();
    d.goto(&server.url("/"));
    d.wait("the live counts", |d| {
        digits(&d.text("n-accepted")) == accepted && d.text("scrub-at") == "live"
    });
    let width = d.js("return document.getElementById('scrub').getBoundingClientRect().width");
    let half = width.as_f64().expect("the scrubber's width") as i64 / 2;
    // From the handle at the right end to about a quarter of the way.
    d.drag("#scrub", half - 3, -half / 2);
    d.wait("the counts as of an earlier moment", |d| {
        shown_position(&d.text("scrub-at")).is_some_and(|n| n > 0 && n < accepted)
    });
    let label = d.text("scrub-at");
    let at = shown_position(&label).unwrap();
    let then = server.json(&format!("{path}?at={at}"));
    assert!(int(&then, "accepted") < accepted, "{label}");
    d.wait(
        "the page to show the counts as of the position named",
        |d| {
            digits(&d.text("n-accepted")) == int(&then, "accepted")
                && digits(&d.text("n-rejected")) == int(&then, "rejected")
        },
    );
    assert!(
        !d.js("return document.getElementById('live').disabled")
            .as_bool()
            .unwrap(),
        "Live is offered while looking back"
    );

    d.click("#live");
    d.wait("the live counts again", |d| {
        digits(&d.text("n-accepted")) == accepted
            && digits(&d.text("n-rejected")) == rejected
            && d.text("scrub-at") == "live"
    });
}
