//! The performance goals a bench run checks, as data beside its printed
//! table, and the summary of several runs of one shape: each goal's value in
//! every run, min / median / max, the spread, and in how many runs it was met.
//!
//! Goals are ratios or latencies measured within one run, so runs on
//! machines of different speed (or on one busy machine) stay comparable.

use std::fmt::Write as _;

/// One shape's run: the table it prints and the goals it checked.
pub struct Report {
    pub table: String,
    pub goals: Vec<Goal>,
}

/// Which side of the target a value must be on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn holds(self, value: f64) -> bool {
        match self {
            Target::AtLeast(t) => value >= t,
            Target::AtMost(t) => value <= t,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Goal {
    pub what: String,
    pub value: f64,
    /// "%", "ms", "ballots/s", "viewers", "MB".
    pub unit: &'static str,
    pub target: Target,
    pub met: bool,
    /// What the value alone does not show and kept the goal from being met
    /// (e.g. fewer viewers tried than the goal names); shown in the summary.
    pub note: Option<String>,
}

impl Goal {
    pub fn new(what: impl Into<String>, value: f64, unit: &'static str, target: Target) -> Goal {
        Goal {
            what: what.into(),
            value,
            unit,
            target,
            met: target.holds(value),
            note: None,
        }
    }

    /// A goal that also needs `condition`, which the value alone does not
    /// show; `why` says what was missing when it fails.
    pub fn only_if(mut self, condition: bool, why: impl FnOnce() -> String) -> Goal {
        if !condition {
            self.met = false;
            let why = why();
            self.note = Some(match self.note.take() {
                Some(before) => format!("{before}; {why}"),
                None => why,
            });
        }
        self
    }

    /// `part` as a percentage of `whole`, same run.
    pub fn share(what: impl Into<String>, part: f64, whole: f64, target_percent: f64) -> Goal {
        Goal::new(
            what,
            100.0 * part / whole,
            "%",
            Target::AtLeast(target_percent),
        )
    }
}

/// "1 run", "5 runs".
pub fn count_runs(n: usize) -> String {
    format!("{n} run{}", if n == 1 { "" } else { "s" })
}

fn figure(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "—".into();
    }
    match unit {
        "%" => format!("{value:.0}%"),
        _ => format!("{value:.0} {unit}"),
    }
}

fn target_text(t: Target, unit: &str) -> String {
    match t {
        Target::AtLeast(v) => format!("≥ {}", figure(v, unit)),
        Target::AtMost(v) => format!("≤ {}", figure(v, unit)),
    }
}

/// One goal over all runs: `values[i]` is run i's, `None` where that run
/// did not measure it (no such goal, or a NaN value).
#[derive(Debug, PartialEq)]
pub struct GoalRuns {
    pub what: String,
    pub unit: &'static str,
    pub target: Target,
    pub values: Vec<Option<f64>>,
    pub met: usize,
    pub notes: Vec<String>,
}

impl GoalRuns {
    fn measured(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.values.iter().flatten().copied().collect();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn min(&self) -> Option<f64> {
        self.measured().first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.measured().last().copied()
    }

    pub fn median(&self) -> Option<f64> {
        let v = self.measured();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// (max − min) / median: how far one run can be from another, as a
    /// share of the typical value.
    pub fn spread(&self) -> Option<f64> {
        let (min, median, max) = (self.min()?, self.median()?, self.max()?);
        (median != 0.0).then(|| (max - min) / median)
    }
}

/// Gathers each goal over `runs` (one Vec of goals per run), in the order
/// the goals first appear; a run that lacks a goal leaves a gap.
pub fn gather(runs: &[Vec<Goal>]) -> Vec<GoalRuns> {
    let mut out: Vec<GoalRuns> = Vec::new();
    for (i, goals) in runs.iter().enumerate() {
        for g in goals {
            let at = match out.iter().position(|r| r.what == g.what) {
                Some(at) => at,
                None => {
                    out.push(GoalRuns {
                        what: g.what.clone(),
                        unit: g.unit,
                        target: g.target,
                        values: vec![None; runs.len()],
                        met: 0,
                        notes: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let r = &mut out[at];
            // A value that could not be measured (NaN) is a gap, not a figure.
            r.values[i] = Some(g.value).filter(|v| v.is_finite());
            r.met += usize::from(g.met);
            if let Some(n) = g.note.as_ref().filter(|n| !r.notes.contains(n)) {
                r.notes.push(n.clone());
            }
        }
    }
    out
}

/// The summary table: one line per goal, cells at least two spaces apart
/// (no cell holds two spaces in a row, so the columns can be split).
pub fn render_summary(title: &str, runs: &[Vec<Goal>]) -> String {
    let n = runs.len();
    let mut header: Vec<String> = vec!["goal".into(), "target".into()];
    header.extend((1..=n).map(|i| format!("run {i}")));
    header.extend(["min", "median", "max", "spread", "met"].map(String::from));
    let mut lines = vec![header];
    let mut notes = Vec::new();
    for g in gather(runs) {
        let f = |v: Option<f64>| v.map_or("—".to_string(), |v| figure(v, g.unit));
        let mut cells = vec![g.what.clone(), target_text(g.target, g.unit)];
        cells.extend(g.values.iter().map(|v| f(*v)));
        cells.extend([f(g.min()), f(g.median()), f(g.max())]);
        cells.push(
            g.spread()
                .map_or("—".into(), |s| format!("{:.0}%", 100.0 * s)),
        );
        cells.push(format!("met in {} of {}", g.met, count_runs(n)));
        for note in &g.notes {
            notes.push(format!("{}: {note}", g.what));
        }
        lines.push(cells);
    }
    let cols = lines[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{title}\n\n");
    for l in &lines {
        let mut line = String::new();
        for (c, cell) in l.iter().enumerate() {
            let w = widths[c];
            // Names and the met count read left to right; figures line up right.
            let _ = match c {
                0 => write!(line, "{cell:<w$}"),
                _ if c == cols - 1 => write!(line, "  {cell}"),
                _ => write!(line, "  {cell:>w$}"),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for note in notes {
        let _ = writeln!(out, "  not met whatever the figure: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(value: f64) -> Goal {
        Goal::new("end to end share", value, "%", Target::AtLeast(75.0))
    }

    fn latency(value: f64) -> Goal {
        Goal::new("freshness p99", value, "ms", Target::AtMost(250.0))
    }

    fn runs_of(values: &[f64]) -> GoalRuns {
        let runs: Vec<Vec<Goal>> = values.iter().map(|v| vec![ratio(*v)]).collect();
        gather(&runs).pop().unwrap()
    }

    #[test]
    fn a_target_is_met_on_its_side_and_at_its_edge() {
        assert!(ratio(75.0).met && ratio(90.0).met && !ratio(74.9).met);
        assert!(latency(250.0).met && latency(10.0).met && !latency(251.0).met);
        let unmet = latency(10.0).only_if(false, || "only 5000 tried".into());
        assert!(!unmet.met);
        assert_eq!(unmet.note.as_deref(), Some("only 5000 tried"));
        let twice = unmet.only_if(false, || "93% within 500 ms".into());
        assert_eq!(
            twice.note.as_deref(),
            Some("only 5000 tried; 93% within 500 ms")
        );
        assert!(latency(10.0).only_if(true, || unreachable!()).met);
        let share = Goal::share("s", 150.0, 200.0, 50.0);
        assert_eq!((share.value, share.met), (75.0, true));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let g = runs_of(&[90.0, 60.0, 80.0]);
        assert_eq!(
            (g.min(), g.median(), g.max()),
            (Some(60.0), Some(80.0), Some(90.0))
        );
        let g = runs_of(&[90.0, 60.0, 80.0, 70.0]);
        assert_eq!(g.median(), Some(75.0));
        assert_eq!(runs_of(&[42.0]).median(), Some(42.0));
    }

    #[test]
    fn spread_is_the_range_over_the_median() {
        let g = runs_of(&[90.0, 60.0, 80.0]);
        assert_eq!(g.spread(), Some(30.0 / 80.0));
        assert_eq!(runs_of(&[80.0, 80.0]).spread(), Some(0.0));
        assert_eq!(
            runs_of(&[0.0, 0.0]).spread(),
            None,
            "no median to divide by"
        );
    }

    #[test]
    fn met_counts_runs_and_a_missing_value_is_a_gap() {
        let runs = vec![
            vec![ratio(80.0), latency(300.0)],
            vec![ratio(70.0)],
            vec![ratio(76.0), latency(100.0)],
        ];
        let g = gather(&runs);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].what.as_str(), g[0].met), ("end to end share", 2));
        assert_eq!(g[1].values, vec![Some(300.0), None, Some(100.0)]);
        assert_eq!(g[1].met, 1);
        assert_eq!(g[1].median(), Some(200.0));
        let unmeasured = vec![vec![ratio(f64::NAN)], vec![ratio(80.0)]];
        let g = gather(&unmeasured);
        assert_eq!((g[0].values.clone(), g[0].met), (vec![None, Some(80.0)], 1));
    }

    #[test]
    fn the_summary_has_a_line_per_goal_with_every_run() {
        let runs = vec![
            vec![ratio(80.0), latency(300.0)],
            vec![ratio(70.0), latency(120.0)],
        ];
        let text = render_summary("the title", &runs);
        let cells = |name: &str| -> Vec<String> {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        };
        assert!(text.starts_with("the title\n\n"), "{text}");
        assert_eq!(
            cells("goal"),
            ["goal", "target", "run 1", "run 2", "min", "median", "max", "spread", "met"]
        );
        assert_eq!(
            cells("end to end share"),
            [
                "end to end share",
                "≥ 75%",
                "80%",
                "70%",
                "70%",
                "75%",
                "80%",
                "13%",
                "met in 1 of 2 runs"
            ]
        );
        assert_eq!(
            cells("freshness p99"),
            [
                "freshness p99",
                "≤ 250 ms",
                "300 ms",
                "120 ms",
                "120 ms",
                "210 ms",
                "300 ms",
                "86%",
                "met in 1 of 2 runs"
            ]
        );
    }

    #[test]
    fn one_run_still_shows_whether_each_goal_was_met() {
        let text = render_summary("goals", &[vec![ratio(80.0), latency(300.0)]]);
        assert!(text.contains("met in 1 of 1 run\n"), "{text}");
        assert!(text.contains("met in 0 of 1 run\n"), "{text}");
    }

    #[test]
    fn a_note_is_shown_once_below_the_table() {
        let tried = || "5000 viewers tried; the goal needs --viewers 20000".to_string();
        let g = || Goal::new("viewers", 5000.0, "viewers", Target::AtLeast(20000.0));
        let text = render_summary(
            "goals",
            &[
                vec![g().only_if(false, tried)],
                vec![g().only_if(false, tried)],
            ],
        );
        assert_eq!(text.matches("5000 viewers tried").count(), 1, "{text}");
        assert!(text.contains("met in 0 of 2 runs"), "{text}");
    }
}
