//! One module per subcommand family: each owns its flags and turns them into
//! library calls. Shared flags (store, bus, HTTP, simulation) are in main.rs.
//!
//! - [`run`]: `run` and `serve`, the whole pipeline in one process
//! - [`generate`]: `generate` (the registry) and `simulate` (ballots)
//! - [`process`]: `process`, from JSON lines or Kafka's `ballots`
//! - [`aggregate`]: `aggregate`, the built-in engine or Spark
//! - [`report`]: `results`, `audit` and `bench`

pub mod aggregate;
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
