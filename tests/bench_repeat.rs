//! Needs: nothing.
//!
//! `votestream bench --repeat N` on the embedded shape: each run's table
//! under its own heading, then one summary line per goal with every run's
//! value. What the figures are is never asserted (speed is measured, not
//! tested); only that each run's figure is there.

mod support;

use support::{stderr, votestream_within, DEADLINE};

/// The embedded shape's goals, as the summary names them.
const EMBEDDED_GOALS: [&str; 3] = [
    "freshness p99 at rate max",
    "freshness p99 at 20000 ballots/s",
    "end to end as a share of raw SQLite insert",
];

/// The summary's cells: columns are at least two spaces apart and no cell
/// holds two spaces in a row.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// A figure as the summary prints it: a number and its unit.
fn is_figure(cell: &str) -> bool {
    let number = cell.trim_end_matches(|c: char| !c.is_ascii_digit());
    !number.is_empty() && number.parse::<f64>().is_ok()
}

#[test]
fn repeat_prints_each_run_and_a_summary_of_the_goals() {
    let dir = tempfile::tempdir().unwrap();
    let out = votestream_within(
        &[
            "bench",
            "--voters",
            "20000",
            "--repeat",
            "2",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        DEADLINE,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let run1 = text.find("run 1 of 2").expect("a heading for run 1");
    let run2 = text.find("run 2 of 2").expect("a heading for run 2");
    let summary = text
        .find("goals, embedded shape, 2 runs")
        .expect("a summary");
    assert!(run1 < run2 && run2 < summary, "{text}");
    assert_eq!(
        text.matches("votestream bench — embedded shape").count(),
        2,
        "a table per run:\n{text}"
    );

    let summary = &text[summary..];
    let header = summary
        .lines()
        .find(|l| l.starts_with("goal "))
        .unwrap_or_else(|| panic!("no header:\n{summary}"));
    assert_eq!(
        cells(header),
        ["goal", "target", "run 1", "run 2", "min", "median", "max", "spread", "met"]
    );
    for goal in EMBEDDED_GOALS {
        let line = summary
            .lines()
            .find(|l| l.starts_with(goal))
            .unwrap_or_else(|| panic!("no line for {goal}:\n{summary}"));
        let c = cells(line);
        assert_eq!(c.len(), 9, "{line}");
        assert!(
            is_figure(c[2]) && is_figure(c[3]),
            "two runs' values for {goal}: {line}"
        );
        assert!(
            c[8].starts_with("met in ") && c[8].ends_with(" of 2 runs"),
            "{line}"
        );
    }
}
