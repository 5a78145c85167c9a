//! `desk-check`: replays seeded synthetic nights through the race desk and
//! prints the grade; any failure (a wrong, reversed or missing call, an
//! event a restart repeats) makes the exit code 1.

use std::process::ExitCode;

use clap::Args;
use votestream::desk::check;

#[derive(Args)]
pub struct DeskCheckArgs {
    /// Nights to replay (the counting orders take turns).
    #[arg(long, default_value_t = 200, value_parser = super::range::at_least_one, allow_negative_numbers = true)]
    nights: usize,
    /// Seed of the first night: same seed, same nights, same report.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Registered voters across the 51 states, per night.
    #[arg(long, default_value_t = 200_000, value_parser = super::range::at_least_one_u64, allow_negative_numbers = true)]
    voters: u64,
}

pub fn desk_check(a: DeskCheckArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let report = check::check(a.nights, a.seed, a.voters);
    print!("{report}");
    println!(
        "{} nights, seed {}, {} registered voters each, in {:.1} s",
        a.nights,
        a.seed,
        a.voters,
        started.elapsed().as_secs_f64()
    );
    Ok(if report.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Args)]
pub struct AlertCheckArgs {
    /// Nights per injected anomaly, and clean nights (each ten minutes of stream time).
    #[arg(long, default_value_t = 50, value_parser = super::range::at_least_one, allow_negative_numbers = true)]
    nights: usize,
    /// Seed of the first night: same seed, same nights, same report.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// `alert-check`: the alert detectors on seeded streams, clean and with
/// each anomaly injected; exit 1 on a missed anomaly, a false alarm, or a
/// p99 detection delay over 10 s of stream time.
pub fn alert_check(a: AlertCheckArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let report = votestream::alerts::check::check(a.nights, a.seed);
    print!("{report}");
    println!(
        "{} nights of each of 6 streams (5 anomalies and clean), seed {}, in {:.1} s",
        a.nights,
        a.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(if report.passes(10_000) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
