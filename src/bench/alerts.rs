//! `votestream bench --alerts`: what the alerts stage costs the embedded
//! pipeline, and how fast it reads a night's ledger on its own.
//!
//! - Cost: full-speed runs with the stage and without, in alternating
//!   pairs on one machine (the stage reads the ledger back beside the
//!   processor and the aggregator, and saves its state now and then); and
//!   the CPU time its thread used, as a share of the runs' (what it takes
//!   from the count on a machine the count keeps busy, without the spread
//!   of timing whole runs).
//! - Rate: a stage started on a finished night reads the whole ledger to
//!   its end, look after look, as one does after a restart: its votes/s
//!   say how far ahead of the pipeline it can stay.

use std::path::Path;
use std::time::Instant;

use super::desk::stage_cost;
use super::{bench_config, cores, remove_db, render, sqlite_url, Row};
use crate::aggregate::BUILTIN;
use crate::alerts::stage::AlertStage;
use crate::alerts::AlertConfig;
use crate::generate::DEFAULT_ELECTION_ID;
use crate::model::now_millis;
use crate::pipeline;
use crate::simulate::Rate;
use crate::store;

pub fn run(voters: u64, dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    // Where the stage stood when the run ended (it runs at a lower CPU
    // priority and may fall behind under full load; it reads the rest for
    // up to 5 s as the run stops).
    let caught_up = |url: &str| -> anyhow::Result<String> {
        let mut st = store::open(url)?;
        let at = st
            .alert_resume(DEFAULT_ELECTION_ID)?
            .map_or(0, |r| r.at.votes);
        // Only what lies past the stage is read: none when it caught up.
        let left = st.ledger_after(at, usize::MAX)?.len();
        Ok(format!(
            "; the stage had {left} votes left to read when the run ended"
        ))
    };
    let mut rows = vec![stage_cost(
        voters,
        dir,
        "the alerts stage",
        5,
        |cfg| cfg.alerts = true,
        &caught_up,
    )?];
    let db = dir.join("alerts-night.db");
    remove_db(&db);
    let url = sqlite_url(&db);
    let night = pipeline::run(bench_config(&url, voters, Rate::Max, false)?)?;
    let mut stage = AlertStage::open(
        store::open(&url)?,
        DEFAULT_ELECTION_ID,
        BUILTIN,
        AlertConfig::default(),
        Vec::new(),
    )?;
    let t = Instant::now();
    let mut looks = 0u64;
    loop {
        looks += 1;
        let (_, full) = stage.step(now_millis())?;
        if !full {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let read = night.results.received as f64;
    rows.push(Row {
        what: format!("alerts stage alone, reading a finished {voters}-voter night"),
        figure: format!("{:.0} ballots/s", read / secs),
        note: format!(
            "{} ballots in {:.2} s, {looks} looks, {} changes recorded; the pipeline ran at {:.0} ballots/s",
            night.results.received,
            secs,
            stage.recorded(),
            night.sent as f64 / night.elapsed.as_secs_f64()
        ),
    });
    remove_db(&db);
    Ok(render(
        &format!("votestream bench --alerts — embedded, {} cores", cores()),
        &rows,
    ))
}
