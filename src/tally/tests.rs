use super::*;

fn vote(seq: i64, candidate: &str, cast_at: Millis) -> Vote {
    Vote {
        seq,
        ballot_id: format!("b{seq}"),
        election_id: Arc::from("e"),
        voter_id: format!("v{seq}"),
        election_no: 1,
        voter_no: seq,
        candidate_id: Arc::from(candidate),
        state: Arc::from("Ohio"),
        age_band: AgeBand::A25_34,
        gender: Gender::Female,
        cast_at,
        source: None,
        client: None,
    }
}

fn cand(c: &str) -> TallyKey {
    TallyKey::Candidate {
        election: Arc::from("e"),
        candidate: Arc::from(c),
    }
}

#[test]
fn late_votes_count_in_totals_but_not_in_closed_windows() {
    let mut t = Tallies::default();
    let allowance = 60_000;
    t.apply(&vote(1, "a", 10 * MINUTE_MS), allowance);
    // Far ahead in event time: closes the window of minute 10.
    t.apply(&vote(2, "a", 20 * MINUTE_MS), allowance);
    t.apply(&vote(3, "b", 10 * MINUTE_MS + 5), allowance);
    assert_eq!(t.get(&cand("a")), 2);
    assert_eq!(t.get(&cand("b")), 1);
    let late = TallyKey::Late {
        election: Arc::from("e"),
    };
    assert_eq!(t.get(&late), 1);
    let b_minute = TallyKey::Minute {
        election: Arc::from("e"),
        minute: 10 * MINUTE_MS,
        candidate: Arc::from("b"),
    };
    assert_eq!(t.get(&b_minute), 0);
}

#[test]
fn votes_within_the_allowance_land_in_their_window() {
    let mut t = Tallies::default();
    t.apply(&vote(1, "a", 10 * MINUTE_MS + 30_000), 60_000);
    // 50 s later in event time than the window's end minus the allowance: still open.
    t.apply(&vote(2, "a", 11 * MINUTE_MS + 50_000), 60_000);
    t.apply(&vote(3, "a", 10 * MINUTE_MS), 60_000);
    let m10 = TallyKey::Minute {
        election: Arc::from("e"),
        minute: 10 * MINUTE_MS,
        candidate: Arc::from("a"),
    };
    assert_eq!(t.get(&m10), 2);
}

#[test]
fn take_dirty_returns_each_changed_key_once() {
    let mut t = Tallies::default();
    t.apply(&vote(1, "a", 0), 60_000);
    t.apply(&vote(2, "a", 0), 60_000);
    let dirty = t.take_dirty();
    assert!(dirty.contains(&(cand("a"), 2)));
    assert!(t.take_dirty().is_empty());
}
