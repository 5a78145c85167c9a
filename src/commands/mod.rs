//! One module per subcommand family: each owns its flags and turns them into
//! library calls. Shared flags (store, bus, HTTP, simulation) are in main.rs.
//!
//! - [`run`]: `run` and `serve`, the whole pipeline in one process
//! - [`generate`]: `generate` (the registry) and `simulate` (ballots)
//! - [`process`]: `process`, from JSON lines or Kafka's `ballots`
//! - [`aggregate`]: `aggregate`, the built-in engine or Spark
//! - [`report`]: `results`, `audit` and `bench`
//! - [`replay`]: `replay`, a recorded night played again into a store of its own
//! - [`desk`]: `desk-check`, the race desk graded on synthetic nights, and
//!   `alert-check`, the alert detectors measured on seeded streams

pub mod aggregate;
pub mod desk;
pub mod generate;
pub mod process;
pub mod replay;
pub mod report;
pub mod run;

use anyhow::Context;
use votestream::shutdown::Shutdown;

/// A runtime that turns Ctrl-C and SIGTERM into a shutdown request.
fn signals() -> anyhow::Result<(tokio::runtime::Runtime, Shutdown)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let shutdown = Shutdown::default();
    shutdown.listen(rt.handle());
    Ok((rt, shutdown))
}

/// `--metrics-listen`: serves `/metrics` beside a Kafka-shape stage.
fn expose_metrics(
    rt: &tokio::runtime::Runtime,
    addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        let bound = votestream::serve::metrics::expose(rt.handle(), addr)
            .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
        eprintln!("metrics: http://{bound}/metrics");
    }
    Ok(())
}

/// On the in-process bus the stages run inside `run`/`serve`, whose own
/// server has `/metrics`: a flag that would serve nothing here is refused.
fn no_metrics_listen(addr: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.is_none(),
        "--metrics-listen is for the Kafka shape (--bus kafka://…); on the in-process bus, `run` and `serve` have /metrics"
    );
    Ok(())
}

/// Writes the election again with the night's poll schedule, starting now,
/// before any ballot is sent: processors load elections when they start, so
/// one that starts after this refuses ballots cast after their state's close.
fn announce_night(
    store: &mut dyn votestream::store::Store,
    election_id: &str,
    night: &votestream::simulate::Night,
) -> anyhow::Result<()> {
    use votestream::model::{format_voting_time, now_millis};
    let entry = store
        .elections()?
        .into_iter()
        .find(|e| e.election.election_id == election_id)
        .with_context(|| format!("no election {election_id:?} in the store"))?;
    anyhow::ensure!(
        night.skew_candidate < entry.candidates.len(),
        "--night-skew-candidate {}: election {election_id:?} has {} candidates (counted from 0)",
        night.skew_candidate,
        entry.candidates.len()
    );
    let polls = night.polls(now_millis());
    let mut election = entry.election;
    election.polls = Some(polls);
    store.put_election(&election, &entry.candidates)?;
    let last = polls.first_close + i64::from(votestream::states::LAST_CLOSE_STEP) * polls.step_ms;
    eprintln!(
        "election night: the first polls close at {}, the last at {} (UTC)",
        format_voting_time(polls.first_close),
        format_voting_time(last)
    );
    Ok(())
}

fn open_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))
}

/// Numeric flags are parsed once at the edge: a value out of range is a
/// clear error from clap, never a run that silently does nothing.
pub mod range {
    fn number(s: &str) -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number"))?;
        if !v.is_finite() {
            return Err(format!("`{s}` is not a finite number"));
        }
        Ok(v)
    }

    /// A share: a finite number from 0 to 1.
    pub fn share(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        if !(0.0..=1.0).contains(&v) {
            return Err(format!(
                "`{s}` is not a share: expected a number from 0 to 1"
            ));
        }
        Ok(v)
    }

    /// A finite number ≥ 0.
    pub fn non_negative(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        if v < 0.0 {
            return Err(format!("`{s}` is negative: expected a number ≥ 0"));
        }
        Ok(v)
    }

    /// A duration in seconds: finite, more than 0, at most a day.
    pub fn positive_secs(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        if v <= 0.0 || v > 86_400.0 {
            return Err(format!(
                "`{s}` is not a duration: expected seconds above 0, at most 86400"
            ));
        }
        Ok(v)
    }

    /// An election night's length: a number with a unit, `s`, `m` or `h`
    /// (a bare number is seconds), from 1 s to a day, in milliseconds.
    pub fn night_duration(s: &str) -> Result<i64, String> {
        let t = s.trim();
        let (n, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
            Some((at, _)) => t.split_at(at),
            None => (t, "s"),
        };
        let scale = match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("`{s}`: expected a duration such as 90s, 10m or 1h")),
        };
        let secs = number(n)? * scale;
        if !(1.0..=86_400.0).contains(&secs) {
            return Err(format!("`{s}`: a night lasts from 1 s to 24 h"));
        }
        Ok((secs * 1000.0).round() as i64)
    }

    /// A whole number ≥ 1.
    pub fn at_least_one(s: &str) -> Result<usize, String> {
        match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("`{s}` is not a whole number ≥ 1")),
        }
    }

    /// A whole number ≥ 1, as u64.
    pub fn at_least_one_u64(s: &str) -> Result<u64, String> {
        at_least_one(s).map(|n| n as u64)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn shares_outside_zero_to_one_are_refused() {
            assert_eq!(share("0.8"), Ok(0.8));
            assert_eq!(share("0"), Ok(0.0));
            assert_eq!(share("1"), Ok(1.0));
            for bad in ["NaN", "nan", "-1", "1.5", "inf", "-0.01", "x", ""] {
                assert!(share(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn night_durations_take_a_unit_and_stay_within_a_day() {
            assert_eq!(night_duration("90s"), Ok(90_000));
            assert_eq!(night_duration("10m"), Ok(600_000));
            assert_eq!(night_duration("1.5h"), Ok(5_400_000));
            assert_eq!(night_duration("45"), Ok(45_000));
            for bad in ["0s", "-5m", "25h", "10x", "m", "", "NaNs"] {
                assert!(night_duration(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn negatives_and_non_numbers_are_refused() {
            assert_eq!(non_negative("0"), Ok(0.0));
            assert_eq!(non_negative("2.5"), Ok(2.5));
            for bad in ["NaN", "-1", "inf", "-inf", "x"] {
                assert!(non_negative(bad).is_err(), "{bad}");
            }
            assert_eq!(at_least_one("3"), Ok(3));
            for bad in ["0", "-1", "1.5", "x"] {
                assert!(at_least_one(bad).is_err(), "{bad}");
            }
        }
    }
}
