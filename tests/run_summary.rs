//! Needs: nothing.
//!
//! The run summary accounts for every ballot the simulator sent: received by
//! the election, rejected with no usable election (unknown or unreadable:
//! no election's `received` counts them), or replays of earlier ballots.

mod support;

#[test]
fn every_ballot_sent_is_counted_somewhere() {
    let t = support::TestStore::new();
    let out = t.run(3000, 7);
    let support::RunSummary {
        line,
        sent,
        received,
        orphans,
        replays,
    } = support::run_summary(&out);
    assert!(
        orphans > 0,
        "the simulator sends unreadable ballots: {line}"
    );
    assert_eq!(sent, received + orphans + replays, "{line}");
    // And the election's own figure is the store's.
    assert_eq!(
        received as i64,
        t.results()["received"].as_i64().unwrap(),
        "{line}"
    );
}
