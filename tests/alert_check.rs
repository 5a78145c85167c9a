//! Needs: nothing.
//!
//! The alert detectors on seeded streams (ten minutes of stream time, 51
//! states, 300 ballots a second): every injected anomaly is found by the
//! detector made for it, in its place, within 10 s of stream time at p99,
//! and no clean stream (or any other place) raises an alert.

use votestream::alerts::check::check;

#[test]
fn every_anomaly_is_found_and_clean_nights_stay_quiet() {
    let report = check(20, 2026);
    println!("{report}");
    assert_eq!(report.detections.len(), 6, "{report}");
    for (name, d) in &report.detections {
        assert_eq!((d.nights, d.missed()), (20, 0), "{name}: {report}");
        assert!(
            d.delay(0.99).is_some_and(|x| x <= 10_000),
            "{name}: {report}"
        );
    }
    assert_eq!(report.clean_nights, 20);
    assert_eq!(report.false_alarm_count(), 0, "{report}");
    assert!(report.strays.is_empty(), "{report}");
    assert!(report.passes(10_000));
}
