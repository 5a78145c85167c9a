//! Needs: nothing.
//!
//! The race desk over 200 synthetic nights (small electorates, to stay
//! quick): no call is ever wrong, reversed or missing; the shown share
//! intervals cover the final shares near their nominal rate where the
//! counting order is one the model allows for; where it is not (the
//! adversarial order), the desk suspends its model early and shows certain
//! ranges, every one of which holds.

use votestream::desk::check::check;
use votestream::desk::night::Ordering;

#[test]
fn two_hundred_nights_without_a_wrong_call() {
    let report = check(200, 2026, 60_000);
    println!("{report}");
    assert!(report.failures().is_empty(), "{:#?}", report.failures());
    let total = report.total();
    assert_eq!(total.wrong_calls, 0);
    assert!(total.calls >= 200 * 51, "races end called: {}", total.calls);
    for o in [Ordering::Random, Ordering::Skewed] {
        let t = report.tally(o);
        let c = t.coverage();
        assert!(
            (c - report.nominal).abs() <= 0.05,
            "{o:?}: coverage {c:.3} vs nominal {}",
            report.nominal
        );
        assert_eq!(t.suspended, 0, "{o:?}: a clean night suspended the model");
    }
    // A certain range that missed would be among the failures above.
    let adv = report.tally(Ordering::Adversarial);
    assert_eq!(
        adv.suspended, adv.nights,
        "every adversarial night suspends"
    );
    assert!(adv.suspended_at() < 0.05, "late: {}", adv.suspended_at());
    assert!(
        adv.intervals * 1000 < adv.ranges,
        "statistical intervals still shown under an adversarial order: {} vs {} certain",
        adv.intervals,
        adv.ranges
    );
}
