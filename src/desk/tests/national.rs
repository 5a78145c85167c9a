//! The national race: the Electoral College and the popular vote.

use super::*;

#[test]
fn unknown_states_are_races_worth_no_electoral_votes() {
    let mut snap = one_state(100, [60, 10, 0], Some(75), 1);
    snap.states[0].state = "Atlantis".into();
    let (v, ev) = Desk::new(DeskConfig::default()).observe(&snap);
    assert_eq!(
        (v.states[0].electoral_votes, v.states[0].code.as_str()),
        (0, "")
    );
    // (No third-party vote in 70 also suspends the model: see suspended.rs.)
    let calls = ev.iter().filter(|e| e.kind == EventKind::Called).count();
    assert!(is_called(&v.states[0].status) && calls == 1, "{ev:?}");
    assert_eq!(v.national.total_ev, 0);
    assert!(!is_called(&v.national.status));
}

/// Every state sealed; those `done` says are fully counted, for the party
/// their lean favours, the rest not counted at all.
fn map(mut done: impl FnMut(&crate::states::UsState) -> bool) -> Snapshot {
    let states = crate::states::STATES
        .iter()
        .map(|s| {
            let counted = if !done(s) {
                vec![0, 0, 0]
            } else if s.lean > 0.0 {
                vec![600, 300, 100]
            } else {
                vec![300, 600, 100]
            };
            StateInput {
                state: s.name.into(),
                registered: 1500,
                counted,
                final_total: Some(1000),
                polls_closed: true,
            }
        })
        .collect();
    Snapshot {
        now: 0,
        position: 1,
        candidates: names(),
        states,
    }
}

#[test]
fn the_nation_is_called_at_270_called_electoral_votes() {
    let (v, ev) = Desk::new(DeskConfig::default()).observe(&map(|_| true));
    let n = &v.national;
    assert_eq!((n.total_ev, n.threshold), (538, 270));
    let red: u16 = crate::states::STATES
        .iter()
        .filter(|s| s.lean < 0.0)
        .map(|s| s.electoral_votes)
        .sum();
    assert!(red >= 270);
    assert_eq!(n.called_ev[1], (names()[1].clone(), red));
    assert_eq!(n.called_ev[0].1 + red, 538);
    assert_eq!(
        n.status,
        Status::Called {
            candidate: names()[1].clone()
        }
    );
    assert!(ev
        .iter()
        .any(|e| e.race == Race::National && e.kind == EventKind::Called));
    // Fewer than 270 called: the nation is not called, whatever else shows.
    let mut total = 0;
    let (v, _) = Desk::new(DeskConfig::default()).observe(&map(|s| {
        let take = s.lean < 0.0 && total + s.electoral_votes < 270;
        total += if take { s.electoral_votes } else { 0 };
        take
    }));
    assert!(v.national.called_ev[1].1 < 270);
    assert!(!is_called(&v.national.status), "{:?}", v.national.status);
}

#[test]
fn the_popular_vote_is_called_on_the_summed_bound() {
    let cfg = DeskConfig {
        popular_vote: true,
        ..DeskConfig::default()
    };
    let (v, _) = Desk::new(cfg.clone()).observe(&one_state(1000, [600, 100, 0], Some(800), 1));
    assert_eq!(
        v.national.status,
        Status::Called {
            candidate: names()[0].clone()
        }
    );
    let (v, _) = Desk::new(cfg).observe(&one_state(1000, [500, 100, 0], None, 1));
    assert!(
        !is_called(&v.national.status),
        "margin 400 = outstanding 400"
    );
    assert!((v.national.popular[0].share - v.states[0].shares[0].share).abs() < 1e-9);
}
