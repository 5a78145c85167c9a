//! A count the model cannot describe suspends it for the night: one
//! recorded event, no projection after it, certain ranges instead of
//! intervals, and calls as before.

use super::*;

/// Ohio as given among 50 states counted as their baseline says.
fn ohio(counted: [u64; 3], final_total: Option<u64>, position: i64) -> Snapshot {
    among_others(one_state(10_000, counted, final_total, position))
}

/// The same, with Texas's 3,500 counted votes all for one candidate: an
/// order of counting no exchangeable model gives (the baseline has the
/// others at over a third).
fn texas_all_one(counted: [u64; 3], final_total: Option<u64>, position: i64) -> Snapshot {
    let mut snap = ohio(counted, final_total, position);
    let tx = snap.states.iter_mut().find(|s| s.state == "Texas").unwrap();
    tx.counted = vec![0, 3500, 0];
    snap
}

/// Ohio's events and the suspension, in order (the other states' are noise here).
fn kinds(ev: &[DeskEvent]) -> Vec<EventKind> {
    mine(ev).iter().map(|e| e.kind).collect()
}

fn mine(ev: &[DeskEvent]) -> Vec<DeskEvent> {
    ev.iter()
        .filter(|e| e.kind == EventKind::Suspended || e.race == Race::State("Ohio".into()))
        .cloned()
        .collect()
}

#[test]
fn a_count_all_for_one_candidate_suspends_the_model_once() {
    let mut desk = Desk::new(DeskConfig::default());
    // A plausible count first: Ohio projected, nothing suspended.
    let (v, ev) = desk.observe(&ohio([2000, 1000, 200], Some(7000), 1));
    assert!(!v.suspended);
    assert_eq!(kinds(&ev), [EventKind::Projected]);
    let (v, ev) = desk.observe(&texas_all_one([2000, 1000, 200], Some(7000), 2));
    assert!(v.suspended);
    assert_eq!(kinds(&ev), [EventKind::Suspended, EventKind::Withdrawn]);
    let s = &mine(&ev)[0];
    assert_eq!(s.race, Race::National);
    assert!(s
        .conflict
        .is_some_and(|c| c > DeskConfig::default().prior_conflict));
    // The statement shown for Ohio is now the certain range.
    let sh = &v.states[0].shares;
    // 3,800 votes are outstanding of a sealed 7,000.
    assert_eq!((sh[0].lo, sh[0].hi), (2000.0 / 7000.0, 5800.0 / 7000.0));
    assert_eq!((sh[1].lo, sh[1].hi), (1000.0 / 7000.0, 4800.0 / 7000.0));
    assert!(v
        .states
        .iter()
        .all(|s| !matches!(s.status, Status::Projected { .. })));
    // It stays suspended, however normal the count looks later, and is
    // not recorded again; a certain call still comes.
    let (v, ev) = desk.observe(&ohio([2300, 1100, 300], Some(7000), 3));
    assert!(v.suspended && kinds(&ev).is_empty(), "{ev:?}");
    let (v, ev) = desk.observe(&ohio([4000, 1500, 300], Some(7000), 4));
    assert!(v.suspended);
    assert_eq!(kinds(&ev), [EventKind::Called]);
}

#[test]
fn a_resumed_desk_stays_suspended() {
    let mut desk = Desk::new(DeskConfig::default());
    let mut log = Vec::new();
    log.extend(desk.observe(&ohio([2000, 1000, 200], Some(7000), 1)).1);
    log.extend(
        desk.observe(&texas_all_one([2000, 1000, 200], Some(7000), 2))
            .1,
    );
    let mut resumed = Desk::resume(DeskConfig::default(), &log);
    let (v, again) = resumed.observe(&texas_all_one([2000, 1000, 200], Some(7000), 2));
    assert!(v.suspended && again.is_empty(), "{again:?}");
    let (v, again) = resumed.observe(&ohio([2300, 1100, 300], Some(7000), 3));
    assert!(v.suspended && again.is_empty(), "{again:?}");
    // A desk that never saw the event projects Ohio there.
    let (fresh, ev) =
        Desk::new(DeskConfig::default()).observe(&ohio([2300, 1100, 300], Some(7000), 3));
    assert!(!fresh.suspended);
    assert_eq!(kinds(&ev), [EventKind::Projected]);
}

#[test]
fn the_event_reads_back_and_others_keep_their_shape() {
    let mut desk = Desk::new(DeskConfig::default());
    desk.observe(&ohio([2000, 1000, 200], Some(7000), 1));
    let (_, ev) = desk.observe(&texas_all_one([2000, 1000, 200], Some(7000), 2));
    let ev = mine(&ev);
    let json = serde_json::to_string(&ev[0]).unwrap();
    assert!(json.contains(r#""kind":"suspended""#) && json.contains(r#""conflict":"#));
    let back: DeskEvent = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ev[0]);
    // Events of the other kinds are written exactly as before: no new key.
    assert!(!serde_json::to_string(&ev[1]).unwrap().contains("conflict"));
}
