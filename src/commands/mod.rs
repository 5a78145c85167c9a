//! One module per subcommand family: each owns its flags and turns them into
//! library calls. Shared flags (store, bus, HTTP, simulation) are in main.rs.
//!
//! - [`run`]: `run` and `serve`, the whole pipeline in one process
//! - [`generate`]: `generate` (the registry) and `simulate` (ballots)
//! - [`process`]: `process`, from JSON lines or Kafka's `ballots`
//! - [`aggregate`]: `aggregate`, the built-in engine or Spark
//! - [`report`]: `results`, `audit` and `bench`
//! - [`desk`]: `desk-check`, the race desk graded on synthetic nights

pub mod aggregate;
pub mod desk;
pub mod generate;
pub mod process;
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
