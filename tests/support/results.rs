//! What the binary prints and answers: numbers from its summaries, and
//! fields of a results JSON.

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::Value;

use super::run::stdout;

/// The number right before `word` in `text`: `number_before("sent 5 ballots", " ballots")` is 5.
pub fn number_before(text: &str, word: &str) -> u64 {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} not in output:\n{text}"));
    let digits: String = text[..at]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {word:?} in:\n{text}"))
}

/// The `sent …` line of a `run` summary, read.
pub struct RunSummary {
    pub line: String,
    /// Ballots the simulator sent.
    pub sent: u64,
    /// Received by the election.
    pub received: u64,
    /// Rejected with no usable election (unknown or unreadable).
    pub orphans: u64,
    /// Replays of earlier ballots, skipped.
    pub replays: u64,
}

pub fn run_summary(out: &Output) -> RunSummary {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no `sent ...` line in run summary:\n{text}"));
    RunSummary {
        line: line.to_string(),
        sent: number_before(line, " ballots in"),
        received: number_before(line, " received by election"),
        orphans: number_before(line, " with no usable election"),
        replays: number_before(line, " replays"),
    }
}

/// The number after the word `sent` in a summary ("sent 123 ballots to …").
pub fn sent(out: &Output) -> i64 {
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "sent")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `sent N` in {text}"))
}

pub fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("results field {field:?} is not an integer: {v}"))
}

/// candidate_id → total_votes from a results JSON.
pub fn candidate_totals(r: &Value) -> BTreeMap<String, i64> {
    r["candidates"]
        .as_array()
        .expect("candidates array")
        .iter()
        .map(|c| {
            (
                c["candidate_id"]
                    .as_str()
                    .expect("candidate_id")
                    .to_string(),
                c["total_votes"].as_i64().expect("total_votes"),
            )
        })
        .collect()
}

/// reason → count from a results JSON.
pub fn by_reason(r: &Value) -> BTreeMap<String, i64> {
    r["rejected_by_reason"]
        .as_object()
        .expect("rejected_by_reason object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().expect("reason count")))
        .collect()
}

/// Sum of `field` over the objects of the array `r[array]`.
pub fn sum_of(r: &Value, array: &str, field: &str) -> i64 {
    r[array]
        .as_array()
        .unwrap_or_else(|| panic!("{array} is not an array"))
        .iter()
        .map(|x| x[field].as_i64().expect("integer"))
        .sum()
}
