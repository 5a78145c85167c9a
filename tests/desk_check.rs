//! Needs: nothing.
//!
//! The race desk over 200 synthetic nights (small electorates, to stay
//! quick): no call is ever wrong, reversed or missing, and the shown share
//! intervals cover the final shares near their nominal rate where the
//! counting order is one the model allows for.

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
        let c = report.tally(o).coverage();
        assert!(
            (c - report.nominal).abs() <= 0.05,
            "{o:?}: coverage {c:.3} vs nominal {}",
            report.nominal
        );
    }
}
