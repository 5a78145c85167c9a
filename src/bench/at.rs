//! `votestream bench --at STORE`: how fast results as of a moment come
//! back from an existing store's ledger (the night is the store's own: a
//! 10M-vote one is made once with `run`, then measured as often as wanted).
//!
//! The first query at the ledger's end walks the whole ledger and keeps a
//! checkpoint every `CHECKPOINT_EVERY` positions (that cost is shown on its
//! own); then random positions and random times between the first and the
//! latest cast time, each timed alone.

use std::time::Instant;

use hdrhistogram::Histogram;

use super::{render, Row};
use crate::results::At;
use crate::store::{self, CHECKPOINT_EVERY};

pub fn run(url: &str, election: &str, queries: u64) -> anyhow::Result<String> {
    let mut st = store::open(url)?;
    let t = Instant::now();
    let end = st.results_at(election, At::Seq(i64::MAX))?;
    let first_secs = t.elapsed().as_secs_f64();
    let as_of = end.as_of.unwrap_or(crate::results::AsOf {
        seq: 0,
        time: None,
        ledger_seq: 0,
    });
    let mut rows = vec![Row {
        what: format!(
            "first query: the end of a {}-position ledger",
            as_of.ledger_seq
        ),
        figure: format!("{first_secs:.2} s"),
        note: format!(
            "walks the ledger from the last checkpoint kept (all of it the first time), \
             keeping one every {CHECKPOINT_EVERY} positions; {} votes counted",
            end.counted
        ),
    }];
    let begin = st
        .results_at(election, At::Seq(1))?
        .as_of
        .and_then(|a| a.time);
    let mut rng = rand::rng();
    let mut seq_lat = Histogram::<u64>::new(3)?;
    let mut time_lat = Histogram::<u64>::new(3)?;
    for _ in 0..queries {
        let n = rand::Rng::random_range(&mut rng, 0..=as_of.seq);
        let t = Instant::now();
        st.results_at(election, At::Seq(n))?;
        seq_lat.record(t.elapsed().as_micros() as u64)?;
        if let (Some(a), Some(b)) = (begin, as_of.time) {
            let at = rand::Rng::random_range(&mut rng, a..=b);
            let t = Instant::now();
            st.results_at(election, At::Time(at))?;
            time_lat.record(t.elapsed().as_micros() as u64)?;
        }
    }
    for (what, h) in [("a position", &seq_lat), ("a time", &time_lat)] {
        if h.is_empty() {
            continue;
        }
        rows.push(Row {
            what: format!("results as of {what}, {} random ones", h.len()),
            figure: format!(
                "p50 {:.1} ms, p99 {:.1} ms",
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0
            ),
            note: format!("max {:.1} ms", h.max() as f64 / 1000.0),
        });
    }
    Ok(render("results as of a moment", &rows))
}
