//! Seeded streams, clean and with one anomaly injected: each detector
//! fires on its anomaly, with the right scope, within two buckets, and a
//! clean stream of the same size raises nothing.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::night::Injection as Inject;
use super::*;

const STATES: [&str; 3] = ["Ohio", "Texas", "Vermont"];
const CANDS: [&str; 3] = ["a", "b", "c"];
/// Stream time where every injection starts, and the night's length.
const AT: Millis = 300_000;
const END: Millis = 600_000;

fn registry() -> Registry {
    Registry {
        registered: STATES.iter().map(|s| (s.to_string(), 1_000_000)).collect(),
        candidates: CANDS.iter().map(|c| c.to_string()).collect(),
        opens: 0,
        closes: STATES.iter().map(|s| (s.to_string(), END)).collect(),
    }
}

/// Ten minutes of stream time: about 30 ballots a second per state from
/// 2,000 sources, 1% refused as already voted, shares steady per state.
fn night(seed: u64, inject: Inject) -> (Vec<AlertEvent>, Watch) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut reg = registry();
    if inject == Inject::TurnoutPush {
        reg.registered.insert("Vermont".into(), 4_000);
    }
    let mut w = Watch::new(AlertConfig::default(), reg);
    let mut out = Vec::new();
    let shares = [[0.5, 0.4], [0.4, 0.5], [0.6, 0.3]];
    let mut t: Millis = 0;
    loop {
        t += rng.random_range(5..=15);
        if t >= END {
            break;
        }
        let si = rng.random_range(0..STATES.len());
        let state = STATES[si];
        let source = format!("ip-{}", rng.random_range(0..2_000));
        let (source, mut cast_at) = (source.as_str(), t);
        let bursting = (AT..AT + 30_000).contains(&t);
        if inject == Inject::Burst && bursting && rng.random_bool(0.6) {
            // One more ballot, from one source, into Ohio: an unknown voter.
            let o = Observation::Received {
                at: t,
                state: Some("Ohio"),
                source: "bot",
            };
            out.extend(w.observe(&o));
            let o = Observation::Rejected {
                at: t,
                state: Some("Ohio"),
                reason: "unknown_voter",
            };
            out.extend(w.observe(&o));
        }
        if inject == Inject::AfterClose && (AT..AT + 1_000).contains(&t) {
            cast_at = END + 5_000;
        }
        out.extend(w.observe(&Observation::Received {
            at: t,
            state: Some(state),
            source,
        }));
        let dup = if inject == Inject::Duplicates && t >= AT && si == 1 {
            0.15
        } else {
            0.01
        };
        if rng.random_bool(dup) {
            let o = Observation::Rejected {
                at: t,
                state: Some(state),
                reason: "already_voted",
            };
            out.extend(w.observe(&o));
            continue;
        }
        let u: f64 = rng.random();
        let mut c = if u < shares[si][0] {
            0
        } else if u < shares[si][0] + shares[si][1] {
            1
        } else {
            2
        };
        if inject == Inject::Swing && t >= AT && si == 2 {
            c = if rng.random_bool(0.85) { 1 } else { 0 };
        }
        let o = Observation::Accepted {
            at: t,
            state,
            candidate: CANDS[c],
            cast_at,
        };
        out.extend(w.observe(&o));
    }
    out.extend(w.finish());
    (out, w)
}

fn opened(events: &[AlertEvent]) -> Vec<&Alert> {
    events
        .iter()
        .filter_map(|e| match e {
            AlertEvent::Opened(a) => Some(a),
            AlertEvent::Resolved(_) => None,
        })
        .collect()
}

/// The first alert of `kind`, which must come within two buckets of the
/// injection and not before it.
fn first_of(events: &[AlertEvent], kind: AlertKind) -> Alert {
    let a = opened(events)
        .into_iter()
        .find(|a| a.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} in {:?}", opened(events)))
        .clone();
    let delay = a.first_seen - AT;
    assert!(
        (0..=10_000).contains(&delay),
        "{kind:?} after {delay} ms: {a:?}"
    );
    a
}

#[test]
fn clean_nights_raise_nothing() {
    for seed in 0..50 {
        let (events, _) = night(seed, Inject::None);
        assert!(events.is_empty(), "seed {seed}: {:?}", opened(&events));
    }
}

#[test]
fn a_burst_from_one_source_is_caught_by_source_and_rate() {
    let (events, _) = night(1, Inject::Burst);
    let a = first_of(&events, AlertKind::SourceConcentration);
    assert_eq!(a.scope.source.as_deref(), Some("bot"));
    assert!(a.evidence.statistic > 0.2 && a.severity == Severity::Warning);
    let r = first_of(&events, AlertKind::RateSpike);
    assert_eq!(r.scope.metric.as_deref(), Some("ballots"));
    assert_eq!(r.scope.state.as_deref(), Some("Ohio"));
    // Once the burst has left the window, the alert is resolved.
    assert!(events.iter().any(|e| matches!(e, AlertEvent::Resolved(a)
        if a.kind == AlertKind::SourceConcentration && a.resolved.is_some())));
}

#[test]
fn a_duplicate_spike_in_one_state_is_scoped_to_it() {
    let (events, _) = night(2, Inject::Duplicates);
    let a = opened(&events)
        .into_iter()
        .find(|a| a.scope.metric.as_deref() == Some("rejected:already_voted"))
        .expect("an already_voted rate alert")
        .clone();
    assert_eq!(a.scope.state.as_deref(), Some("Texas"));
    assert!((0..=10_000).contains(&(a.first_seen - AT)), "{a:?}");
}

#[test]
fn a_vote_after_the_close_is_critical_at_once() {
    let (events, w) = night(3, Inject::AfterClose);
    let a = first_of(&events, AlertKind::OutsidePollingHours);
    assert_eq!(a.severity, Severity::Critical);
    assert!(a.evidence.observed > a.evidence.expected);
    // Invariants stay open.
    assert!(w
        .open_alerts()
        .iter()
        .any(|x| x.kind == AlertKind::OutsidePollingHours));
}

#[test]
fn turnout_past_registration_is_caught_where_it_happens() {
    let (events, _) = night(4, Inject::TurnoutPush);
    let a = opened(&events)
        .into_iter()
        .find(|a| a.kind == AlertKind::TurnoutOverRegistration)
        .expect("turnout over registration")
        .clone();
    assert_eq!(a.scope.state.as_deref(), Some("Vermont"));
    assert_eq!(
        (a.evidence.observed, a.evidence.expected),
        (4_001.0, 4_000.0)
    );
}

#[test]
fn a_share_swing_is_caught_in_its_state_for_its_candidate() {
    let (events, _) = night(5, Inject::Swing);
    let swings: Vec<&Alert> = opened(&events)
        .into_iter()
        .filter(|a| a.kind == AlertKind::ShareSwing)
        .collect();
    let b = swings
        .iter()
        .find(|a| a.scope.candidate.as_deref() == Some("b"))
        .expect("b's swing");
    assert_eq!(b.scope.state.as_deref(), Some("Vermont"));
    assert!((0..=10_000).contains(&(b.first_seen - AT)), "{b:?}");
    assert!(swings
        .iter()
        .all(|a| a.scope.state.as_deref() == Some("Vermont")));
}

#[test]
fn a_tally_that_goes_backwards_is_critical() {
    let mut w = Watch::new(AlertConfig::default(), registry());
    let tally = |at, count| Observation::Tally {
        at,
        state: "Ohio",
        candidate: "a",
        count,
    };
    assert!(w.observe(&tally(1, 10)).is_empty());
    assert!(w.observe(&tally(2, 12)).is_empty());
    let ev = w.observe(&tally(3, 11));
    let a = opened(&ev)[0];
    assert_eq!(
        (a.kind, a.severity),
        (AlertKind::CountWentBackwards, Severity::Critical)
    );
    assert_eq!((a.evidence.observed, a.evidence.expected), (11.0, 12.0));
    // Once per kind and scope.
    assert!(w.observe(&tally(4, 5)).is_empty());
}

#[test]
fn a_vote_for_a_candidate_off_the_ballot_is_caught_and_serializes_plainly() {
    let mut w = Watch::new(AlertConfig::default(), registry());
    let o = Observation::Accepted {
        at: 1,
        state: "Ohio",
        candidate: "zz",
        cast_at: 1,
    };
    let ev = w.observe(&o);
    let a = opened(&ev)[0];
    assert_eq!(a.kind, AlertKind::UnknownCandidate);
    assert_eq!(a.scope.candidate.as_deref(), Some("zz"));
    let json = serde_json::to_string(a).unwrap();
    assert!(
        json.contains(r#""kind":"unknown_candidate""#) && json.contains(r#""severity":"critical""#),
        "{json}"
    );
    let back: Alert = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, a);
}
